"""Runs of (configuration, seed) pairs, each a Ray Tune trial on a warm worker (:class:`PairWorker`): what
promotion and transfer run, and the seed results they read back.

:func:`run_pairs` runs a grid over (configuration, seed): no searcher, no scheduler, so nothing is stopped early;
ordered seed by seed (in the order of the jobs) so that drift of the machine during the session hits every
configuration alike. Each run writes its whole ``RunResult`` (with its per-step history) atomically to
``<out_dir>/<label>/seed-<seed>/result.json`` when it ends; :func:`read_finished` reads it back as a seed result
(:func:`seed_result`), which is how a resumed command knows what is done.

Workers write their results under ``out_dir``, so the driver and the trials must share a file system (one
machine, or a cluster with a shared ``runs/``); otherwise the final metrics Ray reports are used and the loss
curves are missing.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chores.files import atomic_write_json
from chores.values import finite
from search.records import config_key
from search.tuner import TuneReporter, WarmWorker, shared_gpu_lock
from trainer.config import CROSSING_RULES, ConfigError, DataConfig, RunConfig

log = logging.getLogger(__name__)

CURVE_POINTS = 200
Results = dict[tuple[str, int], dict[str, Any]]  # (label, seed) -> seed result


@dataclass
class Job:
    """One configuration to run with every seed: a candidate, or the control."""

    label: str
    config: RunConfig
    kind: str  # candidate | control
    source: dict[str, Any] = field(default_factory=dict)


def _env(on_cuda: bool) -> dict[str, Any]:
    import platform
    import socket

    import torch

    return {"torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if on_cuda else None,
            "python": platform.python_version(), "hostname": socket.gethostname(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}


class PairWorker(WarmWorker):
    """Ray actor that trains one (configuration, seed) run after another on a warm Workbench (see
    :class:`search.tuner.WarmWorker`). Before a run's last report reaches Tune, its whole ``RunResult`` is
    written to ``out_dir/<run>/seed-<seed>/result.json`` (the driver reads it when the trial completes); a run
    that raises writes its error there."""

    def setup(self, config: dict[str, Any], *, configs: dict[str, dict[str, Any]], out_dir: str, rule: str,
              cpu_threads: int = 0, share_gpu: bool = False) -> None:
        self.configs, self.out_dir, self.rule, self.share_gpu = configs, Path(out_dir), rule, share_gpu
        self._warm_setup(cpu_threads)
        self._start(config)

    def _start(self, trial_config: dict[str, Any]) -> None:
        import torch

        self.job = trial_config["job"]
        config = RunConfig.from_dict(self.configs[self.job["run"]])
        config = replace(config, hp=replace(config.hp, seed=int(self.job["seed"])))
        if self.share_gpu:  # timed runs sharing a GPU take turns, so each clock times the GPU alone
            config = replace(config, runtime=replace(config.runtime, device_lock=shared_gpu_lock()))
        self.env = _env(torch.cuda.is_available() and config.runtime.device != "cpu")
        self.path = result_path(self.out_dir, self.job["run"], int(self.job["seed"]))
        self._begin(config, TuneReporter(self.rule, config.track.target,
                                         {"run": self.job["run"], "seed": self.job["seed"]}))

    def _finished(self) -> None:
        done = self.run.result
        assert done is not None
        atomic_write_json(self.path, {"job": self.job, "env": self.env, "result": done.to_dict(),
                                      "error": done.error})

    def _failed(self, exc: Exception) -> None:
        text = str(exc).splitlines()[0] if str(exc) else ""
        atomic_write_json(self.path, {"job": self.job, "env": self.env, "result": None,
                                      "error": f"{type(exc).__name__}: {text}"})


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
            crossings[r] = {"time_s": t, "tokens": tok, "step": None, "loss": None} if finite(t) else None
        last = metrics.get("final")
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


def run_pairs(jobs: list[Job], seeds: list[int], rule: str, out_dir: Path, pairs: list[tuple[str, int]], *,
              address: str | None = None, num_cpus: int | None = None, gpus_per_trial: float = 1.0,
              cpus_per_trial: float = 1.0, max_concurrent: int | None = None, time_budget_s: float | None = None,
              name: str = "ray") -> tuple[Results, list[tuple[str, int]]]:
    """Run the (label, seed) ``pairs`` of ``jobs`` x ``seeds``, each a Ray Tune trial (the Tune experiment
    ``out_dir/<name>``), seed by seed in the order of ``jobs``; return the seed result (by ``rule``) of each run
    that ended or failed, and the pairs that ``time_budget_s`` left without a result (stopped in flight, or
    never started)."""
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
        for job in jobs:
            data = replace(job.config.data, cache_dir=str(cache_root(job.config.data)))
            configs[job.label] = replace(job.config, data=data).to_dict()
        for data_key in {json.dumps(c["data"], sort_keys=True) for c in configs.values()}:
            load_tokens(DataConfig(**json.loads(data_key)), progress=False)
        wanted = set(pairs)
        grid = [{"run": job.label, "seed": seed} for seed in seeds for job in jobs
                if (job.label, seed) in wanted]
        fn = tune.with_parameters(PairWorker, configs=configs, out_dir=str(out_dir.resolve()),
                                  rule=rule, cpu_threads=threads, share_gpu=gpus_per_trial < 1)
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
                                      failure_config=tune.FailureConfig(max_failures=0),
                                      checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)),
        )
        grid_result = tuner.fit()
        # a trial the budget stopped comes back without its config (Ray cannot read its results): by pair
        trials: dict[tuple[str, int], Any] = {}
        for res in grid_result:
            job = (res.config or {}).get("job") or {}
            if job:
                trials[(job["run"], int(job["seed"]))] = res
        out: Results = {}
        missing: list[tuple[str, int]] = []
        by_label = {job.label: job for job in jobs}
        for label, seed in ((g["run"], g["seed"]) for g in grid):
            res = trials.get((label, seed))
            metrics = dict(res.metrics or {}) if res is not None else {}
            error = ""
            if res is not None and res.error is not None:
                lines = [ln for ln in str(res.error).splitlines() if ln.strip()]
                error = lines[-1][:500] if lines else type(res.error).__name__
            found = read_finished(out_dir, by_label[label], seed, rule)
            if found is not None:
                out[(label, seed)] = {**found, "error": found.get("error") or error}
            elif error or metrics.get("final"):
                # failed, or ended where the driver cannot see its file: Ray's last metrics, no curves
                out[(label, seed)] = seed_result(seed, None, metrics, error, rule)
            elif time_budget_s is not None:
                missing.append((label, seed))
            else:
                out[(label, seed)] = seed_result(seed, None, metrics,
                                                 "" if res is not None else "the trial did not run", rule)
        return out, missing
    finally:
        if started:
            ray.shutdown()


