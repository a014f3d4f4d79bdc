"""A promotion's directory, ``runs/<run>/promote-<time>/``, and running a promotion plan in it.

``settings.json`` holds the plan (what ``--resume`` rebuilds it from) and every command that worked on it;
``<run>/seed-<s>/result.json`` each run's result (:mod:`search.pairs`); ``trials.parquet``/``.csv`` and
``history.parquet`` one row per run and seed, in the search tables' format; ``promotion.json`` the summary
(``complete`` false while runs are missing). A lock (``.lock``) lets one command at a time work on it. Once
every run has a result, :func:`promote` writes one candidate record per configuration (:mod:`search.records`).
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chores.files import display_path
from chores.git import git_state
from search.pairs import Results, read_finished, run_pairs
from search.records import build_record, config_key, write_new_record, written_records
from search.store import FINISHED, HISTORY_COLUMNS, trial_status, write_tables
from search.verdicts import group_summary
from trainer.config import CROSSING_RULES, ConfigError
from trainer.io import atomic_write_json, new_run_dir

if TYPE_CHECKING:
    from search.promote import Plan


def start_promotion(plan: Plan, *, records_dir: Path, alpha: float, user: str,
                    argv: list[str] | None = None) -> Path:
    """A fresh promotion directory with its settings.json: the plan, and what ``--resume`` rebuilds it from."""
    out_dir = new_run_dir(plan.run_dir, "promote")
    git = git_state()
    command = shlex.join([sys.executable, "-m", "search.promote", *(sys.argv[1:] if argv is None else argv)])
    created = time.strftime("%Y-%m-%d %H:%M:%S")
    atomic_write_json(out_dir / "settings.json", {
        "kind": "promotion", "name": out_dir.name, "promotion_id": uuid.uuid4().hex,
        "source_run": display_path(plan.run_dir), "track": plan.settings["track"],
        "target": plan.settings.get("target"), "rule": plan.rule, "alpha": alpha,
        "user": user, "records": display_path(records_dir), "created": created, "command": command, "git": git,
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


def working_on(out_dir: Path):
    """One command at a time on a promotion directory (search.checks.working_on)."""
    from search.checks import working_on as lock

    return lock(out_dir, "search.promote")


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
                                                   display_path(out_dir)])
    print(f"promotion {display_path(out_dir)}: {len(todo)} of {len(pairs)} runs to do; if it stops, continue "
          f"with: {resume_command}", file=sys.stderr, flush=True)
    missing: list[tuple[str, int]] = []
    if todo:
        ran, missing = run_pairs(plan.jobs, plan.seeds, plan.rule, out_dir, todo, address=address, num_cpus=num_cpus,
                                 gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial,
                                 max_concurrent=max_concurrent, time_budget_s=time_budget_s,
                                 name="ray" if sessions < 2 else f"ray-{sessions}")
        results.update(ran)
    if results:
        _tables(plan, results, out_dir)
    failed = sorted(f"{k[0]}-seed{k[1]}" for k, r in results.items() if r.get("status") not in FINISHED)
    if missing:
        summary = {"promotion": display_path(out_dir), "track": plan.settings["track"], "rule": plan.rule,
                   "seeds": plan.seeds, "complete": False, "runs": len(pairs), "candidates": [],
                   "missing_runs": sorted(f"{k[0]}-seed{k[1]}" for k in missing), "failed_runs": failed}
        atomic_write_json(out_dir / "promotion.json", summary)
        return summary
    git = settings.get("git") or git_state()  # the code the promotion started with (a resume warns if it moved)
    control = [results[("control", s)] for s in plan.seeds]
    date = time.strftime("%Y-%m-%d")
    promotion_id = str(settings.get("promotion_id") or "")
    already = written_records(records_dir, plan.settings["track"], promotion_id) if promotion_id else {}
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
        written.append({"label": job.label, "record": display_path(path), "id": record["id"],
                        "verdict": record["verdict"], "verdict_reason": record["verdict_reason"],
                        "p_value": record["p_value"], "mean_time_s": record["mean_time_s"],
                        "std_time_s": record["std_time_s"], "val_loss": record["val_loss"],
                        "relative_to_control": record["relative_to_control"], "changes": record["changes"],
                        "by_rule": {r: {"mean_time_s": v["candidate"]["mean_time_s"], "p_value": v["p_value"],
                                        "relative_to_control": v["relative_to_control"],
                                        "paired": v.get("paired")}
                                    for r, v in (record["by_rule"] or {}).items()}})
    summary = {"promotion": display_path(out_dir), "track": plan.settings["track"], "rule": plan.rule,
               "seeds": plan.seeds, "complete": True, "runs": len(pairs),
               "control": {**plan.control_source, **group_summary(control, plan.rule, plan.budget)},
               "candidates": written, "missing_runs": [], "failed_runs": failed}
    atomic_write_json(out_dir / "promotion.json", summary)
    return summary


def _tables(plan: Plan, results: Results, out_dir: Path) -> None:
    """trials/history tables of the promotion, in the search tables' format (one row per run and seed)."""
    import pandas as pd

    from search.objective import objective

    rows, hist = [], []
    for number, (key, r) in enumerate(sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0]))):
        label, seed = key
        trial_id = f"{label}-seed{seed}"
        metrics = {f"time_to_target_{plan.rule}_s": r.get("time_to_target_s"), "val_loss": r.get("final_val_loss"),
                   "train_loss": r.get("final_train_loss"), "smoothed_loss": r.get("final_smoothed_loss")}
        row = {"trial_id": trial_id, "number": number, "run": label, "seed": seed,
               "status": trial_status(r.get("status")),
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
    write_tables(out_dir, pd.DataFrame(rows), pd.DataFrame(hist, columns=HISTORY_COLUMNS))


