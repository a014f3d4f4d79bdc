"""search.pairs: a run's seed result, from its worker's file or from Ray's last metrics."""

from __future__ import annotations

import pytest

from search import pairs


def test_seed_result_reads_crossings_val_at_crossing_and_downsamples():
    history = [{"step": s, "tokens": 512 * s, "train_loss": 10 - s / 200, "smoothed_loss": 10.2 - s / 200,
                "clock_s": 0.1 * s} for s in range(1, 1001)]
    val_history = [{"step": s, "tokens": 512 * s, "val_loss": 10 - s / 210, "clock_s": 0.1 * s}
                   for s in (0, 250, 500, 750, 1000)]
    crossings = {"first_step": {"step": 600, "tokens": 307_200, "time_s": 60.0, "loss": 7.0},
                 "smoothed": {"step": 640, "tokens": 327_680, "time_s": 64.0, "loss": 7.0}, "val": None}
    result = {"status": "budget_exhausted", "crossings": crossings, "steps": 1000, "tokens": 512_000,
              "clock_s": 100.0, "final_train_loss": 5.0, "final_smoothed_loss": 5.2, "final_val_loss": 5.24,
              "best_val_loss": 5.24, "tokens_per_s": 5120.0, "startup_s": 3.0, "device": "cpu",
              "history": history, "val_history": val_history}
    r = pairs.seed_result(7, {"result": result, "env": {"torch": "x"}}, {}, "", "first_step")
    assert r["seed"] == 7 and r["reached"] and r["time_to_target_s"] == 60.0 and r["tokens_to_target"] == 307_200
    assert r["steps_to_target"] == 600 and r["time_to_target_smoothed_s"] == 64.0 and r["time_to_target_val_s"] is None
    assert r["val_loss"] == pytest.approx(10 - 750 / 210) and r["val_loss_tokens"] == 512 * 750  # first eval after
    curve = r["loss_curve"]
    assert len(curve["tokens"]) == pairs.CURVE_POINTS and curve["step"][0] == 1 and curve["step"][-1] == 1000
    assert curve["tokens"] == sorted(curve["tokens"])
    # without the worker's file: Ray's last metrics, no curves
    metrics = {"final": True, "status": "reached", "step": 5, "tokens": 2560, "clock_s": 1.0,
               "time_to_target_first_step_s": 0.8, "tokens_to_target_first_step": 2048, "val_loss": 7.0}
    r = pairs.seed_result(1, None, metrics, "", "first_step")
    assert r["reached"] and r["time_to_target_s"] == 0.8 and r["loss_curve"]["tokens"] == []
    assert pairs.seed_result(1, None, {}, "boom", "first_step")["status"] == "errored"
