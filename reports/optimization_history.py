"""Optimisation history: each trial's result against its trial number, with the best so far.

The objective is censored (a trial that missed the target gets 1e6 + loss or so), so plotting it raw would
flatten everything. Three panels share the trial-number axis: trials that reached the target by their
time to target, with the best-so-far line (top); trials that did not, by their final smoothed loss (middle,
open markers); trials with no number at all (errored, diverged before a loss) as a strip (bottom).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._data import RunData
from ._style import (
    BEST_COLOUR,
    LAYOUT,
    LOSS_AXIS,
    RECORD_COLOUR,
    final_loss,
    objective_label,
    objective_values,
    ordered_statuses,
    record_trial_number,
    status_colour,
    tolist,
)


@dataclass(frozen=True)
class TrialPoints:
    """Trials of one status in one panel: their numbers, ids and y values (None in the no-value strip)."""

    number: list[Any]
    trial_id: list[Any]
    y: list[Any]


@dataclass(frozen=True)
class BestSoFar:
    """The running minimum of the objective after each trial number (None before the first value)."""

    number: list[Any]
    value: list[Any]


@dataclass(frozen=True)
class BestTrial:
    """The trial with the lowest objective."""

    number: int
    trial_id: str
    value: float


@dataclass(frozen=True)
class RecordTrial:
    """The trial run with the record's settings: its objective, or its loss when it has none."""

    number: int
    value: float | None
    loss: float | None


@dataclass(frozen=True)
class OptimizationHistoryInfo:
    """What the optimisation history draws: trials split by panel (keyed by status), best so far, best, record."""

    y_label: str
    objective: str
    y2_label: str
    censored: bool  # a speedrun track: trials that missed the target carry 1e6 + loss
    valued: dict[str, TrialPoints]  # top panel: trials with a value on a real scale
    unreached: dict[str, TrialPoints]  # middle panel: no value, by final loss
    no_value: dict[str, TrialPoints]  # bottom strip: neither
    best_so_far: BestSoFar
    best: BestTrial | None
    record: RecordTrial | None
    target: float | None
    n_trials: int


def _get_optimization_history_info(run: RunData) -> OptimizationHistoryInfo:
    trials = run.trials
    value = objective_values(run)
    loss, loss_name = final_loss(trials)
    if run.is_budget_track:
        loss = loss.where(value.isna())
    else:
        loss = loss.where(~trials["reached"])
    on_value, on_loss = value.notna(), value.isna() & loss.notna()
    no_number = ~on_value & ~on_loss
    best_so_far = value.cummin().ffill()  # NaN before the first trial with a value; sorted by number

    def group(mask: Any, y: Any) -> dict[str, TrialPoints]:
        out = {}
        for status in ordered_statuses(trials.loc[mask, "status"]):
            rows = mask & (trials["status"] == status)
            out[status] = TrialPoints(number=tolist(trials.loc[rows, "number"]), trial_id=tolist(trials.loc[rows, "trial_id"]),
                                      y=tolist(y[rows]) if y is not None else [None] * int(rows.sum()))
        return out

    best = None
    if on_value.any():
        index = value.idxmin()
        best = BestTrial(number=int(trials.at[index, "number"]), trial_id=str(trials.at[index, "trial_id"]),
                         value=float(value[index]))
    record_number = record_trial_number(run)
    record = None
    if record_number is not None:
        row = trials.index[trials["number"] == record_number][0]
        record = RecordTrial(number=record_number, value=None if np.isnan(value[row]) else float(value[row]),
                             loss=None if np.isnan(loss[row]) else float(loss[row]))
    return OptimizationHistoryInfo(
        y_label=objective_label(run, short=True),
        objective=objective_label(run),
        y2_label=f"{loss_name.removeprefix('final ')},<br>target not reached (nats)" if not run.is_budget_track
        else f"{loss_name} ({LOSS_AXIS})",
        censored=not run.is_budget_track,
        valued=group(on_value, value),
        unreached=group(on_loss, loss),
        no_value=group(no_number, None),
        best_so_far=BestSoFar(number=tolist(trials["number"]), value=tolist(best_so_far)),
        best=best,
        record=record,
        target=run.target,
        n_trials=len(trials),
    )


def plot_optimization_history(run: RunData, info: OptimizationHistoryInfo | None = None) -> go.Figure:
    info = info if info is not None else _get_optimization_history_info(run)  # a page passes the info it computed
    groups = {"valued": info.valued, "unreached": info.unreached, "no_value": info.no_value}
    panels = [key for key, points in groups.items() if points] or ["valued"]
    weights = {"valued": 0.6, "unreached": 0.3, "no_value": 0.04 + 0.04 * len(info.no_value)}
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        row_heights=[weights[p] for p in panels])
    row_of = {p: i + 1 for i, p in enumerate(panels)}
    hover = "trial %{x} (%{customdata})<br>%{y:.4g}<extra>%{fullData.name}</extra>"
    for status, points in info.valued.items():
        fig.add_trace(go.Scatter(
            x=points.number, y=points.y, customdata=points.trial_id, mode="markers", name=status,
            legendgroup=status, marker=dict(color=status_colour(status), size=9, line=dict(width=1, color="white")),
            hovertemplate=hover), row=row_of["valued"], col=1)
    if info.valued:
        fig.add_trace(go.Scatter(
            x=info.best_so_far.number, y=info.best_so_far.value, mode="lines", name="best so far",
            line=dict(color=BEST_COLOUR, width=2, shape="hv"), hovertemplate="best after trial %{x}: %{y:.4g}<extra></extra>",
        ), row=row_of["valued"], col=1)
    for status, points in info.unreached.items():
        fig.add_trace(go.Scatter(
            x=points.number, y=points.y, customdata=points.trial_id, mode="markers",
            name=f"{status}, target not reached" if info.censored else status, legendgroup=status,
            marker=dict(color=status_colour(status), size=9, symbol="circle-open", line=dict(width=2)),
            hovertemplate=hover), row=row_of["unreached"], col=1)
    record = info.record
    if record is not None and (record.value is not None or record.loss is not None):
        panel = "valued" if record.value is not None else "unreached"
        fig.add_trace(go.Scatter(
            x=[record.number], y=[record.value if panel == "valued" else record.loss], mode="markers",
            name="record settings", marker=dict(symbol="star", size=17, color=RECORD_COLOUR,
                                                line=dict(width=1, color="#5a4500")),
            hovertemplate="record settings, trial %{x}: %{y:.4g}<extra></extra>"), row=row_of[panel], col=1)
    for status, points in info.no_value.items():
        fig.add_trace(go.Scatter(
            x=points.number, y=[status] * len(points.number), customdata=points.trial_id, mode="markers",
            name=f"{status} (no value)", legendgroup=status, marker=dict(
                color=status_colour(status), size=10, symbol="x-thin-open", line=dict(width=2.5, color=status_colour(status))),
            hovertemplate="trial %{x} (%{customdata})<extra>" + status + "</extra>"), row=row_of["no_value"], col=1)
    title = "Optimisation history"
    if info.best:
        title += f" — best: trial {info.best.number} ({info.best.value:.4g})"
    title += f"<br><sup>objective: {info.objective}</sup>"
    fig.update_layout(**LAYOUT, title=title, height=340 if panels == ["no_value"] else 560 + 60 * (len(panels) - 1),
                      legend=dict(orientation="h", y=-0.1, x=0, yanchor="top"))
    titles = {"valued": info.y_label, "unreached": info.y2_label, "no_value": ""}
    for panel, row in row_of.items():
        fig.update_yaxes(title_text=titles[panel], row=row, col=1, title_font=dict(size=13 if panel == "valued" else 12))
    fig.update_xaxes(title_text="trial number", row=len(panels), col=1)
    if info.n_trials <= 20:
        fig.update_xaxes(dtick=1)
    return fig
