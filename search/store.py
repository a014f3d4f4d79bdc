"""A search's results on disk (docs/run_directory.md), written so that nothing finished is ever lost.

Each finished trial is one small JSON file under ``trials/`` written atomically the moment it ends; the
tables (``trials.parquet`` / ``.csv``, ``history.parquet``, ``best.json``) are rebuilt from those files,
also atomically. A driver killed at any moment loses at most the trials that were still running.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from chores.files import atomic_write_json, atomic_write_table
from search.objective import CENSORED
from trainer.config import CROSSING_RULES

# interrupted: the search was stopped (Ctrl-C, SIGTERM, a kill) while the trial ran; --resume runs it again
STATUSES = ("completed", "stopped", "diverged", "errored", "running", "interrupted")
UNFINISHED = ("running", "interrupted")
FINISHED = ("reached", "budget_exhausted")  # the trainer's statuses of a run that ended as it should
HISTORY_COLUMNS = ["trial_id", "tokens", "step", "train_loss", "smoothed_loss", "val_loss", "clock_s", "objective",
                   "tokens_per_s"]


def trial_status(run_status: str | None, *, ended: bool = True) -> str:
    """A trials table's status (:data:`STATUSES`) of a run whose trainer status is ``run_status``: completed
    when it ended as it should (:data:`FINISHED`), diverged, errored (failed, or no status); stopped when it did
    not end (``ended`` false: a scheduler stopped it before the trainer finished)."""
    if not ended:
        return "stopped"
    if run_status in FINISHED:
        return "completed"
    return "diverged" if run_status == "diverged" else "errored"


def write_tables(run_dir: Path, trials: pd.DataFrame, history: pd.DataFrame) -> None:
    """``trials.parquet``, ``trials.csv`` and ``history.parquet``, each atomically."""
    atomic_write_table(trials, run_dir / "trials.parquet")
    atomic_write_table(trials, run_dir / "trials.csv")
    atomic_write_table(history, run_dir / "history.parquet")


class TrialStore:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.trial_dir = self.run_dir / "trials"
        self.trial_dir.mkdir(parents=True, exist_ok=True)

    # -- per trial -------------------------------------------------------------------------------------
    def write_trial(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.trial_dir / f"{record['trial_id']}.json", record)

    def finished(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.trial_dir.glob("*.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if rec.get("status") not in UNFINISHED:
                out.append(rec)
        return sorted(out, key=lambda r: r.get("number", 0))

    def mark_interrupted(self) -> list[int]:
        """Trials left ``running`` by a stopped or killed search are ``interrupted``; their numbers."""
        numbers = []
        for rec in self.all_records():
            if rec.get("status") == "running":
                rec["status"] = "interrupted"
                self.write_trial(rec)
                numbers.append(rec.get("number"))
        return numbers

    def link_rerun(self, old_number: int, new_number: int) -> None:
        """The interrupted trial ``old_number`` is being run again as ``new_number``."""
        for rec in self.all_records():
            if rec.get("number") == old_number and rec.get("status") in UNFINISHED:
                rec["status"] = "interrupted"
                rec["rerun_as"] = new_number
                self.write_trial(rec)

    def all_records(self) -> list[dict[str, Any]]:
        recs = []
        for path in sorted(self.trial_dir.glob("*.json")):
            try:
                recs.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError):
                continue
        return sorted(recs, key=lambda r: r.get("number", 0))

    def _settings(self) -> dict[str, Any]:
        try:
            return json.loads((self.run_dir / "settings.json").read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    # -- tables ------------------------------------------------------------------------------------------
    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        rows, hist = [], []
        for rec in self.all_records():
            row = {k: v for k, v in rec.items()
                   if k not in ("history", "params", "overrides", "startup_phases", "compile_cache")}
            for name, value in rec.get("params", {}).items():
                row[f"param_{name}"] = value
            for name, value in (rec.get("startup_phases") or {}).items():  # where each trial's start-up went
                row[f"startup_{name}_s"] = value
            for name, value in (rec.get("compile_cache") or {}).items():  # e.g. compile_cache_fxgraph_hit
                row[f"compile_cache_{name}"] = value
            rows.append(row)
            for h in rec.get("history", []):
                hist.append({"trial_id": rec["trial_id"], **h})
        trials = pd.DataFrame(rows)
        if not trials.empty:
            for rule in CROSSING_RULES:
                for col in (f"time_to_target_{rule}_s", f"tokens_to_target_{rule}"):
                    if col not in trials:
                        trials[col] = math.nan
            trials = trials.sort_values("number").reset_index(drop=True)
            # reached the target by the search's rule: its objective is a time, not censored (budget tracks
            # have no target, so nothing is "reached" there)
            has_target = self._settings().get("target") is not None
            trials["reached"] = trials["objective"].lt(CENSORED) if has_target and "objective" in trials else False
        history = pd.DataFrame(hist, columns=HISTORY_COLUMNS)
        return trials, history

    def write_tables(self) -> pd.DataFrame:
        trials, history = self.tables()
        write_tables(self.run_dir, trials, history)
        best = best_trial(trials, self._settings().get("target") is not None)
        if best is not None:
            atomic_write_json(self.run_dir / "best.json", best)
        return trials


def clocked_share(spans: list[tuple[float, float]], start: float, end: float) -> dict[str, float] | None:
    """How much of the wall time [start, end] some trial's clock was running: the union of the trials' clocked
    spans (wall-clock seconds) clipped to the window, as seconds and as fractions of the whole window and of the
    part after the first clock started (which leaves out the first trial's cold start)."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in spans if b > a and b > start and a < end)
    if not clipped or end <= start:
        return None
    total, cur_a, cur_b = 0.0, *clipped[0]
    for a, b in clipped[1:]:
        if a > cur_b:
            total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    total += cur_b - cur_a
    first = clipped[0][0]
    return {"wall_s": end - start, "clocked_s": total, "fraction": total / (end - start),
            "fraction_after_first_clock": total / (end - first) if end > first else 0.0}


def best_trial(trials: pd.DataFrame, has_target: bool = True) -> dict[str, Any] | None:
    if trials.empty or "objective" not in trials:
        return None
    ok = trials[trials["status"].isin(["completed", "stopped"]) & trials["objective"].notna()]
    if ok.empty:
        return None
    row = ok.sort_values(["objective", "number"]).iloc[0]
    out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.to_dict().items()}
    out["reached"] = bool(has_target and row["objective"] < CENSORED)
    return out

