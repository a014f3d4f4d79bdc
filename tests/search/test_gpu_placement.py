"""One trial per GPU: on a Ray cluster that advertises 2 GPUs, 2 concurrent trials get 2 distinct devices.

The GPUs are Ray resources only (this machine has none): Ray still assigns each trial its own GPU id and sets
CUDA_VISIBLE_DEVICES for it, which is what the trials record. It also exercises ``--address``.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pandas as pd
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_concurrent_trials_get_distinct_gpus(tmp_path):
    ray_bin = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    port = _free_port()
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    env = {**os.environ, "BLUEBERRY_CACHE": str(tmp_path / "cache"), "RAY_AUTH_MODE": "disabled"}
    start = subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=2",
                            "--include-dashboard=false", f"--temp-dir={ray_tmp}"],
                           capture_output=True, text=True, env=env, timeout=120)
    if start.returncode != 0:
        pytest.skip(f"could not start a local Ray cluster: {start.stderr.strip().splitlines()[-1:]}")
    try:
        p = subprocess.run([sys.executable, "-m", "search.run", "--space", "lr_sched", "--address",
                            f"127.0.0.1:{port}", "--runs-dir", str(tmp_path / "runs"), "--name", "g",
                            "--num-trials", "2", "--set", "max_tokens=2048", "--grace-period", "1024",
                            "--max-t", "2048", "--quiet"], capture_output=True, text=True, env=env, timeout=600,
                           cwd=tmp_path)
        assert p.returncode == 0, p.stderr[-3000:]
        trials = pd.read_parquet(tmp_path / "runs" / "g" / "trials.parquet")
        assert len(trials) == 2
        assert sorted(trials.cuda_visible_devices.astype(str)) == ["0", "1"]
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(ray_tmp, ignore_errors=True)
