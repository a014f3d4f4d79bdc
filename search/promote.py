"""``python -m search.promote``: rerun a search's best configurations as full timed runs and turn each into a
candidate record, measured against the current record's settings run in the same session.

    python -m search.promote runs/<run> --top 3 --seeds 3      # -> runs/<run>/promote-<time>/, records/<track>/
    python -m search.promote runs/<run> --top 1 --seeds 2 --set device=cpu --set max_tokens=4096
    python -m search.promote runs/<run> --dry-run               # print the plan, run nothing
    python -m search.promote runs/<run> --top 2 --time-budget-s 540 # runs left: exit 3, says how to resume
    python -m search.promote --resume runs/<run>/promote-<time> # run what is missing there, then the records
    python -m search.promote --leaderboard [records/]          # the leaderboard, per track, as Markdown

What runs. The ``--top`` trials by ``objective`` (statuses completed and stopped; identical configurations
once) plus a control: the current record's hyperparameters on the same track, model, data and runtime. Each
of them runs once per seed (``--seeds N``: seeds ``--first-seed`` .. +N-1), each run a Ray Tune trial in a
fresh process with one GPU (one CPU without a GPU): a grid over (configuration, seed), no searcher, no
scheduler, so nothing is stopped early. Runs use ``stop_rule=all`` (they go on until all three crossing
rules have crossed) capped by the track's ``max_tokens``. The grid is ordered seed by seed (control first)
so that drift of the machine during the session hits the control and the candidates alike.

Configurations. A candidate = the track (``make_config(track, preset, data)``), the search's fixed
``set`` (without ``stop_rule`` and ``max_tokens``: a promotion is a full run), the trial's ``param_*``
values (those that name a setting; space-only parameters such as ``effective_batch`` are represented by
the settings derived from them), then ``stop_rule=all``, then ``--set`` of this command. The control takes
the same config with the hyperparameters (``hp``) of the current record: the best of the baseline records
and the records whose verdict is ``beats_record`` for the track under ``--records`` (lowest time; lowest
val loss on a budget track), or the track's defaults (the record's settings) when there is none; or the
record given with ``--control-record``. ``--set`` applies to the control too.

Verdict. By the track's record rule (first step <= target for the speedruns): a candidate ``beats_record``
only if all its seeds reached the target and a one-sided Welch t-test of its times against the control's
gives p < ``--alpha`` (0.05). Censoring: a candidate seed that did not reach the target fails the verdict
(``not_significant``, with the reason); a control seed that did not reach enters the test at its whole
clocked time, a lower bound of its time to target, which can only make the candidate look worse. Budget
tracks (no target) compare the final validation loss the same way. The smoothed and validation crossings
are reported beside it (``by_rule``) but decide nothing.

On disk. ``runs/<run>/promote-<time>/`` (never an existing one; its path is printed on stderr at the start):
``settings.json`` (the plan, and every command that worked on it), ``<run>/seed-<s>/result.json`` (each run's
``RunResult`` with its per-step history, written atomically when the run ends), ``trials.parquet``/``.csv``
and ``history.parquet`` (one row per run and seed, in the search tables' format), ``promotion.json`` (the
summary; ``complete`` false while runs are missing). Each candidate: ``records/<track>/<date>-<hash>-<n>.json``,
written atomically and never over another file (hard link of a complete temporary file, or O_EXCL); the
record's ``command`` reproduces it with ``python -m trainer --record``.

Several commands. ``--time-budget-s S`` is Ray Tune's time budget (``TuneConfig(time_budget_s)``; Ray's
start-up, tokenizing and the tables come on top): when it ends, runs in flight are stopped and lost, runs not
started stay missing, no record is written, and the command exits with code 3 and the ``--resume`` command.
``--resume DIR`` continues a promotion that was stopped that way, killed (SIGKILL, ``timeout``: at most the
runs in flight are lost) or interrupted: the plan is rebuilt from ``DIR/settings.json`` (the search run is
``DIR``'s parent; the control stays the one it started with) and must have the same configurations (config
hashes), else it refuses; only the (configuration, seed) runs without a result.json are run, and the records
are written once every run has one. A run that failed has its result.json too and is not run again (delete
its ``seed-<s>/`` to retry it). The run argument, ``--top``, ``--seeds``, ``--first-seed``, ``--set``,
``--records``, ``--control-record``, ``--alpha`` and ``--user`` come from ``settings.json``: given with
``--resume``, they must agree with it (exit 2 otherwise). ``--resume`` refuses a promotion whose records are
written (``promotion.json`` complete); records written by a command killed before its ``promotion.json``
are found (their ``source.promotion_id``) and not written again. Give relative paths from the directory the
promotion started in (the repository root).

Exit codes: 0 done; 1 done, but some runs failed (the records say so); 2 bad input; 3 the time budget ended
with runs missing (no records; continue with ``--resume``); 130 interrupted (continue with ``--resume``).

Workers write their results under the promotion directory, so the driver and the trials must share a file
system (one machine, or a cluster with a shared ``runs/``); otherwise the final metrics Ray reports are used
and the loss curves are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trainer.config import (
    CROSSING_RULES,
    ConfigError,
    DataConfig,
    RunConfig,
    apply_overrides,
    make_config,
    override_keys,
    parse_set,
)
from trainer.io import atomic_write_json, new_run_dir

log = logging.getLogger(__name__)

PROMOTABLE = ("completed", "stopped")
FINISHED = ("reached", "budget_exhausted")
ACCEPTED_VERDICTS = ("beats_record",)
CURVE_POINTS = 200
# Settings of the search's fixed overrides that a promotion replaces: it runs to all crossings, to the cap.
NOT_CARRIED = ("stop_rule", "max_tokens", "runtime.stop_rule", "runtime.max_tokens")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------------
# Statistics: Welch's t-test, one-sided, with the Student t distribution computed here.


def welch_one_sided(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Welch's unequal-variance t-test of H1: mean(a) < mean(b). Returns (t, df, p).

    Both samples need at least two values (ValueError otherwise). With no variance in either sample the
    test is undefined here: df and p are NaN and t is +-inf (or NaN when the means are equal), so no verdict
    rests on it (scipy returns p = 0 or 1 there).
    """
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        raise ValueError(f"Welch's test needs at least 2 values in each sample, got {na} and {nb}")
    values = [float(x) for x in (*a, *b)]
    if not all(math.isfinite(x) for x in values):
        raise ValueError("Welch's test needs finite values")
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    sa, sb = va / na, vb / nb
    se2 = sa + sb
    if se2 == 0.0:
        diff = ma - mb
        return (math.copysign(math.inf, diff) if diff else math.nan), math.nan, math.nan
    t = (ma - mb) / math.sqrt(se2)
    df = se2 * se2 / (sa * sa / (na - 1) + sb * sb / (nb - 1))
    return t, df, student_t_cdf(t, df)


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 degrees of freedom (df need not be an integer)."""
    if math.isnan(t) or not df > 0:
        return math.nan
    if math.isinf(t):
        return 0.0 if t < 0 else 1.0
    tail = 0.5 * _betainc_regularized(df / 2.0, 0.5, df / (df + t * t))  # P(T <= -|t|)
    return tail if t < 0 else 1.0 - tail


def _betainc_regularized(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only below its mean: use the symmetry
        return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b
    return math.exp(log_front) * _beta_fraction(a, b, x) / a


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-16
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


# ----------------------------------------------------------------------------------------------------------
# Reading a search run


@dataclass
class Job:
    """One configuration to run with every seed: a candidate, or the control."""

    label: str
    config: RunConfig
    kind: str  # candidate | control
    source: dict[str, Any] = field(default_factory=dict)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: Any) -> Any:
    """numpy / pandas scalars -> Python; NaN -> None."""
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        with contextlib.suppress(ValueError, TypeError):
            value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


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
    return [{k: _plain(v) for k, v in row.items()} for row in ok.to_dict("records")][: max(top, 0) or None]


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


def _promotion_runtime(config: RunConfig, overrides: dict[str, Any], seed: int | None = None) -> RunConfig:
    config = replace(config, runtime=replace(config.runtime, stop_rule="all", max_tokens=0))
    config = apply_overrides(config, overrides)
    return config if seed is None else replace(config, hp=replace(config.hp, seed=seed))


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


# ----------------------------------------------------------------------------------------------------------
# Records: reading, the current record, writing without overwriting


def _is_record_path(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return not any(p.startswith(".") for p in parts) and "report" not in parts[:-1]


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
        if _finite(record.get(key)):
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
    for path in sorted(records_dir.rglob("*.json")):
        if not _is_record_path(path, records_dir):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"record {path} is not valid JSON ({type(exc).__name__})") from None
        if not isinstance(data, dict) or data.get("track") != track_name:
            continue
        if data.get("status") != "baseline" and data.get("verdict") not in ACCEPTED_VERDICTS:
            continue
        data = read_record(path)
        key = (_record_metric(data, budget), str(data.get("date") or ""))
        # the lower metric wins; on a tie, the newer record
        if best is None or key[0] < best[0] or (key[0] == best[0] and key[1] > best[1]):
            best = (key[0], key[1], data, path)
    return None if best is None else (best[2], best[3])


def write_new_record(directory: Path, make: Any) -> tuple[Path, dict[str, Any]]:
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


# ----------------------------------------------------------------------------------------------------------
# The trainable: one run of one configuration with one seed, in its own process.


def promote_trainable(trial_config: dict[str, Any], *, configs: dict[str, dict[str, Any]], out_dir: str,
                      rule: str, cpu_threads: int = 0, share_gpu: bool = False) -> None:
    """Ray trainable: train ``configs[job.run]`` with ``job.seed``; report through ``tune.report`` (as the
    search's trainable does) and write the whole ``RunResult`` to ``out_dir/<run>/seed-<seed>/result.json``."""
    import platform
    import socket

    import torch

    from search.tuner import TuneReporter, shared_gpu_lock, worker_bench
    from trainer.train import train

    if cpu_threads:
        torch.set_num_threads(cpu_threads)
    job = trial_config["job"]
    config = RunConfig.from_dict(configs[job["run"]])
    config = replace(config, hp=replace(config.hp, seed=int(job["seed"])))
    if share_gpu:  # timed runs sharing a GPU take turns, so each clock times the GPU alone
        config = replace(config, runtime=replace(config.runtime, device_lock=shared_gpu_lock()))
    on_cuda = torch.cuda.is_available() and config.runtime.device != "cpu"
    env = {"torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if on_cuda else None,
           "python": platform.python_version(), "hostname": socket.gethostname(),
           "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    path = Path(out_dir) / job["run"] / f"seed-{job['seed']}" / "result.json"

    class Deferred(TuneReporter):
        # Tune ends a trial the moment a report says done=True: hold the last report back until the result is
        # on disk (the trainer marks it "final", or "done" in older versions).
        final: dict[str, Any] | None = None

        def report(self, metrics: dict[str, Any]) -> None:
            if metrics.get("final") or metrics.get("done"):
                self.final = metrics
            else:
                super().report(metrics)

    reporter = Deferred(rule, config.track.target, {"run": job["run"], "seed": job["seed"]})
    try:
        result = train(config, reporter, bench=worker_bench())
    except Exception as exc:
        atomic_write_json(path, {"job": job, "env": env, "result": None,
                                 "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
        raise
    atomic_write_json(path, {"job": job, "env": env, "result": result.to_dict(), "error": result.error})
    if reporter.final is not None:
        TuneReporter.report(reporter, reporter.final)


# ----------------------------------------------------------------------------------------------------------
# Summarising runs


def _downsample(rows: list[dict[str, Any]], keys: tuple[str, ...], points: int) -> dict[str, list[Any]]:
    if not rows:
        return {k: [] for k in keys}
    n = len(rows)
    if n <= points:
        idx = list(range(n))
    else:
        idx = sorted({round(i * (n - 1) / (points - 1)) for i in range(points)})
    return {k: [rows[i].get(k) for i in idx] for k in keys}


def seed_result(seed: int, record: dict[str, Any] | None, metrics: dict[str, Any], error: str, rule: str,
                curve_points: int = CURVE_POINTS) -> dict[str, Any]:
    """One seed's run, as the record stores it. ``record`` is the worker's result file (None when it is
    missing: then Ray's last reported ``metrics`` are used, without curves)."""
    result = (record or {}).get("result") or None
    env = (record or {}).get("env") or {}
    error = error or (record or {}).get("error") or ""
    out: dict[str, Any] = {"seed": seed}
    if result is not None:
        crossings = {r: result["crossings"].get(r) for r in CROSSING_RULES}
        status = result["status"]
        keys = ("steps", "tokens", "clock_s", "final_train_loss", "final_smoothed_loss", "final_val_loss",
                "best_val_loss", "tokens_per_s", "startup_s", "device")
        out.update(status=status, **{k: result.get(k) for k in keys})
        history, val_history = result.get("history") or [], result.get("val_history") or []
    else:
        crossings = {}
        for r in CROSSING_RULES:
            t, tok = metrics.get(f"time_to_target_{r}_s"), metrics.get(f"tokens_to_target_{r}")
            crossings[r] = {"time_s": t, "tokens": tok, "step": None, "loss": None} if _finite(t) else None
        last = metrics.get("final") or metrics.get("done")
        status = str(metrics.get("status") or "errored") if last else "errored"
        out.update(status=status, steps=metrics.get("step"), tokens=metrics.get("tokens"),
                   clock_s=metrics.get("clock_s"), final_train_loss=metrics.get("train_loss"),
                   final_smoothed_loss=metrics.get("smoothed_loss"), final_val_loss=metrics.get("val_loss"),
                   best_val_loss=None, tokens_per_s=metrics.get("tokens_per_s"), startup_s=None,
                   device=metrics.get("device"))
        history, val_history = [], []
    if status == "failed":
        out["status"] = "errored"
    cross = crossings.get(rule)
    out["reached"] = cross is not None
    out["time_to_target_s"] = cross["time_s"] if cross else None
    out["tokens_to_target"] = int(cross["tokens"]) if cross and cross.get("tokens") is not None else None
    out["steps_to_target"] = cross.get("step") if cross else None
    for r in CROSSING_RULES:
        c = crossings.get(r)
        out[f"time_to_target_{r}_s"] = c["time_s"] if c else None
        out[f"tokens_to_target_{r}"] = int(c["tokens"]) if c and c.get("tokens") is not None else None
    out["crossings"] = crossings
    # val loss "at the crossing": the first evaluation at or after the record rule's crossing, else the last
    at = next((v for v in val_history if cross and cross.get("step") is not None and v["step"] >= cross["step"]),
              val_history[-1] if val_history else None)
    out["val_loss"] = at["val_loss"] if at else out.get("final_val_loss")
    out["val_loss_tokens"] = at["tokens"] if at else out.get("tokens")
    out["loss_curve"] = _downsample(history, ("step", "tokens", "clock_s", "train_loss", "smoothed_loss"),
                                    curve_points)
    out["val_curve"] = _downsample(val_history, ("step", "tokens", "clock_s", "val_loss"), curve_points)
    out["env"] = env
    out["error"] = error
    return out


def _rule_values(results: list[dict[str, Any]], rule: str, *, censor: bool) -> list[float]:
    """Times to target by ``rule``; with ``censor``, a seed that did not reach enters at its clocked time."""
    out = []
    for r in results:
        t = r.get(f"time_to_target_{rule}_s")
        if _finite(t):
            out.append(float(t))
        elif censor and r.get("status") in FINISHED and _finite(r.get("clock_s")):
            out.append(float(r["clock_s"]))
    return out


def group_summary(results: list[dict[str, Any]], rule: str, budget: bool) -> dict[str, Any]:
    """Mean and std (over the seeds that got there) of time and tokens to target, per rule; or of the final
    val loss on a budget track."""
    finished = [r for r in results if r.get("status") in FINISHED]
    out: dict[str, Any] = {"n_seeds": len(results), "n_finished": len(finished)}
    if budget:
        losses = [float(r["final_val_loss"]) for r in finished if _finite(r.get("final_val_loss"))]
        clocks = [float(r["clock_s"]) for r in finished if _finite(r.get("clock_s"))]
        tokens = [float(r["tokens"]) for r in finished if _finite(r.get("tokens"))]
        out["val_loss"], out["std_val_loss"] = _mean_std(losses)
        out["mean_time_s"], out["std_time_s"] = _mean_std(clocks)
        out["mean_tokens"] = _mean_std(tokens)[0]
        return out
    for r in CROSSING_RULES:
        times = _rule_values(results, r, censor=False)
        tokens = [float(x[f"tokens_to_target_{r}"]) for x in results if _finite(x.get(f"tokens_to_target_{r}"))]
        mean, std = _mean_std(times)
        out[r] = {"n_reached": len(times), "mean_time_s": mean, "std_time_s": std,
                  "mean_tokens": _mean_std(tokens)[0]}
    main = out[rule]
    out.update(n_reached=main["n_reached"], mean_time_s=main["mean_time_s"], std_time_s=main["std_time_s"],
               mean_tokens=main["mean_tokens"])
    vals = [float(r["val_loss"]) for r in finished if _finite(r.get("val_loss"))]
    out["val_loss"] = _mean_std(vals)[0]
    return out


def compare(candidate: list[dict[str, Any]], control: list[dict[str, Any]], rule: str, budget: bool,
            alpha: float) -> dict[str, Any]:
    """The verdict of a candidate against the control by ``rule`` (see the module's doc for censoring)."""
    out: dict[str, Any] = {"rule": rule, "alpha": alpha, "t_stat": None, "df": None, "p_value": None,
                           "relative_to_control": None}
    n = len(candidate)
    if budget:
        a = [float(r["final_val_loss"]) for r in candidate if r.get("status") in FINISHED
             and _finite(r.get("final_val_loss"))]
        b = [float(r["final_val_loss"]) for r in control if r.get("status") in FINISHED
             and _finite(r.get("final_val_loss"))]
        what = "finished with a finite val loss"
    else:
        a = _rule_values(candidate, rule, censor=False)
        b = _rule_values(control, rule, censor=True)
        what = f"reached the target by the {rule} rule"
    reason = ""
    if len(a) < n:
        reason = f"{n - len(a)} of {n} candidate seeds never {what}"
    elif len(a) < 2 or len(b) < 2:
        reason = f"the test needs at least 2 seeds on each side (candidate {len(a)}, control {len(b)})"
    if a and b and len(a) == n:
        out["relative_to_control"] = (sum(a) / len(a)) / (sum(b) / len(b))
    if not reason:
        t, df, p = welch_one_sided(a, b)
        out.update(t_stat=t, df=df, p_value=p)
        if not math.isfinite(p):
            reason = "no variance in either sample: the test is undefined"
        elif p < alpha:
            reason = f"faster than the control: one-sided Welch t-test p = {p:.3g} < {alpha}"
            if budget:
                reason = f"lower val loss than the control: one-sided Welch t-test p = {p:.3g} < {alpha}"
        else:
            reason = f"one-sided Welch t-test p = {p:.3g} >= {alpha}"
        censored = len(b) - len(_rule_values(control, rule, censor=False)) if not budget else 0
        if censored:
            reason += f" ({censored} control seeds never reached: counted at their whole clocked time)"
    ok = out["p_value"] is not None and math.isfinite(out["p_value"]) and out["p_value"] < alpha
    out["verdict"] = "beats_record" if ok else "not_significant"
    out["verdict_reason"] = reason
    return out


def _by_rule(candidate: list[dict[str, Any]], control: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    out = {}
    for r in CROSSING_RULES:
        c = compare(candidate, control, r, False, alpha)
        cand, ctrl = group_summary(candidate, r, False)[r], group_summary(control, r, False)[r]
        out[r] = {"candidate": cand, "control": ctrl, "relative_to_control": c["relative_to_control"],
                  "t_stat": c["t_stat"], "df": c["df"], "p_value": c["p_value"], "note": c["verdict_reason"]}
    return out


# ----------------------------------------------------------------------------------------------------------
# Environment


def git_state(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    def run(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


# ----------------------------------------------------------------------------------------------------------
# The promotion


@dataclass
class Plan:
    run_dir: Path
    settings: dict[str, Any]
    jobs: list[Job]
    seeds: list[int]
    rule: str
    budget: bool
    overrides: dict[str, Any]
    control_source: dict[str, Any]
    not_carried: list[str] = field(default_factory=list)
    top: int | None = None

    def describe(self) -> dict[str, Any]:
        return {"track": self.settings["track"], "rule": self.rule, "top": self.top, "seeds": self.seeds,
                "set": self.overrides,
                "search_set_not_carried": self.not_carried, "control": self.control_source,
                "runs": [{"label": j.label, "kind": j.kind, "config_hash": config_key(j.config),
                          "changes": changes_against_track(j.config), **j.source} for j in self.jobs]}


def make_plan(run_dir: Path, *, top: int, seeds: list[int], overrides: dict[str, Any], records_dir: Path,
              control_record: Path | None, control_defaults: bool = False) -> Plan:
    """Everything a promotion will run, validated; raises ConfigError (one line) on bad input.
    ``control_defaults``: the control runs the track's defaults whatever the records say (as it did when the
    promotion being resumed started)."""
    settings, trials = read_search_run(run_dir)
    rows = top_trials(trials, len(trials))
    if not rows:
        raise ConfigError(f"{run_dir}: no completed or stopped trial with an objective to promote")
    base, kept = base_config(settings)
    if control_record is not None:
        record, path = read_record(control_record), control_record
    elif control_defaults:
        record, path = None, None
    else:
        found = current_record(records_dir, settings["track"])
        record, path = found if found else (None, None)
    if record is not None:
        hp = RunConfig.from_dict(record["config"]).hp
        source = {"record": record.get("id") or path.stem, "path": _display_path(path),
                  "status": record.get("status"), "verdict": record.get("verdict")}
    else:
        hp = make_config(settings["track"]).hp
        source = {"record": None, "path": None, "status": "track defaults (the record's settings)"}
    # the search's fixed hyperparameters belong to the candidates; its other settings apply to the control too
    control_base = replace(base, hp=hp)
    control = Job("control", _promotion_runtime(control_base, overrides), "control", {"control": source})
    # a trial with the control's settings is not a candidate: the control already runs them with every seed
    control_key = config_key(control.config)
    jobs: list[Job] = []
    seen: set[str] = {control_key}
    for row in rows:
        config, applied = candidate_config(base, row)
        config = _promotion_runtime(config, overrides)
        key = config_key(config)
        if key in seen:
            if key == control_key:
                log.info("trial %s has the control's settings; the control runs them, so it is not a candidate",
                         row.get("number", row.get("trial_id")))
            continue
        seen.add(key)
        jobs.append(Job(f"cand-{len(jobs) + 1}", config, "candidate", {
            "trial_id": str(row.get("trial_id")), "number": row.get("number"), "rank": len(jobs) + 1,
            "objective": row.get("objective"), "params": trial_params(row), "overrides": applied}))
        if len(jobs) == top:
            break
    if not jobs:
        raise ConfigError(f"{run_dir}: every trial with an objective has the control's settings; nothing to promote")
    t = base.track
    return Plan(run_dir=run_dir, settings=settings, jobs=[control, *jobs], seeds=seeds, rule=t.record_rule,
                budget=t.target is None, overrides=overrides, control_source=source,
                not_carried=sorted(set(settings.get("set") or {}) - set(kept)), top=top)


def result_path(out_dir: Path, label: str, seed: int) -> Path:
    return out_dir / label / f"seed-{seed}" / "result.json"


def read_finished(out_dir: Path, job: Job, seed: int, rule: str) -> dict[str, Any] | None:
    """The seed result of a run of ``job`` that ended (reached, ran out of tokens, diverged or failed), from the
    result.json its worker wrote; None when there is none, or not a complete one of this configuration."""
    path = result_path(out_dir, job.label, seed)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s is not readable (%s): that run is run again", path, type(exc).__name__)
        return None
    ran = data.get("job") if isinstance(data, dict) else None
    if not isinstance(ran, dict) or ran.get("run") != job.label or ran.get("seed") != seed:
        log.warning("%s is not the result of %s with seed %s: that run is run again", path, job.label, seed)
        return None
    result = data.get("result")
    if result is None:
        return seed_result(seed, data, {}, "", rule) if data.get("error") else None
    try:
        same = config_key(RunConfig.from_dict(result["config"])) == config_key(job.config)
        out = seed_result(seed, data, {}, "", rule) if same else None
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError):
        same, out = True, None
    if out is None:
        log.warning("%s is %s: that run is run again", path,
                    "incomplete" if same else f"not of configuration {config_key(job.config)}")
    return out


def run_pairs(plan: Plan, out_dir: Path, pairs: list[tuple[str, int]], *, address: str | None,
              num_cpus: int | None, gpus_per_trial: float, cpus_per_trial: float, max_concurrent: int | None,
              time_budget_s: float | None = None, name: str = "ray"
              ) -> tuple[dict[tuple[str, int], dict[str, Any]], list[tuple[str, int]]]:
    """Run the (configuration, seed) ``pairs`` of ``plan``, each a Ray Tune trial (the Tune experiment
    ``out_dir/<name>``); return the seed result of each run that ended or failed, and the pairs that
    ``time_budget_s`` left without a result (stopped in flight, or never started)."""
    import ray
    from ray import tune

    from search.tuner import init_ray, trial_resources
    from trainer.data import cache_root, load_tokens

    started = not ray.is_initialized()
    init_ray(address, num_cpus)
    try:
        per_trial, concurrent, threads = trial_resources(gpus_per_trial, cpus_per_trial, max_concurrent)
        # Ray's workers may not inherit the driver's environment: pin the token cache; tokenize once, here.
        configs = {}
        for job in plan.jobs:
            data = replace(job.config.data, cache_dir=str(cache_root(job.config.data)))
            configs[job.label] = replace(job.config, data=data).to_dict()
        for data_key in {json.dumps(c["data"], sort_keys=True) for c in configs.values()}:
            load_tokens(DataConfig(**json.loads(data_key)), progress=False)
        wanted = set(pairs)
        grid = [{"run": job.label, "seed": seed} for seed in plan.seeds for job in plan.jobs
                if (job.label, seed) in wanted]
        fn = tune.with_parameters(promote_trainable, configs=configs, out_dir=str(out_dir.resolve()),
                                  rule=plan.rule, cpu_threads=threads, share_gpu=gpus_per_trial < 1)
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # Ctrl-C: a KeyboardInterrupt here, not Tune's graceful stop, whose stopped runs would read as failures
        os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
        if time_budget_s is not None:
            # the trials the budget stops have no results for Ray to read: its warning about them is expected
            logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
        tuner = tune.Tuner(
            tune.with_resources(fn, per_trial),
            param_space={"job": tune.grid_search(grid)},
            tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=concurrent, reuse_actors=True,
                                        time_budget_s=time_budget_s),
            run_config=tune.RunConfig(name=name, storage_path=str(out_dir.resolve()), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=0)),
        )
        grid_result = tuner.fit()
        # a trial the budget stopped comes back without its config (Ray cannot read its results): by pair
        trials: dict[tuple[str, int], Any] = {}
        for res in grid_result:
            job = (res.config or {}).get("job") or {}
            if job:
                trials[(job["run"], int(job["seed"]))] = res
        out: dict[tuple[str, int], dict[str, Any]] = {}
        missing: list[tuple[str, int]] = []
        jobs = {job.label: job for job in plan.jobs}
        for label, seed in ((g["run"], g["seed"]) for g in grid):
            res = trials.get((label, seed))
            metrics = dict(res.metrics or {}) if res is not None else {}
            error = ""
            if res is not None and res.error is not None:
                lines = [ln for ln in str(res.error).splitlines() if ln.strip()]
                error = lines[-1][:500] if lines else type(res.error).__name__
            found = read_finished(out_dir, jobs[label], seed, plan.rule)
            if found is not None:
                out[(label, seed)] = {**found, "error": found.get("error") or error}
            elif error or metrics.get("final") or metrics.get("done"):
                # failed, or ended where the driver cannot see its file: Ray's last metrics, no curves
                out[(label, seed)] = seed_result(seed, None, metrics, error, plan.rule)
            elif time_budget_s is not None:
                missing.append((label, seed))
            else:
                out[(label, seed)] = seed_result(seed, None, metrics,
                                                 "" if res is not None else "the trial did not run", plan.rule)
        return out, missing
    finally:
        if started:
            ray.shutdown()


def run_plan(plan: Plan, out_dir: Path, *, address: str | None, num_cpus: int | None, gpus_per_trial: float,
             cpus_per_trial: float, max_concurrent: int | None) -> dict[tuple[str, int], dict[str, Any]]:
    """Run every (configuration, seed) as a Ray Tune trial; return each one's seed result."""
    pairs = [(job.label, seed) for seed in plan.seeds for job in plan.jobs]
    return run_pairs(plan, out_dir, pairs, address=address, num_cpus=num_cpus, gpus_per_trial=gpus_per_trial,
                     cpus_per_trial=cpus_per_trial, max_concurrent=max_concurrent)[0]


def _gpu_of(results: list[dict[str, Any]]) -> tuple[str, list[str]]:
    names = sorted({str(r.get("device")) for r in results if r.get("device")})
    return (names[0] if len(names) == 1 else ", ".join(names)), names


def build_record(plan: Plan, job: Job, results: list[dict[str, Any]], control: list[dict[str, Any]], *,
                 alpha: float, promotion_dir: Path, records_dir: Path, user: str, date: str,
                 git: dict[str, Any], promotion_id: str | None = None) -> Any:
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
        command = f"python -m trainer --record {_display_path(path)}"
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
            "by_rule": None if plan.budget else _by_rule(results, control, alpha),
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
            "source": {"run": _display_path(plan.run_dir), "promotion": _display_path(promotion_dir),
                       "promotion_id": promotion_id,
                       "space": settings.get("space"), "search_rule": settings.get("objective"),
                       **job.source},
        }

    return make


def _tables(plan: Plan, results: dict[tuple[str, int], dict[str, Any]], out_dir: Path) -> None:
    """trials/history tables of the promotion, in the search tables' format (one row per run and seed)."""
    import pandas as pd

    from search.objective import objective

    rows, hist = [], []
    for number, (key, r) in enumerate(sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0]))):
        label, seed = key
        trial_id = f"{label}-seed{seed}"
        metrics = {f"time_to_target_{plan.rule}_s": r.get("time_to_target_s"), "val_loss": r.get("final_val_loss"),
                   "train_loss": r.get("final_train_loss"), "smoothed_loss": r.get("final_smoothed_loss")}
        status = "completed" if r.get("status") in FINISHED else (
            "diverged" if r.get("status") == "diverged" else "errored")
        row = {"trial_id": trial_id, "number": number, "run": label, "seed": seed, "status": status,
               "objective": objective(metrics, plan.rule, plan.jobs[0].config.track.target),
               "reached": bool(r.get("reached"))}
        for k in ("tokens", "steps", "clock_s", "final_train_loss", "final_smoothed_loss", "best_val_loss",
                  "final_val_loss", "tokens_per_s", "startup_s", "device", "error",
                  *(f"time_to_target_{x}_s" for x in CROSSING_RULES), *(f"tokens_to_target_{x}" for x in CROSSING_RULES)):
            row[k] = r.get(k)
        rows.append(row)
        curve = r.get("loss_curve") or {}
        for i in range(len(curve.get("tokens") or [])):
            hist.append({"trial_id": trial_id, "tokens": curve["tokens"][i], "step": curve["step"][i],
                         "train_loss": curve["train_loss"][i], "smoothed_loss": curve["smoothed_loss"][i],
                         "val_loss": math.nan, "clock_s": curve["clock_s"][i], "objective": math.nan,
                         "tokens_per_s": math.nan})
    trials = pd.DataFrame(rows)
    history = pd.DataFrame(hist, columns=["trial_id", "tokens", "step", "train_loss", "smoothed_loss", "val_loss",
                                          "clock_s", "objective", "tokens_per_s"])
    for frame, name in ((trials, "trials.parquet"), (trials, "trials.csv"), (history, "history.parquet")):
        tmp = out_dir / f".{name}.{uuid.uuid4().hex}.tmp"
        try:
            frame.to_parquet(tmp, index=False) if name.endswith(".parquet") else frame.to_csv(tmp, index=False)
            os.replace(tmp, out_dir / name)
        finally:
            tmp.unlink(missing_ok=True)


def _fmt_time(value: Any) -> str:
    return f"{value:.2f} s" if _finite(value) else "-"


def start_promotion(plan: Plan, *, records_dir: Path, alpha: float, user: str,
                    argv: list[str] | None = None) -> Path:
    """A fresh promotion directory with its settings.json: the plan, and what ``--resume`` rebuilds it from."""
    out_dir = new_run_dir(plan.run_dir, "promote")
    git = git_state()
    command = shlex.join([sys.executable, "-m", "search.promote", *(sys.argv[1:] if argv is None else argv)])
    created = time.strftime("%Y-%m-%d %H:%M:%S")
    atomic_write_json(out_dir / "settings.json", {
        "kind": "promotion", "name": out_dir.name, "promotion_id": uuid.uuid4().hex,
        "source_run": _display_path(plan.run_dir), "track": plan.settings["track"],
        "target": plan.settings.get("target"), "rule": plan.rule, "objective": plan.rule, "alpha": alpha,
        "user": user, "records": _display_path(records_dir), "created": created, "command": command, "git": git,
        "sessions": [{"command": command, "created": created, "git": git}], **plan.describe()})
    return out_dir


def read_promotion(out_dir: Path) -> dict[str, Any]:
    """The settings of a promotion directory to resume. Raises ConfigError (one line) when it is not one, or
    when its records are written already."""
    if not out_dir.exists():
        raise ConfigError(f"--resume: {out_dir}: no such promotion directory")
    if not out_dir.is_dir():
        raise ConfigError(f"--resume: {out_dir} is not a directory (give runs/<run>/promote-<time>)")
    path = out_dir / "settings.json"
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--resume: {out_dir} is not a promotion directory (no settings.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--resume: {path} is not valid JSON ({type(exc).__name__})") from None
    kind = settings.get("kind", "search") if isinstance(settings, dict) else None
    if kind != "promotion":
        raise ConfigError(f"--resume: {out_dir} is not a promotion directory (its settings.json is a {kind} run's)")
    runs, seeds = settings.get("runs"), settings.get("seeds")
    if (not isinstance(runs, list) or not runs or not all(isinstance(r, dict) and r.get("label") for r in runs)
            or not isinstance(seeds, list) or not seeds or not isinstance(settings.get("set", {}), dict)):
        raise ConfigError(f"--resume: {path} lacks the plan (runs, seeds, set): not a promotion to resume")
    done = out_dir / "promotion.json"
    if done.exists():
        try:
            summary = json.loads(done.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--resume: {done} is not valid JSON ({type(exc).__name__})") from None
        if isinstance(summary, dict) and (summary.get("complete") or summary.get("candidates")):
            raise ConfigError(f"--resume: {out_dir} is finished and its records are written ({done}): "
                              "nothing to resume; start a new promotion to run it again")
    return settings


def resume_plan(out_dir: Path, settings: dict[str, Any]) -> Plan:
    """The plan of the promotion in ``out_dir`` rebuilt from its settings (the search run is ``out_dir``'s
    parent; the control is the record, or the defaults, it started with). Raises ConfigError when the rebuilt
    configurations are not those it started with."""
    control = settings.get("control") or {}
    stored = {str(r["label"]): r.get("config_hash") for r in settings["runs"]}
    top = settings.get("top") or sum(r.get("kind") == "candidate" for r in settings["runs"])
    try:
        plan = make_plan(out_dir.resolve().parent, top=int(top), seeds=[int(s) for s in settings["seeds"]],
                         overrides=dict(settings.get("set") or {}),
                         records_dir=Path(settings.get("records") or "records"),
                         control_record=Path(control["path"]) if control.get("path") else None,
                         control_defaults=not control.get("path"))
    except ConfigError as exc:
        raise ConfigError(f"--resume {out_dir}: {exc}") from None
    rebuilt = {job.label: config_key(job.config) for job in plan.jobs}
    changed = sorted(k for k in set(stored) | set(rebuilt) if stored.get(k) != rebuilt.get(k))
    if changed:
        what = ", ".join(f"{k} {stored.get(k) or '-'} -> {rebuilt.get(k) or '-'}" for k in changed)
        raise ConfigError(f"--resume {out_dir}: the configurations differ from those it started with ({what}): "
                          "the search run, the control record or the code changed; start a new promotion")
    return plan


def continue_promotion(out_dir: Path, settings: dict[str, Any], argv: list[str] | None = None) -> None:
    """Add this command to the settings of a promotion being resumed."""
    git = git_state()
    started = (settings.get("git") or {}).get("commit")
    if started and git.get("commit") and started != git["commit"]:
        print(f"warning: the code is at commit {git['commit'][:12]}, the promotion started at {started[:12]}: "
              "its runs may come from different code", file=sys.stderr)
    command = shlex.join([sys.executable, "-m", "search.promote", *(sys.argv[1:] if argv is None else argv)])
    settings.setdefault("promotion_id", uuid.uuid4().hex)  # made before --resume existed
    settings["sessions"] = [*(settings.get("sessions") or []),
                            {"command": command, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "git": git}]
    atomic_write_json(out_dir / "settings.json", settings)


@contextlib.contextmanager
def working_on(out_dir: Path) -> Iterator[None]:
    """One command at a time on a promotion directory: a lock that goes with the process, killed or not."""
    import fcntl

    with open(out_dir / ".lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{out_dir}: another search.promote is working on it right now") from None
        yield


def _written_records(records_dir: Path, track: str, promotion_id: str) -> dict[str, tuple[Path, dict[str, Any]]]:
    """The records this promotion wrote already, by config hash (a command killed before its promotion.json)."""
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    directory = records_dir / track
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("source"), dict) \
                and data["source"].get("promotion_id") == promotion_id:
            out[str(data.get("config_hash"))] = (path, data)
    return out


def promote(plan: Plan, *, records_dir: Path, alpha: float, user: str, address: str | None = None,
            num_cpus: int | None = None, gpus_per_trial: float = 1.0, cpus_per_trial: float = 1.0,
            max_concurrent: int | None = None, argv: list[str] | None = None, out_dir: Path | None = None,
            time_budget_s: float | None = None, resume_command: str | None = None) -> dict[str, Any]:
    """Run a plan in ``out_dir`` (made by :func:`start_promotion`; a fresh one when None): the runs without a
    result there, then one candidate record per configuration. When ``time_budget_s`` ends with runs missing,
    no record is written and the summary lists them (``missing_runs``, ``complete`` false). Says on stderr, at
    the start, where it works and ``resume_command``: how to continue it if it is stopped."""
    if out_dir is None:
        out_dir = start_promotion(plan, records_dir=records_dir, alpha=alpha, user=user, argv=argv)
    settings = json.loads((out_dir / "settings.json").read_text(encoding="utf-8"))
    sessions = len(settings.get("sessions") or [None])
    pairs = [(job.label, seed) for seed in plan.seeds for job in plan.jobs]
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for job in plan.jobs:
        for seed in plan.seeds:
            found = read_finished(out_dir, job, seed, plan.rule)
            if found is not None:
                results[(job.label, seed)] = found
    todo = [p for p in pairs if p not in results]
    resume_command = resume_command or shlex.join(["python", "-m", "search.promote", "--resume",
                                                   _display_path(out_dir)])
    print(f"promotion {_display_path(out_dir)}: {len(todo)} of {len(pairs)} runs to do; if it stops, continue "
          f"with: {resume_command}", file=sys.stderr, flush=True)
    missing: list[tuple[str, int]] = []
    if todo:
        ran, missing = run_pairs(plan, out_dir, todo, address=address, num_cpus=num_cpus,
                                 gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial,
                                 max_concurrent=max_concurrent, time_budget_s=time_budget_s,
                                 name="ray" if sessions < 2 else f"ray-{sessions}")
        results.update(ran)
    if results:
        _tables(plan, results, out_dir)
    failed = sorted(f"{k[0]}-seed{k[1]}" for k, r in results.items() if r.get("status") not in FINISHED)
    if missing:
        summary = {"promotion": _display_path(out_dir), "track": plan.settings["track"], "rule": plan.rule,
                   "seeds": plan.seeds, "complete": False, "runs": len(pairs), "candidates": [],
                   "missing_runs": sorted(f"{k[0]}-seed{k[1]}" for k in missing), "failed_runs": failed}
        atomic_write_json(out_dir / "promotion.json", summary)
        return summary
    git = settings.get("git") or git_state()  # the code the promotion started with (a resume warns if it moved)
    control = [results[("control", s)] for s in plan.seeds]
    date = time.strftime("%Y-%m-%d")
    promotion_id = str(settings.get("promotion_id") or "")
    already = _written_records(records_dir, plan.settings["track"], promotion_id) if promotion_id else {}
    written = []
    for job in plan.jobs:
        if job.kind != "candidate":
            continue
        mine = [results[(job.label, s)] for s in plan.seeds]
        if config_key(job.config) in already:
            path, record = already[config_key(job.config)]
        else:
            make = build_record(plan, job, mine, control, alpha=alpha, promotion_dir=out_dir,
                                records_dir=records_dir, user=user, date=date, git=git, promotion_id=promotion_id)
            path, record = write_new_record(records_dir / job.config.track.name, make)
        written.append({"label": job.label, "record": _display_path(path), "id": record["id"],
                        "verdict": record["verdict"], "verdict_reason": record["verdict_reason"],
                        "p_value": record["p_value"], "mean_time_s": record["mean_time_s"],
                        "std_time_s": record["std_time_s"], "val_loss": record["val_loss"],
                        "relative_to_control": record["relative_to_control"], "changes": record["changes"],
                        "by_rule": {r: {"mean_time_s": v["candidate"]["mean_time_s"], "p_value": v["p_value"],
                                        "relative_to_control": v["relative_to_control"]}
                                    for r, v in (record["by_rule"] or {}).items()}})
    summary = {"promotion": _display_path(out_dir), "track": plan.settings["track"], "rule": plan.rule,
               "seeds": plan.seeds, "complete": True, "runs": len(pairs),
               "control": {**plan.control_source, **group_summary(control, plan.rule, plan.budget)},
               "candidates": written, "missing_runs": [], "failed_runs": failed}
    atomic_write_json(out_dir / "promotion.json", summary)
    return summary


def summary_text(summary: dict[str, Any], budget: bool) -> str:
    c = summary["control"]
    what = "val loss" if budget else f"time to target ({summary['rule']})"
    lines = [f"promotion {summary['promotion']} on {summary['track']}, seeds {summary['seeds']}; {what}:",
             f"  control ({c.get('record') or c.get('status')}): "
             + (f"{c.get('val_loss')}" if budget else f"{_fmt_time(c.get('mean_time_s'))} "
                f"± {_fmt_time(c.get('std_time_s'))}, reached {c.get('n_reached')}/{c.get('n_seeds')}")]
    for w in summary["candidates"]:
        rel = w["relative_to_control"]
        metric = f"{w['val_loss']}" if budget else f"{_fmt_time(w['mean_time_s'])} ± {_fmt_time(w['std_time_s'])}"
        lines.append(f"  {w['label']}: {metric}, {'-' if rel is None else f'{rel:.3f}x'} control, "
                     f"p = {'-' if w['p_value'] is None else format(w['p_value'], '.3g')}: {w['verdict']} "
                     f"({w['verdict_reason']})")
        for r, v in w["by_rule"].items():
            if r != summary["rule"]:
                rel = v["relative_to_control"]
                lines.append(f"      {r}: {_fmt_time(v['mean_time_s'])}, "
                             f"{'-' if rel is None else f'{rel:.3f}x'} control, "
                             f"p = {'-' if v['p_value'] is None else format(v['p_value'], '.3g')}")
        lines.append(f"      record: {w['record']}")
    if summary["failed_runs"]:
        lines.append(f"  runs that did not finish: {', '.join(summary['failed_runs'])}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# CLI


DEFAULTS = {"top": 3, "seeds": 3, "first_seed": 0, "alpha": 0.05, "records": "records", "user": "search.promote"}


def _parser() -> argparse.ArgumentParser:
    # the plan's options default to None so that --resume can tell the ones given (DEFAULTS fills the others)
    p = argparse.ArgumentParser(prog="python -m search.promote", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", help="a search run directory (runs/<name>)")
    p.add_argument("--top", type=int, default=None, help="configurations to promote (default 3)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per configuration, the control's too (default 3)")
    p.add_argument("--first-seed", type=int, default=None, help="the first seed (default 0)")
    p.add_argument("--alpha", type=float, default=None, help="significance level of the verdict (default 0.05)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override for every run, the control's too (repeatable), e.g. --set device=cpu")
    p.add_argument("--records", default=None, help="records directory (default records/)")
    p.add_argument("--control-record", default=None,
                   help="the record whose hyperparameters the control runs (default: the track's current record)")
    p.add_argument("--user", default=None, help="the records' user (default search.promote)")
    p.add_argument("--resume", default=None, metavar="PROMOTION_DIR",
                   help="continue the promotion in PROMOTION_DIR (runs/<run>/promote-<time>, printed at its start): "
                        "run only what has no result.json, then write the records; the plan is the stored one")
    p.add_argument("--time-budget-s", type=float, default=None, metavar="SECONDS",
                   help="Ray Tune's time budget for the runs; when it ends with runs missing: no records, "
                        "exit code 3 and the --resume command to continue")
    from search.tuner import add_ray_arguments  # imports ray: only when a parser is built

    add_ray_arguments(p)
    p.add_argument("--dry-run", action="store_true", help="print what would run, as JSON, and run nothing")
    p.add_argument("--leaderboard", nargs="?", const="records", default=None, metavar="RECORDS",
                   help="print the leaderboard of a records directory (default records/) as Markdown and exit")
    return p


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def leaderboard(records_dir: str) -> str:
    # reports is the layer above search: imported here only, for this command's convenience
    import reports

    df = reports.load_records(records_dir)
    for note in df.attrs.get("notes", []):
        print(f"warning: {note}", file=sys.stderr)
    return reports.leaderboard_markdown(df)


def _validate(args: argparse.Namespace) -> None:
    from search.checks import promote_flags  # the rules shared by every command (issue 20)

    promote_flags(args)
    if args.top < 1:
        raise ConfigError(f"--top must be >= 1, got {args.top}")
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    if args.first_seed < 0:
        raise ConfigError(f"--first-seed must be >= 0, got {args.first_seed}")
    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.gpus_per_trial <= 0 or args.cpus_per_trial <= 0:
        raise ConfigError("--gpus-per-trial and --cpus-per-trial must be > 0")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    if args.num_cpus is not None and args.num_cpus < 1:
        raise ConfigError(f"--num-cpus must be >= 1, got {args.num_cpus}")
    if args.time_budget_s is not None and not (math.isfinite(args.time_budget_s) and args.time_budget_s > 0):
        raise ConfigError(f"--time-budget-s must be > 0, got {args.time_budget_s}")


def _same_path(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def _take_stored(args: argparse.Namespace, settings: dict[str, Any], out_dir: Path) -> None:
    """--resume: the plan's options from the promotion's settings; those given must agree with them."""
    seeds = [int(s) for s in settings["seeds"]]
    control = (settings.get("control") or {}).get("path")
    stored = {"top": settings.get("top") or sum(r.get("kind") == "candidate" for r in settings["runs"]),
              "seeds": len(seeds), "first_seed": seeds[0], "alpha": settings.get("alpha", DEFAULTS["alpha"]),
              "records": settings.get("records") or DEFAULTS["records"],
              "user": settings.get("user") or DEFAULTS["user"]}
    differ = []
    if args.run is not None and not _same_path(args.run, out_dir.resolve().parent):
        differ.append(f"run {args.run} (its search run is {_display_path(out_dir.resolve().parent)})")
    for key, value in stored.items():
        given = getattr(args, key)
        if given is not None and (not _same_path(given, value) if key == "records" else given != value):
            differ.append(f"--{key.replace('_', '-')} {given} (stored {value})")
        setattr(args, key, value)
    if args.overrides is not None and parse_set(args.overrides) != (settings.get("set") or {}):
        differ.append(f"--set {' '.join(args.overrides)} (stored {settings.get('set') or {}})")
    if args.control_record is not None and not (control and _same_path(args.control_record, control)):
        differ.append(f"--control-record {args.control_record} (stored {control or 'the track defaults'})")
    if differ:
        raise ConfigError(f"--resume {out_dir}: {'; '.join(differ)}: disagree with its settings.json; leave them "
                          "out (the stored plan is run) or start a new promotion")


def _resume_command(out_dir: Path, args: argparse.Namespace) -> str:
    """The command that continues this promotion, with this command's time budget and Ray resources."""
    from search.tuner import changed_flags, ray_flags

    extra = changed_flags([("--time-budget-s", args.time_budget_s, None)]) + ray_flags(args)
    return shlex.join(["python", "-m", "search.promote", "--resume", _display_path(out_dir), *extra])


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out_dir: Path | None = None
    try:
        if args.leaderboard is not None:
            from reports import ReportInputError

            try:
                print(leaderboard(args.leaderboard), end="")
            except ReportInputError as exc:
                raise ConfigError(f"--leaderboard: {exc}") from None
            return 0
        if args.resume is not None:
            resume_dir = Path(args.resume)
            settings = read_promotion(resume_dir)
            _take_stored(args, settings, resume_dir)
            _validate(args)
            plan = resume_plan(resume_dir, settings)
        else:
            if not args.run:
                raise ConfigError("give a search run directory (runs/<name>), or --leaderboard, or --resume")
            for key, value in DEFAULTS.items():
                if getattr(args, key) is None:
                    setattr(args, key, value)
            _validate(args)
            if args.seeds < 2:
                print("warning: with one seed there is no test: every verdict will be not_significant",
                      file=sys.stderr)
            plan = make_plan(Path(args.run), top=args.top,
                             seeds=list(range(args.first_seed, args.first_seed + args.seeds)),
                             overrides=parse_set(args.overrides), records_dir=Path(args.records),
                             control_record=Path(args.control_record) if args.control_record else None)
        if args.dry_run:
            described = plan.describe()
            if args.resume is not None:
                done = [f"{j.label}-seed{s}" for s in plan.seeds for j in plan.jobs
                        if read_finished(resume_dir, j, s, plan.rule) is not None]
                described["resume"] = {"promotion": _display_path(resume_dir), "finished": done,
                                       "to_run": [f"{j.label}-seed{s}" for s in plan.seeds for j in plan.jobs
                                                  if f"{j.label}-seed{s}" not in done]}
            print(json.dumps(described, indent=2, default=str))
            return 0
        forwarded = argv if argv is not None else sys.argv[1:]
        if args.resume is None:
            out_dir = start_promotion(plan, records_dir=Path(args.records), alpha=args.alpha, user=args.user,
                                      argv=forwarded)
        else:
            out_dir = resume_dir
        with working_on(out_dir):
            if args.resume is not None:
                continue_promotion(out_dir, read_promotion(out_dir), forwarded)  # read again, under the lock
            summary = promote(plan, records_dir=Path(args.records), alpha=args.alpha, user=args.user,
                              address=args.address, num_cpus=args.num_cpus, gpus_per_trial=args.gpus_per_trial,
                              cpus_per_trial=args.cpus_per_trial, max_concurrent=args.max_concurrent,
                              out_dir=out_dir, time_budget_s=args.time_budget_s,
                              resume_command=_resume_command(out_dir, args))
    except ConfigError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted: the runs that finished are in the promotion directory; no records were written"
              + (f"; continue with: {_resume_command(out_dir, args)}" if out_dir is not None else ""),
              file=sys.stderr)
        return 130
    if summary["missing_runs"]:
        failed = f" ({len(summary['failed_runs'])} failed)" if summary["failed_runs"] else ""
        print(f"promotion {summary['promotion']}: the time budget ended with {len(summary['missing_runs'])} of "
              f"{summary['runs']} runs missing{failed}; no records written; continue with: "
              f"{_resume_command(out_dir, args)}", file=sys.stderr)
        return 3
    print(summary_text(summary, plan.budget))
    return 0 if not summary["failed_runs"] else 1


if __name__ == "__main__":
    # run the importable module's copy, so that Ray pickles the trainable by reference
    from search.promote import main as _main

    sys.exit(_main())
