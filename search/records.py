"""Records on disk: reading them, the one scanner of a records directory, the track's current record, the seed
leaderboard's baselines, building a promoted candidate's record and writing it without overwriting any file.

A record is ``records/<track>/<date>-<hash>-<n>.json`` (a promoted candidate; ``<hash>`` is :func:`config_key`)
or ``records/baseline/<track>.json`` (the seed leaderboard's entry, :func:`baseline_record`). Its ``command``
reproduces it with ``python -m trainer --record``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chores.files import atomic_write_json, display_path, record_paths
from chores.values import finite
from search.trials import search_rule
from search.verdicts import by_rule, compare, group_summary
from trainer.config import ConfigError, RunConfig, make_config

if TYPE_CHECKING:
    from search.pairs import Job
    from search.promote import Plan

log = logging.getLogger(__name__)

ACCEPTED_VERDICTS = ("beats_record",)


def config_key(config: RunConfig) -> str:
    """A short hash of what makes a configuration (hp without the seed, model, data without the cache)."""
    d = config.to_dict()
    d["hp"].pop("seed", None)
    d["data"].pop("cache_dir", None)
    blob = json.dumps({"track": config.track.name, "hp": d["hp"], "model": d["model"], "data": d["data"]},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def changes_against_track(config: RunConfig) -> dict[str, Any]:
    """The settings (hp, model, data) in which ``config`` differs from its track's default config: the record's
    changes against the baseline."""
    default = make_config(config.track.name).to_dict()
    mine = config.to_dict()
    out: dict[str, Any] = {}
    for section in ("hp", "model", "data"):
        for key, value in mine[section].items():
            if (section, key) in (("hp", "seed"), ("data", "cache_dir")):
                continue
            if default[section].get(key) != value:
                out[key if section == "hp" else f"{section}.{key}"] = value
    return out


def scan_records(records_dir: Path, track: str | None = None, *, strict: bool = False
                 ) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every JSON object under ``records_dir`` that may be a record (:func:`chores.files.record_paths`) of
    ``track`` (any track when None), with its path. A file that is not valid JSON raises ConfigError (one line)
    with ``strict``, else is skipped with a warning."""
    for path in record_paths(records_dir):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            if strict:
                raise ConfigError(f"record {path} is not valid JSON ({type(exc).__name__})") from None
            log.warning("%s is not valid JSON: skipped", path)
            continue
        if isinstance(data, dict) and (track is None or data.get("track") == track):
            yield path, data


def read_record(path: Path) -> dict[str, Any]:
    """A record JSON with a loadable ``config``. Raises ConfigError (one line) otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"record {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"record {path} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise ConfigError(f"record {path} is not a valid record (no 'config' object)")
    try:
        RunConfig.from_dict(data["config"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise ConfigError(f"record {path} has an invalid config ({type(exc).__name__}: {exc})") from None
    return data


def _record_metric(record: dict[str, Any], budget: bool) -> float:
    keys = ("val_loss",) if budget else ("mean_time_s", "time_s")
    for key in keys:
        if finite(record.get(key)):
            return float(record[key])
    return math.inf


def current_record(records_dir: Path, track_name: str) -> tuple[dict[str, Any], Path] | None:
    """The track's current record under ``records_dir``: the best (fastest; lowest val loss on a budget
    track) of its baseline records and its records with verdict ``beats_record``; None if there is none.
    A file under ``records_dir`` that is not valid JSON, or an accepted record of the track with an invalid
    config, raises ConfigError."""
    if not records_dir.exists():
        return None
    if not records_dir.is_dir():
        raise ConfigError(f"--records {records_dir} is not a directory")
    budget = make_config(track_name).track.target is None
    best: tuple[float, str, dict[str, Any], Path] | None = None
    for path, data in scan_records(records_dir, track_name, strict=True):
        if data.get("status") != "baseline" and data.get("verdict") not in ACCEPTED_VERDICTS:
            continue
        data = read_record(path)
        key = (_record_metric(data, budget), str(data.get("date") or ""))
        # the lower metric wins; on a tie, the newer record
        if best is None or key[0] < best[0] or (key[0] == best[0] and key[1] > best[1]):
            best = (key[0], key[1], data, path)
    return None if best is None else (best[2], best[3])


def written_records(records_dir: Path, track: str, promotion_id: str) -> dict[str, tuple[Path, dict[str, Any]]]:
    """The records a promotion wrote already, by config hash (a command killed before its promotion.json)."""
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    if not records_dir.is_dir():
        return out
    for path, data in scan_records(records_dir, track):
        if isinstance(data.get("source"), dict) and data["source"].get("promotion_id") == promotion_id:
            out[str(data.get("config_hash"))] = (path, data)
    return out


def write_new_record(directory: Path, make: Callable[[int], dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    """Write ``make(n)`` (a dict with an ``id``) as ``directory/<id>.json`` for the first n = 1, 2, ... whose
    file does not exist yet: complete and atomic (a hard link of a fully written temporary file), never over
    an existing file, safe with other writers at the same time."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{uuid.uuid4().hex}.tmp"
    try:
        for n in range(1, 10_000):
            record = make(n)
            path = directory / f"{record['id']}.json"
            if path.exists():
                continue
            atomic_write_json(tmp, record)
            try:
                os.link(tmp, path)
            except FileExistsError:
                continue
            except OSError:  # a file system without hard links: exclusive create, then write in place
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    continue
                with os.fdopen(fd, "w") as fh:
                    fh.write(tmp.read_text())
                    fh.flush()
                    os.fsync(fh.fileno())
            return path, record
    finally:
        tmp.unlink(missing_ok=True)
    raise ConfigError(f"could not find a free record name in {directory}")


# Seed leaderboard (seed/leaderboard.md; upstream vukrosic/deep-delta-learning-research @ 496192d, RTX 4090).
_SEED_USER = "[Vuk Rosić](https://x.com/VukRosic99)"
_SEED_NOTES = "Optimized Config (LR 0.015, Warmup 0, Constant, GradAcc 1) + [Per-step check]"
BASELINES: dict[str, dict[str, Any]] = {
    "speedrun-4.5": {"date": "2025-12-18", "time_s": 182.0, "tokens": 6_086_656, "steps": 743, "notes": _SEED_NOTES},
    "speedrun-3.5": {"date": "2025-12-18", "time_s": 547.0, "tokens": 18_767_872, "steps": 2_291,
                     "notes": _SEED_NOTES},
    "marathon": {"date": "2025-12-17", "time_s": 9_420.0, "tokens": 1_000_000_000, "val_loss": 3.1940,
                 "notes": "Final Milestone Record"},
}


def baseline_record(track_name: str) -> dict[str, Any]:
    """The seed leaderboard's entry for a track as a record: the record's settings on that track."""
    config = make_config(track_name)
    t = config.track
    entry = BASELINES[track_name]
    return {
        "id": f"seed-{track_name}", "kind": "record", "status": "baseline", "verdict": None,
        "track": track_name, "target": t.target, "rule": t.record_rule,
        "metric": "time_to_target_s" if t.target is not None else "final_val_loss",
        "date": entry["date"], "user": _SEED_USER, "notes": entry["notes"],
        "time_s": entry["time_s"], "tokens": entry["tokens"], "steps": entry.get("steps"),
        "val_loss": entry.get("val_loss"), "gpu": "RTX 4090",
        "source": "seed/leaderboard.md; upstream vukrosic/deep-delta-learning-research @ 496192d (its own data: "
                  "HF vukrosic/blueberry-1B-pretrain; the marathon there is 1B tokens)",
        "config": config.to_dict(), "command": f"python -m trainer --record records/baseline/{track_name}.json",
    }


def _gpu_of(results: list[dict[str, Any]]) -> tuple[str, list[str]]:
    names = sorted({str(r.get("device")) for r in results if r.get("device")})
    return (names[0] if len(names) == 1 else ", ".join(names)), names


def build_record(plan: Plan, job: Job, results: list[dict[str, Any]], control: list[dict[str, Any]], *,
                 alpha: float, promotion_dir: Path, records_dir: Path, user: str, date: str,
                 git: dict[str, Any], promotion_id: str | None = None) -> Callable[[int], dict[str, Any]]:
    """A function n -> the candidate record with id ``<date>-<hash>-<n>`` (for :func:`write_new_record`)."""
    verdict = compare(results, control, plan.rule, plan.budget, alpha)
    mine = group_summary(results, plan.rule, plan.budget)
    theirs = group_summary(control, plan.rule, plan.budget)
    gpu, gpus = _gpu_of(results + control)
    env = next((r["env"] for r in results + control if r.get("env")), {})
    track = job.config.track
    key = config_key(job.config)
    changes = changes_against_track(job.config)
    settings = plan.settings
    notes = (f"{settings.get('space', 'search')} search {plan.run_dir.name}, trial #{job.source.get('number')} "
             f"(rank {job.source.get('rank')}): " + ", ".join(f"{k}={v}" for k, v in changes.items()))
    config = replace(job.config, hp=replace(job.config.hp, seed=plan.seeds[0]))

    def make(n: int) -> dict[str, Any]:
        ident = f"{date.replace('-', '')}-{key}-{n}"
        path = records_dir / track.name / f"{ident}.json"
        command = f"python -m trainer --record {display_path(path)}"
        return {
            "id": ident, "kind": "record", "status": "candidate", "verdict": verdict["verdict"],
            "verdict_reason": verdict["verdict_reason"], "p_value": verdict["p_value"], "alpha": alpha,
            "t_stat": verdict["t_stat"], "welch_df": verdict["df"],
            "track": track.name, "target": track.target, "rule": plan.rule,
            "metric": "final_val_loss" if plan.budget else "time_to_target_s",
            "date": date, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "user": user, "notes": notes,
            "mean_time_s": mine.get("mean_time_s"), "std_time_s": mine.get("std_time_s"),
            "mean_tokens": mine.get("mean_tokens"), "val_loss": mine.get("val_loss"),
            "n_reached": mine.get("n_reached"), "relative_to_control": verdict["relative_to_control"],
            "seeds": list(plan.seeds), "results": results,
            "by_rule": None if plan.budget else by_rule(results, control, alpha),
            "control": {**plan.control_source, "config": next(j for j in plan.jobs if j.kind == "control")
                        .config.to_dict(), "seeds": list(plan.seeds), "results": control,
                        "mean_time_s": theirs.get("mean_time_s"), "std_time_s": theirs.get("std_time_s"),
                        "mean_tokens": theirs.get("mean_tokens"), "val_loss": theirs.get("val_loss"),
                        "n_reached": theirs.get("n_reached")},
            "config": config.to_dict(), "config_hash": key, "changes": changes,
            "gpu": gpu, "gpus": gpus,
            "software": {"torch": env.get("torch"), "cuda": env.get("cuda"), "cudnn": env.get("cudnn"),
                         "python": env.get("python")},
            "git": git, "command": command,
            "seed_commands": [f"{command} --set seed={s}" for s in plan.seeds],
            "source": {"run": display_path(plan.run_dir), "promotion": display_path(promotion_dir),
                       "promotion_id": promotion_id,
                       "space": settings.get("space"), "search_rule": search_rule(settings),
                       **job.source},
        }

    return make


