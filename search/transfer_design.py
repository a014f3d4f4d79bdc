"""What a transfer runs: the short track's records grouped by their changes, the candidates built from them,
and what running them will cost.

Records. The records of the short track whose status is ``candidate`` or ``baseline`` and that carry a loadable
config (:func:`load_records`). A record's changes = the hyperparameters (``hp``, seed aside) in which its config
differs from the short track's defaults. Records with the same changes are one group. By default only the groups
with a record that beat its control (verdict ``beats_record``: significant) are candidates; the others are left
out and named (:func:`winning_records`; ``--include-not-significant`` keeps them). Baseline records (no changes)
always count, as the baseline.

Design (:func:`build_candidates`). Bounded by default: the baseline (the long track's defaults), each group alone
(``r1``, ``r2``, ...), and one combination (``c1``) of all compatible groups (taken best short result first; a
group that sets a knob another one already set differently is left out of it). Factorial when asked
(``--max-combine K`` or ``--max-candidates N``): every combination of 2..K groups (all sizes without K) with their
changes applied together, one combined candidate per option where two groups set the same knob differently;
``--max-candidates N`` keeps the first N (baseline, singles, then the smaller combinations first). Candidates are
deduplicated by their resulting long-track configuration (:func:`search.records.config_key`; the first one
kept, the others listed under ``same_as``).

Short-track result. The mean over a candidate's records of their time relative to the control they were
promoted against (``relative_to_control``; a record that was a promotion's control counts 1.0), because seconds
from different GPUs and sessions do not rank (the baseline's are a 4090's); when no record carries that ratio,
their time to target in seconds (``mean_time_s``, else ``time_s``). NaN for combinations.

Cost (:func:`estimate`). Runs = candidates x seeds, each of the long track's ``max_tokens`` (``--budget-tokens``);
GPU time = tokens / the mean tokens/s the records measured (their seeds' ``tokens_per_s``), start-up and
evaluations not counted.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from chores.values import finite, finite_mean
from search.records import ACCEPTED_VERDICTS, config_key, read_record, scan_records
from trainer.config import ConfigError, RunConfig, make_config

log = logging.getLogger(__name__)

USABLE_STATUSES = ("candidate", "baseline")
SHORT_METRICS = {"relative": "time_relative_to_control", "seconds": "time_to_target_s"}


@dataclass
class Candidate:
    id: str
    kind: str  # baseline | single | combination
    records: list[str]
    changes: dict[str, Any]
    short_value: float  # its records' mean short-track value (see set_short_values); NaN when unknown
    same_as: list[str] = field(default_factory=list)  # other (deduplicated) derivations of the same config

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["short_value"] = self.short_value if math.isfinite(self.short_value) else None
        return d


def record_changes(config: RunConfig, short_track: str) -> dict[str, Any]:
    """The hyperparameters (seed aside) in which a record's config differs from the short track's defaults."""
    default = asdict(make_config(short_track).hp)
    mine = asdict(config.hp)
    return {k: v for k, v in mine.items() if k != "seed" and default.get(k) != v}


def _firstfinite(*values: Any) -> float:
    return next((float(v) for v in values if finite(v)), math.nan)


def load_records(records_dir: Path, short_track: str) -> list[dict[str, Any]]:
    """The usable records of ``short_track``: status candidate or baseline, a loadable config. Each as ``{"id",
    "path", "status", "verdict", "changes", "time_s", "relative", "control", "tokens_per_s", "gpu"}``. Raises
    ConfigError when the directory is missing or has none."""
    if not records_dir.exists():
        raise ConfigError(f"{records_dir}: no such records directory")
    if not records_dir.is_dir():
        raise ConfigError(f"{records_dir} is not a directory")
    out = []
    for path, data in scan_records(records_dir, short_track):
        if data.get("status") not in USABLE_STATUSES:
            continue
        try:
            data = read_record(path)
        except ConfigError as exc:
            log.warning("%s: skipped", exc)
            continue
        config = RunConfig.from_dict(data["config"])
        control = data.get("control") if isinstance(data.get("control"), dict) else {}
        speeds = [float(r["tokens_per_s"]) for r in data.get("results") or []
                  if isinstance(r, dict) and finite(r.get("tokens_per_s"))]
        out.append({"id": str(data.get("id") or path.stem), "path": str(path), "status": data.get("status"),
                    "verdict": data.get("verdict"), "changes": record_changes(config, short_track),
                    "time_s": _firstfinite(data.get("mean_time_s"), data.get("time_s")),
                    "relative": _firstfinite(data.get("relative_to_control")), "control": control.get("record"),
                    "tokens_per_s": finite_mean(speeds), "gpu": data.get("gpu")})
    if not out:
        raise ConfigError(f"{records_dir}: no usable records of track {short_track} "
                          f"(status {' or '.join(USABLE_STATUSES)}, with a config)")
    return out


def winning_records(records: list[dict[str, Any]], include_not_significant: bool = False
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the records a transfer combines, those it leaves out). A group of records with the same changes is kept
    when one of them beat its control (:data:`search.records.ACCEPTED_VERDICTS`), or with
    ``include_not_significant``; the baseline's records (no changes) always are."""
    won = {_changes_key(r) for r in records if r.get("verdict") in ACCEPTED_VERDICTS}
    kept, left = [], []
    for r in records:
        ok = include_not_significant or not r["changes"] or _changes_key(r) in won
        (kept if ok else left).append(r)
    return kept, left


def _changes_key(record: dict[str, Any]) -> str:
    return repr(sorted(record["changes"].items()))


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


def _knob_values(groups: list[dict[str, Any]]) -> dict[str, list[Any]]:
    values: dict[str, list[Any]] = {}
    for g in groups:
        for k, v in g["changes"].items():
            if v not in values.setdefault(k, []):
                values[k].append(v)
    return values


def _options(groups: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The merged changes of ``groups`` applied together: one dict per choice where they disagree on a knob
    (lazily: groups that disagree on many knobs give a product of their values)."""
    values = _knob_values(groups)
    knobs = sorted(values)
    for choice in itertools.product(*(values[k] for k in knobs)):
        yield dict(zip(knobs, choice))


def _groups(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(record groups with the same changes, baseline records without changes)."""
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
    return groups, baseline_records


def factorial_size(records: list[dict[str, Any]], max_combine: int | None = None) -> int:
    """How many candidates the factorial design has before deduplication: the baseline, each record group, and
    for every set of 2..max_combine groups the product of the values its groups give each knob. Records that
    disagree on continuous knobs (every search winner has its own learning rates) multiply fast: seven such
    groups give millions."""
    groups, _ = _groups(records)
    top = len(groups) if max_combine is None else min(max_combine, len(groups))
    total = 1 + len(groups)
    for size in range(2, top + 1):
        for combo in itertools.combinations(groups, size):
            total += math.prod(len(v) for v in _knob_values(list(combo)).values())
    return total


def _compatible(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The groups that go together without a conflict, taken best short value first (unknown ones last)."""
    order = sorted(groups, key=lambda g: (not math.isfinite(g["short"]), g["short"] if math.isfinite(g["short"])
                                          else 0.0))
    taken: list[dict[str, Any]] = []
    merged: dict[str, Any] = {}
    for g in order:
        if all(merged.get(k, v) == v for k, v in g["changes"].items()):
            taken.append(g)
            merged.update(g["changes"])
    return sorted(taken, key=groups.index)


def build_candidates(records: list[dict[str, Any]], long_track: str, *, factorial: bool = False,
                     max_combine: int | None = None, limit: int | None = None) -> list[Candidate]:
    """Baseline, each record group alone, and the combinations: all compatible groups together (bounded, the
    default), or every combination of 2..``max_combine`` groups (``factorial``, implied by ``max_combine``);
    deduplicated by the resulting long-track config; at most ``limit`` of them, in that order. See the module's
    doc."""
    base = make_config(long_track)
    groups, baseline_records = _groups(records)
    for g in groups:
        g["short"] = _short(g["records"])

    out: list[Candidate] = []
    seen: dict[str, Candidate] = {}

    def add(kind: str, prefix: str, recs: list[dict[str, Any]], changes: dict[str, Any], short: float) -> None:
        try:
            key = config_key(replace(base, hp=replace(base.hp, **changes)))
        except (ConfigError, TypeError) as exc:
            log.warning("changes %s are not valid on %s (%s): skipped", changes, long_track, exc)
            return
        ids = [r["id"] for r in recs]
        if key in seen:
            seen[key].same_as.append("+".join(ids) if ids else kind)
            return
        n = sum(c.kind == kind for c in out) + 1
        cand = Candidate("baseline" if kind == "baseline" else f"{prefix}{n}", kind, ids, changes, short)
        seen[key] = cand
        out.append(cand)

    add("baseline", "", baseline_records, {}, _short(baseline_records))
    for g in groups:
        add("single", "r", g["records"], g["changes"], g["short"])
    if factorial or max_combine is not None:
        top = len(groups) if max_combine is None else min(max_combine, len(groups))
        combos = [list(c) for size in range(2, top + 1) for c in itertools.combinations(groups, size)]
    else:
        together = _compatible(groups)
        combos = [together] if len(together) > 1 else []
    for combo in combos:
        recs = [r for g in combo for r in g["records"]]
        for changes in _options(combo):
            if limit is not None and len(out) >= limit:
                return out[:limit]
            add("combination", "c", recs, changes, math.nan)
    return out if limit is None else out[:limit]


def _short(records: list[dict[str, Any]]) -> float:
    return finite_mean([r.get("short", r["time_s"]) for r in records])


def estimate(configs: list[RunConfig], seeds: list[int], records: list[dict[str, Any]]) -> dict[str, Any]:
    """What running ``configs`` once per seed costs: runs, tokens (each run's ``max_tokens``: a budget track's
    budget, a speedrun's cap) and GPU seconds at the mean tokens/s the ``records`` measured (None when none did);
    start-up and evaluations are not counted."""
    tokens = sum(int(c.max_tokens) for c in configs) * len(seeds)
    measured = [r for r in records if math.isfinite(r.get("tokens_per_s", math.nan))]
    speed = finite_mean([r["tokens_per_s"] for r in measured])
    return {"runs": len(configs) * len(seeds), "tokens": tokens,
            "tokens_per_s": speed if measured else None, "measured_by": len(measured),
            "gpus": sorted({str(r["gpu"]) for r in measured if r.get("gpu")}),
            "gpu_s": tokens / speed if measured and speed > 0 else None}


def describe_estimate(cost: dict[str, Any]) -> str:
    line = f"{cost['runs']} runs, {cost['tokens']:,} tokens"
    if cost["gpu_s"] is None:
        return line + "; GPU time unknown (no record measured its tokens/s)"
    return (line + f"; estimated GPU time {cost['gpu_s'] / 3600:.1f} h ({cost['gpu_s']:,.0f} s) at "
            f"{cost['tokens_per_s']:,.0f} tokens/s, the mean measured by {cost['measured_by']} records on "
            f"{', '.join(cost['gpus']) or 'their GPU'} (start-up and evaluations not counted)")
