"""Read run and record directories with pandas alone (the contract: docs/run_directory.md).

Everything here tolerates a search that is still writing: a table that cannot be read is read from its
CSV twin or left empty with a note, never an exception. Only a path that is not a run at all raises
:class:`ReportInputError`, whose message is one line meant for the user.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chores.files import record_paths

log = logging.getLogger(__name__)

STATUSES = ("completed", "stopped", "diverged", "errored", "running", "interrupted")
RULES = ("first_step", "smoothed", "val")
CENSORED = 1e6  # a censored objective is CENSORED + loss: the trial did not reach the target

# Columns the report reads from trials / history, coerced to numbers whatever the file stored.
_TRIAL_NUMERIC = (
    "objective", "tokens", "steps", "clock_s", "final_train_loss", "final_smoothed_loss", "best_val_loss",
    "final_val_loss", "tokens_per_s", "startup_s",
    *(f"time_to_target_{r}_s" for r in RULES), *(f"tokens_to_target_{r}" for r in RULES),
)
_HISTORY_NUMERIC = ("tokens", "step", "train_loss", "smoothed_loss", "val_loss", "clock_s", "objective",
                    "tokens_per_s")


class ReportInputError(Exception):
    """The path cannot be reported on. The message is a single line that says what is wrong."""


@dataclass
class RunData:
    """What a run directory holds, as pandas tables and plain dicts."""

    settings: dict[str, Any]
    trials: pd.DataFrame
    history: pd.DataFrame
    best: dict[str, Any] | None
    kind: str
    path: Path | None = None
    notes: list[str] = field(default_factory=list)  # what could not be read, in words
    transfer: dict[str, Any] | None = None  # transfer.json of a transfer run
    promotion: dict[str, Any] | None = None  # promotion.json of a promotion
    crossings: pd.DataFrame | None = None  # a promotion's runs' crossings (:func:`read_crossings`)
    utilisation: Any = None  # utilisation.json as read (a list of sessions when well formed)

    @property
    def name(self) -> str:
        return str(self.settings.get("name") or (self.path.name if self.path else "run"))

    @property
    def param_columns(self) -> list[str]:
        return [c for c in self.trials.columns if c.startswith("param_")]

    @property
    def target(self) -> float | None:
        value = _as_float(self.settings.get("target"))
        return value if value is not None and math.isfinite(value) else None

    @property
    def is_budget_track(self) -> bool:
        """A track with no target (the marathon): the objective is a loss, nothing is censored."""
        return self.target is None and ("target" in self.settings or "marathon" in str(self.settings.get("track")))

    @property
    def search_rule(self) -> str:
        return search_rule(self.settings)

    @property
    def rung_unit(self) -> str:
        """What ASHA's rungs count: settings `asha.unit` (`seconds`: clocked seconds, the speedruns since
        rungs moved to time; `tokens`), else `tokens`, the unit of runs older than `asha.unit`."""
        asha = self.settings.get("asha")
        unit = asha.get("unit") if isinstance(asha, dict) else None
        return unit.strip() if isinstance(unit, str) and unit.strip() else "tokens"

    @property
    def rungs(self) -> list[float]:
        """ASHA rung positions in :attr:`rung_unit`: settings `asha.rungs`, else derived from its
        grace/factor/max_t."""
        asha = self.settings.get("asha") or {}
        if not isinstance(asha, dict):
            return []
        rungs = asha.get("rungs")
        if isinstance(rungs, list | tuple):
            values = [_as_float(r) for r in rungs]
            return sorted(v for v in values if v is not None and math.isfinite(v) and v > 0)
        grace, factor, max_t = (_as_float(asha.get(k)) for k in ("grace_period", "reduction_factor", "max_t"))
        if not grace or not factor or not max_t or grace <= 0 or factor <= 1:
            return []
        out, rung = [], grace
        while rung < max_t and len(out) < 64:
            out.append(float(rung))
            rung *= factor
        return out


def search_rule(settings: dict[str, Any]) -> str:
    """The crossing rule the search optimises: settings `search_rule`/`rule`, else the rule named in
    `objective` (`smoothed`, `time_to_target_smoothed_s`, ...); `smoothed` when nothing says."""
    for key in ("search_rule", "rule"):
        if settings.get(key) in RULES:
            return str(settings[key])
    objective = str(settings.get("objective") or "")
    for rule in sorted(RULES, key=len, reverse=True):
        if rule in objective:
            return rule
    return "smoothed"


def _as_float(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float; None when it is missing, not a number, a bool, NaN or infinite."""
    number = _as_float(value)
    return number if number is not None and math.isfinite(number) else None


def _read_json(path: Path, notes: list[str]) -> Any:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        notes.append(f"{path.name} could not be read ({type(exc).__name__}); it was ignored")
        return None


def _read_table(run_dir: Path, stem: str, notes: list[str]) -> pd.DataFrame | None:
    """`<stem>.parquet`, else `<stem>.csv` (a parquet file may be half written while a search runs)."""
    parquet, csv = run_dir / f"{stem}.parquet", run_dir / f"{stem}.csv"
    problem = None
    if parquet.exists():
        try:
            return pd.read_parquet(parquet)
        except Exception as exc:  # pyarrow raises several types for a truncated file
            problem = f"{parquet.name} could not be read ({type(exc).__name__})"
    if csv.exists():
        try:
            table = pd.read_csv(csv, dtype={"trial_id": str}, on_bad_lines="skip")
        except Exception as exc:
            problem = (problem + "; " if problem else "") + f"{csv.name} could not be read ({type(exc).__name__})"
        else:
            if problem:
                notes.append(f"{problem}; read {csv.name} instead")
            return table
    if problem:
        notes.append(problem)
    return None


def _to_bool(values: pd.Series) -> pd.Series:
    mapping = {"true": True, "1": True, "1.0": True, "yes": True, "false": False, "0": False, "0.0": False,
               "no": False, "": False, "nan": False, "none": False}
    return values.map(lambda v: mapping.get(str(v).strip().lower(), bool(v)) if not isinstance(v, bool) else v
                      ).astype(bool)


def normalise_trials(trials: pd.DataFrame | None, rule: str = "smoothed") -> pd.DataFrame:
    """The trials table with the documented columns present and typed, sorted by trial number. Without a
    `reached` column, a trial reached the target if its objective is below the censoring offset (else, if
    there is no objective, if it has a time to target by `rule`)."""
    df = pd.DataFrame() if trials is None else trials.copy()
    n = len(df)
    if "number" in df:
        number = pd.to_numeric(df["number"], errors="coerce")
        df["number"] = number.fillna(pd.Series(np.arange(n), index=df.index)).astype(int)
    else:
        df["number"] = np.arange(n, dtype=int)
    if "trial_id" in df:
        df["trial_id"] = df["trial_id"].astype(str).where(df["trial_id"].notna(), df["number"].astype(str))
    else:
        df["trial_id"] = df["number"].astype(str)
    if "status" in df:
        df["status"] = df["status"].fillna("unknown").astype(str).str.strip().str.lower()
    else:
        df["status"] = "unknown"
    for column in _TRIAL_NUMERIC:
        df[column] = pd.to_numeric(df[column], errors="coerce") if column in df else np.nan
    if "reached" in df:
        df["reached"] = _to_bool(df["reached"].fillna(False))
    elif df["objective"].notna().any():
        df["reached"] = df["objective"] < CENSORED
    else:
        df["reached"] = df[f"time_to_target_{rule}_s"].notna()
    df["error"] = df["error"].fillna("").astype(str) if "error" in df else ""
    df["device"] = df["device"].fillna("").astype(str) if "device" in df else ""
    # A resumed search may rewrite a trial: the last row wins.
    df = df.drop_duplicates("trial_id", keep="last").sort_values("number", kind="stable")
    return df.reset_index(drop=True)


def normalise_history(history: pd.DataFrame | None) -> pd.DataFrame:
    df = pd.DataFrame() if history is None else history.copy()
    if "trial_id" not in df or "tokens" not in df:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in ("trial_id", *_HISTORY_NUMERIC)})
    df["trial_id"] = df["trial_id"].astype(str)
    for column in _HISTORY_NUMERIC:
        df[column] = pd.to_numeric(df[column], errors="coerce") if column in df else np.nan
    df = df[df["tokens"].notna()]
    return df.sort_values(["trial_id", "tokens"], kind="stable").reset_index(drop=True)


def _trials_from_files(trial_dir: Path, notes: list[str]) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The tables rebuilt from the per-trial JSON files a search writes the moment a trial ends (when
    trials.parquet / .csv are missing or unreadable), as search.store builds them: ``params`` become
    ``param_<name>`` columns, ``history`` the history rows."""
    rows, history, bad = [], [], 0
    for path in sorted(trial_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            bad += 1
            continue
        if not isinstance(record, dict):
            bad += 1
            continue
        trial_id = str(record.get("trial_id") or path.stem)
        row = {k: v for k, v in record.items() if not isinstance(v, dict | list)}
        row["trial_id"] = trial_id
        params = record.get("params") if isinstance(record.get("params"), dict) else {}
        for name, value in params.items():
            row[f"param_{name}"] = value
        phases = record.get("startup_phases") if isinstance(record.get("startup_phases"), dict) else {}
        for name, value in phases.items():
            row[f"startup_{name}_s"] = value
        rows.append(row)
        for point in record.get("history") or []:
            if isinstance(point, dict):
                history.append({**point, "trial_id": trial_id})
    if not rows:
        return None, None
    notes.append(f"no readable trials table: read {len(rows)} trials from trials/*.json"
                 + (f" ({bad} unreadable files skipped)" if bad else ""))
    return pd.DataFrame(rows), pd.DataFrame(history) if history else None


CROSSING_COLUMNS = ("label", "seed", "rule", "step", "tokens", "time_s", "loss")


def read_crossings(run_dir: Path, notes: list[str]) -> pd.DataFrame:
    """Where each run of a promotion first crossed the target, by every rule: one row per
    ``<label>/seed-<s>/result.json`` and rule it crossed by (columns :data:`CROSSING_COLUMNS`)."""
    rows, bad = [], []
    for path in sorted(run_dir.glob("*/seed-*/result.json")):
        label, seed = path.parent.parent.name, path.parent.name.removeprefix("seed-")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            seed_number = int(seed)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError):
            bad.append(f"{label}/seed-{seed}")
            continue
        result = data.get("result") if isinstance(data, dict) and isinstance(data.get("result"), dict) else data
        crossings = result.get("crossings") if isinstance(result, dict) else None
        if crossings is not None and not isinstance(crossings, dict):
            bad.append(f"{label}/seed-{seed}")
            continue
        for rule, crossing in (crossings or {}).items():  # none: a run that failed before a crossing
            if isinstance(crossing, dict):
                rows.append({"label": label, "seed": seed_number, "rule": str(rule),
                             **{k: _as_float(crossing.get(k)) for k in ("step", "tokens", "time_s", "loss")}})
    if bad:
        notes.append(f"{len(bad)} result.json files without readable crossings were skipped: {', '.join(bad[:10])}"
                     + (" …" if len(bad) > 10 else ""))
    return pd.DataFrame(rows, columns=list(CROSSING_COLUMNS))


def load(run_dir: str | Path) -> RunData:
    """Read a run directory (a search, promotion or transfer run). Raises :class:`ReportInputError`
    only when the path is missing or is not a run; anything unreadable inside it becomes a note."""
    path = Path(run_dir)
    if not path.exists():
        raise ReportInputError(f"{path}: no such file or directory")
    if not path.is_dir():
        raise ReportInputError(f"{path}: not a directory (give a run directory such as runs/<name>)")
    markers = ("settings.json", "trials.parquet", "trials.csv", "transfer.json")
    if not any((path / m).exists() for m in markers):
        raise ReportInputError(f"{path}: not a run directory (no settings.json, trials.parquet or trials.csv)")
    notes: list[str] = []
    settings = _read_json(path / "settings.json", notes)
    if not isinstance(settings, dict):
        if (path / "settings.json").exists() and settings is not None:
            notes.append("settings.json is not a JSON object; it was ignored")
        elif not (path / "settings.json").exists():
            notes.append("settings.json is missing: target, rungs and the record settings are unknown")
        settings = {}
    trials = _read_table(path, "trials", notes)
    history = _read_table(path, "history", notes)
    if trials is None and (path / "trials").is_dir():
        trials, rebuilt_history = _trials_from_files(path / "trials", notes)
        history = rebuilt_history if history is None else history
    if history is None and trials is not None and len(trials):
        notes.append("no readable history.parquet yet: loss curves cannot be drawn")
    best = _read_json(path / "best.json", notes)
    transfer = _read_json(path / "transfer.json", notes)
    utilisation = _read_json(path / "utilisation.json", notes)
    kind = str(settings.get("kind") or ("transfer" if transfer is not None else "search"))
    promotion = crossings = None
    if kind == "promotion":
        promotion = _read_json(path / "promotion.json", notes)
        if promotion is not None and not isinstance(promotion, dict):
            notes.append("promotion.json is not a JSON object; it was ignored")
            promotion = None
        crossings = read_crossings(path, notes)
    return RunData(settings=settings, trials=normalise_trials(trials, search_rule(settings)), history=normalise_history(history),
                   best=best if isinstance(best, dict) else None, kind=kind, path=path, notes=notes,
                   transfer=transfer if isinstance(transfer, dict | list) else None, promotion=promotion,
                   crossings=crossings, utilisation=utilisation)


# ----------------------------------------------------------------------------------------------------------
# Records

RECORD_COLUMNS = ("id", "track", "target", "rule", "status", "verdict", "date", "user", "notes", "time_s",
                  "std_time_s", "tokens", "val_loss", "p_value", "relative_to_control", "n_seeds", "gpu",
                  "command", "config", "path", "other_rules")


def _mean_of(results: list[Any], key: str) -> float | None:
    values = [_as_float(r.get(key)) for r in results if isinstance(r, dict)]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _record_row(data: dict[str, Any], path: Path, root: Path) -> dict[str, Any]:
    row: dict[str, Any] = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
    results = data.get("results") if isinstance(data.get("results"), list) else []
    seeds = data.get("seeds") if isinstance(data.get("seeds"), list) else []
    in_baseline_dir = "baseline" in path.relative_to(root).parts[:-1]
    row["id"] = str(data.get("id") or path.stem)
    parent = path.parent.name
    row["track"] = str(data.get("track") or (parent if parent not in ("baseline", root.name) else "unknown"))
    row["status"] = str(data.get("status") or ("baseline" if in_baseline_dir else "candidate")).lower()

    def first(*values: Any) -> float | None:
        for value in values:
            number = _as_float(value)
            if number is not None and math.isfinite(number):
                return number
        return None

    row["time_s"] = first(data.get("mean_time_s"), data.get("time_s"), _mean_of(results, "time_to_target_s"))
    row["tokens"] = first(data.get("mean_tokens"), data.get("tokens"), _mean_of(results, "tokens_to_target"))
    row["std_time_s"] = first(data.get("std_time_s"))
    row["val_loss"] = first(data.get("val_loss"), _mean_of(results, "val_loss"))
    row["target"] = first(data.get("target"))
    row["p_value"] = first(data.get("p_value"))
    row["relative_to_control"] = first(data.get("relative_to_control"))
    row["n_seeds"] = len(seeds) or len(results) or None
    # a promotion's other crossings (smoothed, val) beside its record rule's verdict: shown, never ranked by
    by_rule = data.get("by_rule") if isinstance(data.get("by_rule"), dict) else {}
    others = []
    for name, got in by_rule.items():
        relative = first(got.get("relative_to_control")) if isinstance(got, dict) else None
        if name != data.get("rule") and relative is not None:
            p = first(got.get("p_value"))
            others.append(f"{name} {relative:.3g}×" + (f" (p = {p:.2g})" if p is not None else ""))
    row["other_rules"] = "; ".join(others)
    row["config"] = data.get("config") if isinstance(data.get("config"), dict) else {}
    row["path"] = str(path.relative_to(root))
    return row


def load_records(records_dir: str | Path) -> pd.DataFrame:
    """One row per record JSON found under `records_dir` (recursively), with the columns of
    :data:`RECORD_COLUMNS` always present. Unreadable files are skipped; their names are listed in
    ``df.attrs["notes"]``. A missing directory raises :class:`ReportInputError`."""
    root = Path(records_dir)
    if not root.is_dir():
        raise ReportInputError(f"{root}: no such directory" if not root.exists() else f"{root}: not a directory")
    rows, notes = [], []
    for path in record_paths(root):
        data = _read_json(path, notes)
        if not isinstance(data, dict):
            if data is not None:
                notes.append(f"{path.relative_to(root)} is not a JSON object; skipped")
            continue
        rows.append(_record_row(data, path, root))
    df = pd.DataFrame(rows)
    for column in RECORD_COLUMNS:
        if column not in df:
            df[column] = None
    df.attrs["notes"] = notes
    return df
