"""``python -m search.transfer``: do the short track's (speedrun) findings carry over to the long track (marathon)?

    python -m search.transfer records/ --track marathon --dry-run          # print the candidates, run nothing
    python -m search.transfer records/ --track marathon --seeds 2 --name tr1  # -> runs/tr1/
    python -m search.transfer records/ --track tiny-marathon --short-track tiny-speedrun --budget-tokens 1024
    python -m search.transfer records/ --track marathon --name tr1 --resume   # run what runs/tr1/ still lacks

Candidates. The records of the short track (``--short-track``, default speedrun-4.5) under the records
directory whose status is ``candidate`` or ``baseline`` and that carry a loadable config. Each record's
changes = the hyperparameters (``hp``, seed aside) in which its config differs from the short track's defaults
(``make_config(short_track).hp``). Records with the same changes are one group. Candidates: the baseline (the
long track's defaults; its records are those without changes), each group alone (``r1``, ``r2``, ...), and
every combination of 2+ groups (``c1``, ...; ``--max-combine K`` caps the size of a combination) with their
changes applied together; where two groups set the same knob differently, there is one combined candidate per
option. Candidates are deduplicated by their resulting long-track ``Hyper`` (the first one kept; the others
listed under ``same_as``). A candidate's short-track result is the mean over its records of their time relative
to the control they were promoted against (``relative_to_control``; a record that was a promotion's control
counts 1.0), because seconds from different GPUs and sessions do not rank (the baseline's are a 4090's); when
no record carries that ratio, their time to target in seconds (``mean_time_s``, else ``time_s``). NaN for
combinations.

Runs. Each candidate on the long track (``make_config(track)`` with its changes, ``--budget-tokens N`` =
``max_tokens=N``, then ``--set``), once per seed, each a Ray Tune trial (one GPU each, else one CPU) through
:func:`search.promote.run_pairs`; results in ``runs/<name>/<candidate>/seed-<s>/result.json``. A budget track
(marathon) runs to its budget and is scored by the final val loss (mean over seeds); a track with a target by
its time to target. ``--resume`` reruns only the (candidate, seed) pairs without a result file, and refuses
when the candidates are no longer those the run started with. ``--max-runs N`` runs at most N of the missing
pairs and exits with code 3 and the ``--resume`` command (a marathon on one GPU spans several commands).

Analysis (``transfer.json``, read by ``python -m reports runs/<name>``): over the candidates with a short and a
long result, Spearman and Kendall (tau-b) correlation of short-track against long-track result with bootstrap
95% intervals (candidates resampled, fixed seed), the regret of picking the short-track winner (its long-track
result minus the best long-track result of all candidates), and per knob the mean long-track result of the
candidates that change it against those that do not.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import random
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from search.promote import (
    FINISHED,
    Job,
    Plan,
    _display_path,
    _finite,
    git_state,
    group_summary,
    read_finished,
    read_record,
    result_path,
    run_pairs,
)
from trainer.config import ConfigError, Hyper, RunConfig, apply_overrides, make_config, parse_set, track
from trainer.io import atomic_write_json

log = logging.getLogger(__name__)

USABLE_STATUSES = ("candidate", "baseline")
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0


# ----------------------------------------------------------------------------------------------------------
# Candidates


@dataclass
class Candidate:
    id: str
    kind: str  # baseline | single | combination
    records: list[str]
    changes: dict[str, Any]
    short_value: float  # its records' mean short-track value (see set_short_values); NaN when unknown
    same_as: list[str] = field(default_factory=list)  # other (deduplicated) derivations of the same Hyper

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["short_value"] = self.short_value if math.isfinite(self.short_value) else None
        return d


def record_changes(config: RunConfig, short_track: str) -> dict[str, Any]:
    """The hyperparameters (seed aside) in which a record's config differs from the short track's defaults."""
    default = asdict(make_config(short_track).hp)
    mine = asdict(config.hp)
    return {k: v for k, v in mine.items() if k != "seed" and default.get(k) != v}


def _short_time(record: dict[str, Any]) -> float:
    for key in ("mean_time_s", "time_s"):
        if _finite(record.get(key)):
            return float(record[key])
    return math.nan


def _mean(values: list[float]) -> float:
    values = [v for v in values if math.isfinite(v)]
    return sum(values) / len(values) if values else math.nan


def load_records(records_dir: Path, short_track: str) -> list[dict[str, Any]]:
    """The usable records of ``short_track``: status candidate or baseline, a loadable config. Each as
    ``{"id", "path", "changes", "time_s"}``. Raises ConfigError when the directory is missing or has none."""
    if not records_dir.exists():
        raise ConfigError(f"{records_dir}: no such records directory")
    if not records_dir.is_dir():
        raise ConfigError(f"{records_dir} is not a directory")
    out = []
    for path in sorted(records_dir.rglob("*.json")):
        parts = path.relative_to(records_dir).parts
        if any(p.startswith(".") for p in parts) or "report" in parts[:-1]:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            log.warning("%s is not valid JSON: skipped", path)
            continue
        if not isinstance(data, dict) or data.get("track") != short_track or data.get("status") not in USABLE_STATUSES:
            continue
        try:
            data = read_record(path)
        except ConfigError as exc:
            log.warning("%s: skipped", exc)
            continue
        config = RunConfig.from_dict(data["config"])
        control = data.get("control") if isinstance(data.get("control"), dict) else {}
        relative = data.get("relative_to_control")
        out.append({"id": str(data.get("id") or path.stem), "path": str(path),
                    "changes": record_changes(config, short_track), "time_s": _short_time(data),
                    "relative": float(relative) if _finite(relative) else math.nan,
                    "control": control.get("record")})
    if not out:
        raise ConfigError(f"{records_dir}: no usable records of track {short_track} "
                          f"(status {' or '.join(USABLE_STATUSES)}, with a config)")
    return out


SHORT_METRICS = {"relative": "time_relative_to_control", "seconds": "time_to_target_s"}


def set_short_values(records: list[dict[str, Any]]) -> str:
    """Each record's short-track value (``record["short"]``), and the metric's name.

    A promoted record's time in seconds depends on the GPU and the session it ran in (the baseline's is the
    leaderboard's, from an RTX 4090), so when any record carries ``relative_to_control`` (its mean time over
    the mean time of the control run beside it) that ratio is the value: a record that served as some
    promotion's control is 1.0 by definition, and a record with neither has no short value. Only when no
    record has a ratio (hand-made records, older promotions) are the seconds used."""
    if not any(math.isfinite(r.get("relative", math.nan)) for r in records):
        for r in records:
            r["short"] = r["time_s"]
        return SHORT_METRICS["seconds"]
    controls = {r.get("control") for r in records if math.isfinite(r.get("relative", math.nan))}
    for r in records:
        relative = r.get("relative", math.nan)
        r["short"] = relative if math.isfinite(relative) else (1.0 if r["id"] in controls else math.nan)
    return SHORT_METRICS["relative"]


def _hp_key(hp: Hyper) -> str:
    d = asdict(hp)
    d.pop("seed", None)
    return json.dumps(d, sort_keys=True, default=str)


def _options(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The merged changes of ``groups`` applied together: one dict per choice where they disagree on a knob."""
    values: dict[str, list[Any]] = {}
    for g in groups:
        for k, v in g["changes"].items():
            if v not in values.setdefault(k, []):
                values[k].append(v)
    knobs = sorted(values)
    return [dict(zip(knobs, choice)) for choice in itertools.product(*(values[k] for k in knobs))]


def build_candidates(records: list[dict[str, Any]], long_track: str, *,
                     max_combine: int | None = None) -> list[Candidate]:
    """Baseline, each record group alone, every combination of 2+ groups (one per option on a conflict);
    deduplicated by the resulting long-track Hyper. See the module's doc."""
    base_hp = make_config(long_track).hp
    groups: list[dict[str, Any]] = []
    baseline_records: list[dict[str, Any]] = []
    for r in records:
        if not r["changes"]:
            baseline_records.append(r)
            continue
        same = next((g for g in groups if g["changes"] == r["changes"]), None)
        if same is None:
            groups.append({"changes": dict(r["changes"]), "records": [r]})
        else:
            same["records"].append(r)

    out: list[Candidate] = []
    seen: dict[str, Candidate] = {}

    def add(kind: str, prefix: str, recs: list[dict[str, Any]], changes: dict[str, Any], short: float) -> None:
        try:
            hp = replace(base_hp, **changes)
        except (ConfigError, TypeError) as exc:
            log.warning("changes %s are not valid on %s (%s): skipped", changes, long_track, exc)
            return
        ids = [r["id"] for r in recs]
        key = _hp_key(hp)
        if key in seen:
            seen[key].same_as.append("+".join(ids) if ids else kind)
            return
        n = sum(c.kind == kind for c in out) + 1
        cand = Candidate("baseline" if kind == "baseline" else f"{prefix}{n}", kind, ids, changes, short)
        seen[key] = cand
        out.append(cand)

    def short(recs: list[dict[str, Any]]) -> float:
        return _mean([r.get("short", r["time_s"]) for r in recs])

    add("baseline", "", baseline_records, {}, short(baseline_records))
    for g in groups:
        add("single", "r", g["records"], g["changes"], short(g["records"]))
    top = len(groups) if max_combine is None else min(max_combine, len(groups))
    for size in range(2, top + 1):
        for combo in itertools.combinations(groups, size):
            recs = [r for g in combo for r in g["records"]]
            for changes in _options(list(combo)):
                add("combination", "c", recs, changes, math.nan)
    return out


# ----------------------------------------------------------------------------------------------------------
# Statistics


def rankdata(values: list[float]) -> list[float]:
    """Ranks 1..n, ties given their average rank (as scipy.stats.rankdata)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def _pearson(x: list[float], y: list[float]) -> float:
    n = len(x)
    if n < 2:
        return math.nan
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho: Pearson's correlation of the (average) ranks. NaN when a side is constant or n < 2."""
    return _pearson(rankdata(x), rankdata(y))


def kendall(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b (ties corrected, as scipy.stats.kendalltau). NaN when a side is constant or n < 2."""
    n = len(x)
    concordant = discordant = tie_x = tie_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                tie_x += 1
                tie_y += 1
            elif dx == 0:
                tie_x += 1
            elif dy == 0:
                tie_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    pairs = n * (n - 1) // 2
    denom = math.sqrt((pairs - tie_x) * (pairs - tie_y))
    return (concordant - discordant) / denom if denom > 0 else math.nan


def bootstrap_ci(x: list[float], y: list[float], stat: Any, *, samples: int = BOOTSTRAP_SAMPLES,
                 seed: int = BOOTSTRAP_SEED, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(x, y)``, resampling the pairs (candidates) with replacement;
    resamples where the statistic is undefined are left out. (NaN, NaN) when n < 3 or none is defined."""
    n = len(x)
    if n < 3:
        return math.nan, math.nan
    rng = random.Random(seed)
    values = []
    for _ in range(samples):
        idx = [rng.randrange(n) for _ in range(n)]
        v = stat([x[i] for i in idx], [y[i] for i in idx])
        if math.isfinite(v):
            values.append(v)
    if not values:
        return math.nan, math.nan
    values.sort()
    return _quantile(values, (1 - level) / 2), _quantile(values, 1 - (1 - level) / 2)


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def regret(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Picking the short-track winner (lowest short value among rows with both results): its long value minus
    the best long value of all rows with a long value (lower is better on both)."""
    both = [r for r in rows if _ok(r["short"]) and _ok(r["long"])]
    longs = [r for r in rows if _ok(r["long"])]
    if not both:
        return {"short_winner": None, "long_winner": None, "regret": None}
    winner = min(both, key=lambda r: r["short"])
    best = min(longs, key=lambda r: r["long"])
    return {"short_winner": winner["id"], "long_winner": best["id"], "regret": winner["long"] - best["long"]}


def knob_effects(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per knob: mean long value of the rows whose changes set it, of those that do not, and the difference."""
    rows = [r for r in rows if _ok(r["long"])]
    knobs = sorted({k for r in rows for k in r["changes"]})
    out = {}
    for knob in knobs:
        with_ = [r["long"] for r in rows if knob in r["changes"]]
        without = [r["long"] for r in rows if knob not in r["changes"]]
        mw, mo = _mean(with_), _mean(without)
        out[knob] = {"mean_with": mw, "mean_without": mo, "difference": mw - mo, "n_with": len(with_),
                     "n_without": len(without)}
    return out


def _ok(value: Any) -> bool:
    return _finite(value)


def analyse(rows: list[dict[str, Any]], *, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED
            ) -> dict[str, Any]:
    """``rows``: ``{"id", "short", "long", "changes"}`` (NaN/None where missing). Correlations with intervals,
    regret, knob effects."""
    both = [r for r in rows if _ok(r["short"]) and _ok(r["long"])]
    x, y = [float(r["short"]) for r in both], [float(r["long"]) for r in both]
    out: dict[str, Any] = {"n_both": len(both)}
    for name, fn in (("spearman", spearman), ("kendall", kendall)):
        lo, hi = bootstrap_ci(x, y, fn, samples=samples, seed=seed)
        out[name] = {"value": fn(x, y) if len(x) >= 2 else math.nan, "ci_low": lo, "ci_high": hi}
    out["bootstrap"] = {"samples": samples, "seed": seed, "level": 0.95}
    out.update(regret(rows))
    out["knob_effects"] = knob_effects(rows)
    return out


# ----------------------------------------------------------------------------------------------------------
# The transfer run


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
                 ) -> tuple[dict[tuple[str, int], dict[str, Any]], list[tuple[str, int]]]:
    """Run every (candidate, seed) without a result yet (all of them unless ``resume``), at most ``max_runs``
    of them in candidate order; return all results and the pairs left for a later ``--resume``."""
    t = jobs[0].config.track
    rule, budget = t.record_rule, t.target is None
    results: dict[tuple[str, int], dict[str, Any]] = {}
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
        plan = Plan(run_dir=out_dir, settings={"track": t.name}, jobs=jobs, seeds=seeds, rule=rule, budget=budget,
                    overrides={}, control_source={})
        done, _ = run_pairs(plan, out_dir, now, address=address, num_cpus=num_cpus, gpus_per_trial=gpus_per_trial,
                            cpus_per_trial=cpus_per_trial, max_concurrent=max_concurrent,
                            name="ray" if sessions == 0 else f"ray-{sessions + 1}")
        results.update(done)
    return results, later


def summarise(candidates: list[Candidate], results: dict[tuple[str, int], dict[str, Any]], seeds: list[int],
              long_track: str, short_track: str, out_dir: Path | None = None,
              pending: list[tuple[str, int]] | None = None,
              short_metric: str = SHORT_METRICS["seconds"], budget_tokens: int | None = None) -> dict[str, Any]:
    """transfer.json: per candidate its short and long results and ranks, then the analysis. ``budget_tokens``
    is the long runs' token budget, so that transfers of one track at several lengths can be compared."""
    t = track(long_track)
    budget = t.target is None
    long_key = "long_val_loss" if budget else "long_time_s"
    later = set(pending or [])
    rows = []
    for c in candidates:
        runs = [results[(c.id, s)] for s in seeds if (c.id, s) in results]
        g = group_summary(runs, t.record_rule, budget)
        long = g.get("val_loss") if budget else g.get("mean_time_s")
        if not budget and g.get("n_reached") != len(seeds):
            long = None  # a seed that never reached has no time: the candidate has no long result
        if any((c.id, s) in later for s in seeds):
            long = None  # not every seed has run yet: no long result until --resume finishes them
        rows.append({"id": c.id, "short": c.short_value, "long": long if _finite(long) else math.nan,
                     "changes": c.changes, "cand": c, "summary": g,
                     "failed": [s for s in seeds if (c.id, s) not in later and ((c.id, s) not in results
                                or results[(c.id, s)].get("status") not in FINISHED)],
                     "pending": [s for s in seeds if (c.id, s) in later]})
    analysis = analyse(rows)
    short_ranks = _ranks([r["short"] for r in rows])
    long_ranks = _ranks([r["long"] for r in rows])
    table = []
    for r, sr, lr in zip(rows, short_ranks, long_ranks):
        c, g = r["cand"], r["summary"]
        table.append({
            "id": c.id, f"short_{short_metric}": r["short"] if _ok(r["short"]) else None,  # first short_* field
            long_key: r["long"] if _ok(r["long"]) else None,
            "short_rank": sr, "long_rank": lr, "kind": c.kind, "records": c.records, "changes": c.changes,
            "same_as": c.same_as, "n_seeds": len(seeds), "n_finished": g.get("n_finished"),
            "std_long": g.get("std_val_loss") if budget else g.get("std_time_s"), "failed_seeds": r["failed"],
            "pending_seeds": r["pending"],
            "runs": {str(s): _display_path(result_path(out_dir, c.id, s)) for s in seeds
                     if out_dir is not None and result_path(out_dir, c.id, s).exists()},
        })
    return {"kind": "transfer", "short_track": short_track, "track": long_track,
            "budget_tokens": budget_tokens if budget_tokens else t.max_tokens, "complete": not later,
            "short_metric": short_metric, "long_metric": long_key, "seeds": seeds,
            "correlations": {"spearman": analysis["spearman"]["value"], "kendall": analysis["kendall"]["value"],
                             "n": analysis["n_both"]},
            "intervals": {k: {"low": analysis[k]["ci_low"], "high": analysis[k]["ci_high"]}
                          for k in ("spearman", "kendall")},
            "bootstrap": analysis["bootstrap"],
            "regret": analysis["regret"], "short_winner": analysis["short_winner"],
            "long_winner": analysis["long_winner"], "knob_effects": analysis["knob_effects"],
            "candidates": table}


def _ranks(values: list[float]) -> list[float | None]:
    """Ranks (1 = lowest) among the finite values; None for the others."""
    idx = [i for i, v in enumerate(values) if _ok(v)]
    ranks = rankdata([values[i] for i in idx])
    out: list[float | None] = [None] * len(values)
    for i, rk in zip(idx, ranks):
        out[i] = rk
    return out


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
    p.add_argument("--max-combine", type=int, default=None, help="largest combination of records (default: all)")
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
                          f"the records, --budget-tokens, --set or --max-combine changed; start a new --name")
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
                                ("--max-combine", args.max_combine, None), ("--max-runs", args.max_runs, None)])
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        _validate(args)
        overrides = parse_set(args.overrides)
        records = load_records(Path(args.records), args.short_track)
        short_metric = set_short_values(records)
        candidates = build_candidates(records, args.track, max_combine=args.max_combine)
        jobs = make_jobs(candidates, args.track, budget_tokens=args.budget_tokens, overrides=overrides)
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        if args.dry_run:
            print(f"{len(candidates)} candidates from {len(records)} records of {args.short_track}, "
                  f"to run on {args.track} with seeds {seeds}:")
            _print_candidates(candidates, short_metric)
            return 0
        out = _out_dir(args)
        command = shlex.join([sys.executable, "-m", "search.transfer",
                              *(sys.argv[1:] if argv is None else argv)])
        configs = {j.label: j.config.to_dict() for j in jobs}
        if args.resume:
            _check_same_candidates(out, configs, seeds)
        else:
            atomic_write_json(out / "settings.json", {
                "kind": "transfer", "name": out.name, "track": args.track, "short_track": args.short_track,
                "records": _display_path(Path(args.records)), "seeds": seeds, "budget_tokens": args.budget_tokens,
                "set": overrides, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command,
                "git": git_state(), "candidates": [c.describe() for c in candidates],
                "configs": configs})
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
        print(f"transfer {_display_path(out)}: {len(later)} of {len(jobs) * len(seeds)} runs still to do; "
              f"continue with: {_resume_command(args, out)}", file=sys.stderr)
        return 3
    c = summary["correlations"]
    print(f"transfer {_display_path(out)}: {len(candidates)} candidates, spearman {c['spearman']}, "
          f"kendall {c['kendall']} (n={c['n']}), regret {summary['regret']}")
    failed = [r["id"] for r in summary["candidates"] if r["failed_seeds"]]
    if failed:
        print(f"candidates with runs that did not finish: {', '.join(failed)}", file=sys.stderr)
    return 0 if not failed else 1


if __name__ == "__main__":
    # run the importable module's copy, so that Ray pickles the trainable by reference
    from search.transfer import main as _main

    sys.exit(_main())
