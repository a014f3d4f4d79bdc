"""Parallel coordinates of the searched parameters against the objective.

One line per trial that has a value on a real scale (see `_style.objective_values`): trials that
reached the target, by their time to target. When fewer than two did, the lines are every trial with a
final loss, against that loss. Categorical parameters are coded 0..k-1 with their names as tick labels;
learning rates are drawn as log10 with the actual values as tick labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ._data import RunData
from ._style import (
    LAYOUT,
    final_loss,
    is_categorical,
    is_log_param,
    log_ticks,
    objective_label,
    objective_values,
    param_label,
    tolist,
)


@dataclass(frozen=True)
class Dimension:
    """One parameter's axis: its values as drawn (category codes, log10 or as is) and its ticks."""

    param: str
    label: str
    kind: str  # "categorical", "log" or "linear"
    values: list[Any]
    tickvals: list[float] | None
    ticktext: list[str] | None


@dataclass(frozen=True)
class ObjectiveAxis:
    """The last axis, which also colours the lines: the objective, or the final loss as a fallback."""

    label: str
    values: list[Any]


@dataclass(frozen=True)
class ParallelCoordinateInfo:
    """What the parallel-coordinates plot draws: one line per trial in `numbers`, through `dimensions`."""

    dimensions: list[Dimension]
    objective: ObjectiveAxis
    numbers: list[Any]  # trial numbers of the lines drawn
    note: str | None  # why some trials are not drawn, or why the lines are by loss


def _dimension(column: str, values: pd.Series) -> Dimension:
    name = param_label(column)
    if is_categorical(values):
        categories = sorted(values.dropna().astype(str).unique())
        codes = values.astype(str).map({c: i for i, c in enumerate(categories)})
        return Dimension(param=name, label=name, kind="categorical", values=tolist(codes.astype(float)),
                         tickvals=list(range(len(categories))), ticktext=categories)
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    if is_log_param(column, numbers):
        ticks, ticktext = log_ticks(float(numbers.min()), float(numbers.max()))
        return Dimension(param=name, label=f"{name} (log10 scale)", kind="log", values=tolist(np.log10(numbers)),
                         tickvals=[math.log10(t) for t in ticks], ticktext=ticktext)
    return Dimension(param=name, label=name, kind="linear", values=tolist(numbers), tickvals=None, ticktext=None)


def _get_parallel_coordinate_info(run: RunData) -> ParallelCoordinateInfo:
    trials = run.trials
    value = objective_values(run)
    label, note = objective_label(run, short=True), None
    if value.notna().sum() < 2:
        loss, loss_name = final_loss(trials)
        if loss.notna().sum() >= 2:
            value, label = loss, f"{loss_name.removeprefix('final ')} (nats)"
            note = "fewer than two trials reached the target: lines are trials by their final loss"
    keep = value.notna()
    if not run.is_budget_track and note is None:
        omitted = int((~keep).sum())
        if omitted:
            note = f"{omitted} trials that did not reach the target are not drawn (see the slice plots)"
    rows = trials[keep]
    dimensions = [_dimension(c, rows[c]) for c in run.param_columns if rows[c].notna().any()]
    return ParallelCoordinateInfo(
        dimensions=dimensions,
        objective=ObjectiveAxis(label=label, values=tolist(value[keep])),
        numbers=tolist(rows["number"]),
        note=note,
    )


def plot_parallel_coordinate(run: RunData, info: ParallelCoordinateInfo | None = None) -> go.Figure:
    info = info if info is not None else _get_parallel_coordinate_info(run)  # a page passes the info it computed
    objective = info.objective
    dims = []
    for dim in info.dimensions:
        entry: dict[str, Any] = {"label": dim.label, "values": dim.values}
        if dim.tickvals is not None:
            entry.update(tickvals=dim.tickvals, ticktext=dim.ticktext)
        if dim.kind == "categorical" and dim.tickvals is not None and len(dim.tickvals) == 1:
            entry["range"] = [-0.5, 0.5]
        dims.append(entry)
    dims.append({"label": objective.label, "values": objective.values})
    fig = go.Figure(go.Parcoords(
        dimensions=dims,
        line=dict(color=objective.values, colorscale="Viridis", showscale=True,
                  colorbar=dict(title=dict(text=objective.label, side="right"), thickness=14)),
        labelangle=0, labelfont=dict(size=13), tickfont=dict(size=11),
    ))
    fig.update_layout(**{**LAYOUT, "margin": dict(l=90, r=80, t=110, b=40)},
                      title="Parallel coordinates (darker = better)", height=560)
    return fig
