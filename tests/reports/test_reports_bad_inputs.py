"""`python -m reports` on bad or odd input (issue 20): a parent folder of runs, a --transfer that is not a
transfer run, a run whose tables are gone but whose trials/*.json remain, planted text in a record."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from reports_fakes import make_fake_records, make_fake_run, make_fake_transfer

import reports
from reports.cli import main


def _one_line(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reports: "), err
    assert "Traceback" not in err and all(n in lines[0] for n in needles), err
    return lines[0]


def _with_ray_files(run_dir):
    """What Ray Tune leaves in a search's directory: one params.json and result.json per trial."""
    for n in range(3):
        trial = run_dir / "ray" / "session-1" / f"trainable_{n:05d}"
        trial.mkdir(parents=True)
        (trial / "params.json").write_text(json.dumps({"muon_lr": 0.01 * (n + 1), "schedule": "cosine"}))
        (trial / "result.json").write_text(json.dumps({"tokens": 1000, "smoothed_loss": 5.0}) + "\n")


def test_a_parent_folder_of_runs_is_refused_not_read_as_records(tmp_path, capsys):
    for name in ("alpha", "beta"):
        _with_ray_files(make_fake_run(tmp_path, 3, name=name))
    _one_line(capsys, main([str(tmp_path / "runs")]), "neither a run directory", "alpha")
    assert not (tmp_path / "runs" / "report").exists()
    assert reports.load_records(tmp_path / "runs").empty


def test_records_beside_a_transfer_run_inside_records_still_load(tmp_path):
    records = make_fake_records(tmp_path)
    make_fake_transfer(records)  # records/runs/transfer: a run's own JSON files are not records
    (records / "runs" / "transfer" / "extra.json").write_text(json.dumps({"id": "not-a-record"}))
    assert sorted(reports.load_records(records)["id"]) == ["cand-close", "cand-fast", "cand-partial", "seed-3.5",
                                                             "seed-4.5", "seed-marathon"]


@pytest.mark.parametrize("what,needle", [
    ("missing", "no such file or directory"),
    ("file", "not a directory"),
    ("search", "not a transfer run"),
    ("empty", "not a transfer run (no transfer.json)"),
    ("promotion", "a promotion run, not a transfer run"),
])
def test_a_transfer_that_is_not_a_transfer_run_is_refused(tmp_path, capsys, what, needle):
    records = make_fake_records(tmp_path)
    given = {"missing": tmp_path / "nonexistent", "file": tmp_path / "a_file", "search": make_fake_run(tmp_path, 3),
             "empty": tmp_path / "empty", "promotion": tmp_path / "promo"}[what]
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "promo").mkdir()
    (tmp_path / "promo" / "settings.json").write_text(json.dumps({"kind": "promotion"}))
    (tmp_path / "promo" / "transfer.json").write_text("{}")
    _one_line(capsys, main([str(records), "--transfer", str(given)]), "--transfer", needle)
    assert not (records / "report").exists()


def test_transfer_with_a_run_directory_is_refused(tmp_path, capsys):
    run_dir = make_fake_run(tmp_path, 3)
    transfer = make_fake_transfer(tmp_path)
    _one_line(capsys, main([str(run_dir), "--transfer", str(transfer)]), "--transfer is for a records directory")


def _tables_to_trial_files(run_dir):
    """Replace a run's tables by the per-trial JSON files search.store writes (trials/<id>.json)."""
    trials = pd.read_parquet(run_dir / "trials.parquet")
    history = pd.read_parquet(run_dir / "history.parquet")
    (run_dir / "trials").mkdir()
    for row in json.loads(trials.to_json(orient="records")):
        record = {k: v for k, v in row.items() if not k.startswith("param_") and k != "reached"}
        record["params"] = {k[6:]: v for k, v in row.items() if k.startswith("param_") and v is not None}
        mine = history[history["trial_id"].astype(str) == str(row["trial_id"])]
        record["history"] = json.loads(mine.drop(columns=["trial_id"]).to_json(orient="records"))
        (run_dir / "trials" / f"{row['trial_id']}.json").write_text(json.dumps(record))
    (run_dir / "trials" / "broken.json").write_text("{half")
    history.to_parquet(run_dir.parent / "history-before.parquet")
    for name in ("trials.parquet", "trials.csv", "history.parquet", "best.json"):
        (run_dir / name).unlink(missing_ok=True)
    return trials


def test_a_run_without_tables_is_read_from_its_trial_files(tmp_path, capsys):
    run_dir = make_fake_run(tmp_path, 5, running=0)
    before = _tables_to_trial_files(run_dir)
    run = reports.load(run_dir)
    assert len(run.trials) == 5 and sorted(run.trials["trial_id"]) == sorted(before["trial_id"].astype(str))
    assert set(run.param_columns) == {c for c in before.columns if c.startswith("param_")}
    history = pd.read_parquet(run_dir.parent / "history-before.parquet")
    assert len(run.history) == len(history) and set(run.history["trial_id"]) <= set(run.trials["trial_id"])
    assert any("read 5 trials from trials/*.json (1 unreadable files skipped)" in n for n in run.notes)
    assert main([str(run_dir)]) == 0, capsys.readouterr().err
    assert "no trials yet" not in (run_dir / "report" / "index.html").read_text()


PLANTED = "<script>alert(1)</script> | <img src=x onerror=alert(2)> [x](javascript:alert(3)) `code` *b*"


def test_leaderboard_markdown_escapes_record_fields(tmp_path):
    records = make_fake_records(tmp_path)
    path = records / "speedrun-4.5" / "cand-fast.json"
    data = json.loads(path.read_text())
    data.update(notes=PLANTED, user=f"[me](https://example.com/a<b) {PLANTED}", date="2025|12<21>",
                verdict="beats_record")
    path.write_text(json.dumps(data))
    (records / "marathon").mkdir()
    (records / "marathon" / "odd.json").write_text(json.dumps({"id": "odd", "track": "odd`track|<b>",
                                                                 "status": "baseline", "val_loss": 3.0}))
    text = reports.leaderboard_markdown(reports.load_records(records))
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert not re.search(r"(?<!\\)\]\(javascript:", text) and "&lt;script&gt;" in text  # no live link
    assert "[me](https://example.com/a%3Cb)" in text  # a user's link stays a link, its URL made safe
    for line in text.splitlines():
        if line.startswith("| "):
            assert len(re.findall(r"(?<!\\)\|", line)) == 7, line  # six cells: no planted pipe ends one early
    assert main([str(records)]) == 0
    written = (records / "report" / "leaderboard.md").read_text()
    assert "<script" not in written and "&lt;script&gt;" in written
    assert "<script>alert" not in (records / "report" / "index.html").read_text()
