"""search.verdicts: Welch's test's guards, the verdict with censoring, budget tracks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from search.verdicts import compare, group_summary, welch_one_sided

# ----------------------------------------------------------------------------------------------------------
# Welch's test: the guards scipy does not have


def test_welch_needs_two_values_and_handles_no_variance():
    with pytest.raises(ValueError):
        welch_one_sided([1.0], [2.0, 3.0])
    t, df, p = welch_one_sided([1.0, 1.0], [2.0, 2.0])  # no variance: no test
    assert t == -math.inf and math.isnan(df) and math.isnan(p)


# ----------------------------------------------------------------------------------------------------------
# The verdict


def _seed(seed: int, first: float | None, smoothed: float | None = None, *, status: str = "reached",
          clock: float = 500.0) -> dict[str, Any]:
    out: dict[str, Any] = {"seed": seed, "status": status, "clock_s": clock, "final_val_loss": 4.0, "val_loss": 4.2}
    for rule, t in (("first_step", first), ("smoothed", smoothed), ("val", None)):
        out[f"time_to_target_{rule}_s"] = t
        out[f"tokens_to_target_{rule}"] = None if t is None else int(t * 1000)
    return out


def test_verdict_beats_record_with_known_p():
    cand = [_seed(i, t, t + 20) for i, t in enumerate([150.0, 152.0, 149.0])]
    ctrl = [_seed(i, t, t + 20) for i, t in enumerate([180.0, 184.0, 182.0])]
    v = compare(cand, ctrl, "first_step", False, 0.05)
    ref = stats.ttest_ind([150, 152, 149], [180, 184, 182], equal_var=False, alternative="less")
    assert v["verdict"] == "beats_record"
    assert v["p_value"] == pytest.approx(float(ref.pvalue), rel=1e-8)
    assert v["relative_to_control"] == pytest.approx(np.mean([150, 152, 149]) / np.mean([180, 184, 182]))


def test_verdict_not_significant_when_close_and_alpha_matters():
    cand = [_seed(i, t) for i, t in enumerate([178.0, 190.0, 175.0])]
    ctrl = [_seed(i, t) for i, t in enumerate([182.0, 181.0, 183.0])]
    v = compare(cand, ctrl, "first_step", False, 0.05)
    p = float(stats.ttest_ind([178, 190, 175], [182, 181, 183], equal_var=False, alternative="less").pvalue)
    assert v["verdict"] == "not_significant" and v["p_value"] == pytest.approx(p, rel=1e-8)
    assert compare(cand, ctrl, "first_step", False, min(0.99, p * 1.01))["verdict"] == "beats_record"


def test_censoring_candidate_that_never_reaches_fails_control_enters_at_its_clock():
    ctrl = [_seed(i, t) for i, t in enumerate([180.0, 184.0, 182.0])]
    cand = [_seed(0, 100.0), _seed(1, 101.0), _seed(2, None, status="budget_exhausted")]
    v = compare(cand, ctrl, "first_step", False, 0.05)
    assert v["verdict"] == "not_significant" and v["p_value"] is None and "1 of 3 candidate seeds" in v["verdict_reason"]
    # a control seed that never reached counts at its whole clocked time (a lower bound): conservative
    cand = [_seed(i, t) for i, t in enumerate([150.0, 152.0, 149.0])]
    ctrl = [_seed(0, 180.0), _seed(1, 184.0), _seed(2, None, status="budget_exhausted", clock=190.0)]
    v = compare(cand, ctrl, "first_step", False, 0.05)
    ref = stats.ttest_ind([150, 152, 149], [180, 184, 190], equal_var=False, alternative="less")
    assert v["p_value"] == pytest.approx(float(ref.pvalue), rel=1e-8) and v["verdict"] == "beats_record"
    assert "1 control seeds never reached" in v["verdict_reason"]


def test_verdict_on_a_budget_track_uses_val_loss_and_one_seed_has_no_test():
    cand = [{**_seed(i, None, status="budget_exhausted"), "final_val_loss": x} for i, x in enumerate([3.10, 3.11, 3.09])]
    ctrl = [{**_seed(i, None, status="budget_exhausted"), "final_val_loss": x} for i, x in enumerate([3.20, 3.22, 3.21])]
    assert compare(cand, ctrl, "first_step", True, 0.05)["verdict"] == "beats_record"
    assert group_summary(cand, "first_step", True)["val_loss"] == pytest.approx(3.10)
    one = compare(cand[:1], ctrl[:1], "first_step", False, 0.05)
    assert one["verdict"] == "not_significant" and one["p_value"] is None




def test_paired_compares_seed_by_seed_and_counts_equal_crossing_steps():
    from search.verdicts import paired

    def run(seed, t, step):
        return {"seed": seed, "time_to_target_first_step_s": t,
                "crossings": {"first_step": {"step": step, "time_s": t}}}

    control = [run(0, 20.0, 500), run(1, 15.0, 370), run(2, 25.0, 600), {"seed": 3}]
    candidate = [run(2, 24.0, 580), run(0, 19.5, 500), run(1, 14.0, 350), run(3, 9.0, 10)]
    out = paired(candidate, control, "first_step")
    # seed 3: the control never reached, so it is left out; the rest are matched by seed, not by position
    assert out["n"] == 3 and out["mean_diff_s"] == pytest.approx((-1.0 - 0.5 - 1.0) / 3)
    assert out["same_step"] == 1 and out["n_steps"] == 3
    assert 0.0 < out["p_value"] < 0.05
    # identical differences have no spread: no p-value
    assert paired([run(0, 19.0, 1), run(1, 14.0, 1)], control, "first_step")["p_value"] is None
