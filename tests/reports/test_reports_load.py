"""`reports.load` / `reports.load_records`: the on-disk contract, read tolerantly."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from reports_fakes import REPO, make_fake_records, make_fake_run

import reports
from reports import ReportInputError


def test_load_reads_the_documented_files(fake_run):
    run = reports.load(fake_run)
    assert run.kind == "search" and run.notes == [] and run.name == "fake"
    assert run.settings["target"] == 4.5 and run.target == 4.5 and not run.is_budget_track
    assert len(run.trials) == 40 and run.trials["number"].tolist() == list(range(40))
    assert run.trials["reached"].dtype == bool and run.trials["trial_id"].map(type).eq(str).all()
    assert set(run.trials["status"]) == {"completed", "stopped", "diverged", "errored", "running"}
    assert run.param_columns == ["param_muon_lr", "param_adamw_lr", "param_warmup_ratio", "param_schedule",
                                 "param_weight_decay"]
    assert set(run.history["trial_id"]) == set(run.trials["trial_id"]) - {"fake_00003"}
    assert isinstance(run.best, dict) and "command" in run.best


def test_csv_gives_the_same_trials_as_parquet(tmp_path):
    parquet = reports.load(make_fake_run(tmp_path / "a", 16, formats=("parquet",))).trials
    csv = reports.load(make_fake_run(tmp_path / "b", 16, formats=("csv",))).trials
    columns = ["trial_id", "number", "status", "reached", "objective", "param_schedule", "error"]
    pd.testing.assert_frame_equal(parquet[columns], csv[columns])
    assert csv["reached"].dtype == bool


def test_reached_is_inferred_when_not_written(tmp_path):
    run_dir = make_fake_run(tmp_path, 16, formats=("csv",))
    written = reports.load(run_dir).trials
    trials = pd.read_csv(run_dir / "trials.csv").drop(columns=["reached"])
    trials.to_csv(run_dir / "trials.csv", index=False)
    inferred = reports.load(run_dir).trials
    assert inferred["reached"].tolist() == written["reached"].tolist()  # objective < 1e6 (not censored)
    trials.drop(columns=["objective"]).to_csv(run_dir / "trials.csv", index=False)
    by_time = reports.load(run_dir).trials  # no objective either: a time to target by the search rule
    assert by_time["reached"].tolist() == written["time_to_target_smoothed_s"].notna().tolist()


def test_a_half_written_parquet_falls_back_to_csv(tmp_path):
    run_dir = make_fake_run(tmp_path, 12)
    data = (run_dir / "trials.parquet").read_bytes()
    (run_dir / "trials.parquet").write_bytes(data[: len(data) // 2])
    run = reports.load(run_dir)
    assert len(run.trials) == 12
    assert any("trials.parquet could not be read" in n and "trials.csv instead" in n for n in run.notes)


def test_an_unreadable_table_is_a_note_not_an_exception(tmp_path):
    run_dir = make_fake_run(tmp_path, 6, formats=("parquet",))
    (run_dir / "trials.parquet").write_bytes(b"PAR1 not really")
    (run_dir / "history.parquet").write_bytes(b"")
    (run_dir / "best.json").write_text("{ half")
    run = reports.load(run_dir)
    assert run.trials.empty and run.history.empty and run.best is None
    assert len(run.notes) >= 3
    with pytest.raises(ReportInputError, match="no trials yet"):
        reports.write_search_report(run, tmp_path / "out")


def test_load_rejects_what_is_not_a_run(tmp_path):
    with pytest.raises(ReportInputError, match="no such"):
        reports.load(tmp_path / "missing")
    with pytest.raises(ReportInputError, match="not a run directory"):
        reports.load(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ReportInputError, match="not a directory"):
        reports.load(tmp_path / "file.txt")


def test_load_works_without_ray_or_torch(fake_run, tmp_path):
    """A run directory copied to a laptop: importing and reporting must not touch ray or torch."""
    script = textwrap.dedent(f"""
        import importlib.abc, pathlib, sys
        BLOCKED = {{"ray", "torch", "trainer", "search", "spaces", "optuna"}}

        class Block(importlib.abc.MetaPathFinder):  # as if these were not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
                return None

        sys.meta_path.insert(0, Block())
        import reports
        run = reports.load({str(fake_run)!r})
        assert len(run.trials) == 40
        print(reports.make_report(run.path, out=pathlib.Path({str(tmp_path / "out")!r})))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "index.html").exists()


def test_load_records(tmp_path):
    root = make_fake_records(tmp_path)
    (root / "speedrun-4.5" / "broken.json").write_text("{")
    (root / "report").mkdir()
    (root / "report" / "ignored.json").write_text(json.dumps({"id": "x", "track": "speedrun-4.5"}))
    records = reports.load_records(root)
    assert set(records["id"]) == {"seed-4.5", "seed-3.5", "seed-marathon", "cand-fast", "cand-close", "cand-partial"}
    assert set(reports.RECORD_COLUMNS) <= set(records.columns)
    by_id = records.set_index("id")
    assert by_id.loc["seed-4.5", "status"] == "baseline" and by_id.loc["seed-4.5", "time_s"] == 182
    assert by_id.loc["cand-fast", "time_s"] == pytest.approx(150.333, abs=1e-3)
    assert by_id.loc["cand-fast", "n_seeds"] == 3 and by_id.loc["cand-fast", "verdict"] == "beats_record"
    assert by_id.loc["cand-partial", "time_s"] == 160.0  # from its results alone
    assert by_id.loc["seed-marathon", "val_loss"] == pytest.approx(3.194)
    assert any("broken.json" in n for n in records.attrs["notes"])


def test_load_records_of_an_empty_or_missing_directory(tmp_path):
    assert reports.load_records(tmp_path).empty
    with pytest.raises(ReportInputError):
        reports.load_records(tmp_path / "nope")
