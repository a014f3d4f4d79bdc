"""Ray Tune plumbing: the trainable, the searcher (Optuna), the scheduler (ASHA) and the results callback.

Resuming: a search killed at any moment (SIGKILL included) continues with ``--resume``. Ray's own
``Tuner.restore`` depends on when its last experiment snapshot was taken and can lose the searcher's
history, so resuming is ours and uses the two things that are always current on disk:
- the Optuna study (SQLite in the run directory, told at every trial's end): the new searcher loads it, so
  TPE keeps every finished trial's history; trials the kill left RUNNING are marked FAIL;
- the finished trials' records (``trials/*.json``): their histories are replayed into a fresh ASHA's rungs,
  so the cut-offs are where they were.
Then a new Ray experiment (``ray/session-<k>``) runs the trials still owed.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from chores.values import finite
from search.objective import describe, objective
from search.store import TrialStore, trial_status
from spaces import Space
from trainer.config import ConfigError, RunConfig, apply_overrides

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "qmc")


# ----------------------------------------------------------------------------------------------------------
# The trainable: a warm trial worker. Ray starts one actor per concurrent trial and, with reuse_actors, hands
# it trial after trial (reset_config); the actor keeps trainer's Workbench (data, model, compiled graphs).


def trial_overrides(trial_config: dict[str, Any]) -> dict[str, Any]:
    """The settings of a trial's config (space-only parameters such as effective_batch and Ray's or ours with
    a leading underscore are left out: their derived values are in the config too)."""
    from trainer.config import override_keys

    keys = override_keys()
    return {k: v for k, v in trial_config.items() if k in keys}


# BLUEBERRY_WORKER_TRACE=1: each worker prints, on its stderr (Ray's worker logs), when it resets and when each
# run's first report arrives: where a trial's time went between Tune starting it and its first result
_TRACE = os.environ.get("BLUEBERRY_WORKER_TRACE") == "1"


def _trace(msg: str) -> None:
    if _TRACE:
        print(f"[worker {os.getpid()} {time.time():.3f}] {msg}", file=sys.stderr, flush=True)


class WarmWorker(tune.Trainable):
    """A Ray actor that trains run after run in one process on trainer's Workbench (data, model, compiled
    graphs): each run is a ``trainer.train.TrainingRun`` iterated one report per ``step``; ``reset_config``
    starts the next on the same bench, so a run on a known shape starts without imports, model build, compile
    or warm-up. A run that failed (an exception, out of memory) leaves the bench dirty: ``reset_config`` then
    answers False and Ray replaces the actor. A run that diverged needs nothing special: the next run's weights
    are drawn anew from its seed, in place. Subclasses say what a run is (``_start``) and may act when one
    ends (``_finished``) or raises (``_failed``)."""

    def _warm_setup(self, cpu_threads: int) -> None:
        import torch

        from trainer.train import Workbench

        if cpu_threads:
            torch.set_num_threads(cpu_threads)
        self.bench = Workbench()

    def _start(self, trial_config: dict[str, Any]) -> None:
        raise NotImplementedError

    def _begin(self, config: RunConfig, reporter: TuneReporter) -> None:
        from trainer.train import TrainingRun

        self.reporter = reporter
        self.run = TrainingRun(config, self.bench)
        self.reports = iter(self.run)
        self._first_report = True
        _trace(f"run {self.bench.runs} begins (seed {config.hp.seed}, dirty {self.bench.dirty}, "
               f"{len(self.bench.shapes)} shape(s) warm)")

    def _finished(self) -> None:
        """The run's last report is next (its result is in ``self.run.result``)."""

    def _failed(self, exc: Exception) -> None:
        """The run raised ``exc`` (re-raised afterwards)."""

    def step(self) -> dict[str, Any]:
        t = time.perf_counter()
        try:
            metrics = next(self.reports)  # the final report is the last item, so this never runs dry
        except Exception as exc:
            _trace(f"run raised {type(exc).__name__}: {exc}")
            self._failed(exc)
            raise
        if self._first_report:
            self._first_report = False
            _trace(f"first report after {time.perf_counter() - t:.2f} s (startup {metrics.get('startup_s')})")
        result = self.reporter.result(metrics)
        if metrics.get("final"):
            self._finished()
            result["done"] = True
        return result

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        t = time.perf_counter()
        self.reports.close()  # a run that ASHA or a time budget stopped ends here, at a report between two steps
        _trace(f"reset: the last run closed in {time.perf_counter() - t:.2f} s")
        if self.bench.dirty:
            return False
        self._start(new_config)
        return True

    def cleanup(self) -> None:
        reports = getattr(self, "reports", None)
        if reports is not None:
            reports.close()


class TrialWorker(WarmWorker):
    """A search's trial after trial (see :class:`WarmWorker`): the trial's overrides on the search's base
    config."""

    def setup(self, config: dict[str, Any], *, base: dict[str, Any], rule: str, cpu_threads: int = 0,
              share_gpu: bool = False) -> None:
        self.base, self.rule, self.share_gpu = base, rule, share_gpu
        self._warm_setup(cpu_threads)
        self._start(config)

    def _start(self, trial_config: dict[str, Any]) -> None:
        config = apply_overrides(RunConfig.from_dict(self.base), trial_overrides(trial_config))
        if self.share_gpu:
            config = apply_overrides(config, {"device_lock": shared_gpu_lock()})
        self._begin(config, TuneReporter(self.rule, config.track.target,
                                         {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}))


class TuneReporter:
    """Turns trainer's reports into Tune results: the objective added, None as NaN."""

    def __init__(self, rule: str, target: float | None, extra: dict[str, Any]) -> None:
        self.rule, self.target, self.extra = rule, target, extra

    def result(self, metrics: dict[str, Any]) -> dict[str, Any]:
        m = {k: (float("nan") if v is None else v) for k, v in metrics.items()}
        m["objective"] = objective(metrics, self.rule, self.target)
        return {**m, **self.extra}

    def report(self, metrics: dict[str, Any]) -> None:  # trainer's Reporter, for function trainables
        tune.report(self.result(metrics))


def shared_gpu_lock() -> str:
    """The lock file of this trial's GPU (node-local), for trials that share a GPU; "" without a GPU.

    Trials with a fractional GPU take turns for their warm-up and clocked steps (trainer.train.DeviceLock):
    two clocks running at once on one GPU would each time a slower, shared GPU."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not visible or visible == "-1":
        return ""
    return os.path.join(tempfile.gettempdir(), "blueberry-tune-locks", f"gpu-{visible.replace(',', '_')}.lock")


# ----------------------------------------------------------------------------------------------------------
# Searcher and scheduler


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # multivariate/group
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, multivariate=True, group=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.QMCSampler(seed=seed)


def study_storage(run_dir: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(f"sqlite:///{(run_dir / 'optuna.db').resolve()}")


def interrupted_trials(storage: optuna.storages.BaseStorage, study_name: str) -> list[tuple[int, dict[str, Any]]]:
    """Trials a stopped or killed driver left RUNNING in the study will never finish: mark them FAIL and
    return their (number, parameters), to be run again."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return []
    out = []
    for t in storage.get_all_trials(study_id, deepcopy=False):
        if t.state == optuna.trial.TrialState.RUNNING:
            storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            out.append((t.number, dict(t.params or t.system_attrs.get("fixed_params", {}))))
    return out


def make_searcher(space: Space, base_hyper, *, run_dir: Path, sampler: str, seed: int,
                  budget_tokens: int = 0) -> OptunaSearch:
    """OptunaSearch over ``space`` with its study in the run directory.

    The first trial of a new search is the record's point. On a resumed search, every trial the stop
    interrupted is queued again with its own parameters, ahead of new ones (its rerun's Optuna user attribute
    ``rerun_of`` names it), so no trial, and above all not the record point, is lost to a stop."""
    storage = study_storage(run_dir)
    study = optuna.create_study(study_name="search", storage=storage, direction="minimize", load_if_exists=True)
    reruns = interrupted_trials(storage, "search")
    if not study.trials:
        study.enqueue_trial(space.record_point(base_hyper, budget_tokens), user_attrs={"record_point": True})
    for number, params in reruns:
        study.enqueue_trial(params, user_attrs={"rerun_of": number})
    n_before = len(study.trials)
    return OptunaSearch(
        space=DefineByRun(space, base_hyper, budget_tokens), metric="objective", mode="min",
        sampler=make_sampler(sampler, seed + n_before), study_name="search", storage=storage,
    )


NUMBER_KEY = "_optuna_number"
RERUN_KEY = "_rerun_of"


class DefineByRun:
    """Ray's define-by-run callable (picklable, since Ray checkpoints the searcher): the space suggests its
    parameters on the trial; derived settings are returned as constants, with the trial's Optuna number and,
    for a rerun of an interrupted trial, the number it reruns."""

    def __init__(self, space: Space, base_hyper, budget_tokens: int = 0) -> None:
        self.space, self.base_hyper, self.budget_tokens = space, base_hyper, budget_tokens

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        overrides = self.space.sample(trial, self.base_hyper, self.budget_tokens)
        derived = {k: v for k, v in overrides.items() if k not in trial.params}
        # the Optuna trial number travels in the config, so the tables use the study's numbering (the one
        # optuna-dashboard shows) and not the order in which Ray happened to start concurrent trials
        out = {**derived, NUMBER_KEY: trial.number}
        rerun_of = trial.user_attrs.get("rerun_of") if hasattr(trial, "user_attrs") else None
        if rerun_of is not None:
            out[RERUN_KEY] = int(rerun_of)
        return out


class ResumableASHA(ASHAScheduler):
    """ASHA whose rungs can be refilled from the histories of trials finished before a restart."""

    def replay(self, histories: dict[str, list[dict[str, Any]]], metric: str) -> int:
        n = 0
        for bracket in self._brackets:
            for milestone, recorded in bracket._rungs:
                for trial_id, hist in histories.items():
                    at = [h for h in hist if (h.get(self._time_attr) or 0) >= milestone and finite(h.get(metric))]
                    if at:
                        recorded[trial_id] = self._metric_op * at[0][metric]
                        n += 1
        return n


def rungs(grace: float, reduction: float, max_t: float) -> list[float]:
    """ASHA's milestones (in its time unit: clocked seconds or tokens) for one bracket."""
    out, r = [], grace
    while r < max_t:
        out.append(int(r) if float(r).is_integer() else round(r, 3))
        r *= reduction
    return out


# ----------------------------------------------------------------------------------------------------------
# The results callback: records each trial the moment it ends


class ResultsCallback(tune.Callback):
    def __init__(self, store: TrialStore, first_number: int, progress=None, has_target: bool = True) -> None:
        self.store = store
        self.has_target = has_target  # how the progress bar shows an objective (seconds, or a budget's loss)
        self.next_number = first_number
        self.numbers: dict[str, int] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.started: dict[str, float] = {}
        self.trials: dict[str, Any] = {}  # every trial Tune started, by id
        self.finished: set[str] = set()
        self.progress = progress

    def _number(self, trial) -> int:
        if trial.trial_id not in self.numbers:
            number = trial.config.get(NUMBER_KEY)
            if number is None:  # a searcher other than ours: number in start order
                number = self.next_number
            self.numbers[trial.trial_id] = int(number)
            self.next_number = max(self.next_number, int(number)) + 1
        return self.numbers[trial.trial_id]

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        number = self._number(trial)
        self.started[trial.trial_id] = time.time()
        self.trials[trial.trial_id] = trial
        self.store.write_trial(self._record(trial, "running"))
        rerun_of = trial.config.get(RERUN_KEY)
        if rerun_of is not None:
            self.store.link_rerun(int(rerun_of), number)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        keep = ("tokens", "step", "train_loss", "smoothed_loss", "val_loss", "clock_s", "objective", "tokens_per_s")
        self.history.setdefault(trial.trial_id, []).append({k: result.get(k) for k in keep})
        self.last[trial.trial_id] = dict(result)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        last = self.last.get(trial.trial_id, {})
        # not final: ended by ASHA (or a time budget) before the trainer finished
        self._finish(trial, trial_status(last.get("status"), ended=bool(last.get("final"))))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._finish(trial, "errored")

    def record_in_flight(self) -> int:
        """Record the trials that were still training when the search ended (its time budget, a stop) as
        ``interrupted``, with what they had reported: their clocked time counts in the session's busy shares
        (a GPU that trained to the budget's end was not idle), their objective stays empty (they did not
        finish), and ``--resume`` runs them again. Returns how many."""
        n = 0
        for trial_id, trial in self.trials.items():
            if trial_id in self.finished or trial_id not in self.last:
                continue  # finished, or never reported: mark_interrupted() covers the latter
            rec = self._record(trial, "interrupted")
            rec["objective"] = None
            self.store.write_trial(rec)
            n += 1
        return n

    def _finish(self, trial, status: str) -> None:
        self.finished.add(trial.trial_id)
        self.store.write_trial(self._record(trial, status))
        self.store.write_tables()
        if self.progress is not None:
            self.progress.update(1)
            obj = self.last.get(trial.trial_id, {}).get("objective")
            self.progress.set_postfix_str(f"last: {status}, objective {describe(obj, self.has_target)}")

    def _record(self, trial, status: str) -> dict[str, Any]:
        last = self.last.get(trial.trial_id, {})
        params = {k: v for k, v in trial.config.items() if not k.startswith("_")}
        error = ""
        if status == "errored":
            error = last.get("error", "") or _error_text(trial)
        started = self.started.get(trial.trial_id)
        clock_started = last.get("clock_started_at")
        rec: dict[str, Any] = {
            "trial_id": trial.trial_id, "number": self._number(trial), "status": status,
            "rerun_of": trial.config.get(RERUN_KEY),
            "params": params, "objective": last.get("objective"),
            "tokens": last.get("tokens", 0), "steps": last.get("step", 0), "clock_s": last.get("clock_s"),
            "final_train_loss": last.get("train_loss"), "final_smoothed_loss": last.get("smoothed_loss"),
            "final_val_loss": last.get("val_loss"), "best_val_loss": last.get("best_val_loss"),
            "tokens_per_s": last.get("tokens_per_s"), "startup_s": last.get("startup_s"),
            "startup_phases": last.get("startup_phases") or {},
            "compile_cache": last.get("compile_cache") or {},  # the warm-up's compile-cache hits and misses
            # warm workers: runs the trial's process had trained before (0: a fresh process), whether its
            # shape was already compiled and warm, and the seconds from Tune starting the trial to its clock
            "worker_runs": last.get("worker_runs"), "warm_start": last.get("warm_start"),
            "worker_pid": last.get("worker_pid"),
            "start_latency_s": (clock_started - started) if finite(clock_started) and started else None,
            # wall-clock span of the clocked training (to the last report for a trial ASHA stopped)
            "clock_started_at": last.get("clock_started_at"),
            "clock_ended_at": last.get("clock_ended_at", last.get("reported_at")),
            "device": last.get("device", ""), "cuda_visible_devices": last.get("cuda_visible_devices", ""),
            "wall_s": time.time() - self.started.get(trial.trial_id, time.time()),
            "error": error, "history": self.history.get(trial.trial_id, []),
        }
        for key, value in last.items():
            if key.startswith(("time_to_target_", "tokens_to_target_")):
                rec[key] = value
        return rec


def _error_text(trial) -> str:
    path = getattr(trial, "error_file", None) or ""
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "trial raised an error (see Ray's logs)"


def add_ray_arguments(p) -> None:
    """The Ray resource flags shared by promotion and transfer runs."""
    p.add_argument("--gpus-per-trial", type=float, default=1.0,
                   help="GPUs per run: 1 (default), or a share of one (0.5: two runs a GPU)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per run (default 1)")
    p.add_argument("--max-concurrent", type=int, default=None, help="runs at once (default: one per GPU/CPU)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray (default: all)")
    p.add_argument("--address", default=None, help="join an existing Ray cluster (host:port or auto)")


def changed_flags(flags: list[tuple[str, Any, Any]]) -> list[str]:
    """Command-line words for the (flag, value, default) whose value is not the default: to print a command
    that repeats this one."""
    words: list[str] = []
    for flag, value, default in flags:
        if value != default:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return words


def ray_flags(args) -> list[str]:
    """``add_ray_arguments``' flags as this command set them (defaults left out)."""
    return changed_flags([("--gpus-per-trial", args.gpus_per_trial, 1.0),
                                ("--cpus-per-trial", args.cpus_per_trial, 1.0),
                                ("--max-concurrent", args.max_concurrent, None),
                                ("--num-cpus", args.num_cpus, None), ("--address", args.address, None)])


def init_ray(address: str | None, num_cpus: int | None) -> None:
    """Start a local Ray or join ``address``; a failure is a ConfigError (one line for the user)."""
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True,
                              "logging_level": logging.WARNING}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, object_store_memory=256 * 1024**2, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot start or join Ray ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    _sigterm_as_interrupt()


def _sigterm_as_interrupt() -> None:
    """Treat SIGTERM (``timeout``, a batch scheduler, ``kill``) like Ctrl-C: Tune stops and keeps its state, and
    the command says how to --resume. Installed after ``ray.init``, whose own handler would otherwise print a
    native stack trace and leave the run directory without its tables."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def trial_resources(gpus_per_trial: float, cpus_per_trial: float, max_concurrent: int | None
                    ) -> tuple[dict[str, float], int, int]:
    """(Ray resources of one trial, trials at once, torch CPU threads per trial; 0 = torch's default).

    One trial per GPU where the cluster has GPUs, else CPU trials with one torch thread per CPU."""
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0.0)
    if gpus > 0:
        return ({"gpu": gpus_per_trial, "cpu": cpus_per_trial},
                max_concurrent or max(1, int(gpus / gpus_per_trial)), 0)
    return ({"cpu": cpus_per_trial}, max_concurrent or max(1, int(resources.get("CPU", 1) / cpus_per_trial)),
            max(1, int(cpus_per_trial)))
