"""``python -m search.run``: an Optuna search space run as Ray Tune trials with ASHA early stopping.

Objective (lower is better): the clocked seconds to reach the track's target by the search rule
(--objective: smoothed = the smoothed train loss, the default; first_step = one step's train loss, as the
leaderboard counts; val = the fixed validation loss). Censored: a trial that never reaches the target ranks
behind every trial that did, by the loss that rule watches. Budget tracks (marathon) minimise the final
validation loss instead.

ASHA compares trials on their smoothed train loss at rungs in the objective's currency: clocked seconds on a
speedrun (a larger batch that is ahead at equal time is kept, though it is behind at equal tokens), tokens on a
budget track (marathon). Optuna's own pruning is off. One trial per GPU by default; on a machine without a GPU,
trials run on the CPU. Each trial worker (a Ray actor) trains trial after trial, keeping its compiled model warm.

examples:
  python -m search.run --space lr_sched                       # CPU: tiny-speedrun on the shipped sample
  python -m search.run --space lr_sched --track speedrun-4.5 --num-trials 32
  python -m search.run --space lr_sched --name my-search --resume
  python -m search.run --list-spaces
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shlex
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from chores.git import git_state
from search.objective import LUCK_WARNING, OBJECTIVES
from search.summary import read_sessions, record_share, summary
from trainer.config import TRACKS, ConfigError, RunConfig, make_config, parse_set

log = logging.getLogger("search.run")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="lr_sched", help="search space (see --list-spaces); default lr_sched")
    p.add_argument("--list-spaces", action="store_true", help="list the search spaces and exit")
    p.add_argument("--track", default=None,
                   help=f"one of {', '.join(TRACKS)} (default: speedrun-4.5 with a GPU, tiny-speedrun without)")
    p.add_argument("--preset", default=None, help="model preset (default: the track's)")
    p.add_argument("--data", default=None, help="data source (default: the track's)")
    p.add_argument("--objective", choices=OBJECTIVES, default=None,
                   help="crossing rule the search optimises (default: the track's search rule, smoothed)")
    p.add_argument("--num-trials", type=int, default=None, help="trials in all (default: 10 on CPU, 16 on GPU)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (trials' training seed: --set seed=N)")
    p.add_argument("--sampler", choices=("tpe", "random", "qmc"), default="tpe", help="Optuna sampler")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="fixed override for every trial (repeatable)")
    p.add_argument("--name", default=None, help="run name (default: <space>-<track>-<time>)")
    p.add_argument("--runs-dir", default="runs", help="where run directories go (default: runs/)")
    p.add_argument("--resume", action="store_true", help="continue the search in runs/<name>")
    p.add_argument("--rung-unit", choices=RUNG_UNITS, default=None,
                   help="ASHA's time unit: seconds (clocked; the default on speedruns) or tokens (budget tracks)")
    p.add_argument("--grace-period", default=None,
                   help="ASHA: time before a first cut, in the rung unit, or with a unit: 5s, 1M or 250k tokens "
                        "(default: the track's, 5s on speedrun-4.5)")
    p.add_argument("--reduction-factor", type=float, default=2.0, help="ASHA reduction factor (default 2)")
    p.add_argument("--max-t", default=None,
                   help="ASHA: most time a trial gets, same units (default: the track's, or its token cap)")
    p.add_argument("--gpus-per-trial", type=float, default=1.0,
                   help="GPUs per trial: 1, or a share of one (0.5: two trials a GPU, taking turns)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at once (default: GPUs / gpus-per-trial, or CPUs / cpus-per-trial)")
    p.add_argument("--time-budget-s", type=float, default=None,
                   help="stop starting/continuing trials after this many seconds (finished ones are kept)")
    p.add_argument("--max-failures", type=int, default=0, help="retries of a trial that raised (default 0)")
    p.add_argument("--address", default=None, help="join an existing Ray cluster (host:port or auto)")
    p.add_argument("--storage", default=None, help="Ray's storage: a path or a pyarrow filesystem URI")
    p.add_argument("--fresh-workers", action="store_true",
                   help="a new process for every trial, as before warm workers (slower; for comparisons)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


RUNG_UNITS = ("seconds", "tokens")
TIME_ATTR = {"seconds": "clock_s", "tokens": "tokens"}
_SCALE = {"k": 1e3, "m": 1e6, "g": 1e9}


def rung_value(flag: str, raw: str | None, unit: str) -> tuple[float | None, str]:
    """(value, unit) of an ASHA time flag: a bare number is in ``unit``; '5s' is seconds; '1M', '250k' or
    '1000tok' are tokens."""
    if raw is None:
        return None, unit
    text = str(raw).strip().lower()
    given = unit
    if text.endswith("s") and not text.endswith("tokens"):
        text, given = text[:-1], "seconds"
    elif text.endswith(("tok", "tokens")):
        text, given = text.removesuffix("tokens").removesuffix("tok"), "tokens"
    scale = 1.0
    if text and text[-1] in _SCALE:
        text, scale, given = text[:-1], _SCALE[text[-1]], "tokens"
    try:
        value = float(text) * scale
    except ValueError:
        raise ConfigError(f"{flag} must be a number in {unit} or carry a unit (5s, 1M, 250k), got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{flag} must be > 0, got {raw!r}")
    return value, given


def asha_settings(args: argparse.Namespace, config: RunConfig) -> dict[str, Any]:
    """ASHA's rungs in the objective's currency: clocked seconds on a speedrun, tokens on a budget track."""
    from search.tuner import rungs

    t = config.track
    unit = args.rung_unit or ("seconds" if t.is_speedrun else "tokens")
    grace, g_unit = rung_value("--grace-period", args.grace_period, unit)
    max_t, m_unit = rung_value("--max-t", args.max_t, unit)
    units = {u for u, v in ((g_unit, grace), (m_unit, max_t)) if v is not None} | (
        {unit} if args.rung_unit else set())
    if len(units) > 1:
        raise ConfigError(f"--grace-period, --max-t and --rung-unit disagree on the unit ({', '.join(sorted(units))})")
    unit = units.pop() if units else unit
    if unit == "seconds" and not t.is_speedrun:
        raise ConfigError(f"{t.name} is a budget track: its rungs are in tokens, not seconds")
    if unit == "seconds":
        grace = grace or t.rung_grace_s
        max_t = max_t or t.rung_max_s
    else:
        grace = grace or 4 * t.report_every_tokens
        # a budget trial's last report is its final one at the cap: max_t past the cap, so ASHA never stops
        # a trial just before its final evaluation
        max_t = max_t or config.max_tokens + 1
        grace, max_t = int(grace), int(max_t)
    if grace > max_t:
        raise ConfigError(f"--grace-period ({grace:g} {unit}) must be <= --max-t ({max_t:g} {unit})")
    if not math.isfinite(args.reduction_factor) or args.reduction_factor <= 1:
        raise ConfigError(f"--reduction-factor must be a finite number > 1, got {args.reduction_factor}")
    return {"unit": unit, "time_attr": TIME_ATTR[unit], "metric": "smoothed_loss", "grace_period": grace,
            "reduction_factor": args.reduction_factor, "max_t": max_t,
            "rungs": rungs(grace, args.reduction_factor, max_t)}


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _check_address(address: str) -> None:
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or address, int(port or 6379)), timeout=5):
            pass
    except (OSError, ValueError):
        raise ConfigError(f"cannot reach a Ray cluster at --address {address} (expected host:port of a "
                          "running `ray start --head`, or auto)") from None


def _settings(args: argparse.Namespace, has_gpu: bool) -> dict[str, Any]:
    """The search's settings from the command line, validated (raises ConfigError)."""
    from spaces import get_space

    track = args.track or ("speedrun-4.5" if has_gpu else "tiny-speedrun")
    overrides = parse_set(args.overrides)
    config = make_config(track, preset_name=args.preset, data=args.data, overrides=overrides)
    space = get_space(args.space)
    rule = args.objective or config.track.search_rule
    t = config.track
    asha = asha_settings(args, config)
    num_trials = args.num_trials if args.num_trials is not None else (16 if has_gpu else 10)
    if num_trials < 1:
        raise ConfigError(f"--num-trials must be >= 1, got {num_trials}")
    if args.gpus_per_trial <= 0 or args.cpus_per_trial <= 0:
        raise ConfigError("--gpus-per-trial and --cpus-per-trial must be > 0")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    return {
        "kind": "search", "space": space.name, "track": track, "preset": config.model.name, "data": args.data,
        "objective": rule, "search_rule": rule, "target": t.target, "num_trials": num_trials, "seed": args.seed,
        "sampler": args.sampler, "set": overrides,
        "asha": asha,
        "record_params": space.record_point(config.hp, config.track.budget_tokens),
        "gpus_per_trial": args.gpus_per_trial, "cpus_per_trial": args.cpus_per_trial,
        "max_concurrent": args.max_concurrent, "max_failures": args.max_failures,
        "fresh_workers": args.fresh_workers,
        "time_budget_s": args.time_budget_s,
        "address": args.address, "storage": args.storage,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": shlex.join([sys.executable, "-m", "search.run",
                                                                            *sys.argv[1:]]),
        "git": git_state(),
    }


def _base_config(settings: dict[str, Any]) -> RunConfig:
    from trainer.data import cache_root

    config = make_config(settings["track"], preset_name=settings["preset"], data=settings.get("data"),
                         overrides=settings["set"])
    stop = settings["objective"] if config.track.is_speedrun else "never"
    config = replace(config, runtime=replace(config.runtime, stop_rule=stop))
    # Ray's workers may not inherit the driver's environment: pin the token cache explicitly.
    return replace(config, data=replace(config.data, cache_dir=str(cache_root(config.data))))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.list_spaces:
        from spaces import describe

        print(describe())
        return 0
    try:
        _validate(args)
        return _run(args, _given(argv))
    except ConfigError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        resume = ["python", "-m", "search.run", "--name", args.name or "<name>", "--resume"]
        if args.runs_dir != "runs":
            resume[3:3] = ["--runs-dir", args.runs_dir]
        name = getattr(args, "run_name", None)
        if name:
            resume[resume.index("--name") + 1] = name
        print("interrupted: finished trials are on disk and the running ones are marked interrupted; continue "
              f"with: {shlex.join(resume)}", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, given: dict[str, Any] | None = None) -> int:
    with contextlib.ExitStack() as held:  # the run directory's lock, from the moment it is taken to the end
        return _run_locked(args, given or {}, held)


def _run_locked(args: argparse.Namespace, given: dict[str, Any], held: contextlib.ExitStack) -> int:
    import torch

    from search.checks import working_on
    from trainer.io import atomic_write_json

    runs_root = Path(args.runs_dir)
    if args.resume:
        if not args.name:
            raise ConfigError("--resume needs --name of the search to continue")
        run_dir = runs_root / args.name
        if not (run_dir / "settings.json").exists():
            raise ConfigError(f"nothing to resume: {run_dir}/settings.json does not exist")
        _read_search_settings(run_dir)  # a corrupt or foreign settings.json: refused before the lock file
        held.enter_context(working_on(run_dir, "search.run"))
        settings = _read_search_settings(run_dir)  # read again, under the lock
        accepted = _resume_changes(settings, args, given)
        if "address" not in given and settings.get("address"):
            # where Ray runs belongs to this invocation, not to the search: a resume on another machine, or after
            # the cluster is gone, starts a local Ray unless --address is given again
            accepted.append(f"a local Ray (the last run joined --address {settings['address']}; pass it again "
                            "to join a cluster)")
            settings["address"] = None
        if accepted:
            print(f"resume: accepted {'; '.join(accepted)}", file=sys.stderr)
            atomic_write_json(run_dir / "settings.json", settings)
    else:
        if args.address:
            _check_address(args.address)
        settings = _settings(args, torch.cuda.is_available())
        settings["flags"] = _flags(args)
        name = args.name or f"{settings['space']}-{settings['track']}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = runs_root / name
        if run_dir.exists():
            raise ConfigError(f"{run_dir} already exists: pass --resume to continue it, or another --name")
        settings["name"] = name
        args.run_name = name
    if settings["objective"] == "first_step":
        print(f"warning: {LUCK_WARNING}", file=sys.stderr)
    base = _base_config(settings)
    from trainer.data import load_tokens

    load_tokens(base.data, progress=not args.quiet)  # tokenize once, before any trial starts
    if not args.resume:  # the data is good: only now is the run directory made (a failure leaves nothing)
        try:
            run_dir.mkdir(parents=True)
        except FileExistsError:
            raise ConfigError(f"{run_dir} already exists: pass --resume to continue it, or another --name") from None
        except OSError as exc:
            raise ConfigError(f"cannot create {run_dir} ({exc.strerror or exc})") from None
        held.enter_context(working_on(run_dir, "search.run"))
        atomic_write_json(run_dir / "settings.json", settings)
    return _search(settings, base, run_dir, quiet=args.quiet, address=settings.get("address"))


# the flags whose value --resume may change (the others define the search and must match settings.json)
RESUME_SAFE = ("num_trials", "time_budget_s", "max_failures", "address", "quiet", "fresh_workers")
# flags that are not settings of the search
NOT_SETTINGS = ("list_spaces", "name", "runs_dir", "resume")


def _validate(args: argparse.Namespace) -> None:
    """Every flag that can be checked without the data: finite, in range, paths of the right kind. Before Ray
    starts or anything is written (--grace-period and --max-t are checked with the track's cap in _settings)."""
    from search import checks as search_checks
    from trainer import checks

    checks.folder_to_write("--runs-dir", args.runs_dir)
    checks.plain_name("--name", args.name)
    checks.count("--num-trials", args.num_trials)
    checks.count("--seed", args.seed, minimum=0)
    if args.seed >= 2**32:
        raise ConfigError(f"--seed must be < 2**32 (the sampler's seed), got {args.seed}")
    checks.number("--reduction-factor", args.reduction_factor, above=1)
    search_checks.ray_flags(args)
    checks.positive("--time-budget-s", args.time_budget_s)
    checks.count("--max-failures", args.max_failures, minimum=0)
    search_checks.storage("--storage", args.storage)
    if args.address is not None and not args.address.strip():
        raise ConfigError("--address must be host:port or auto, got an empty string")
    overrides = parse_set(args.overrides)
    if overrides and not args.resume:
        from spaces import get_space

        config = make_config(args.track or "tiny-speedrun", preset_name=args.preset, overrides=overrides)  # values first
        search_checks.runs_can_start([config], args.address)
        space = get_space(args.space)
        searched = set(space.params)
        if searched & {"effective_batch", "grad_accum_steps", "micro_batch_size"}:
            searched |= {"micro_batch_size", "grad_accum_steps"}  # derived from the sampled batch split
        if "horizon_ratio" in searched:
            searched.add("horizon_tokens")  # derived from the sampled ratio
        clash = sorted(k for k in overrides if k.rpartition(".")[2] in searched)
        if clash:
            raise ConfigError(f"--set {', '.join(clash)}: the space {space.name} searches "
                              f"{'it' if len(clash) == 1 else 'them'}; choose a space without "
                              f"{'it' if len(clash) == 1 else 'them'} or leave out the --set")


def _given(argv: list[str] | None) -> dict[str, Any]:
    """The flags given on the command line (not their defaults), as parsed."""
    parser = _parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(sys.argv[1:] if argv is None else argv))


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The search's flags as given (defaults included), for --resume to compare against."""
    return {k: v for k, v in vars(args).items() if k not in (*NOT_SETTINGS, "quiet")}


def _read_search_settings(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "settings.json"
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--resume: {path} cannot be read ({type(exc).__name__}); it is not a search "
                          "to continue") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"--resume: {path} is not a JSON object; it is not a search to continue")
    kind = settings.get("kind", "search")
    if kind != "search":
        raise ConfigError(f"--resume: {run_dir} is a {kind} run, not a search (resume it with search.{kind})")
    missing = [k for k in ("space", "track", "objective", "num_trials", "set", "asha", "sampler", "seed",
                           "gpus_per_trial", "cpus_per_trial", "max_failures") if k not in settings]
    if missing or not isinstance(settings.get("set"), dict) or not isinstance(settings.get("asha"), dict):
        raise ConfigError(f"--resume: {path} is not a search's settings (lacks {', '.join(missing) or 'set/asha'})")
    return settings


def _stored(key: str, settings: dict[str, Any]) -> list[Any]:
    """The values of flag ``key`` that agree with settings.json: as given when it started, and as resolved."""
    asha = settings.get("asha") or {}
    resolved = {"overrides": settings.get("set"), "preset": settings.get("preset"),
                "grace_period": asha.get("grace_period"), "max_t": asha.get("max_t"),
                "reduction_factor": asha.get("reduction_factor")}
    values = [resolved[key] if key in resolved else settings.get(key)]
    flags = settings.get("flags")
    if isinstance(flags, dict) and key in flags:
        values.append(flags[key])
    return values


def _same(given: Any, stored: Any) -> bool:
    """A flag's value equals the stored one, also as settings.json stores it (JSON; other types as text)."""
    return given == stored or json.loads(json.dumps(given, default=str)) == stored


def _resume_changes(settings: dict[str, Any], args: argparse.Namespace, given: dict[str, Any]) -> list[str]:
    """--resume: refuse a flag that changes the search; apply the safe ones to ``settings`` and describe them."""
    differ, accepted = [], []
    for key, value in given.items():
        if key in NOT_SETTINGS or key in RESUME_SAFE:
            continue
        flag = "--set" if key == "overrides" else f"--{key.replace('_', '-')}"
        mine = parse_set(value) if key == "overrides" else value
        if not any(_same(mine, stored) for stored in _stored(key, settings)):
            shown = " ".join(value) if key == "overrides" else value
            differ.append(f"{flag} {shown} (stored {_stored(key, settings)[0]})")
    if differ:
        raise ConfigError(f"--resume: {'; '.join(differ)}: disagree with the search's settings.json; leave them "
                          "out (the stored settings are used) or start a new --name")
    for key in RESUME_SAFE:
        if key in given and key != "quiet" and given[key] != settings.get(key):
            if key == "address":
                _check_address(given[key])
            accepted.append(f"--{key.replace('_', '-')} {given[key]} (was {settings.get(key)})")
            settings[key] = given[key]
    return accepted


def _search(settings: dict[str, Any], base: RunConfig, run_dir: Path, *, quiet: bool, address: str | None) -> int:
    from ray import tune

    from search.store import TrialStore
    from search.tuner import (
        ResultsCallback,
        ResumableASHA,
        TrialWorker,
        init_ray,
        make_searcher,
        trial_resources,
    )
    from spaces import get_space

    store = TrialStore(run_dir)
    interrupted = store.mark_interrupted()  # a killed driver's trials that were running: run again below
    finished = store.finished()
    remaining = settings["num_trials"] - len(finished)
    if remaining <= 0:
        trials = store.write_tables()
        print(summary(trials, settings, run_dir))
        return 0
    init_ray(address, None)
    per_trial, concurrent, threads = trial_resources(settings["gpus_per_trial"], settings["cpus_per_trial"],
                                                     settings["max_concurrent"])
    asha = settings["asha"]
    time_attr = asha.get("time_attr", "tokens")  # searches made before rungs had units were in tokens
    scheduler = ResumableASHA(time_attr=time_attr, metric=asha["metric"], mode="min",
                              grace_period=asha["grace_period"], reduction_factor=asha["reduction_factor"],
                              max_t=asha["max_t"])
    if finished or interrupted:
        n = scheduler.replay({r["trial_id"]: r.get("history", []) for r in finished}, asha["metric"])
        log.warning("resuming %s: %d trials kept, %d rung entries replayed into ASHA, %d interrupted trials to "
                    "run again, %d to run in all", run_dir.name, len(finished), n, len(interrupted), remaining)
    searcher = make_searcher(get_space(settings["space"]), base.hp, run_dir=run_dir, sampler=settings["sampler"],
                             seed=settings["seed"], budget_tokens=base.track.budget_tokens)
    progress = None
    if not quiet:
        from tqdm.auto import tqdm

        progress = tqdm(total=settings["num_trials"], initial=len(finished), unit="trial", desc="search")
    numbers = [r.get("number", 0) for r in store.all_records()]
    callback = ResultsCallback(store, first_number=1 + max(numbers, default=0), progress=progress,
                               has_target=settings.get("target") is not None)
    sessions = sorted((run_dir / "ray").glob("session-*")) if (run_dir / "ray").exists() else []
    # numbered past both Ray's experiments and utilisation.json's entries: Ray's state may live elsewhere
    # (--storage) or be left behind when a run directory is copied
    session = f"session-{max(len(sessions), len(read_sessions(run_dir))) + 1}"
    storage = settings.get("storage") or str((run_dir / "ray").resolve())
    if settings.get("storage"):
        session = f"{settings['name']}/{session}"
    worker = tune.with_parameters(TrialWorker, base=base.to_dict(), rule=settings["objective"],
                                  cpu_threads=threads, share_gpu=settings["gpus_per_trial"] < 1)
    tuner = tune.Tuner(
        tune.with_resources(worker, per_trial),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=remaining,
                                    max_concurrent_trials=concurrent,
                                    reuse_actors=not settings.get("fresh_workers", False),
                                    time_budget_s=settings.get("time_budget_s")),
        run_config=tune.RunConfig(name=session, storage_path=storage, callbacks=[callback], verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=settings["max_failures"]),
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)),
    )
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Ctrl-C raises KeyboardInterrupt here, as SIGTERM does (search.tuner), instead of Ray's own handler, which
    # ends fit() quietly with exit 0 and its Tuner.restore hint: main() then says how to --resume, exit 130
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    fit_started = time.time()
    try:
        tuner.fit()
    except KeyboardInterrupt:
        callback.record_in_flight()
        store.mark_interrupted()  # no trial is left "running" once the command has ended
        store.write_tables()  # the tables of what finished, for reports, before main() says how to --resume
        raise
    finally:
        if progress is not None:
            progress.close()
    fit_ended = time.time()
    callback.record_in_flight()  # trials a time budget ended mid-run, with what they trained
    store.mark_interrupted()  # and those that had not reported yet
    trials = store.write_tables()
    share = record_share(run_dir, trials, session, fit_started, fit_ended)
    best_path = run_dir / "best.json"
    if best_path.exists():
        best = json.loads(best_path.read_text())
        from trainer.config import override_keys

        keys = override_keys()
        sets = [f"--set {k[6:]}={v}" for k, v in best.items()
                if k.startswith("param_") and k[6:] in keys and v is not None]
        best["command"] = (f"python -m trainer --track {settings['track']} "
                           + " ".join(sets + [f"--set {k}={v}" for k, v in settings["set"].items()]))
        from trainer.io import atomic_write_json

        atomic_write_json(best_path, best)
    print(summary(trials, settings, run_dir, share))
    return 0


if __name__ == "__main__":
    sys.exit(main())
