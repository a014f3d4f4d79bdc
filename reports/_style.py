"""Colours, labels and number formats shared by every page, so a status looks the same everywhere."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ._data import RunData

STATUS_COLOURS = {
    "completed": "#2e8b57",  # green
    "stopped": "#8d8d8d",  # grey: cut by ASHA (dashed curves)
    "diverged": "#c62828",  # red
    "errored": "#7b3fa0",  # purple
    "running": "#1f77b4",  # blue
    "interrupted": "#e08a00",  # orange: the search stopped while it ran; --resume ran it again
}
OTHER_COLOUR = "#c2c2c2"
BEST_COLOUR = "#111111"
RECORD_COLOUR = "#d4a000"  # gold: the record's settings
STATUS_ORDER = ("completed", "stopped", "diverged", "errored", "running", "interrupted")

STATUS_MEANING = {
    "completed": "reached the target or used its token budget",
    "stopped": "stopped early by ASHA",
    "diverged": "loss became NaN/inf",
    "errored": "raised an error",
    "running": "still training",
    "interrupted": "cut short by a stop of the search (rerun on --resume)",
}

RULE_WORDS = {"first_step": "first step", "smoothed": "smoothed train loss", "val": "validation loss"}

LOSS_AXIS = "loss (nats)"
TOKENS_AXIS = "tokens"
SECONDS_AXIS = "seconds"
CLOCK_AXIS = "clocked training seconds"

LAYOUT = dict(
    template="plotly_white",
    font=dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=14),
    margin=dict(l=80, r=40, t=80, b=70),
    hoverlabel=dict(font_size=13),
)


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, OTHER_COLOUR)


def ordered_statuses(statuses: Any) -> list[str]:
    present = list(dict.fromkeys(str(s) for s in statuses))
    return [s for s in STATUS_ORDER if s in present] + sorted(s for s in present if s not in STATUS_ORDER)


def is_log_param(name: str, values: Any = None) -> bool:
    """Learning rates are searched on a log scale: `lr`, `*_lr`, `*learning_rate*` (not `min_lr_ratio`,
    a fraction that may be 0), and only when every value given is > 0."""
    bare = name.removeprefix("param_")
    named = bare == "lr" or bare.endswith("_lr") or "learning_rate" in bare
    if not named or values is None:
        return named
    numbers = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    return bool(len(numbers)) and bool((numbers > 0).all())


def is_categorical(values: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))


def param_label(column: str) -> str:
    return column.removeprefix("param_")


def log_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Ticks at 1, 2, 5 x 10^k between `low` and `high` (plain values > 0), labelled plainly (0.002, 0.01)."""
    lo, hi = math.log10(low), math.log10(high)
    values = [m * 10.0 ** e for e in range(math.floor(lo) - 1, math.ceil(hi) + 1) for m in (1, 2, 5)
              if lo - 1e-9 <= math.log10(m) + e <= hi + 1e-9]
    if len(values) < 2:
        values = sorted({low, high})
    return values, [f"{v:.3g}" for v in values]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def finite(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def none_if_nan(value: Any) -> Any:
    """JSON-friendly scalars: NaN/inf become None, numpy scalars become Python ones."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def tolist(values: Any) -> list[Any]:
    return [none_if_nan(v) for v in (values.tolist() if hasattr(values, "tolist") else list(values))]


def format_duration(seconds: Any) -> str:
    """Leaderboard style: `3m 2s`, `2h 37m`, `45.3s`."""
    value = none_if_nan(seconds)
    if value is None:
        return "–"
    value = float(value)
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        minutes, secs = divmod(round(value), 60)
        return f"{minutes}m {secs}s"
    hours, rest = divmod(round(value), 3600)
    return f"{hours}h {rest // 60}m"


def format_tokens(tokens: Any) -> str:
    value = none_if_nan(tokens)
    return "–" if value is None else f"{round(float(value)):,}"


def format_number(value: Any, digits: int = 4) -> str:
    value = none_if_nan(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1e5:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def objective_label(run: RunData, *, short: bool = False) -> str:
    if run.is_budget_track:  # the objective is a loss: the validation loss unless settings say otherwise
        name = str(run.settings.get("objective") or "val")
        if name in ("val", "val_loss", "best_val_loss"):
            return "validation loss (nats)"
        return f"{name.replace('_', ' ')} (nats)" if "loss" in name else name
    if short:
        return "time to target (s)"
    return f"time to target, {RULE_WORDS.get(run.search_rule, run.search_rule)} rule (seconds)"


def objective_values(run: RunData) -> pd.Series:
    """Per trial, the objective where it is on a real scale, else NaN.

    The search's objective is censored: a trial that never reached the target gets a huge value
    (1e6 + loss or so) that only orders it behind the others. So on a speedrun track only trials
    with `reached` carry a value here (their time to target); on a budget track (no target) every
    finite objective does.
    """
    trials = run.trials
    values = trials["objective"].where(np.isfinite(trials["objective"]))
    if run.is_budget_track:
        return values.where(trials["status"] != "errored")
    return values.where(trials["reached"])


def final_loss(trials: pd.DataFrame) -> tuple[pd.Series, str]:
    """The loss shown for trials with no time to target: final smoothed train loss, else final train loss."""
    smoothed, raw = trials["final_smoothed_loss"], trials["final_train_loss"]
    values = smoothed.where(np.isfinite(smoothed), raw)
    label = "final smoothed train loss" if smoothed.notna().any() or not raw.notna().any() else "final train loss"
    return values.where(np.isfinite(values)), label


def record_trial_number(run: RunData) -> int | None:
    """The trial run with the record's settings: the first whose params equal settings `record_params`,
    else (no match, no record params given) the first trial, which the spaces enqueue as the record."""
    trials = run.trials
    if trials.empty:
        return None
    record = run.settings.get("record_params")
    if isinstance(record, dict) and record:
        matches = pd.Series(True, index=trials.index)
        compared = 0
        for key, value in record.items():
            column = key if key.startswith("param_") else f"param_{key}"
            if column not in trials:
                continue
            compared += 1
            matches &= trials[column].map(lambda v, want=value: _same(v, want))
        if compared and matches.any():
            return int(trials.loc[matches, "number"].min())
    return int(trials["number"].min())


def _same(a: Any, b: Any) -> bool:
    try:
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)
    return math.isclose(fa, fb, rel_tol=1e-6, abs_tol=1e-12)
