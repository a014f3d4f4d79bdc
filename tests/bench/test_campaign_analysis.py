"""bench/campaign_analysis.py on the saved Nov 30 campaign (bench/results/campaign-20261130/run.tar.xz)."""

from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("campaign_analysis", ROOT / "bench" / "campaign_analysis.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_saved_campaign_reads_as_the_results_readme_says(tmp_path):
    with tarfile.open(ROOT / "bench" / "results" / "campaign-20261130" / "run.tar.xz") as tar:
        tar.extractall(tmp_path, filter="data")
    out = tmp_path / "analysis.md"
    assert _module().main([str(tmp_path / "campaign"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "64 finished trials (11 reached the target" in text
    # the newest promotion (third session: every run to all three crossings) is the one read by default
    assert "## Promotion `promote-20261130-091102`" in text
    assert "Every configuration crossed at the same step in 4 of 5 seeds." in text
    assert "| 0 | 559 (23.5 s) | 559 (23.7 s) | 559 (24.1 s) | 559 (24.5 s) | yes |" in text
    # beside the record rule's verdict, the smoothed and validation crossings (cand-1: 0.858x, p 0.0004)
    assert "| cand-1 | not_significant | 0.9631 | 0.3582 | 0.8582 | 0.000376 | 0.9059 | 3.369e-06 |" in text
    assert "| horizon_ratio |" in text and "#0 (record point)" in text
    first = _module().main([str(tmp_path / "campaign"), "--promotion",
                            str(tmp_path / "campaign" / "promote-20261130-060518"), "--out", str(out)])
    assert first == 0 and "| 0 | 559 (23.3 s) | 559 (23.3 s) | 559 (22.8 s) | 559 (22.8 s) | yes |" in out.read_text()


def test_interpolate_is_linear_and_nan_outside():
    interpolate = _module().interpolate
    points = [{"clock_s": 0.0, "y": 10.0}, {"clock_s": 10.0, "y": 6.0}, {"clock_s": 20.0, "y": None}]
    assert interpolate(points, "clock_s", "y", 5.0) == 8.0
    assert interpolate(points, "clock_s", "y", 15.0) != interpolate(points, "clock_s", "y", 15.0)  # NaN
