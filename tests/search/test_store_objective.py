import json

import pytest

from search.objective import CENSORED, describe, objective
from search.store import TrialStore


def test_objective_is_time_when_reached_else_censored_by_loss():
    m = {"time_to_target_smoothed_s": 12.5, "smoothed_loss": 4.4}
    assert objective(m, "smoothed", 4.5) == 12.5
    slow = objective({"time_to_target_smoothed_s": None, "smoothed_loss": 4.9}, "smoothed", 4.5)
    worse = objective({"time_to_target_smoothed_s": float("nan"), "smoothed_loss": 5.3}, "smoothed", 4.5)
    assert CENSORED < slow < worse
    assert slow == pytest.approx(CENSORED + 4.9)
    assert objective({"val_loss": float("nan")}, "val", 4.5) == CENSORED + 1e3  # diverged: behind every loss
    assert objective({"val_loss": 3.2}, "val", None) == 3.2  # budget track: the validation loss


def _rec(i, status, obj, **kw):
    return {"trial_id": f"t{i}", "number": i, "status": status, "objective": obj, "params": {"muon_lr": 0.01 * i},
            "history": [{"tokens": 100, "smoothed_loss": 5.0}], **kw}


@pytest.mark.parametrize("target,reached", [(4.5, [True, False]), (None, [False, False])])
def test_tables_reached_and_best(tmp_path, target, reached):
    (tmp_path / "settings.json").write_text(json.dumps({"target": target}))
    store = TrialStore(tmp_path)
    store.write_trial(_rec(1, "completed", 30.0 if target else 3.1))
    store.write_trial(_rec(2, "stopped", CENSORED + 5.0 if target else 3.5))
    store.write_trial(_rec(3, "errored", None, error="boom"))
    store.write_trial(_rec(4, "running", None))
    trials = store.write_tables()
    assert list(trials.number) == [1, 2, 3, 4] and "param_muon_lr" in trials
    assert list(trials.reached[:2]) == reached
    assert [r["trial_id"] for r in store.finished()] == ["t1", "t2", "t3"]
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["trial_id"] == "t1" and best["reached"] == bool(target)
    assert (tmp_path / "trials.csv").exists() and (tmp_path / "history.parquet").exists()


def test_clocked_share_is_the_union_of_spans_inside_the_window():
    from search.store import clocked_share

    # overlapping spans count once; a span before the window is clipped away, one across its end is clipped
    spans = [(10.0, 20.0), (15.0, 25.0), (30.0, 40.0), (-5.0, 0.0), (95.0, 130.0)]
    share = clocked_share(spans, 0.0, 100.0)
    assert share["clocked_s"] == pytest.approx(15 + 10 + 5)
    assert share["fraction"] == pytest.approx(0.30)
    assert share["fraction_after_first_clock"] == pytest.approx(30 / 90)
    assert clocked_share([], 0.0, 1.0) is None


def test_describe_shows_seconds_or_the_censored_loss():
    assert describe(31.456, True) == "31.46 s"
    assert describe(CENSORED + 4.81234, True) == "not reached (loss 4.812)"
    assert describe(CENSORED + 1e3, True) == "not reached (no finite loss)"
    assert describe(3.65, False) == "3.6500" and describe(CENSORED, False) == "no finite val loss"
    assert describe(None, True) == describe(float("nan"), False) == "-"


def test_utilisation_has_each_gpus_own_share(tmp_path):
    """A GPU that sat idle shows in the per-GPU shares, which the union of all clocks hides."""
    import json

    import pandas as pd

    from search.summary import record_share as _record_share

    trials = pd.DataFrame({"clock_started_at": [0.0, 50.0, 10.0, 90.0], "clock_ended_at": [50.0, 100.0, 30.0, 99.0],
                           "cuda_visible_devices": ["0", "0", "1", "1"],
                           "status": ["completed", "stopped", "stopped", "interrupted"]})
    share = _record_share(tmp_path, trials, "session-1", 0.0, 100.0)
    assert share["fraction"] == 1.0 and share["per_gpu"] == {"0": 1.0, "1": 0.29}
    # throughput: 3 trials finished in 100 s (the interrupted one does not count) on 2 GPUs
    assert (share["trials"], share["trials_per_hour"], share["gpus"], share["trials_per_gpu_hour"]) == (3, 108.0, 2, 54.0)
    saved = json.loads((tmp_path / "utilisation.json").read_text())
    assert saved[-1]["per_gpu"] == {"0": 1.0, "1": 0.29}
    # GPU 1's own first clock is at 10 s: its share of the 90 s after that
    assert saved[-1]["per_gpu_after_first_clock"] == {"0": 1.0, "1": round(29 / 90, 4)}
    assert saved[-1]["trials_per_gpu_hour"] == 54.0


def test_sessions_are_read_back_and_a_bad_file_reads_as_none(tmp_path):
    """Session numbers come from utilisation.json too (Ray's state may be elsewhere or left behind)."""
    import pandas as pd

    from search.summary import read_sessions, record_share

    assert read_sessions(tmp_path) == []
    trials = pd.DataFrame({"clock_started_at": [0.0], "clock_ended_at": [10.0], "cuda_visible_devices": ["0"]})
    record_share(tmp_path, trials, "session-1", 0.0, 20.0)
    record_share(tmp_path, trials, "session-2", 0.0, 20.0)
    assert [s["session"] for s in read_sessions(tmp_path)] == ["session-1", "session-2"]
    (tmp_path / "utilisation.json").write_text("{not json")
    assert read_sessions(tmp_path) == []
