import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("same_answer", Path(__file__).parents[2] / "bench" / "same_answer.py")
same_answer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(same_answer)


def _hist(losses, tokens_per_step=100):
    return [{"step": i + 1, "tokens": (i + 1) * tokens_per_step, "train_loss": x} for i, x in enumerate(losses)]


def test_compare_takes_the_first_step_at_each_mark_and_the_window_mean():
    fast = _hist([5.0, 4.0, 3.0, 2.0])
    ref = _hist([5.0, 4.1, 3.02, 2.2])
    out = same_answer.compare(fast, ref, marks=[150, 400], window=2, tolerance=0.05)
    first, last = out["marks"]
    assert first["step"] == 2 and first["diff"] == pytest.approx(-0.1)
    assert first["mean_diff"] == pytest.approx(-0.05)  # mean of steps 1-2
    assert last["step"] == 4 and last["window_steps"] == 2 and last["mean_diff"] == pytest.approx(-0.11)
    assert out["pass"] is False
    assert same_answer.compare(fast, fast, marks=[150, 400], window=2, tolerance=0.05)["pass"] is True


def test_a_mark_beyond_the_runs_fails_the_check():
    out = same_answer.compare(_hist([5.0]), _hist([5.0]), marks=[10_000], window=3, tolerance=0.05)
    assert out["pass"] is False and "error" in out["marks"][0]


def test_a_saved_run_is_read_only_for_its_own_track_and_seed(tmp_path):
    import json

    (tmp_path / "result.json").write_text(json.dumps({"track": "speedrun-4.5", "config": {"hp": {"seed": 0}},
                                                       "history": _hist([5.0]), "final_val_loss": 4.9}))
    assert same_answer.saved_run(tmp_path, "speedrun-4.5", 0)["final_val_loss"] == 4.9
    with pytest.raises(SystemExit, match="seed 0; this check is track speedrun-4.5, seed 1"):
        same_answer.saved_run(tmp_path, "speedrun-4.5", 1)
    with pytest.raises(SystemExit, match="no result.json"):
        same_answer.saved_run(tmp_path / "missing", "speedrun-4.5", 0)


def test_the_fast_path_runs_through_sdpa_run_with_the_backends_named(tmp_path):
    import json
    import subprocess
    import sys

    root = Path(__file__).parents[2]
    proc = subprocess.run([sys.executable, "bench/same_answer.py", "--out", str(tmp_path), "--track", "tiny-speedrun",
                           "--marks", "8192", "--tokens", "8192", "--window", "2", "--sdpa-off", "cudnn"],
                          cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    fast, ref = ((tmp_path / f"{n}.log").read_text().splitlines()[0] for n in ("fast", "reference"))
    assert "bench/sdpa_run.py cudnn --quiet" in fast and "-m trainer" not in fast
    assert " -m trainer --quiet" in ref and "sdpa_run" not in ref
    assert json.loads((tmp_path / "summary.json").read_text())["runs"]["fast"]["tokens"] >= 8192
