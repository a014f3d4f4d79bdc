"""``python -m trainer`` as a user runs it: a fresh clone without a corpus, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_no_corpus_and_no_hub_fails_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "cwd").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BLUEBERRY_DATA": str(tmp_path / "empty"),
           "BLUEBERRY_CACHE": str(tmp_path / "cache"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "trainer", "--track", "speedrun-4.5", "--set", "device=cpu"],
                          cwd=tmp_path / "cwd", env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: no training data: no offline corpus")
    for part in ("BLUEBERRY_DATA", "--data", "network", "python -m trainer.prepare"):
        assert part in lines[0]
    assert "Traceback" not in proc.stderr
