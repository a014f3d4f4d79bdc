"""Synthetic run and record directories in the documented on-disk format (docs/run_directory.md).

`make_fake_run` writes a search whose time to target is driven by `muon_lr` alone (a U shape around the
record's 0.015), with `weight_decay` as pure noise, so importance tests know the right answer. Trial 0
has the record's settings; the others include completed (reached and not), stopped, diverged, errored and
running trials.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
TARGET = 4.5
REPORT_EVERY = 250_000
MAX_T = 8_000_000
RUNGS = [1_000_000, 2_000_000, 4_000_000]
# ASHA's settings of a speedrun search since its rungs moved to clocked seconds (the fake trials train ~30k tokens/s)
SECONDS_ASHA = {"unit": "seconds", "time_attr": "clock_s", "metric": "smoothed_loss", "grace_period": 30.0,
                "reduction_factor": 2.0, "max_t": 240.0, "rungs": [30, 60, 120]}
TOKENS_PER_STEP = 8192
RECORD_PARAMS = {"muon_lr": 0.015, "adamw_lr": 0.001, "warmup_ratio": 0.0, "schedule": "constant", "weight_decay": 0.2}
SCHEDULES = ["constant", "cosine", "linear", "wsd"]
ERRORED, DIVERGED = 3, 5  # trial numbers with those fates (when the run has that many trials)


def _params(rng: np.random.Generator, number: int) -> dict[str, Any]:
    if number == 0:
        return dict(RECORD_PARAMS)
    params = {
        "muon_lr": float(10 ** rng.uniform(math.log10(0.004), math.log10(0.08))),
        "adamw_lr": float(10 ** rng.uniform(-4, -2)),
        "warmup_ratio": float(rng.uniform(0, 0.2)),
        "schedule": str(rng.choice(SCHEDULES)),
        "weight_decay": float(rng.uniform(0, 0.3)),
    }
    if number == DIVERGED:
        params["muon_lr"] = 0.09
    return params


def _curve(tokens: np.ndarray, tokens_to_target: float, floor: float) -> np.ndarray:
    """Loss falling from ~11 to `floor`, crossing TARGET at `tokens_to_target` when floor < TARGET."""
    scale = tokens_to_target / math.log((11.0 - floor) / (TARGET - floor)) if floor < TARGET else tokens_to_target / 2.5
    return floor + (11.0 - floor) * np.exp(-tokens / scale)


def _trial(rng: np.random.Generator, number: int, n_trials: int, running: int) -> tuple[dict[str, Any], pd.DataFrame]:
    params = _params(rng, number)
    tokens_per_s = 30_000.0 * float(rng.uniform(0.95, 1.05))
    quality = 1 + 6 * math.log10(params["muon_lr"] / 0.022) ** 2  # the only driver of speed
    ideal_tokens = 3_000_000 * quality * float(rng.uniform(0.98, 1.02))
    floor = 4.0 if ideal_tokens < MAX_T else 4.6  # a trial too slow for the budget never gets there
    status = "completed"
    end = MAX_T
    if number == ERRORED and n_trials > ERRORED:
        status = "errored"
    elif number == DIVERGED and n_trials > DIVERGED:
        status = "diverged"
        end = 1_500_000
    elif number >= n_trials - running:
        status = "running"
        end = 1_250_000
    elif floor > TARGET and number % 2 == 1:
        status = "stopped"
        end = RUNGS[number % 3 // 2]  # ASHA stops it at its first or second rung

    row: dict[str, Any] = {"trial_id": f"fake_{number:05d}", "number": number, "status": status,
                           **{f"param_{k}": v for k, v in params.items()}}
    empty_metrics = {"objective": math.nan, "reached": False, "tokens": 0, "steps": 0, "clock_s": 0.0,
                     "final_train_loss": math.nan, "final_smoothed_loss": math.nan, "best_val_loss": math.nan,
                     "final_val_loss": math.nan, "tokens_per_s": math.nan, "startup_s": 12.0, "device": "cpu",
                     "error": ""}
    for rule in ("first_step", "smoothed", "val"):
        empty_metrics[f"time_to_target_{rule}_s"] = math.nan
        empty_metrics[f"tokens_to_target_{rule}"] = math.nan
    row.update(empty_metrics)
    if status == "errored":
        row["error"] = "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
        return row, pd.DataFrame()

    tokens = np.arange(REPORT_EVERY, MAX_T + 1, REPORT_EVERY, dtype=np.int64)
    smoothed = _curve(tokens, ideal_tokens, floor)
    train = smoothed + rng.normal(0, 0.05, len(tokens))
    crossed = np.nonzero(smoothed <= TARGET)[0]
    if status == "completed" and len(crossed):
        end = int(tokens[crossed[0]])  # the run stops at the target
    keep = tokens <= end
    tokens, smoothed, train = tokens[keep], smoothed[keep], train[keep]
    if status == "diverged":
        train[-2:] = [25.0, math.nan]
        smoothed[-1] = math.nan
    clock = tokens / tokens_per_s
    val = np.where(tokens % 1_000_000 == 0, smoothed + 0.05, math.nan)
    history = pd.DataFrame({
        "trial_id": row["trial_id"], "tokens": tokens, "step": tokens // TOKENS_PER_STEP, "train_loss": train,
        "smoothed_loss": smoothed, "val_loss": val, "clock_s": clock, "objective": 1e6 + smoothed,
        "tokens_per_s": tokens_per_s,
    })
    row.update(tokens=int(tokens[-1]), steps=int(tokens[-1] // TOKENS_PER_STEP), clock_s=float(clock[-1]),
               final_train_loss=float(train[-1]), final_smoothed_loss=float(smoothed[-1]),
               best_val_loss=float(np.nanmin(val)) if np.isfinite(val).any() else math.nan,
               final_val_loss=float(val[np.isfinite(val)][-1]) if np.isfinite(val).any() else math.nan,
               tokens_per_s=tokens_per_s)
    for rule, series in (("smoothed", smoothed), ("first_step", train), ("val", val)):
        hit = np.nonzero(series <= TARGET)[0]
        if len(hit):
            row[f"time_to_target_{rule}_s"] = float(clock[hit[0]])
            row[f"tokens_to_target_{rule}"] = int(tokens[hit[0]])
    row["reached"] = bool(np.isfinite(row["time_to_target_smoothed_s"]))
    if row["reached"]:
        row["objective"] = row["time_to_target_smoothed_s"]
    elif status in ("completed", "stopped"):
        row["objective"] = 1e6 + row["final_smoothed_loss"]
    if status == "diverged":
        row["final_smoothed_loss"] = math.nan
        row["error"] = "loss became nan"
    return row, history


def settings(name: str = "fake", n_trials: int = 24) -> dict[str, Any]:
    return {
        "kind": "search", "name": name, "space": "lr_sched", "track": "tiny-speedrun", "preset": "tiny",
        "objective": "time_to_target_smoothed_s", "num_trials": n_trials, "seed": 0, "sampler": "tpe",
        "set": {}, "asha": {"grace_period": RUNGS[0], "reduction_factor": 2, "max_t": MAX_T, "rungs": RUNGS},
        "target": TARGET, "record_params": RECORD_PARAMS, "created": "2025-12-20T10:00:00",
        "command": f"python -m search.run --space lr_sched --name {name}", "git": {"commit": "abc123", "dirty": False},
    }


def make_fake_trials(n_trials: int = 24, *, seed: int = 0, running: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows, histories = [], []
    for number in range(n_trials):
        row, history = _trial(rng, number, n_trials, running)
        rows.append(row)
        histories.append(history)
    history = pd.concat([h for h in histories if len(h)] or [pd.DataFrame()], ignore_index=True)
    return pd.DataFrame(rows), history


def make_fake_run(tmp_path: Path, n_trials: int = 24, *, name: str = "fake", seed: int = 0, running: int = 1,
                  formats: tuple[str, ...] = ("parquet", "csv"), history: bool = True, best: bool = True,
                  settings_overrides: dict[str, Any] | None = None) -> Path:
    """A search run directory `tmp_path/runs/<name>` with `n_trials` trials; returns its path."""
    run_dir = Path(tmp_path) / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    trials, hist = make_fake_trials(n_trials, seed=seed, running=running)
    (run_dir / "settings.json").write_text(json.dumps({**settings(name, n_trials), **(settings_overrides or {})},
                                                      indent=2))
    if "parquet" in formats:
        trials.to_parquet(run_dir / "trials.parquet", index=False)
    if "csv" in formats:
        trials.to_csv(run_dir / "trials.csv", index=False)
    if history and len(hist):
        hist.to_parquet(run_dir / "history.parquet", index=False)
    reached = trials[trials["reached"]]
    if best and len(reached):
        row = reached.loc[reached["objective"].idxmin()]
        overrides = {k.removeprefix("param_"): row[k] for k in trials.columns if k.startswith("param_")}
        (run_dir / "best.json").write_text(json.dumps({
            "trial": json.loads(row.to_json()), "overrides": overrides,
            "command": "python -m trainer --track tiny-speedrun "
                       + " ".join(f"--set {k}={v}" for k, v in overrides.items())}, indent=2))
    return run_dir


# ----------------------------------------------------------------------------------------------------------
# Records and transfer runs


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def make_fake_records(tmp_path: Path) -> Path:
    """records/ with the seed leaderboard's three baselines and three speedrun-4.5 candidates."""
    root = Path(tmp_path) / "records"
    user = "[Vuk Rosić](https://x.com/VukRosic99)"
    notes = "Optimized Config (LR 0.015, Warmup 0, Constant, GradAcc 1) + [Per-step check]"
    _write(root / "baseline" / "speedrun-4.5.json", {"id": "seed-4.5", "track": "speedrun-4.5", "target": 4.5,
                                                     "rule": "first_step", "status": "baseline", "date": "2025-12-18",
                                                     "user": user, "notes": notes, "time_s": 182, "tokens": 6_086_656})
    _write(root / "baseline" / "speedrun-3.5.json", {"id": "seed-3.5", "track": "speedrun-3.5", "target": 3.5,
                                                     "rule": "first_step", "status": "baseline", "date": "2025-12-18",
                                                     "user": user, "notes": notes, "time_s": 547, "tokens": 18_767_872})
    _write(root / "baseline" / "marathon.json", {"id": "seed-marathon", "track": "marathon", "status": "baseline",
                                                 "date": "2025-12-17", "user": user, "notes": "Final Milestone Record",
                                                 "val_loss": 3.194, "time_s": 9420})

    def candidate(ident: str, times: list[float], verdict: str | None, p: float | None) -> None:
        results = [{"seed": s, "time_to_target_s": t, "tokens_to_target": int(t * 33_000)} for s, t in enumerate(times)]
        data: dict[str, Any] = {"id": ident, "track": "speedrun-4.5", "target": 4.5, "rule": "first_step",
                                "status": "candidate", "date": "2025-12-21", "user": "search.promote",
                                "notes": f"from runs/fake ({ident})", "config": {"muon_lr": 0.02},
                                "seeds": list(range(len(times))), "results": results,
                                "mean_time_s": float(np.mean(times)), "std_time_s": float(np.std(times, ddof=1)),
                                "mean_tokens": float(np.mean([r["tokens_to_target"] for r in results])),
                                "relative_to_control": float(np.mean(times)) / 182, "gpu": "NVIDIA H100 80GB HBM3",
                                "command": f"python -m trainer --track speedrun-4.5 --set muon_lr=0.02  # {ident}"}
        if verdict:
            data.update(verdict=verdict, p_value=p)
        _write(root / "speedrun-4.5" / f"{ident}.json", data)

    candidate("cand-fast", [150.0, 152.0, 149.0], "beats_record", 0.002)
    candidate("cand-close", [178.0, 190.0, 175.0], "not_significant", 0.41)
    # written by a promotion still in progress: no verdict yet, one seed, results only
    _write(root / "speedrun-4.5" / "cand-partial.json", {"id": "cand-partial", "track": "speedrun-4.5",
                                                        "status": "candidate",
                                                        "results": [{"seed": 0, "time_to_target_s": 160.0}]})
    return root


def make_fake_transfer(tmp_path: Path, name: str = "transfer", *, budget_tokens: int | None = None,
                       spearman: float = 0.2) -> Path:
    """A transfer run as search.transfer writes it; with ``budget_tokens``, also its bootstrap intervals and
    knob effects, as a run of this length would have them."""
    run_dir = Path(tmp_path) / "runs" / name
    _write(run_dir / "settings.json", {"kind": "transfer", "name": name, "track": "marathon",
                                       "short_track": "speedrun-4.5", "budget_tokens": budget_tokens})
    extra = {} if budget_tokens is None else {
        "budget_tokens": budget_tokens, "short_track": "speedrun-4.5", "track": "marathon",
        "intervals": {"spearman": {"low": -0.6, "high": 1.0}, "kendall": {"low": -0.5, "high": 1.0}},
        "bootstrap": {"samples": 2000, "seed": 0, "level": 0.95}, "short_winner": "cand-fast",
        "long_winner": "cand-close",
        "knob_effects": {"muon_lr": {"mean_with": 3.3, "mean_without": 3.33, "difference": -0.03, "n_with": 2,
                                     "n_without": 2},
                         "warmup_ratio": {"mean_with": 3.375, "mean_without": 3.275, "difference": 0.1,
                                          "n_with": 2, "n_without": 2}}}
    _write(run_dir / "transfer.json", {
        "candidates": [
            {"id": "baseline", "short_rank": 3, "long_rank": 2, "short_time_s": 182.0, "long_val_loss": 3.30},
            {"id": "cand-fast", "short_rank": 1, "long_rank": 3, "short_time_s": 150.0, "long_val_loss": 3.35},
            {"id": "cand-close", "short_rank": 2, "long_rank": 1, "short_time_s": 181.0, "long_val_loss": 3.25},
            {"id": "fast+close", "short_rank": 4, "long_rank": 4, "short_time_s": 185.0, "long_val_loss": 3.40},
        ],
        "correlations": {"spearman": spearman, "kendall": 0.0}, "regret": 0.10, **extra,
    })
    return run_dir


# ----------------------------------------------------------------------------------------------------------
# Promotions

PROMOTION_SEEDS = [0, 1, 2, 3]
PROMOTION_LABELS = ["control", "cand-1", "cand-2"]
SAME_STEP = {0: 400, 1: 450, 2: 500}  # seeds where every configuration crosses the first-step rule at one step
SPEED = {"control": 1.0, "cand-1": 0.97, "cand-2": 1.02}  # clocked seconds per step, relative


def _crossing(label: str, seed: int, rule: str) -> dict[str, Any] | None:
    """first_step: at SAME_STEP for seeds 0-2; seed 3 apart (cand-2 never). smoothed: cand-1 always, the control
    on seeds 0-1, cand-2 never. val: never."""
    if rule == "first_step":
        step = SAME_STEP.get(seed) or {"control": 420, "cand-1": 380}.get(label)
    elif rule == "smoothed":
        step = 600 + 10 * seed if label == "cand-1" or (label == "control" and seed < 2) else None
    else:
        step = None
    if step is None:
        return None
    return {"step": step, "tokens": step * TOKENS_PER_STEP, "time_s": 0.04 * step * SPEED[label] + 0.01 * seed,
            "loss": TARGET - 0.05}


def make_fake_promotion(tmp_path: Path, name: str = "promote-20251221-120000", *,
                        promotion: bool = True) -> Path:
    """A promotion of two candidates against the control, 4 seeds each, as search.promote writes it: settings.json,
    trials.parquet, <label>/seed-<s>/result.json and (with ``promotion``) promotion.json."""
    run_dir = Path(tmp_path) / "runs" / "fake" / name
    control = {"record": "seed-4.5", "path": "records/baseline/speedrun-4.5.json", "status": "baseline",
               "verdict": None}
    _write(run_dir / "settings.json", {
        "kind": "promotion", "name": name, "source_run": "runs/fake", "track": "tiny-speedrun", "target": TARGET,
        "rule": "first_step", "alpha": 0.05, "top": 2, "seeds": PROMOTION_SEEDS, "set": {"max_tokens": "8000000"},
        "control": control, "created": "2025-12-21 12:00:00", "command": "python -m search.promote runs/fake --top 2",
        "runs": [{"label": label, "kind": "control" if label == "control" else "candidate"}
                 for label in PROMOTION_LABELS]})
    rows = []
    for number, (seed, label) in enumerate((s, lab) for s in PROMOTION_SEEDS for lab in PROMOTION_LABELS):
        crossings = {rule: _crossing(label, seed, rule) for rule in ("first_step", "smoothed", "val")}
        steps = max([c["step"] for c in crossings.values() if c] or [700]) + 1
        row: dict[str, Any] = {"trial_id": f"{label}-seed{seed}", "number": number, "run": label, "seed": seed,
                               "status": "completed", "reached": crossings["first_step"] is not None,
                               "tokens": steps * TOKENS_PER_STEP, "steps": steps, "clock_s": 0.04 * steps,
                               "final_smoothed_loss": 4.6, "device": "cpu", "error": ""}
        for rule, crossing in crossings.items():
            row[f"time_to_target_{rule}_s"] = crossing["time_s"] if crossing else math.nan
            row[f"tokens_to_target_{rule}"] = crossing["tokens"] if crossing else math.nan
        row["objective"] = row["time_to_target_first_step_s"] if row["reached"] else CENSORED_LOSS
        rows.append(row)
        _write(run_dir / label / f"seed-{seed}" / "result.json", {
            "job": {"run": label, "seed": seed},
            "result": {"status": "reached" if row["reached"] else "budget", "crossings": crossings, "steps": steps}})
    trials = pd.DataFrame(rows)
    trials.to_parquet(run_dir / "trials.parquet", index=False)
    if promotion:
        _write(run_dir / "promotion.json", promotion_summary(trials, control))
    return run_dir


CENSORED_LOSS = 1e6 + 4.6


def _mean_std(values: pd.Series) -> tuple[float | None, float | None]:
    values = values.dropna()
    return (float(values.mean()) if len(values) else None, float(values.std(ddof=1)) if len(values) > 1 else None)


def promotion_summary(trials: pd.DataFrame, control: dict[str, Any]) -> dict[str, Any]:
    """promotion.json as search.promote writes it; the p-values are made up (the reports only show them)."""
    def runs(label: str) -> pd.DataFrame:
        return trials[trials["run"] == label]

    summary = {**control, "n_seeds": len(PROMOTION_SEEDS), "n_finished": len(PROMOTION_SEEDS)}
    for rule in ("first_step", "smoothed", "val"):
        times = runs("control")[f"time_to_target_{rule}_s"]
        mean, std = _mean_std(times)
        summary[rule] = {"n_reached": int(times.notna().sum()), "mean_time_s": mean, "std_time_s": std,
                         "mean_tokens": None}
    summary.update({k: summary["first_step"][k] for k in ("n_reached", "mean_time_s", "std_time_s")})
    control_mean = summary["mean_time_s"]
    cand1 = runs("cand-1")
    mean1, std1 = _mean_std(cand1["time_to_target_first_step_s"])
    smoothed1 = _mean_std(cand1["time_to_target_smoothed_s"])[0]
    candidates = [
        {"label": "cand-1", "id": "20251221-aaaa-1", "verdict": "beats_record",
         "verdict_reason": "faster than the control: one-sided Welch t-test p = 0.012 < 0.05", "p_value": 0.012,
         "mean_time_s": mean1, "std_time_s": std1, "relative_to_control": mean1 / control_mean,
         "by_rule": {"first_step": {"mean_time_s": mean1, "p_value": 0.012, "relative_to_control": mean1 / control_mean},
                     "smoothed": {"mean_time_s": smoothed1, "p_value": 0.2, "relative_to_control": 0.98},
                     "val": {"mean_time_s": None, "p_value": None, "relative_to_control": None}}},
        {"label": "cand-2", "id": "20251221-bbbb-1", "verdict": "not_significant",
         "verdict_reason": "1 of 4 candidate seeds never reached the target by the first_step rule",
         "p_value": None, "mean_time_s": _mean_std(runs("cand-2")["time_to_target_first_step_s"])[0],
         "std_time_s": None, "relative_to_control": None,
         "by_rule": {"first_step": {"mean_time_s": None, "p_value": None, "relative_to_control": None},
                     "smoothed": {"mean_time_s": None, "p_value": None, "relative_to_control": None},
                     "val": {"mean_time_s": None, "p_value": None, "relative_to_control": None}}},
    ]
    return {"promotion": "runs/fake/promote", "track": "tiny-speedrun", "rule": "first_step",
            "seeds": PROMOTION_SEEDS, "complete": True, "runs": len(trials), "control": summary,
            "candidates": candidates, "missing_runs": [], "failed_runs": []}
