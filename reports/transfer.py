"""Transfer: does a candidate's short-run rank predict its long-run (marathon) rank?

`transfer.json` is read tolerantly: a list of candidate rows, or an object holding one (`candidates`,
`results`, `rows` or `entries`; a list, or a mapping id -> row), or columns (`short_rank`, `long_rank` as
lists beside `id`, or as mappings id -> rank). A row's id is `id`, `name`, `record` or `label`; its
result on each side is its first other numeric `short_*` / `long_*` field (say `short_time_s`,
`long_val_loss`); ranks missing on a side are computed from those results (lower is better). Numeric
fields elsewhere at the top level or under `correlations` / `statistics` are shown as statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from ._style import LAYOUT, none_if_nan

_ROW_KEYS = ("candidates", "results", "rows", "entries", "records")
_ID_KEYS = ("id", "name", "record", "label", "candidate")
_STAT_KEYS = ("correlations", "statistics", "stats", "summary")
# tables of their own (knob effects), or qualifiers shown beside the statistic they qualify (intervals)
_NOT_STATS = ("knob_effects", "intervals", "bootstrap")


def _rows_of(transfer: Any) -> list[dict[str, Any]]:
    if isinstance(transfer, list):
        return [r for r in transfer if isinstance(r, dict)]
    if not isinstance(transfer, dict):
        return []
    for key in _ROW_KEYS:
        value = transfer.get(key)
        if isinstance(value, list) and any(isinstance(r, dict) for r in value):
            return [r for r in value if isinstance(r, dict)]
        if isinstance(value, dict) and value and all(isinstance(r, dict) for r in value.values()):
            return [{"id": k, **r} for k, r in value.items()]
    short, long = transfer.get("short_rank"), transfer.get("long_rank")
    if isinstance(short, dict) and isinstance(long, dict):
        return [{"id": k, "short_rank": short.get(k), "long_rank": long.get(k)} for k in dict.fromkeys([*short, *long])]
    if isinstance(short, list) and isinstance(long, list):
        ids = next((transfer[k] for k in ("id", "ids", "names", "candidates") if isinstance(transfer.get(k), list)),
                   [f"#{i + 1}" for i in range(len(short))])
        return [{"id": i, "short_rank": s, "long_rank": lr} for i, s, lr in zip(ids, short, long)]
    return []


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _statistics(transfer: Any) -> dict[str, float]:
    """Numbers at the top level and one level down (`spearman.rho`); `correlations`/`statistics` unwrapped."""
    out: dict[str, float] = {}

    def take(prefix: str, mapping: dict[str, Any], depth: int) -> None:
        for key, value in mapping.items():
            if isinstance(value, bool) or key in ("short_rank", "long_rank", *_ROW_KEYS, *_NOT_STATS):
                continue
            number = _number(value)
            if number is not None:
                out[prefix + key] = number
            elif isinstance(value, dict) and depth < 2:
                take(prefix if key in _STAT_KEYS else f"{prefix}{key}.", value, depth + 1)

    if isinstance(transfer, dict):
        take("", transfer, 0)
    return out


def _side_value(row: dict[str, Any], side: str) -> tuple[float | None, str | None]:
    for key, value in row.items():
        if key.startswith(f"{side}_") and key != f"{side}_rank" and _number(value) is not None:
            return _number(value), key
    return None, None


@dataclass(frozen=True)
class TransferRow:
    """One candidate: its rank and result on the short and the long track (None where missing)."""

    id: str
    short_rank: float | None
    long_rank: float | None
    short_value: float | None
    long_value: float | None

    def pair(self, by_value: bool) -> tuple[float | None, float | None]:
        """(short, long): the results when `by_value`, else the ranks."""
        return (self.short_value, self.long_value) if by_value else (self.short_rank, self.long_rank)


@dataclass(frozen=True)
class TransferInfo:
    """A transfer.json read: the candidates, the result fields named, and its statistics or ours."""

    rows: list[TransferRow]
    short_label: str  # the short-track result's field, say short_time_s (short_rank when there is none)
    long_label: str
    uses_values: bool  # both sides have results: the scatter plots them rather than the ranks
    statistics: dict[str, float]  # the numbers transfer.json states
    computed: dict[str, float]  # Spearman and Kendall of the ranks, computed here (three candidates or more)


def _get_transfer_info(transfer: Any) -> TransferInfo:
    rows, labels = [], {"short": None, "long": None}
    for i, row in enumerate(_rows_of(transfer)):
        ident = next((str(row[k]) for k in _ID_KEYS if row.get(k) not in (None, "")), f"#{i + 1}")
        entry: dict[str, Any] = {"id": ident}
        for side in ("short", "long"):
            entry[f"{side}_rank"] = _number(row.get(f"{side}_rank"))
            entry[f"{side}_value"], key = _side_value(row, side)
            labels[side] = labels[side] or key
        rows.append(entry)
    df = pd.DataFrame(rows, columns=["id", "short_rank", "long_rank", "short_value", "long_value"])
    for side in ("short", "long"):
        missing = df[f"{side}_rank"].isna()
        if missing.all() and df[f"{side}_value"].notna().any():
            df[f"{side}_rank"] = df[f"{side}_value"].rank(method="min")
    both = df.dropna(subset=["short_rank", "long_rank"])
    computed = {}
    if len(both) >= 3 and both["short_rank"].nunique() > 1 and both["long_rank"].nunique() > 1:
        from scipy import stats  # lazily: scipy.stats takes a second to import

        computed = {"spearman": float(stats.spearmanr(both["short_rank"], both["long_rank"]).statistic),
                    "kendall": float(stats.kendalltau(both["short_rank"], both["long_rank"]).statistic)}
    return TransferInfo(
        rows=[TransferRow(**{k: none_if_nan(v) for k, v in r.items()}) for r in df.to_dict("records")],
        short_label=labels["short"] or "short_rank",
        long_label=labels["long"] or "long_rank",
        uses_values=bool(df["short_value"].notna().any() and df["long_value"].notna().any()),
        statistics=_statistics(transfer),
        computed=computed,
    )


def plot_transfer_scatter(transfer: Any, info: TransferInfo | None = None) -> go.Figure:
    info = info if info is not None else _get_transfer_info(transfer)  # a page passes the info it computed
    key = "value" if info.uses_values else "rank"
    rows = [r for r in info.rows if None not in r.pair(info.uses_values)]
    x, y = [r.pair(info.uses_values)[0] for r in rows], [r.pair(info.uses_values)[1] for r in rows]
    fig = go.Figure(go.Scatter(x=x, y=y, text=[r.id for r in rows], mode="markers+text", textposition="top center",
                               marker=dict(size=11, color="#4c78a8", line=dict(width=1, color="white")),
                               name="candidates", hovertemplate="%{text}<br>short %{x:.4g}<br>long %{y:.4g}<extra></extra>"))
    if key == "rank" and rows:
        top = max(x + y)
        fig.add_trace(go.Scatter(x=[1, top], y=[1, top], mode="lines", name="same rank",
                                 line=dict(color="#999", dash="dot"), hoverinfo="skip"))
        fig.update_xaxes(autorange="reversed")
        fig.update_yaxes(autorange="reversed")
    stat = info.statistics or info.computed
    sub = ", ".join(f"{k} {v:.3g}" for k, v in list(stat.items())[:6])
    fig.update_layout(**LAYOUT, title="Short-track against long-track result" + (f"<br><sup>{sub}</sup>" if sub else ""),
                      height=560, showlegend=key == "rank")
    fig.update_xaxes(title_text=_axis_title(info.short_label if key == "value" else "short-track rank (1 = best)"))
    fig.update_yaxes(title_text=_axis_title(info.long_label if key == "value" else "long-track rank (1 = best)"))
    return fig


def _axis_title(key: str) -> str:
    side, _, rest = key.partition("_")
    if side in ("short", "long") and rest:
        return f"{side} track: {_axis_title(rest)}"
    words = key.replace("_", " ")
    if key.endswith("_s"):
        return words.removesuffix(" s") + " (seconds)"
    if "loss" in key:
        return words + " (nats)"
    return words


def plot_rank_change(transfer: Any, info: TransferInfo | None = None) -> go.Figure:
    info = info if info is not None else _get_transfer_info(transfer)  # a page passes the info it computed
    fig = go.Figure()
    rows = [r for r in info.rows if r.short_rank is not None and r.long_rank is not None]
    for r in rows:
        change = r.long_rank - r.short_rank
        colour = "#2e8b57" if change < 0 else ("#c62828" if change > 0 else "#8a8a8a")
        fig.add_trace(go.Scatter(x=[0, 1], y=[r.short_rank, r.long_rank], cliponaxis=False,
                                 mode="lines+markers+text", text=[r.id, r.id], textposition=["middle left", "middle right"],
                                 line=dict(color=colour, width=2.5), marker=dict(size=10, color=colour), name=r.id,
                                 showlegend=False, hovertemplate=f"{r.id}: rank %{{y}}<extra></extra>"))
    fig.update_xaxes(tickvals=[0, 1], ticktext=["short track", "long track"], range=[-0.45, 1.45], showgrid=False,
                     zeroline=False)
    fig.update_layout(**{**LAYOUT, "margin": dict(l=80, r=80, t=90, b=60)},
                      title="Rank change from short to long track<br><sup>green: better on the long track, red: worse</sup>",
                      height=max(420, 60 * len(rows) + 160))
    fig.update_yaxes(autorange="reversed", title_text="rank (1 = best)", dtick=1)
    return fig


def interval(transfer: Any, stat: str) -> tuple[float | None, float | None]:
    """(low, high) of a statistic's confidence interval in a transfer.json, each None when missing."""
    intervals = transfer.get("intervals") if isinstance(transfer, dict) else None
    band = intervals.get(stat) if isinstance(intervals, dict) else None
    if not isinstance(band, dict):
        return None, None
    return _number(band.get("low")), _number(band.get("high"))


def correlation_by_length(transfers: list[tuple[str, Any, float | None]]) -> list[dict[str, Any]]:
    """One row per transfer run that has a token budget and a correlation: (label, transfer.json, budget
    tokens or None to take the file's own ``budget_tokens``) -> rows sorted by track pair and budget."""
    rows = []
    for label, transfer, budget in transfers:
        if not isinstance(transfer, dict):
            continue
        tokens = _number(budget if budget is not None else transfer.get("budget_tokens"))
        corr = transfer.get("correlations") if isinstance(transfer.get("correlations"), dict) else {}
        row: dict[str, Any] = {"label": label, "tokens": tokens,
                               "tracks": f"{transfer.get('short_track', '?')} -> {transfer.get('track', '?')}",
                               "n": _number(corr.get("n")), "regret": _number(transfer.get("regret")),
                               "short_winner": transfer.get("short_winner"), "long_winner": transfer.get("long_winner")}
        for stat in ("spearman", "kendall"):
            row[stat] = _number(corr.get(stat))
            row[f"{stat}_low"], row[f"{stat}_high"] = interval(transfer, stat)
        if tokens is not None and (row["spearman"] is not None or row["kendall"] is not None):
            rows.append(row)
    return sorted(rows, key=lambda r: (r["tracks"], r["tokens"]))


def plot_correlation_by_length(transfers: list[tuple[str, Any, float | None]]) -> go.Figure:
    """Spearman and Kendall (bootstrap intervals as error bars) against the long runs' token budget: does the
    short track still predict the long one as the long one grows?"""
    rows = correlation_by_length(transfers)
    fig = go.Figure()
    for tracks in dict.fromkeys(r["tracks"] for r in rows):
        group = [r for r in rows if r["tracks"] == tracks]
        for stat, symbol, colour, shift in (("spearman", "circle", "#4c78a8", 0.985),
                                            ("kendall", "diamond", "#f58518", 1.015)):
            pts = [r for r in group if r[stat] is not None]
            if not pts:
                continue  # each statistic drawn a little to the side of its budget, so the error bars do not hide
            low = [r[stat] - r[f"{stat}_low"] if r[f"{stat}_low"] is not None else 0.0 for r in pts]
            high = [r[f"{stat}_high"] - r[stat] if r[f"{stat}_high"] is not None else 0.0 for r in pts]
            fig.add_trace(go.Scatter(
                x=[r["tokens"] * shift for r in pts], y=[r[stat] for r in pts], mode="lines+markers",
                customdata=[r["tokens"] for r in pts],
                name=f"{stat} ({tracks})" if len(rows) != len(group) else stat,
                marker=dict(size=10, symbol=symbol, color=colour), line=dict(color=colour),
                error_y=dict(type="data", symmetric=False, array=high, arrayminus=low, thickness=1.2),
                text=[f"{r['label']}, n={r['n']:g}" if r["n"] is not None else r["label"] for r in pts],
                hovertemplate=f"{stat} %{{y:.3f}}<br>%{{customdata:,.0f}} tokens<br>%{{text}}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#999", dash="dot"))
    fig.update_layout(**LAYOUT, height=480, title="Short-track rank against long-track rank, by the long runs' length"
                      "<br><sup>error bars: bootstrap confidence intervals over the candidates</sup>")
    budgets = sorted({r["tokens"] for r in rows})
    fig.update_xaxes(type="log", title_text="long runs' token budget", tickvals=budgets,
                     ticktext=[_tokens(b) for b in budgets])
    fig.update_yaxes(range=[-1.08, 1.08], title_text="rank correlation")
    return fig


def knob_effects(transfer: Any) -> list[dict[str, Any]]:
    """``knob_effects`` of a transfer.json (knob -> mean long result with and without it), biggest effect first."""
    effects = transfer.get("knob_effects") if isinstance(transfer, dict) else None
    if not isinstance(effects, dict):
        return []
    rows = []
    for knob, e in effects.items():
        if isinstance(e, dict):
            rows.append({"knob": str(knob), **{k: _number(e.get(k)) for k in
                                               ("mean_with", "mean_without", "difference", "n_with", "n_without")}})
    return sorted(rows, key=lambda r: -abs(r["difference"]) if r["difference"] is not None else math.inf)


def _tokens(n: float) -> str:
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:g}"
