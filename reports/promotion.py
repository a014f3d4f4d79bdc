"""A promotion's verdicts and crossings: the control and each candidate, seed by seed, by every crossing rule.

`search.promote` reruns a search's best configurations (the candidates) and the current record's settings (the
control) once per seed. Its promotion.json holds the verdicts (by the record rule: a one-sided Welch t-test of
the candidate's times against the control's) and, for the other rules, the p-values and ratios beside them.
The reached counts, means and standard deviations are computed here from the runs themselves (the trials
table), as search.verdicts computes them (over the seeds that reached; sample std), and taken from
promotion.json only for a configuration with no run in the table. Anything missing is None, shown as "–".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._data import RULES, RunData, finite_float


@dataclass(frozen=True)
class RuleResult:
    """One configuration by one crossing rule."""

    n_reached: int | None
    n_seeds: int | None
    mean_time_s: float | None
    std_time_s: float | None
    relative_to_control: float | None
    p_value: float | None
    paired_diff_s: float | None = None  # seed by seed against the control (promotions since Nov 30)
    paired_p: float | None = None
    paired_n: int | None = None


@dataclass(frozen=True)
class ConfigResult:
    """The control or a candidate: its result by each rule and its verdict (a candidate's, by the record rule)."""

    label: str
    is_control: bool
    by_rule: dict[str, RuleResult]
    verdict: str | None
    verdict_reason: str
    record: str | None  # the candidate's record id, or the control's record
    val_loss: float | None  # mean final val loss over the seeds (what a budget track's verdict compares)


@dataclass(frozen=True)
class Crossing:
    step: float | None  # None: only the tokens are known (no result.json)
    tokens: float | None


@dataclass(frozen=True)
class SeedCrossings:
    """One seed: where each configuration first crossed by the record rule (a label missing: it did not)."""

    seed: int
    by_label: dict[str, Crossing]
    same_step: float | None  # the step, when every configuration crossed at that same step


@dataclass(frozen=True)
class PromotionInfo:
    rule: str  # the record rule, which decides the verdicts
    alpha: float | None
    target: float | None
    labels: list[str]  # the control first, then the candidates
    seeds: list[int]
    n_planned: int | None
    configs: list[ConfigResult]
    crossings: list[SeedCrossings]
    complete: bool | None  # promotion.json's `complete`; None without promotion.json
    missing_runs: list[str]
    failed_runs: list[str]

    @property
    def same_step_seeds(self) -> list[SeedCrossings]:
        return [row for row in self.crossings if row.same_step is not None]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def run_labels(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials table with `label` and `seed` for each run: its `run` and `seed` columns, else read from
    trial ids such as ``cand-1-seed3``."""
    parsed = trials["trial_id"].str.extract(r"^(?P<label>.+)-seed(?P<seed>-?\d+)$")
    label = trials["run"].astype(str).where(trials["run"].notna(), parsed["label"]) if "run" in trials else parsed["label"]
    seed = pd.to_numeric(trials["seed"], errors="coerce") if "seed" in trials else pd.Series(np.nan, index=trials.index)
    seed = seed.fillna(pd.to_numeric(parsed["seed"], errors="coerce"))
    return trials.assign(label=label, seed=seed)


def _seeds(run: RunData, promotion: dict[str, Any], runs: pd.DataFrame) -> list[int]:
    for value in (run.settings.get("seeds"), promotion.get("seeds")):
        if isinstance(value, list) and value:
            numbers = [finite_float(v) for v in value]
            if all(n is not None for n in numbers):
                return [int(n) for n in numbers if n is not None]
    seeds = sorted({int(s) for s in runs["seed"].dropna()} | {int(s) for s in _crossings(run)["seed"]})
    return seeds


def _labels(run: RunData, promotion: dict[str, Any], runs: pd.DataFrame) -> list[str]:
    planned = [str(r.get("label")) for r in run.settings.get("runs") or [] if isinstance(r, dict) and r.get("label")]
    listed = [str(c.get("label")) for c in promotion.get("candidates") or [] if isinstance(c, dict) and c.get("label")]
    seen = [*planned, *listed, *sorted(set(runs["label"].dropna().astype(str))), *sorted(set(_crossings(run)["label"]))]
    labels = list(dict.fromkeys(seen))
    return sorted(labels, key=lambda label: label != "control")  # stable: the control first, the plan's order


def _crossings(run: RunData) -> pd.DataFrame:
    if run.crossings is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ("label", "seed", "rule", "step", "tokens")})
    return run.crossings


def _from_runs(rows: pd.DataFrame, rule: str) -> tuple[int, float | None, float | None]:
    """Reached count, mean and sample std of the times to target of the runs that reached (as search.verdicts)."""
    times = pd.to_numeric(rows[f"time_to_target_{rule}_s"], errors="coerce")
    times = times[np.isfinite(times)]
    mean = float(times.mean()) if len(times) else None
    std = float(times.std(ddof=1)) if len(times) > 1 else None
    return len(times), mean, std


def _config(label: str, is_control: bool, rows: pd.DataFrame, entry: dict[str, Any], rule: str,
            n_seeds: int | None) -> ConfigResult:
    by_rule = {}
    for r in RULES:
        ours = _dict(_dict(entry.get("by_rule")).get(r))  # a candidate's p-value and ratio by this rule
        summary = _dict(entry.get(r))  # the control's reached count, mean and std by this rule
        if r == rule:  # the record rule's numbers are also at the top level
            ours = {**{k: entry.get(k) for k in ("mean_time_s", "p_value", "relative_to_control")},
                    **{k: v for k, v in ours.items() if v is not None}}
            summary = {**{k: entry.get(k) for k in ("n_reached", "mean_time_s", "std_time_s")},
                       **{k: v for k, v in summary.items() if v is not None}}
        if len(rows):
            n_reached, mean, std = _from_runs(rows, r)
        else:  # no run of it in the trials table: promotion.json's numbers, where it has them
            reached = finite_float(summary.get("n_reached"))
            n_reached = None if reached is None else int(reached)
            mean = finite_float(summary.get("mean_time_s"))
            mean = finite_float(ours.get("mean_time_s")) if mean is None else mean
            std = finite_float(summary.get("std_time_s"))
        paired = _dict(ours.get("paired")) if not is_control else {}
        n_paired = finite_float(paired.get("n"))
        by_rule[r] = RuleResult(n_reached=n_reached, n_seeds=n_seeds, mean_time_s=mean, std_time_s=std,
                                relative_to_control=None if is_control else finite_float(ours.get("relative_to_control")),
                                p_value=None if is_control else finite_float(ours.get("p_value")),
                                paired_diff_s=finite_float(paired.get("mean_diff_s")), paired_p=finite_float(paired.get("p_value")),
                                paired_n=None if not n_paired else int(n_paired))
    verdict = entry.get("verdict")
    record = entry.get("id") or entry.get("record")
    return ConfigResult(label=label, is_control=is_control, by_rule=by_rule,
                        verdict=str(verdict) if verdict and not is_control else None,
                        verdict_reason=str(entry.get("verdict_reason") or "") if not is_control else "",
                        record=str(record) if record else None, val_loss=finite_float(entry.get("val_loss")))


def _crossing_rows(run: RunData, runs: pd.DataFrame, labels: list[str], seeds: list[int],
                   rule: str) -> list[SeedCrossings]:
    crossings = _crossings(run)
    crossings = crossings[crossings["rule"] == rule]
    found = {(str(c.label), int(c.seed)): Crossing(step=finite_float(c.step), tokens=finite_float(c.tokens))
             for c in crossings.itertuples(index=False)}
    column = f"tokens_to_target_{rule}"
    if column in runs:  # a run without a readable result.json: its tokens from the table, step unknown
        for row in runs.itertuples(index=False):
            key = (str(row.label), int(row.seed)) if pd.notna(row.seed) else None
            tokens = finite_float(getattr(row, column))
            if key and key not in found and tokens is not None:
                found[key] = Crossing(step=None, tokens=tokens)
    out = []
    for seed in seeds:
        by_label = {label: found[(label, seed)] for label in labels if (label, seed) in found}
        steps = {c.step for c in by_label.values()}
        same = (len(labels) > 1 and len(by_label) == len(labels) and len(steps) == 1 and None not in steps)
        out.append(SeedCrossings(seed=seed, by_label=by_label, same_step=steps.pop() if same else None))
    return out


def _get_promotion_info(run: RunData) -> PromotionInfo:
    promotion = run.promotion or {}
    rule = next((str(r) for r in (promotion.get("rule"), run.settings.get("rule")) if r in RULES), run.search_rule)
    runs = run_labels(run.trials)
    seeds = _seeds(run, promotion, runs)
    labels = _labels(run, promotion, runs)
    planned = finite_float(promotion.get("runs"))
    if planned is None and isinstance(run.settings.get("runs"), list) and seeds:
        planned = len(run.settings["runs"]) * len(seeds)
    entries = {str(c.get("label")): c for c in promotion.get("candidates") or [] if isinstance(c, dict)}
    entries["control"] = _dict(promotion.get("control"))
    configs = [_config(label, label == "control", runs[runs["label"] == label], _dict(entries.get(label)), rule,
                       len(seeds) or None) for label in labels]
    complete = promotion.get("complete")
    return PromotionInfo(
        rule=rule, alpha=finite_float(promotion.get("alpha", run.settings.get("alpha"))), target=run.target,
        labels=labels, seeds=seeds, n_planned=None if planned is None else int(planned), configs=configs,
        crossings=_crossing_rows(run, runs, labels, seeds, rule),
        complete=complete if isinstance(complete, bool) else None,
        missing_runs=_strings(promotion.get("missing_runs")), failed_runs=_strings(promotion.get("failed_runs")),
    )
