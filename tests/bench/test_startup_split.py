import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_startup_split_times_the_trainers_own_path_on_the_cpu(tmp_path):
    out = tmp_path / "s.json"
    proc = subprocess.run([sys.executable, "bench/startup_split.py", "--out", str(out), "--track", "tiny-speedrun",
                           "--set", "device=cpu", "--set", "max_tokens=8192"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    spans = data["span_totals_s"]
    # no compile on the CPU by default: no compile-stack thread, no CUDA graphs, nothing in the compile cache
    assert {"load tokens", "build shape (model, val windows, compile wrappers)", "evaluate",
            "train step 1", "train step 2", "train step 3"} <= set(spans)
    assert all(v >= 0 for v in spans.values()) and data["compile_cache"] == {}
    assert data["startup_s"] > 0 and set(data["startup_phases"]) >= {"before_train", "data", "warmup"}


def test_scaling_summary_reproduces_the_saved_figures():
    proc = subprocess.run([sys.executable, "bench/scaling_summary.py", "bench/results/scaling-nov30d"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (ROOT / "bench/results/scaling-nov30d/summary.txt").read_text()
    assert "2.00x" in proc.stdout and "0.543x" in proc.stdout


def test_nov30e_summary_reproduces_the_saved_figures():
    proc = subprocess.run([sys.executable, "bench/nov30e_summary.py", "bench/results"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (ROOT / "bench/results/nov30e-summary.txt").read_text()
    assert "index: 9.91, 9.57, 10.40 s (median 9.91)" in proc.stdout and "0.591x" in proc.stdout
