"""Loss against tokens for every trial: ASHA rungs as vertical lines, the target as a horizontal one.

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
    """One metric of one trial: its finite losses and the tokens at which they were logged."""

    tokens: list[Any]
    loss: list[float]


@dataclass(frozen=True)
class CurveEnd:
    """Where a trial's curve ends on the default metric (its end marker goes there)."""

    tokens: Any
    loss: float


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

    metrics: list[str]
    default_metric: str | None
    curves: list[Curve]
    missing_history: list[int]  # trial numbers with no history
    rungs: list[float]
    target: float | None
    best_number: int | None
    record_number: int | None
    y_ranges: dict[str, list[float] | None]  # metric -> y axis range, None for autorange


def _get_loss_curves_info(run: RunData) -> LossCurvesInfo:
    history, trials = run.history, run.trials
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
            series[metric] = LossSeries(tokens=tolist(group["tokens"].to_numpy()[keep]), loss=tolist(values[keep]))
        default = next((m for m in metrics if series[m].tokens), None)
        end = None
        if default:
            end = CurveEnd(tokens=series[default].tokens[-1], loss=series[default].loss[-1])
        curves.append(Curve(
            trial_id=row.trial_id, number=int(row.number), status=row.status,
            cut=row.status == "stopped", series=series, end=end,
            last_tokens=float(group["tokens"].max()),
        ))
    values = objective_values(run)
    best = None if values.isna().all() else int(trials.loc[values.idxmin(), "number"])
    return LossCurvesInfo(
        metrics=metrics,
        default_metric=metrics[0] if metrics else None,
        curves=curves,
        missing_history=missing,
        rungs=run.rungs,
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


def _trace(curve: Curve, metric: str, *, name: str, colour: str, width: float, dash: str,
           show_legend: bool, group: str, end_symbol: str | None) -> go.Scatter:
    points = curve.series[metric]
    n = len(points.tokens)
    sizes = [0] * n
    if end_symbol and n:
        sizes[-1] = 11
    return go.Scatter(
        x=points.tokens, y=points.loss, mode="lines+markers" if end_symbol else "lines", name=name,
        legendgroup=group, showlegend=show_legend, line=dict(color=colour, width=width, dash=dash),
        marker=dict(size=sizes, symbol=end_symbol or "circle", color=colour, line=dict(width=2, color=colour)),
        opacity=1.0 if width > 2 else 0.75,
        hovertemplate=f"trial {curve.number} ({curve.status})<br>%{{x:,.0f}} tokens<br>%{{y:.4f}}<extra></extra>",
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
            fig.add_trace(_trace(curve, metric, **style))
            traced.append((curve, style))
    for number, label, colour in ((info.record_number, "record settings", RECORD_COLOUR),
                                  (info.best_number, "best trial", BEST_COLOUR)):
        curve = next((c for c in curves if c.number == number), None)
        if curve is None or metric is None or not curve.series[metric].tokens:
            continue
        style = dict(name=f"{label} (trial {number})", colour=colour, width=3.2, dash="solid", show_legend=True,
                     group=label, end_symbol=END_SYMBOL.get(curve.status))
        fig.add_trace(_trace(curve, metric, **style))
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
            xs = [curve.series[option].tokens for curve, _ in traced]
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
    fig.update_layout(**LAYOUT, title="Loss against tokens", height=640, hovermode="closest",
                      legend=dict(orientation="h", y=-0.13, x=0, yanchor="top"))
    fig.update_xaxes(title_text=TOKENS_AXIS)
    fig.update_yaxes(title_text=_axis_title(metric))
    if metric is not None and info.y_ranges[metric] is not None:
        fig.update_yaxes(range=info.y_ranges[metric])
    return fig
