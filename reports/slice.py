"""Slice plots: the result of every trial against each parameter, one panel per parameter.

On a speedrun track each panel has two rows sharing the x axis: time to target of the trials that
reached it (top) and final smoothed loss of those that did not (bottom), so censored trials are seen
without a fake number. Learning rates get a log x axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._data import RunData
from ._style import (
    LAYOUT,
    final_loss,
    is_categorical,
    is_log_param,
    log_ticks,
    objective_label,
    objective_values,
    ordered_statuses,
    param_label,
    status_colour,
    tolist,
)

COLUMNS = 3


@dataclass(frozen=True)
class SlicePoints:
    """Trials in one row of a panel: the parameter's value (x), the result (y), trial number and status."""

    x: list[Any]
    y: list[Any]
    number: list[Any]
    status: list[Any]


@dataclass(frozen=True)
class SlicePanel:
    """One parameter's panel: trials with a value (top row) and, on a speedrun track, those without (bottom)."""

    param: str
    column: str
    categorical: bool
    log: bool  # a log x axis (learning rates)
    valued: SlicePoints
    unreached: SlicePoints

    def points(self, kind: str) -> SlicePoints:
        """The row named `kind`: "valued" or "unreached"."""
        return self.valued if kind == "valued" else self.unreached


@dataclass(frozen=True)
class SliceInfo:
    """What the slice plots draw: one panel per parameter, the axis titles and the statuses in the legend."""

    panels: list[SlicePanel]
    y_label: str
    y2_label: str
    two_rows: bool  # a speedrun track with trials that did not reach the target
    statuses: list[str]


def _get_slice_info(run: RunData) -> SliceInfo:
    trials = run.trials
    value = objective_values(run)
    loss, loss_name = final_loss(trials)
    loss = loss.where(value.isna())
    panels = []
    for column in run.param_columns:
        x = trials[column]
        categorical = is_categorical(x)
        points = {}
        for key, y in (("valued", value), ("unreached", loss)):
            rows = y.notna() & x.notna()
            points[key] = SlicePoints(x=tolist(x[rows].astype(str) if categorical else x[rows]), y=tolist(y[rows]),
                                      number=tolist(trials.loc[rows, "number"]), status=tolist(trials.loc[rows, "status"]))
        panels.append(SlicePanel(param=param_label(column), column=column, categorical=categorical,
                                 log=not categorical and is_log_param(column, x.dropna()), **points))
    return SliceInfo(
        panels=panels,
        y_label=objective_label(run, short=True),
        y2_label=f"{loss_name.removeprefix('final ')}, not reached (nats)",
        two_rows=not run.is_budget_track and bool(loss.notna().any()),
        statuses=ordered_statuses(trials.loc[value.notna() | loss.notna(), "status"]),
    )


def plot_slice(run: RunData, info: SliceInfo | None = None) -> go.Figure:
    info = info if info is not None else _get_slice_info(run)  # a page passes the info it computed
    panels = info.panels
    cols = max(1, min(COLUMNS, len(panels)))
    blocks = max(1, math.ceil(len(panels) / cols))
    # Each block: the reached row, the not-reached row (speedrun tracks), then an empty spacer row that
    # leaves room for the x-axis titles before the next block.
    kinds = ["valued", "unreached"] if info.two_rows else ["valued"]
    layout_rows = (kinds + ["spacer"]) * blocks
    layout_rows = layout_rows[:-1]
    weights = {"valued": 0.62 if info.two_rows else 1.0, "unreached": 0.38, "spacer": 0.3}
    specs = [[None if kind == "spacer" else {} for _ in range(cols)] for kind in layout_rows]
    fig = make_subplots(rows=len(layout_rows), cols=cols, specs=specs, horizontal_spacing=0.07,
                        vertical_spacing=0.025, row_heights=[weights[k] for k in layout_rows])
    per_block = len(kinds) + 1
    for i, panel in enumerate(panels):
        block, col = divmod(i, cols)
        top = block * per_block + 1
        for offset, key in enumerate(kinds):
            points = panel.points(key)
            row = top + offset
            fig.add_trace(go.Scatter(
                x=points.x, y=points.y, mode="markers", showlegend=False, name=key,
                customdata=np.stack([points.number, points.status], axis=-1) if points.x else None,
                marker=dict(color=[status_colour(s) for s in points.status], size=8,
                            symbol="circle" if key == "valued" else "circle-open", line=dict(width=1.5)),
                hovertemplate=f"{panel.param} = %{{x}}<br>%{{y:.4g}}<br>trial %{{customdata[0]}} (%{{customdata[1]}})<extra></extra>",
            ), row=row, col=col + 1)
            last = offset == len(kinds) - 1
            axis: dict[str, Any] = {"showticklabels": last}
            if panel.log:
                values = [v for key2 in kinds for v in panel.points(key2).x]
                ticks, text = log_ticks(min(values), max(values)) if values else ([], [])
                axis.update(type="log", tickvals=ticks, ticktext=text)
            elif panel.categorical:
                axis.update(type="category", categoryorder="category ascending")
            if last:
                axis["title_text"] = panel.param + (" (log scale)" if panel.log else "")
            if offset:
                axis["matches"] = _axis_name(fig, top, col + 1)
            fig.update_xaxes(row=row, col=col + 1, **axis)
        if col == 0:
            fig.update_yaxes(title_text=info.y_label, row=top, col=1)
            if info.two_rows:
                fig.update_yaxes(title_text="loss (nats)", row=top + 1, col=1)
    for status in info.statuses:  # legend only: one entry per status colour
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=status,
                                 marker=dict(color=status_colour(status), size=9)))
    sub = ("filled: reached the target, by time to target; open: did not, by final smoothed loss"
           if info.two_rows else "")
    fig.update_layout(**LAYOUT, title="Slice plots: result against each parameter" + (f"<br><sup>{sub}</sup>" if sub else ""),
                      height=max(440, 420 * blocks), legend=dict(orientation="h", y=1.0, x=1.0, xanchor="right",
                                                                 yanchor="bottom"))
    return fig


def _axis_name(fig: go.Figure, row: int, col: int) -> str:
    ref = fig.get_subplot(row, col)
    return ref.xaxis.plotly_name.replace("axis", "")
