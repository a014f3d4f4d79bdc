"""Loss against tokens for every trial: ASHA rungs as vertical lines, the target as a horizontal one.

When the rungs are in clocked seconds (settings `asha.unit`, the speedruns), the curves are drawn against each
trial's clocked training seconds instead, so that the rungs sit where ASHA compared the trials and curves are
compared at equal training time.

Each trial is one line coloured by its status. A trial ASHA stopped is dashed and ends in a cross, a
diverged one ends in a cross at its last finite loss, a running one in a triangle. The record's settings
and the best trial are drawn again on top, thicker. A menu switches between smoothed train loss (the
default: one step's loss is noisy), per-step train loss and validation loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from ._data import RunData
from ._style import (
    BEST_COLOUR,
    CLOCK_AXIS,
    LAYOUT,
    LOSS_AXIS,
    RECORD_COLOUR,
    TOKENS_AXIS,
    objective_values,
    ordered_statuses,
    record_trial_number,
    status_colour,
    tolist,
)

METRICS = {"smoothed_loss": "smoothed train loss", "train_loss": "train loss (per step)", "val_loss": "validation loss"}
END_SYMBOL = {"stopped": "x", "diverged": "x", "running": "triangle-right", "errored": "x"}


@dataclass(frozen=True)
class LossSeries:
    """One metric of one trial: its finite losses and the tokens and clocked seconds at which they were logged."""

    tokens: list[Any]
    loss: list[float]
    clock_s: list[Any]


@dataclass(frozen=True)
class CurveEnd:
    """Where a trial's curve ends on the default metric (its end marker goes there)."""

    tokens: Any
    loss: float
    clock_s: Any


@dataclass(frozen=True)
class Curve:
    """One trial's curves, one series per metric, and how it ended."""

    trial_id: str
    number: int
    status: str
    cut: bool  # stopped by ASHA: drawn dashed
    series: dict[str, LossSeries]  # metric -> series
    end: CurveEnd | None
    last_tokens: float


@dataclass(frozen=True)
class LossCurvesInfo:
    """What the loss curves draw: every trial with history, the rungs, the target and each metric's y range."""

    x_axis: str  # "tokens", or "clock_s" when the rungs are in clocked seconds
    metrics: list[str]
    default_metric: str | None
    curves: list[Curve]
    missing_history: list[int]  # trial numbers with no history
    rungs: list[float]  # where they go on x_axis; none when they cannot be placed there
    target: float | None
    best_number: int | None
    record_number: int | None
    y_ranges: dict[str, list[float] | None]  # metric -> y axis range, None for autorange


def clock_axis(run: RunData) -> bool:
    """Draw against clocked seconds: the rungs are in clocked seconds and the history has the clock."""
    return run.rung_unit == "seconds" and bool(run.history["clock_s"].notna().any())


def _get_loss_curves_info(run: RunData) -> LossCurvesInfo:
    history, trials = run.history, run.trials
    x_axis = "clock_s" if clock_axis(run) else "tokens"
    by_id = {tid: group for tid, group in history.groupby("trial_id", sort=False)} if len(history) else {}
    metrics = [m for m in METRICS if m in history and history[m].notna().any()]
    curves, missing = [], []
    for row in trials.itertuples(index=False):
        group = by_id.get(row.trial_id)
        if group is None or group.empty:
            missing.append(int(row.number))
            continue
        series = {}
        for metric in metrics:
            values = group[metric].to_numpy(dtype=float)
            keep = np.isfinite(values)
            series[metric] = LossSeries(tokens=tolist(group["tokens"].to_numpy()[keep]), loss=tolist(values[keep]),
                                        clock_s=tolist(group["clock_s"].to_numpy()[keep]))
        default = next((m for m in metrics if series[m].tokens), None)
        end = None
        if default:
            end = CurveEnd(tokens=series[default].tokens[-1], loss=series[default].loss[-1],
                           clock_s=series[default].clock_s[-1])
        curves.append(Curve(
            trial_id=row.trial_id, number=int(row.number), status=row.status,
            cut=row.status == "stopped", series=series, end=end,
            last_tokens=float(group["tokens"].max()),
        ))
    values = objective_values(run)
    best = None if values.isna().all() else int(trials.loc[values.idxmin(), "number"])
    return LossCurvesInfo(
        x_axis=x_axis,
        metrics=metrics,
        default_metric=metrics[0] if metrics else None,
        curves=curves,
        missing_history=missing,
        rungs=run.rungs if run.rung_unit == ("seconds" if x_axis == "clock_s" else "tokens") else [],
        target=run.target,
        best_number=best,
        record_number=record_trial_number(run),
        y_ranges={m: _y_range(curves, m, run.target) for m in metrics},
    )


def _y_range(curves: list[Curve], metric: str, target: float | None) -> list[float] | None:
    """Enough room for every curve but a diverging one: its blow-up would squash the rest."""
    values = np.concatenate([np.asarray(c.series[metric].loss, dtype=float) for c in curves
                             if metric in c.series] or [np.array([])])
    if target is not None:
        values = np.append(values, target)
    if not len(values):
        return None
    low, high = float(np.min(values)), float(np.percentile(values, 99.5))
    span = max(high - low, 1e-3)
    return [low - 0.04 * span, high + 0.04 * span]


def _axis_title(metric: str | None) -> str:
    return f"{METRICS.get(metric or '', 'loss')} ({LOSS_AXIS.removeprefix('loss (').removesuffix(')')})"


def _x(series: LossSeries, x_axis: str) -> list[Any]:
    return series.clock_s if x_axis == "clock_s" else series.tokens


def _trace(curve: Curve, metric: str, x_axis: str, *, name: str, colour: str, width: float, dash: str,
           show_legend: bool, group: str, end_symbol: str | None) -> go.Scatter:
    points = curve.series[metric]
    n = len(points.tokens)
    sizes = [0] * n
    if end_symbol and n:
        sizes[-1] = 11
    where = "%{x:.1f} s clocked" if x_axis == "clock_s" else "%{x:,.0f} tokens"
    return go.Scatter(
        x=_x(points, x_axis), y=points.loss, mode="lines+markers" if end_symbol else "lines", name=name,
        legendgroup=group, showlegend=show_legend, line=dict(color=colour, width=width, dash=dash),
        marker=dict(size=sizes, symbol=end_symbol or "circle", color=colour, line=dict(width=2, color=colour)),
        opacity=1.0 if width > 2 else 0.75,
        hovertemplate=f"trial {curve.number} ({curve.status})<br>{where}<br>%{{y:.4f}}<extra></extra>",
    )


def plot_loss_curves(run: RunData, info: LossCurvesInfo | None = None) -> go.Figure:
    info = info if info is not None else _get_loss_curves_info(run)  # a page passes the info it computed
    metric = info.default_metric
    fig = go.Figure()
    traced: list[tuple[Curve, dict[str, Any]]] = []  # (curve, style) per trace, for the menu
    legend_shown: set[str] = set()
    curves = info.curves
    for status in ordered_statuses(c.status for c in curves):
        for curve in (c for c in curves if c.status == status):
            if metric is None or not curve.series[metric].tokens:
                continue
            label = {"stopped": "stopped by ASHA"}.get(status, status)
            style = dict(name=label, colour=status_colour(status), width=1.6, dash="dash" if curve.cut else "solid",
                         show_legend=status not in legend_shown, group=status, end_symbol=END_SYMBOL.get(status))
            legend_shown.add(status)
            fig.add_trace(_trace(curve, metric, info.x_axis, **style))
            traced.append((curve, style))
    for number, label, colour in ((info.record_number, "record settings", RECORD_COLOUR),
                                  (info.best_number, "best trial", BEST_COLOUR)):
        curve = next((c for c in curves if c.number == number), None)
        if curve is None or metric is None or not curve.series[metric].tokens:
            continue
        style = dict(name=f"{label} (trial {number})", colour=colour, width=3.2, dash="solid", show_legend=True,
                     group=label, end_symbol=END_SYMBOL.get(curve.status))
        fig.add_trace(_trace(curve, metric, info.x_axis, **style))
        traced.append((curve, style))

    for i, rung in enumerate(info.rungs):
        fig.add_vline(x=rung, line=dict(color="#9aa4b1", width=1, dash="dot"),
                      annotation=dict(text=f"rung {i + 1}", font=dict(size=11, color="#5f6b7a")),
                      annotation_position="top")
    if info.target is not None:
        fig.add_hline(y=info.target, line=dict(color="#444", width=1.5, dash="dash"),
                      annotation=dict(text=f"target {info.target:g}", font=dict(size=12)),
                      annotation_position="bottom right")
    if len(info.metrics) > 1:
        buttons = []
        for option in info.metrics:
            xs = [_x(curve.series[option], info.x_axis) for curve, _ in traced]
            ys = [curve.series[option].loss for curve, _ in traced]
            sizes = [[0] * (len(x) - 1) + [11] if style["end_symbol"] and x else [0] * len(x)
                     for x, (_, style) in zip(xs, traced)]
            axis = {"yaxis.title.text": _axis_title(option)}
            if info.y_ranges[option] is None:
                axis["yaxis.autorange"] = True
            else:
                axis["yaxis.range"] = info.y_ranges[option]
            buttons.append(dict(label=METRICS[option], method="update",
                                args=[{"x": xs, "y": ys, "marker.size": sizes}, axis]))
        fig.update_layout(updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right", y=1.12,
                                            yanchor="top", showactive=True)])
    clocked = info.x_axis == "clock_s"
    fig.update_layout(**LAYOUT, title="Loss against clocked seconds" if clocked else "Loss against tokens", height=640,
                      hovermode="closest", legend=dict(orientation="h", y=-0.13, x=0, yanchor="top"))
    fig.update_xaxes(title_text=CLOCK_AXIS if clocked else TOKENS_AXIS)
    fig.update_yaxes(title_text=_axis_title(metric))
    if metric is not None and info.y_ranges[metric] is not None:
        fig.update_yaxes(range=info.y_ranges[metric])
    return fig
