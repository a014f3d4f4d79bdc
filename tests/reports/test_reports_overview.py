"""The overview page (index.html): what a search or promotion directory holds, in words and tables."""

from __future__ import annotations

import re
from pathlib import Path

from reports_fakes import MAX_T, RUNGS, make_fake_run

import reports

SECONDS_ASHA = {"unit": "seconds", "time_attr": "clock_s", "metric": "smoothed_loss", "grace_period": 30.0,
                "reduction_factor": 2.0, "max_t": 240.0, "rungs": [30, 60, 120]}


def overview(run_dir: Path) -> str:
    """The overview's text with the tags taken out (entities kept)."""
    index = reports.make_report(run_dir, run_dir / "report")
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", index.read_text()))


def test_rungs_are_named_in_the_unit_settings_give(tmp_path):
    text = overview(make_fake_run(tmp_path / "s", 8, settings_overrides={"asha": SECONDS_ASHA}))
    assert "ASHA rungs (clocked seconds) 30, 60, 120" in text and "rungs (tokens)" not in text
    # a run from before asha.unit: its rungs are tokens
    text = overview(make_fake_run(tmp_path / "t", 8))
    assert f"ASHA rungs (tokens) {RUNGS[0]:,}" in text
    tokens = {"grace_period": RUNGS[0], "reduction_factor": 2, "max_t": MAX_T, "rungs": RUNGS, "unit": "tokens"}
    assert "ASHA rungs (tokens)" in overview(make_fake_run(tmp_path / "u", 8, settings_overrides={"asha": tokens}))
