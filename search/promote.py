"""``python -m search.promote``: rerun a search's best configurations as full timed runs and turn each into a
candidate record, measured against the current record's settings run in the same session.

    python -m search.promote runs/<run> --top 3 --seeds 3      # -> runs/<run>/promote-<time>/, records/<track>/
    python -m search.promote runs/<run> --top 1 --seeds 2 --set device=cpu --set max_tokens=4096
    python -m search.promote runs/<run> --dry-run               # print the plan, run nothing
    python -m search.promote runs/<run> --top 2 --time-budget-s 540 # runs left: exit 3, says how to resume
    python -m search.promote --resume runs/<run>/promote-<time> # run what is missing there, then the records

What runs. The ``--top`` trials by ``objective`` (statuses completed and stopped; identical configurations
once) plus a control: the current record's hyperparameters on the same track, model, data and runtime. Each
of them runs once per seed (``--seeds N``: seeds ``--first-seed`` .. +N-1), each run a Ray Tune trial on one GPU
(one CPU without a GPU) in a warm worker that keeps its compiled model from run to run (:mod:`search.pairs`): a
grid over (configuration, seed), no searcher, no scheduler, so nothing is stopped early. Runs use
``stop_rule=all`` (they go on until all three crossing rules have crossed) capped by the track's ``max_tokens``.
The grid is ordered seed by seed (control first) so that drift of the machine during the session hits the control
and the candidates alike.

Configurations (:mod:`search.trials`). A candidate = the track, the search's fixed ``set`` (without ``stop_rule``
and ``max_tokens``: a promotion is a full run), the trial's ``param_*`` values that name a setting, then
``stop_rule=all``, then ``--set`` of this command. The control takes the same config with the hyperparameters
(``hp``) of the current record (:func:`search.records.current_record`): the best of the baseline records and the
records whose verdict is ``beats_record`` for the track under ``--records`` (lowest time; lowest val loss on a
budget track), or the track's defaults (the record's settings) when there is none; or the record given with
``--control-record``. ``--set`` applies to the control too.

Verdict (:mod:`search.verdicts`). By the track's record rule: a candidate ``beats_record`` only if all its seeds
reached the target and a one-sided Welch t-test of its times against the control's gives p < ``--alpha`` (0.05);
a control seed that did not reach enters at its whole clocked time. Budget tracks compare the final val loss.

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

The runs themselves: :mod:`search.pairs`; records on disk: :mod:`search.records`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chores.files import display_path
from chores.values import finite
from search.pairs import Job, read_finished
from search.promotion import continue_promotion, promote, read_promotion, start_promotion, working_on
from search.records import changes_against_track, config_key, current_record, read_record
from search.trials import (
    base_config,
    candidate_config,
    promotion_runtime,
    read_search_run,
    top_trials,
    trial_params,
)
from trainer.config import ConfigError, RunConfig, make_config, parse_set

log = logging.getLogger(__name__)


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
        source = {"record": record.get("id") or path.stem, "path": display_path(path),
                  "status": record.get("status"), "verdict": record.get("verdict")}
    else:
        hp = make_config(settings["track"]).hp
        source = {"record": None, "path": None, "status": "the track's defaults, the record's settings"}
    # the search's fixed hyperparameters belong to the candidates; its other settings apply to the control too
    control_base = replace(base, hp=hp)
    control = Job("control", promotion_runtime(control_base, overrides), "control", {"control": source})
    # a trial with the control's settings is not a candidate: the control already runs them with every seed
    control_key = config_key(control.config)
    jobs: list[Job] = []
    seen: set[str] = {control_key}
    for row in rows:
        config, applied = candidate_config(base, row)
        config = promotion_runtime(config, overrides)
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


def _fmt_time(value: Any) -> str:
    return f"{value:.2f} s" if finite(value) else "-"


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
        mine = (w["by_rule"] or {}).get(summary["rule"]) or {}
        if mine.get("paired") and mine["paired"]["n"]:
            pr = mine["paired"]
            p = "-" if pr["p_value"] is None else format(pr["p_value"], ".3g")
            lines.append(f"      by seed (same data order): {pr['mean_diff_s']:+.2f} s against the control over "
                         f"{pr['n']} seeds, paired p = {p}; the same crossing step in {pr['same_step']} of "
                         f"{pr['n_steps']}")
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
    return p


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


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
        differ.append(f"run {args.run} (its search run is {display_path(out_dir.resolve().parent)})")
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
    return shlex.join(["python", "-m", "search.promote", "--resume", display_path(out_dir), *extra])


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out_dir: Path | None = None
    try:
        if args.resume is not None:
            resume_dir = Path(args.resume)
            settings = read_promotion(resume_dir)
            _take_stored(args, settings, resume_dir)
            _validate(args)
            plan = resume_plan(resume_dir, settings)
        else:
            if not args.run:
                raise ConfigError("give a search run directory (runs/<name>), or --resume")
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
                described["resume"] = {"promotion": display_path(resume_dir), "finished": done,
                                       "to_run": [f"{j.label}-seed{s}" for s in plan.seeds for j in plan.jobs
                                                  if f"{j.label}-seed{s}" not in done]}
            print(json.dumps(described, indent=2, default=str))
            return 0
        from search.checks import runs_can_start  # a device the runs cannot use: refused before Ray starts

        runs_can_start([job.config for job in plan.jobs], args.address)
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
