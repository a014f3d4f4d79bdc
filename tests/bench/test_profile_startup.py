import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_profile_startup_times_every_step_on_the_cpu(tmp_path):
    out = tmp_path / "p.json"
    proc = subprocess.run([sys.executable, "bench/profile_startup.py", "--out", str(out), "--track", "tiny-speedrun",
                           "--set", "device=cpu"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    steps = data["steps_s"]
    assert list(steps)[:3] == ["import torch", "import trainer", "build model (CPU)"]
    assert "warm-up step 1 (compile)" in steps and "build model on the device (alternative)" in steps
    assert all(v >= 0 for v in steps.values())
    assert data["process_total_s"] >= sum(steps.values()) * 0.99  # the steps are inside the process's time
    assert "warm-up step 1 (compile)" in proc.stdout
