"""``python -m search.transfer``: do the short track's (speedrun) findings carry over to the long track (marathon)?

    python -m search.transfer records/ --track marathon --dry-run          # candidates and their cost, run nothing
    python -m search.transfer records/ --track marathon --seeds 2 --name tr1  # -> runs/tr1/
    python -m search.transfer records/ --track tiny-marathon --short-track tiny-speedrun --budget-tokens 1024
    python -m search.transfer records/ --track marathon --name tr1 --resume   # run what runs/tr1/ still lacks
    python -m search.transfer records/ --include-not-significant --max-combine 2 --dry-run  # the factorial

Candidates (:mod:`search.transfer_design`). From the records of the short track (``--short-track``, default
speedrun-4.5) under the records directory: by default the baseline, each record group that beat its control
alone, and all compatible winners together; ``--include-not-significant`` adds the records that did not beat
their control, ``--max-combine K`` / ``--max-candidates N`` ask for the factorial design (every combination of up
to K groups; at most N candidates). Records that disagree on a knob multiply: a combination tries every choice
of their values, so a factorial of search winners (each with its own rates) is refused above ``MAX_DESIGN``
candidates unless ``--max-candidates`` cuts it. Before anything runs the command prints the number of runs, the
tokens and an estimated GPU time (from the tokens/s the records measured).

Runs. Each candidate on the long track (``make_config(track)`` with its changes, ``--budget-tokens N`` =
``max_tokens=N``, then ``--set``), once per seed, each a Ray Tune trial (one GPU each, else one CPU) through
:func:`search.pairs.run_pairs`; results in ``runs/<name>/<candidate>/seed-<s>/result.json``. A budget track
(marathon) runs to its budget and is scored by the final val loss (mean over seeds); a track with a target by
its time to target. ``--resume`` reruns only the (candidate, seed) pairs without a result file, and refuses
when the candidates are no longer those the run started with. ``--max-runs N`` runs at most N of the missing
pairs and exits with code 3 and the ``--resume`` command (a marathon on one GPU spans several commands).

Analysis (:mod:`search.transfer_analysis`; ``transfer.json``, read by ``python -m reports runs/<name>``):
Spearman and Kendall correlation of short- against long-track result with bootstrap intervals, the regret of
picking the short-track winner, and per knob the mean long-track result with and without it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from chores.files import display_path
from chores.git import git_state
from search.pairs import Job, Results, read_finished, run_pairs
from search.transfer_analysis import summarise
from search.transfer_design import (
    SHORT_METRICS,
    Candidate,
    build_candidates,
    describe_estimate,
    estimate,
    factorial_size,
    load_records,
    set_short_values,
    winning_records,
)
from trainer.config import ConfigError, RunConfig, apply_overrides, make_config, parse_set, track
from trainer.io import atomic_write_json

log = logging.getLogger(__name__)

MAX_DESIGN = 2_000  # a factorial design larger than this needs --max-candidates (or a lower --max-combine)


def long_config(long_track: str, cand: Candidate, *, budget_tokens: int | None,
                overrides: dict[str, Any]) -> RunConfig:
    config = make_config(long_track)
    config = replace(config, hp=replace(config.hp, **cand.changes))
    if budget_tokens:
        config = apply_overrides(config, {"max_tokens": budget_tokens})
    return apply_overrides(config, overrides)


def make_jobs(candidates: list[Candidate], long_track: str, *, budget_tokens: int | None,
              overrides: dict[str, Any]) -> list[Job]:
    jobs = []
    for c in candidates:
        try:
            config = long_config(long_track, c, budget_tokens=budget_tokens, overrides=overrides)
        except ConfigError as exc:
            raise ConfigError(f"candidate {c.id}: {exc}") from None
        jobs.append(Job(c.id, config, "candidate", {"records": c.records, "changes": c.changes}))
    return jobs


def run_transfer(jobs: list[Job], seeds: list[int], out_dir: Path, *, resume: bool, address: str | None = None,
                 num_cpus: int | None = None, gpus_per_trial: float = 1.0, cpus_per_trial: float = 1.0,
                 max_concurrent: int | None = None, max_runs: int | None = None
                 ) -> tuple[Results, list[tuple[str, int]]]:
    """Run every (candidate, seed) without a result yet (all of them unless ``resume``), at most ``max_runs``
    of them in candidate order; return all results and the pairs left for a later ``--resume``."""
    rule = jobs[0].config.track.record_rule
    results: Results = {}
    pending: list[tuple[Job, int]] = []
    for job in jobs:
        for s in seeds:
            found = read_finished(out_dir, job, s, rule) if resume else None
            if found is None:
                pending.append((job, s))
            else:
                results[(job.label, s)] = found
    later = [(job.label, s) for job, s in pending[max_runs:]] if max_runs is not None else []
    now = [(job.label, s) for job, s in (pending[:max_runs] if max_runs is not None else pending)]
    if now:
        # one Tune experiment per invocation, so a resumed transfer never writes into an earlier one's state
        sessions = len(list(out_dir.glob("ray*")))
        done, _ = run_pairs(jobs, seeds, rule, out_dir, now, address=address, num_cpus=num_cpus, gpus_per_trial=gpus_per_trial,
                            cpus_per_trial=cpus_per_trial, max_concurrent=max_concurrent,
                            name="ray" if sessions == 0 else f"ray-{sessions + 1}")
        results.update(done)
    return results, later


# ----------------------------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.transfer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("records", help="records directory (records/)")
    p.add_argument("--track", default="marathon", help="the long track (default marathon)")
    p.add_argument("--short-track", default="speedrun-4.5", help="the records' track (default speedrun-4.5)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per candidate (default 1)")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--budget-tokens", type=int, default=None, help="token budget of each run (sets max_tokens)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override for every run (repeatable), e.g. --set device=cpu")
    p.add_argument("--include-not-significant", action="store_true",
                   help="also combine the records that did not beat their control (default: only those that did)")
    p.add_argument("--max-combine", type=int, default=None, metavar="K",
                   help="the factorial design: every combination of up to K record groups (default: the bounded "
                        "design, each group alone and all compatible ones together)")
    p.add_argument("--max-candidates", type=int, default=None, metavar="N",
                   help="the factorial design (up to --max-combine), cut to its first N candidates")
    p.add_argument("--name", default=None, help="run directory name under --runs-dir (default transfer-<time>)")
    p.add_argument("--runs-dir", default="runs", help="where run directories go (default runs/)")
    p.add_argument("--resume", action="store_true", help="continue runs/<name>/: run only what has no result")
    p.add_argument("--max-runs", type=int, default=None,
                   help="run at most N of the (candidate, seed) runs still missing, then stop with exit code 3 "
                        "and say how to --resume (to fit a long transfer into commands of limited length)")
    from search.tuner import add_ray_arguments  # imports ray: only when a parser is built

    add_ray_arguments(p)
    p.add_argument("--dry-run", action="store_true", help="print the candidates and run nothing")
    return p


def _validate(args: argparse.Namespace) -> None:
    from search.checks import transfer_flags  # the rules shared by every command (issue 20)

    transfer_flags(args)
    track(args.track)
    track(args.short_track)
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    if args.first_seed < 0:
        raise ConfigError(f"--first-seed must be >= 0, got {args.first_seed}")
    if args.budget_tokens is not None and args.budget_tokens < 1:
        raise ConfigError(f"--budget-tokens must be >= 1, got {args.budget_tokens}")
    if args.max_combine is not None and args.max_combine < 1:
        raise ConfigError(f"--max-combine must be >= 1, got {args.max_combine}")
    if args.max_candidates is not None and args.max_candidates < 1:
        raise ConfigError(f"--max-candidates must be >= 1, got {args.max_candidates}")
    if args.max_runs is not None and args.max_runs < 1:
        raise ConfigError(f"--max-runs must be >= 1, got {args.max_runs}")
    if args.resume and not args.name:
        raise ConfigError("--resume needs --name (the run directory to continue)")
    if args.name and (Path(args.name).name != args.name or args.name in (".", "..")):
        raise ConfigError(f"--name must be a plain directory name, got {args.name!r}")
    if args.gpus_per_trial <= 0 or args.cpus_per_trial <= 0:
        raise ConfigError("--gpus-per-trial and --cpus-per-trial must be > 0")


def _out_dir(args: argparse.Namespace) -> Path:
    root = Path(args.runs_dir)
    if args.resume:
        out = root / args.name
        settings = out / "settings.json"
        if not settings.exists():
            raise ConfigError(f"--resume: {out} is not a transfer run (no settings.json)")
        try:
            kind = json.loads(settings.read_text(encoding="utf-8")).get("kind")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            kind = None
        if kind != "transfer":
            raise ConfigError(f"--resume: {out} is not a transfer run")
        return out
    name = args.name or f"transfer-{time.strftime('%Y%m%d-%H%M%S')}"
    out = root / name
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} already exists: choose another --name, or --resume it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _check_same_candidates(out: Path, configs: dict[str, dict[str, Any]], seeds: list[int]) -> None:
    """--resume must run what the transfer started with: the same candidate labels and configs."""
    settings = json.loads((out / "settings.json").read_text(encoding="utf-8"))
    stored = settings.get("configs") or {}
    configs = json.loads(json.dumps(configs, default=str))  # as stored: tuples become lists
    changed = sorted(set(stored) ^ set(configs) | {k for k in set(stored) & set(configs) if stored[k] != configs[k]})
    if changed:
        raise ConfigError(f"--resume: the candidates differ from those {out} started with ({', '.join(changed)}): "
                          f"the records, --budget-tokens, --set or the design's flags changed; start a new --name")
    if settings.get("seeds") != seeds:
        settings["seeds"] = seeds
        atomic_write_json(out / "settings.json", settings)


def _resume_command(args: argparse.Namespace, out: Path) -> str:
    """The command that continues this transfer: every flag that defines its candidates and seeds (a resume
    with other ones is refused), then this command's run limit and Ray resources."""
    cmd = ["python", "-m", "search.transfer", args.records, "--track", args.track, "--short-track",
           args.short_track, "--runs-dir", args.runs_dir, "--name", out.name, "--resume"]
    from search.tuner import changed_flags, ray_flags

    cmd += changed_flags([("--seeds", args.seeds, 1), ("--first-seed", args.first_seed, 0),
                                ("--budget-tokens", args.budget_tokens, None),
                                ("--max-combine", args.max_combine, None),
                                ("--max-candidates", args.max_candidates, None), ("--max-runs", args.max_runs, None)])
    if args.include_not_significant:
        cmd.append("--include-not-significant")
    cmd += ray_flags(args)
    for item in args.overrides or []:
        cmd += ["--set", item]
    return shlex.join(cmd)


def _print_candidates(candidates: list[Candidate], short_metric: str) -> None:
    unit = "x control" if short_metric == SHORT_METRICS["relative"] else "s"
    for c in candidates:
        changes = ", ".join(f"{k}={v}" for k, v in c.changes.items()) or "(none: the track's defaults)"
        short = f"{c.short_value:.2f} {unit}" if math.isfinite(c.short_value) else "-"
        print(f"{c.id:>10}  {changes}  <- {', '.join(c.records) or '-'}  (short {short})"
              + (f"  [also {'; '.join(c.same_as)}]" if c.same_as else ""))


def _design_notes(left_out: list[dict[str, Any]], cut: int, factorial: bool) -> list[str]:
    notes = []
    if left_out:
        notes.append(f"left out: {len(left_out)} records that did not beat their control "
                     f"({', '.join(r['id'] for r in left_out)}); --include-not-significant combines them too")
    if cut:
        notes.append(f"left out: up to {cut:,} more candidates of the factorial design beyond --max-candidates")
    if not factorial:
        notes.append("design: the baseline, each record group alone, all compatible groups together; "
                     "--max-combine K or --max-candidates N for the factorial design")
    return notes


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        _validate(args)
        overrides = parse_set(args.overrides)
        records = load_records(Path(args.records), args.short_track)
        short_metric = set_short_values(records)
        kept, left_out = winning_records(records, args.include_not_significant)
        factorial = args.max_combine is not None or args.max_candidates is not None
        size = factorial_size(kept, args.max_combine) if factorial else 0
        if factorial and args.max_candidates is None and size > MAX_DESIGN:
            raise ConfigError(f"the factorial design of {len(kept)} records has up to {size:,} candidates "
                              f"(more than {MAX_DESIGN:,}): lower --max-combine or cap it with --max-candidates N")
        candidates = build_candidates(kept, args.track, factorial=factorial, max_combine=args.max_combine,
                                      limit=args.max_candidates)
        # the candidates beyond --max-candidates when it cut the design (counted before deduplication: "up to")
        full = args.max_candidates is not None and len(candidates) >= args.max_candidates
        cut = max(0, size - len(candidates)) if full else 0
        jobs = make_jobs(candidates, args.track, budget_tokens=args.budget_tokens, overrides=overrides)
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        cost = estimate([j.config for j in jobs], seeds, records)
        notes = _design_notes(left_out, cut, factorial)
        if args.dry_run:
            print(f"{len(candidates)} candidates from {len(kept)} of {len(records)} records of {args.short_track}, "
                  f"to run on {args.track} with seeds {seeds}:")
            _print_candidates(candidates, short_metric)
            print("\n".join([describe_estimate(cost), *notes]))
            return 0
        from search.checks import runs_can_start  # a device the runs cannot use: refused before Ray starts

        runs_can_start([j.config for j in jobs], args.address)
        print(f"transfer of {len(candidates)} candidates to {args.track}: {describe_estimate(cost)}",
              *notes, sep="\n", file=sys.stderr, flush=True)
        out = _out_dir(args)
        command = shlex.join([sys.executable, "-m", "search.transfer",
                              *(sys.argv[1:] if argv is None else argv)])
        configs = {j.label: j.config.to_dict() for j in jobs}
        if args.resume:
            _check_same_candidates(out, configs, seeds)
        else:
            atomic_write_json(out / "settings.json", {
                "kind": "transfer", "name": out.name, "track": args.track, "short_track": args.short_track,
                "records": display_path(Path(args.records)), "seeds": seeds, "budget_tokens": args.budget_tokens,
                "set": overrides, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command,
                "git": git_state(), "candidates": [c.describe() for c in candidates],
                "design": {"factorial": factorial, "max_combine": args.max_combine,
                           "max_candidates": args.max_candidates,
                           "include_not_significant": args.include_not_significant,
                           "left_out_records": [r["id"] for r in left_out]},
                "estimate": cost, "configs": configs})
        results, later = run_transfer(jobs, seeds, out, resume=args.resume, address=args.address,
                                      num_cpus=args.num_cpus, gpus_per_trial=args.gpus_per_trial,
                                      cpus_per_trial=args.cpus_per_trial, max_concurrent=args.max_concurrent,
                                      max_runs=args.max_runs)
        summary = summarise(candidates, results, seeds, args.track, args.short_track, out, pending=later,
                            short_metric=short_metric, budget_tokens=jobs[0].config.max_tokens)
        atomic_write_json(out / "transfer.json", summary)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are in the run directory; continue with --resume", file=sys.stderr)
        return 130
    if later:
        print(f"transfer {display_path(out)}: {len(later)} of {len(jobs) * len(seeds)} runs still to do; "
              f"continue with: {_resume_command(args, out)}", file=sys.stderr)
        return 3
    c = summary["correlations"]
    print(f"transfer {display_path(out)}: {len(candidates)} candidates, spearman {c['spearman']}, "
          f"kendall {c['kendall']} (n={c['n']}), regret {summary['regret']}")
    failed = [r["id"] for r in summary["candidates"] if r["failed_seeds"]]
    if failed:
        print(f"candidates with runs that did not finish: {', '.join(failed)}", file=sys.stderr)
    return 0 if not failed else 1


if __name__ == "__main__":
    # run the importable module's copy, so that Ray pickles the trainable by reference
    from search.transfer import main as _main

    sys.exit(_main())
