"""What a transfer found: Spearman and Kendall (tau-b) correlation of short-track against long-track result over
the candidates with both, with bootstrap 95% intervals (candidates resampled, fixed seed); the regret of picking
the short-track winner (its long-track result minus the best long-track result of all candidates); per knob the
mean long-track result of the candidates that change it against those that do not. :func:`summarise` writes it
all as ``transfer.json`` (read by ``python -m reports runs/<name>``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from chores.files import display_path
from chores.values import finite, finite_mean
from search.pairs import Results, result_path
from search.store import FINISHED
from search.transfer_design import SHORT_METRICS, Candidate
from search.verdicts import group_summary
from trainer.config import track

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0


def _defined(x: list[float], y: list[float]) -> bool:
    """A rank correlation needs two points and neither side constant (scipy warns and returns NaN there)."""
    return len(x) >= 2 and min(x) != max(x) and min(y) != max(y)


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho (scipy). NaN when a side is constant or n < 2."""
    from scipy import stats

    return float(stats.spearmanr(x, y).statistic) if _defined(x, y) else math.nan


def kendall(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b (scipy). NaN when a side is constant or n < 2."""
    from scipy import stats

    return float(stats.kendalltau(x, y).statistic) if _defined(x, y) else math.nan


def bootstrap_ci(x: list[float], y: list[float], stat: Callable[[list[float], list[float]], float], *,
                 samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED, level: float = 0.95
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(x, y)``, resampling the pairs (candidates) with replacement;
    resamples where the statistic is undefined are left out. (NaN, NaN) when n < 3 or none is defined."""
    n = len(x)
    if n < 3:
        return math.nan, math.nan
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    idx = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    values = [v for v in (stat(xs[i].tolist(), ys[i].tolist()) for i in idx) if math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    low, high = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def regret(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Picking the short-track winner (lowest short value among rows with both results): its long value minus
    the best long value of all rows with a long value (lower is better on both)."""
    both = [r for r in rows if finite(r["short"]) and finite(r["long"])]
    longs = [r for r in rows if finite(r["long"])]
    if not both:
        return {"short_winner": None, "long_winner": None, "regret": None}
    winner = min(both, key=lambda r: r["short"])
    best = min(longs, key=lambda r: r["long"])
    return {"short_winner": winner["id"], "long_winner": best["id"], "regret": winner["long"] - best["long"]}


def knob_effects(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per knob: mean long value of the rows whose changes set it, of those that do not, and the difference."""
    rows = [r for r in rows if finite(r["long"])]
    knobs = sorted({k for r in rows for k in r["changes"]})
    out = {}
    for knob in knobs:
        with_ = [r["long"] for r in rows if knob in r["changes"]]
        without = [r["long"] for r in rows if knob not in r["changes"]]
        mw, mo = finite_mean(with_), finite_mean(without)
        out[knob] = {"mean_with": mw, "mean_without": mo, "difference": mw - mo, "n_with": len(with_),
                     "n_without": len(without)}
    return out


def analyse(rows: list[dict[str, Any]], *, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED
            ) -> dict[str, Any]:
    """``rows``: ``{"id", "short", "long", "changes"}`` (NaN/None where missing). Correlations with intervals,
    regret, knob effects."""
    both = [r for r in rows if finite(r["short"]) and finite(r["long"])]
    x, y = [float(r["short"]) for r in both], [float(r["long"]) for r in both]
    out: dict[str, Any] = {"n_both": len(both)}
    for name, fn in (("spearman", spearman), ("kendall", kendall)):
        lo, hi = bootstrap_ci(x, y, fn, samples=samples, seed=seed)
        out[name] = {"value": fn(x, y) if len(x) >= 2 else math.nan, "ci_low": lo, "ci_high": hi}
    out["bootstrap"] = {"samples": samples, "seed": seed, "level": 0.95}
    out.update(regret(rows))
    out["knob_effects"] = knob_effects(rows)
    return out


def summarise(candidates: list[Candidate], results: Results, seeds: list[int],
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
        rows.append({"id": c.id, "short": c.short_value, "long": long if finite(long) else math.nan,
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
            "id": c.id, f"short_{short_metric}": r["short"] if finite(r["short"]) else None,  # first short_* field
            long_key: r["long"] if finite(r["long"]) else None,
            "short_rank": sr, "long_rank": lr, "kind": c.kind, "records": c.records, "changes": c.changes,
            "same_as": c.same_as, "n_seeds": len(seeds), "n_finished": g.get("n_finished"),
            "std_long": g.get("std_val_loss") if budget else g.get("std_time_s"), "failed_seeds": r["failed"],
            "pending_seeds": r["pending"],
            "runs": {str(s): display_path(result_path(out_dir, c.id, s)) for s in seeds
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
    from scipy import stats

    idx = [i for i, v in enumerate(values) if finite(v)]
    ranks = stats.rankdata([values[i] for i in idx]).tolist() if idx else []
    out: list[float | None] = [None] * len(values)
    for i, rk in zip(idx, ranks):
        out[i] = rk
    return out
