"""Time to target by the search's rule: its distribution over trials, and time against tokens.

The record's settings (settings `record_params`, run as the first trial) are the reference: a vertical
line in the histogram and a star in the scatter. The scatter separates trials that learn more per token
from those that only process tokens faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._data import RULES, RunData
from ._style import (
    LAYOUT,
    RECORD_COLOUR,
    RULE_WORDS,
    SECONDS_AXIS,
    TOKENS_AXIS,
    record_trial_number,
    status_colour,
    tolist,
)


@dataclass(frozen=True)
class RecordTime:
    """The trial run with the record's settings: its time and tokens to target (None if it did not reach)."""

    number: int
    time_s: float | None
    tokens: float | None
    status: str


@dataclass(frozen=True)
class FastestTrial:
    """The trial that reached the target first by the search's rule."""

    number: int
    time_s: float


@dataclass(frozen=True)
class Histogram:
    """Bins of the times to target: `edges` has one more entry than `counts`."""

    edges: list[float]
    counts: list[int]


@dataclass(frozen=True)
class RuleSummary:
    """One crossing rule: how many trials reached the target by it, the best and median times, the record's."""

    rule: str
    reached: int
    best_s: float | None
    median_s: float | None
    record_s: float | None


@dataclass(frozen=True)
class TimeToTargetInfo:
    """What the time-to-target page draws: times and tokens of the trials that reached, by the search's rule."""

    rule: str
    column: str
    target: float | None
    times: list[float]
    histogram: Histogram
    tokens: list[float]
    numbers: list[int]
    statuses: list[str]
    n_reached: int
    n_trials: int
    record: RecordTime | None
    best: FastestTrial | None
    speedup_vs_record: float | None  # the record's time / the best time
    by_rule: list[RuleSummary]


def _get_time_to_target_info(run: RunData) -> TimeToTargetInfo:
    trials, rule = run.trials, run.search_rule
    time_col, tokens_col = f"time_to_target_{rule}_s", f"tokens_to_target_{rule}"
    times = trials[time_col]
    reached = times.notna() & np.isfinite(times)
    record_number = record_trial_number(run)
    record = None
    if record_number is not None:
        row = trials[trials["number"] == record_number].iloc[0]
        record_time = row[time_col]
        record = RecordTime(number=record_number, time_s=None if np.isnan(record_time) else float(record_time),
                            tokens=None if np.isnan(row[tokens_col]) else float(row[tokens_col]), status=row["status"])
    by_rule = []
    for r in RULES:
        column = trials[f"time_to_target_{r}_s"]
        ok = column.notna()
        record_time = None
        if record_number is not None:
            value = column[trials["number"] == record_number].iloc[0]
            record_time = None if np.isnan(value) else float(value)
        by_rule.append(RuleSummary(rule=r, reached=int(ok.sum()), best_s=float(column.min()) if ok.any() else None,
                                   median_s=float(column.median()) if ok.any() else None, record_s=record_time))
    best = None
    if reached.any():
        index = times[reached].idxmin()
        best = FastestTrial(number=int(trials.at[index, "number"]), time_s=float(times[index]))
    values = times[reached].to_numpy(dtype=float)
    if len(values):
        edges = np.histogram_bin_edges(values, bins="auto" if len(values) > 1 else 1)
        counts, edges = np.histogram(values, bins=edges[: 31] if len(edges) > 31 else edges)
    else:
        counts, edges = np.array([], dtype=int), np.array([])
    speedup = None
    if best and record and record.time_s:
        speedup = record.time_s / best.time_s
    return TimeToTargetInfo(
        rule=rule,
        column=time_col,
        target=run.target,
        times=tolist(times[reached]),
        histogram=Histogram(edges=tolist(edges), counts=[int(c) for c in counts]),
        tokens=tolist(trials.loc[reached, tokens_col]),
        numbers=tolist(trials.loc[reached, "number"]),
        statuses=tolist(trials.loc[reached, "status"]),
        n_reached=int(reached.sum()),
        n_trials=len(trials),
        record=record,
        best=best,
        speedup_vs_record=speedup,
        by_rule=by_rule,
    )


def plot_time_to_target(run: RunData, info: TimeToTargetInfo | None = None) -> go.Figure:
    info = info if info is not None else _get_time_to_target_info(run)  # a page passes the info it computed
    rule_words = RULE_WORDS.get(info.rule, info.rule)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.1,
                        subplot_titles=(f"{info.n_reached} of {info.n_trials} trials reached the target",
                                        "tokens against time to target"))
    edges, counts = info.histogram.edges, info.histogram.counts
    fig.add_trace(go.Bar(x=[(a + b) / 2 for a, b in zip(edges, edges[1:])], y=counts,
                         width=[0.95 * (b - a) for a, b in zip(edges, edges[1:])], name="trials", showlegend=False,
                         customdata=[[a, b] for a, b in zip(edges, edges[1:])], marker=dict(color="#4c78a8"),
                         hovertemplate="%{customdata[0]:.1f}–%{customdata[1]:.1f} s<br>%{y} trials<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(
        x=info.times, y=info.tokens, mode="markers", name="trials", showlegend=False,
        customdata=info.numbers, marker=dict(color=[status_colour(s) for s in info.statuses], size=9,
                                                 line=dict(width=1, color="white")),
        hovertemplate="trial %{customdata}<br>%{x:.1f} s<br>%{y:,.0f} tokens<extra></extra>"), row=1, col=2)
    record = info.record
    if record and record.time_s is not None:
        fig.add_vline(x=record.time_s, line=dict(color=RECORD_COLOUR, width=3), row=1, col=1,
                      annotation=dict(text=f"record settings (trial {record.number}): {record.time_s:.1f} s",
                                      font=dict(size=12, color="#6b5200")), annotation_position="top right")
        fig.add_trace(go.Scatter(x=[record.time_s], y=[record.tokens], mode="markers", name="record settings",
                                 marker=dict(symbol="star", size=18, color=RECORD_COLOUR, line=dict(width=1, color="#5a4500")),
                                 hovertemplate="record settings<br>%{x:.1f} s<br>%{y:,.0f} tokens<extra></extra>"),
                      row=1, col=2)
    title = f"Time to target ({rule_words} rule"
    title += f", loss ≤ {info.target:g})" if info.target is not None else ")"
    if info.speedup_vs_record:
        title += f" — best is {info.speedup_vs_record:.2f}× as fast as the record settings"
    elif record and record.time_s is None:
        title += f" — the record settings (trial {record.number}) did not reach the target"
    fig.update_layout(**LAYOUT, title=title, height=520, bargap=0.05, legend=dict(x=1, xanchor="right", y=1.02,
                                                                                    yanchor="bottom"))
    fig.update_xaxes(title_text=f"time to target ({SECONDS_AXIS})")
    fig.update_yaxes(title_text="trials", row=1, col=1, rangemode="tozero",
                     dtick=1 if max(counts, default=0) <= 8 else None)
    fig.update_yaxes(title_text=f"{TOKENS_AXIS} to target", row=1, col=2)
    return fig
