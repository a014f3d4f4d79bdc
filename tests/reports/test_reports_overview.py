"""The overview page (index.html): what a search or promotion directory holds, in words and tables."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from reports_fakes import MAX_T, RUNGS, SECONDS_ASHA, make_fake_run

import reports


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


def _interrupt(run_dir: Path, rerun_as: dict[int, int | None], *, column: bool = True) -> None:
    """Mark trials interrupted, as a search stopped and resumed leaves them (the reruns get new numbers)."""
    trials = pd.read_parquet(run_dir / "trials.parquet")
    for number, rerun in rerun_as.items():
        trials.loc[trials["number"] == number, "status"] = "interrupted"
        if column:
            trials.loc[trials["number"] == number, "rerun_as"] = rerun
    trials.to_parquet(run_dir / "trials.parquet", index=False)
    (run_dir / "trials.csv").unlink()


def test_interrupted_trials_are_counted_apart_from_the_plan(tmp_path):
    # 15 trials for a plan of 12: 4 and 6 were interrupted and rerun as 12 and 13, 14 was cut by the last stop
    run_dir = make_fake_run(tmp_path, 15, running=0, settings_overrides={"num_trials": 12})
    _interrupt(run_dir, {4: 12, 6: 13, 14: None})
    text = overview(run_dir)
    assert "15 of 12" not in text
    assert "12 finished of 12" in text
    assert ("3 interrupted by a stop of the search (trials 4, 6 rerun on --resume as 12, 13; trial 14 not rerun "
            "yet)") in text
    finished = [m for m in re.findall(r"(\d+) (completed|stopped|diverged|errored)", text)]
    assert sum(int(n) for n, _ in finished) == 12
    # written before rerun_as: the numbers alone
    run_dir = make_fake_run(tmp_path / "old", 13, running=0, settings_overrides={"num_trials": 12})
    _interrupt(run_dir, {2: None}, column=False)
    assert "12 finished of 12" in (text := overview(run_dir)) and "1 interrupted by a stop of the search (trial 2)" in text


def test_trial_count_without_interrupted_trials_is_unchanged(tmp_path):
    text = overview(make_fake_run(tmp_path, 10, running=2))
    assert "trials 10 of 10" in text
