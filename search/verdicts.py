"""Seed results summed up and compared: a candidate's seeds against the control's, by a crossing rule.

Verdict. By the track's record rule (first step <= target for the speedruns): a candidate ``beats_record``
only if all its seeds reached the target and a one-sided Welch t-test of its times against the control's
gives p < ``alpha``. Censoring: a candidate seed that did not reach the target fails the verdict
(``not_significant``, with the reason); a control seed that did not reach enters the test at its whole
clocked time, a lower bound of its time to target, which can only make the candidate look worse. Budget
tracks (no target) compare the final validation loss the same way. The smoothed and validation crossings
are reported beside it (:func:`by_rule`) but decide nothing, as does the per-seed comparison (:func:`paired`).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from chores.values import finite
from search.store import FINISHED
from trainer.config import CROSSING_RULES


def welch_one_sided(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Welch's unequal-variance t-test of H1: mean(a) < mean(b) (scipy's ``ttest_ind``). Returns (t, df, p).

    Both samples need at least two finite values (ValueError otherwise). With no variance in either sample
    the test is undefined here: df and p are NaN and t is +-inf (or NaN when the means are equal), so no
    verdict rests on it (scipy returns p = 0 or 1, or NaN, there).
    """
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's test needs at least 2 values in each sample, got {len(a)} and {len(b)}")
    if not all(finite(x) for x in (*a, *b)):
        raise ValueError("Welch's test needs finite values")
    if statistics.variance(a) == 0.0 and statistics.variance(b) == 0.0:
        diff = statistics.fmean(a) - statistics.fmean(b)
        return (math.copysign(math.inf, diff) if diff else math.nan), math.nan, math.nan
    result = stats.ttest_ind(a, b, equal_var=False, alternative="less")
    return float(result.statistic), float(result.df), float(result.pvalue)


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation; None where undefined (no values; one value for the std)."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def rule_values(results: list[dict[str, Any]], rule: str, *, censor: bool) -> list[float]:
    """Times to target by ``rule``; with ``censor``, a seed that did not reach enters at its clocked time."""
    out = []
    for r in results:
        t = r.get(f"time_to_target_{rule}_s")
        if finite(t):
            out.append(float(t))
        elif censor and r.get("status") in FINISHED and finite(r.get("clock_s")):
            out.append(float(r["clock_s"]))
    return out


def group_summary(results: list[dict[str, Any]], rule: str, budget: bool) -> dict[str, Any]:
    """Mean and std (over the seeds that got there) of time and tokens to target, per rule; or of the final
    val loss on a budget track."""
    finished = [r for r in results if r.get("status") in FINISHED]
    out: dict[str, Any] = {"n_seeds": len(results), "n_finished": len(finished)}
    if budget:
        losses = [float(r["final_val_loss"]) for r in finished if finite(r.get("final_val_loss"))]
        clocks = [float(r["clock_s"]) for r in finished if finite(r.get("clock_s"))]
        tokens = [float(r["tokens"]) for r in finished if finite(r.get("tokens"))]
        out["val_loss"], out["std_val_loss"] = mean_std(losses)
        out["mean_time_s"], out["std_time_s"] = mean_std(clocks)
        out["mean_tokens"] = mean_std(tokens)[0]
        return out
    for r in CROSSING_RULES:
        times = rule_values(results, r, censor=False)
        tokens = [float(x[f"tokens_to_target_{r}"]) for x in results if finite(x.get(f"tokens_to_target_{r}"))]
        mean, std = mean_std(times)
        out[r] = {"n_reached": len(times), "mean_time_s": mean, "std_time_s": std,
                  "mean_tokens": mean_std(tokens)[0]}
    main = out[rule]
    out.update(n_reached=main["n_reached"], mean_time_s=main["mean_time_s"], std_time_s=main["std_time_s"],
               mean_tokens=main["mean_tokens"])
    vals = [float(r["val_loss"]) for r in finished if finite(r.get("val_loss"))]
    out["val_loss"] = mean_std(vals)[0]
    return out


def compare(candidate: list[dict[str, Any]], control: list[dict[str, Any]], rule: str, budget: bool,
            alpha: float) -> dict[str, Any]:
    """The verdict of a candidate against the control by ``rule`` (see the module's doc for censoring)."""
    out: dict[str, Any] = {"rule": rule, "alpha": alpha, "t_stat": None, "df": None, "p_value": None,
                           "relative_to_control": None}
    n = len(candidate)
    if budget:
        a = [float(r["final_val_loss"]) for r in candidate if r.get("status") in FINISHED
             and finite(r.get("final_val_loss"))]
        b = [float(r["final_val_loss"]) for r in control if r.get("status") in FINISHED
             and finite(r.get("final_val_loss"))]
        what = "finished with a finite val loss"
    else:
        a = rule_values(candidate, rule, censor=False)
        b = rule_values(control, rule, censor=True)
        what = f"reached the target by the {rule} rule"
    reason = ""
    if len(a) < n:
        reason = f"{n - len(a)} of {n} candidate seeds never {what}"
    elif len(a) < 2 or len(b) < 2:
        reason = f"the test needs at least 2 seeds on each side (candidate {len(a)}, control {len(b)})"
    if a and b and len(a) == n:
        out["relative_to_control"] = (sum(a) / len(a)) / (sum(b) / len(b))
    if not reason:
        t, df, p = welch_one_sided(a, b)
        out.update(t_stat=t, df=df, p_value=p)
        if not math.isfinite(p):
            reason = "no variance in either sample: the test is undefined"
        elif p < alpha:
            reason = f"faster than the control: one-sided Welch t-test p = {p:.3g} < {alpha}"
            if budget:
                reason = f"lower val loss than the control: one-sided Welch t-test p = {p:.3g} < {alpha}"
        else:
            reason = f"one-sided Welch t-test p = {p:.3g} >= {alpha}"
        censored = len(b) - len(rule_values(control, rule, censor=False)) if not budget else 0
        if censored:
            reason += f" ({censored} control seeds never reached: counted at their whole clocked time)"
    ok = out["p_value"] is not None and math.isfinite(out["p_value"]) and out["p_value"] < alpha
    out["verdict"] = "beats_record" if ok else "not_significant"
    out["verdict_reason"] = reason
    return out


def paired(candidate: list[dict[str, Any]], control: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    """The candidate against the control seed by seed: a seed fixes the data order and the initial weights for
    both, so the per-seed differences hold less noise than the two groups. Information beside the verdict,
    which stays Welch's. ``same_step``: seeds where both crossed on the very same step (on a speedrun's
    first-step rule that step is often one easy window of the seed's data order, whatever the settings)."""
    from scipy import stats

    ctrl = {r.get("seed"): r for r in control}
    diffs, same, both = [], 0, 0
    for r in candidate:
        c = ctrl.get(r.get("seed"))
        if c is None:
            continue
        a, b = r.get(f"time_to_target_{rule}_s"), c.get(f"time_to_target_{rule}_s")
        if not (finite(a) and finite(b)):
            continue
        diffs.append(float(a) - float(b))
        steps = [((x.get("crossings") or {}).get(rule) or {}).get("step") for x in (r, c)]
        if steps[0] is not None and steps[1] is not None:
            both += 1
            same += steps[0] == steps[1]
    out: dict[str, Any] = {"n": len(diffs), "mean_diff_s": statistics.fmean(diffs) if diffs else None,
                           "p_value": None, "same_step": same, "n_steps": both}
    if len(diffs) >= 2 and statistics.pstdev(diffs) > 0:
        out["p_value"] = float(stats.ttest_1samp(diffs, 0.0, alternative="less").pvalue)
    return out


def by_rule(candidate: list[dict[str, Any]], control: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    out = {}
    for r in CROSSING_RULES:
        c = compare(candidate, control, r, False, alpha)
        cand, ctrl = group_summary(candidate, r, False)[r], group_summary(control, r, False)[r]
        out[r] = {"candidate": cand, "control": ctrl, "relative_to_control": c["relative_to_control"],
                  "t_stat": c["t_stat"], "df": c["df"], "p_value": c["p_value"], "note": c["verdict_reason"],
                  "paired": paired(candidate, control, r)}
    return out
