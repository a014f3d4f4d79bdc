"""Parameter importance without fANOVA: how much of the objective's rank order each parameter explains.

Method: the Kruskal–Wallis effect size eta²_H = (H − k + 1) / (n − k), clipped to [0, 1], of the ranks of
the censored objective grouped by the parameter. Ranks make the censored objective usable as is (trials
that missed the target rank behind those that reached it, by loss; diverged trials rank last), and
grouping catches U-shaped effects such as a learning rate with an optimum inside its range, which a
rank correlation misses. Numeric parameters with more than six distinct values are cut into k equal-count
bins (k = n // 6, between 2 and 5). Trials: completed, stopped and diverged (running and errored trials
carry no result). Each parameter also gets its Spearman correlation with the objective, for direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ._data import RunData
from ._style import LAYOUT, is_categorical, param_label

METHOD = ("Kruskal–Wallis effect size η²_H of the objective's ranks grouped by the parameter "
          "(numeric parameters in equal-count bins); completed, stopped and diverged trials, diverged ranked last")
MIN_TRIALS = 6
_RESULT_STATUSES = ("completed", "stopped", "diverged")


def ranked_trials(run: RunData) -> tuple[pd.DataFrame, pd.Series]:
    """The trials that carry a result and their objective, diverged ones set to +inf (worst)."""
    trials = run.trials
    rows = trials[trials["status"].isin(_RESULT_STATUSES)]
    objective = rows["objective"].astype(float).copy()
    objective[rows["status"] == "diverged"] = np.inf
    keep = objective.notna()
    return rows[keep], objective[keep]


def _groups(values: pd.Series) -> pd.Series:
    if is_categorical(values) or values.nunique() <= 6:
        return values.astype(str)
    k = int(min(5, max(2, len(values) // 6)))
    return pd.qcut(values.rank(method="first"), k, labels=False).astype(str)


def kruskal_wallis(ranks: pd.Series, groups: pd.Series) -> tuple[float, float]:
    """Kruskal–Wallis H (tie-corrected) of `ranks` (average ranks 1..n) split by `groups`, and its p-value
    from the chi-squared distribution with k - 1 degrees of freedom."""
    from scipy.special import chdtrc  # lighter than scipy.stats, which takes a second to import

    n, k = len(ranks), groups.nunique()
    by_group = ranks.groupby(groups)
    h = 12.0 / (n * (n + 1)) * float((by_group.sum() ** 2 / by_group.count()).sum()) - 3.0 * (n + 1)
    ties = ranks.value_counts().to_numpy(dtype=float)
    correction = 1.0 - float((ties ** 3 - ties).sum()) / (n ** 3 - n)
    h = h / correction if correction > 0 else 0.0
    return h, float(chdtrc(k - 1, h))


def effect_size(values: pd.Series, objective: pd.Series) -> dict[str, Any]:
    """eta²_H, its p-value and the number of groups; NaN where it cannot be computed (say why)."""
    mask = values.notna() & objective.notna()
    values, objective = values[mask], objective[mask]
    n = len(values)
    empty = {"importance": math.nan, "p_value": math.nan, "groups": 0, "n": n}
    if n < MIN_TRIALS:
        return {**empty, "reason": f"fewer than {MIN_TRIALS} trials"}
    if values.astype(str).nunique() < 2:
        return {**empty, "reason": "constant"}
    groups = _groups(values)
    k = groups.nunique()
    if k < 2 or n <= k:
        return {**empty, "reason": "too few trials per group"}
    ranks = objective.rank(method="average")
    if ranks.nunique() < 2:
        return {**empty, "groups": k, "reason": "objective constant"}
    h, p_value = kruskal_wallis(ranks, groups)
    eta2 = (h - k + 1) / (n - k)
    return {"importance": float(min(1.0, max(0.0, eta2))), "p_value": p_value, "groups": int(k), "n": n,
            "reason": None}


@dataclass(frozen=True)
class ParamImportance:
    """One parameter's rating: eta²_H and its p-value (NaN with a `reason` when not rated), Spearman's rho."""

    param: str
    column: str
    spearman: float | None  # None for categorical or unrated parameters
    importance: float
    p_value: float
    groups: int
    n: int
    reason: str | None


@dataclass(frozen=True)
class ParamImportancesInfo:
    """The ratings, most important first (unrated last), and the trials they come from."""

    method: str
    n_trials: int
    params: list[ParamImportance]


def _get_param_importances_info(run: RunData) -> ParamImportancesInfo:
    rows, objective = ranked_trials(run)
    out = []
    for column in run.param_columns:
        values = rows[column]
        result = effect_size(values, objective)
        spearman = None
        if not is_categorical(values) and result["reason"] is None:
            numbers = pd.to_numeric(values, errors="coerce")
            rho = numbers.rank().corr(objective.rank())  # Spearman: Pearson on ranks
            spearman = None if not np.isfinite(rho) else float(rho)
        out.append(ParamImportance(param=param_label(column), column=column, spearman=spearman, **result))
    out.sort(key=lambda r: (-r.importance if np.isfinite(r.importance) else math.inf, r.param))
    return ParamImportancesInfo(method=METHOD, n_trials=len(rows), params=out)


def plot_param_importances(run: RunData, info: ParamImportancesInfo | None = None) -> go.Figure:
    info = info if info is not None else _get_param_importances_info(run)  # a page passes the info it computed
    shown = [p for p in info.params if np.isfinite(p.importance)][::-1]  # plotly draws bottom-up
    text = []
    for p in shown:
        parts = [f"p = {p.p_value:.2g}"]
        if p.spearman is not None:
            parts.append(f"ρ = {p.spearman:+.2f}")
        text.append(", ".join(parts))
    fig = go.Figure(go.Bar(
        x=[p.importance for p in shown], y=[p.param for p in shown], orientation="h", text=text,
        textposition="outside", cliponaxis=False, marker=dict(color="#4c78a8"),
        hovertemplate="%{y}: η²_H = %{x:.3f}<br>%{text}<extra></extra>",
    ))
    skipped = [f"{p.param} ({p.reason})" for p in info.params if not np.isfinite(p.importance)]
    subtitle = f"{info.n_trials} trials; ρ: Spearman correlation with the objective, + means larger values are worse"
    if skipped:
        subtitle += "; not rated: " + ", ".join(skipped)
    fig.update_layout(**{**LAYOUT, "margin": dict(l=160, r=140, t=100, b=70)},
                      title=f"Parameter importance<br><sup>{subtitle}</sup>",
                      height=max(320, 120 + 48 * len(shown)), showlegend=False)
    top = max([p.importance for p in shown] + [0.05])
    fig.update_xaxes(title_text="share of the objective's rank variance explained (η²_H, 0 to 1)",
                     range=[0, min(1.0, top * 1.25)])
    return fig
