"""A search run read for promotion: its settings, its best trials, and their configurations.

A candidate = the track (``make_config(track, preset, data)``), the search's fixed ``set`` (without
``stop_rule`` and ``max_tokens``: a promotion is a full run), the trial's ``param_*`` values (those that name a
setting; space-only parameters such as ``effective_batch`` are represented by the settings derived from them),
then ``stop_rule=all`` and ``max_tokens=0`` (:func:`promotion_runtime`), then the promotion's ``--set``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from chores.values import plain
from trainer.config import CROSSING_RULES, ConfigError, RunConfig, apply_overrides, make_config, override_keys

log = logging.getLogger(__name__)

PROMOTABLE = ("completed", "stopped")
# Settings of the search's fixed overrides that a promotion replaces: it runs to all crossings, to the cap.
NOT_CARRIED = ("stop_rule", "max_tokens", "runtime.stop_rule", "runtime.max_tokens")


def search_rule(settings: dict[str, Any]) -> str | None:
    """The crossing rule a search optimised, from its settings.json: ``search_rule``, else ``rule``, else
    ``objective`` (the key older searches stored it under); None when none names a rule."""
    for key in ("search_rule", "rule", "objective"):
        if settings.get(key) in CROSSING_RULES:
            return str(settings[key])
    return None


def read_search_run(run_dir: Path) -> tuple[dict[str, Any], Any]:
    """The search's settings and its trials table. Raises ConfigError (one line) when it is not one."""
    import pandas as pd

    if not run_dir.exists():
        raise ConfigError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a directory (give a search run directory such as runs/<name>)")
    path = run_dir / "settings.json"
    if not path.exists():
        raise ConfigError(f"{run_dir}: not a search run directory (no settings.json)")
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("track"), str):
        raise ConfigError(f"{path} is not a search's settings (no track)")
    if settings.get("kind", "search") != "search":
        raise ConfigError(f"{run_dir} is a {settings.get('kind')} run, not a search: promote a search run")
    trials = None
    for name in ("trials.parquet", "trials.csv"):
        table = run_dir / name
        if not table.exists():
            continue
        try:
            trials = pd.read_parquet(table) if name.endswith(".parquet") else pd.read_csv(table, dtype={"trial_id": str})
            break
        except Exception as exc:  # pyarrow raises several types for a damaged file
            log.warning("%s could not be read (%s)", table, type(exc).__name__)
    if trials is None:
        raise ConfigError(f"{run_dir}: no readable trials table (trials.parquet or trials.csv)")
    for column in ("status", "objective"):
        if column not in trials:
            raise ConfigError(f"{run_dir}: the trials table has no {column!r} column")
    return settings, trials


def top_trials(trials: Any, top: int) -> list[dict[str, Any]]:
    """The rows of the ``top`` best promotable trials by objective (ties: earlier first), as plain dicts."""
    import pandas as pd

    df = trials.copy()
    df["objective"] = pd.to_numeric(df["objective"], errors="coerce")
    if "number" not in df:
        df["number"] = range(len(df))
    ok = df[df["status"].astype(str).str.lower().isin(PROMOTABLE) & df["objective"].notna()]
    ok = ok.sort_values(["objective", "number"], kind="stable")
    return [{k: plain(v) for k, v in row.items()} for row in ok.to_dict("records")][: max(top, 0) or None]


def trial_params(row: dict[str, Any]) -> dict[str, Any]:
    return {k[len("param_"):]: v for k, v in row.items() if k.startswith("param_") and v is not None}


def _typed(config: RunConfig, key: str, value: Any) -> Any:
    """A table value in the setting's type (a parquet column with gaps stores ints as floats)."""
    section = override_keys().get(key.rpartition(".")[2])
    current = getattr(getattr(config, section), key.rpartition(".")[2]) if section else None
    if isinstance(current, bool):
        return value if isinstance(value, bool | str) else bool(value)
    if isinstance(current, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _settable(key: str) -> bool:
    section, _, name = key.rpartition(".")
    return name in override_keys() if not section else section in ("hp", "runtime", "data", "model")


def base_config(settings: dict[str, Any]) -> tuple[RunConfig, dict[str, Any]]:
    """The track's config with the search's fixed overrides that a promotion keeps; and those overrides."""
    fixed = settings.get("set") or {}
    if not isinstance(fixed, dict):
        raise ConfigError("the search's settings.json has a 'set' that is not an object")
    kept = {k: v for k, v in fixed.items() if k not in NOT_CARRIED}
    dropped = sorted(set(fixed) - set(kept))
    if dropped:
        log.info("not carried from the search's --set (a promotion runs to all crossings, to the cap): %s",
                 ", ".join(dropped))
    config = make_config(settings["track"], preset_name=settings.get("preset") or None,
                         data=settings.get("data") or None)
    return apply_overrides(config, kept), kept


def candidate_config(base: RunConfig, row: dict[str, Any]) -> tuple[RunConfig, dict[str, Any]]:
    """``base`` with the trial's parameters that name a setting; returns the config and those overrides."""
    params = trial_params(row)
    applied = {k: _typed(base, k, v) for k, v in params.items() if _settable(k)}
    skipped = sorted(set(params) - set(applied))
    if skipped:
        log.info("trial %s: parameters %s are the space's own (their derived settings are applied)",
                 row.get("trial_id"), ", ".join(skipped))
    try:
        return apply_overrides(base, applied), applied
    except ConfigError as exc:
        raise ConfigError(f"trial {row.get('trial_id')}'s parameters are not a valid config: {exc}") from None


def promotion_runtime(config: RunConfig, overrides: dict[str, Any], seed: int | None = None) -> RunConfig:
    config = replace(config, runtime=replace(config.runtime, stop_rule="all", max_tokens=0))
    config = apply_overrides(config, overrides)
    return config if seed is None else replace(config, hp=replace(config.hp, seed=seed))


