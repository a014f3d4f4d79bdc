"""Every trial in one sortable HTML table: status, result, speed, parameters and error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._data import RunData
from ._html import esc, table
from ._style import format_number, param_label, status_colour


@dataclass(frozen=True)
class TrialsTableInfo:
    """The trials as the table shows them: one row per trial, the columns in display order (the trials' column
    names; columns with no value at all are left out, but for number, status and error)."""

    table: pd.DataFrame


def _get_trials_table_info(run: RunData) -> TrialsTableInfo:
    trials = run.trials
    rule = run.search_rule
    columns = ["number", "trial_id", "status", "reached", "objective", f"time_to_target_{rule}_s",
               f"tokens_to_target_{rule}",
               *(f"time_to_target_{r}_s" for r in ("first_step", "smoothed", "val") if r != rule),
               "tokens", "steps", "clock_s", "final_smoothed_loss", "final_train_loss", "best_val_loss",
               "tokens_per_s", "startup_s", *run.param_columns, "device", "error"]
    present = [c for c in columns if c in trials and (c in ("number", "status", "error") or trials[c].notna().any())]
    return TrialsTableInfo(table=trials[present].copy())


HEADERS = {"number": "#", "trial_id": "trial", "objective": "objective (censored)", "clock_s": "clock (s)",
           "tokens_per_s": "tokens/s", "startup_s": "startup (s)", "final_smoothed_loss": "final smoothed loss",
           "final_train_loss": "final train loss", "best_val_loss": "best val loss"}


def _header(column: str) -> str:
    if column in HEADERS:
        return HEADERS[column]
    if column.startswith("param_"):
        return param_label(column)
    if column.startswith("time_to_target_"):
        return f"time to target, {column.removeprefix('time_to_target_').removesuffix('_s')} (s)"
    if column.startswith("tokens_to_target_"):
        return f"tokens to target, {column.removeprefix('tokens_to_target_')}"
    return column.replace("_", " ")


def _cell(column: str, value: Any) -> tuple[str, Any, str]:
    if column == "status":
        return (f'<span class="status" style="background:{status_colour(str(value))}">{esc(value)}</span>',
                str(value), "")
    if column == "error":
        return esc(value), str(value or ""), "err"
    if isinstance(value, bool | np.bool_):
        return ("yes" if value else "no"), int(bool(value)), ""
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        if not np.isfinite(number):
            return ("" if np.isnan(number) else esc(value)), ("" if np.isnan(number) else str(number)), "num"
        if column == "objective" and number >= 1e5:
            return f"{number:.4g}", repr(number), "num"
        return format_number(value.item() if hasattr(value, "item") else value), repr(number), "num"
    return esc(value), str(value), ""


def trials_table_html(run: RunData, info: TrialsTableInfo | None = None) -> str:
    info = info if info is not None else _get_trials_table_info(run)  # a page passes the info it computed
    frame = info.table
    columns = [(c, _header(c)) for c in frame.columns]
    rows = [[_cell(c, row[c]) for c in frame.columns] for _, row in frame.iterrows()]
    return table(columns, rows, table_id="trials")
