"""`python -m reports ...` as a user runs it: output files, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from reports_fakes import REPO, make_fake_records, make_fake_run, make_fake_transfer, settings

SEARCH_PAGES = ["index.html", "history.html", "curves.html", "parallel.html", "importance.html", "slice.html",
                "time_to_target.html", "trials.html"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "reports", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reports: "), result.stderr
    for word in words:
        assert word in lines[0]


def test_search_report_is_written_offline(fake_run):
    result = run_cli(fake_run)
    assert result.returncode == 0, result.stderr
    index = Path(result.stdout.strip().splitlines()[-1])
    assert index == fake_run / "report" / "index.html" and index.exists()
    report = index.parent
    assert sorted(p.name for p in report.iterdir()) == sorted([*SEARCH_PAGES, "plotly.min.js"])
    assert (report / "plotly.min.js").stat().st_size > 1_000_000
    for name in SEARCH_PAGES:
        text = (report / name).read_text()
        assert "cdn.plot.ly" not in text and "https://cdn" not in text
        assert text.count("plotly.min.js") <= 2  # a <script src> and the note saying it is missing
        for other in SEARCH_PAGES:
            assert f'href="{other}"' in text  # every page links every page
    assert '<script src="plotly.min.js"></script>' in (report / "history.html").read_text()
    # regenerating (a search still running) replaces the pages in place and leaves no temporary files
    assert run_cli(fake_run).returncode == 0
    assert not [p for p in report.iterdir() if p.name.startswith(".")]


def test_report_of_a_run_with_a_half_written_parquet_and_no_history(tmp_path):
    run_dir = make_fake_run(tmp_path, 10, history=False, best=False)
    (run_dir / "trials.parquet").write_bytes((run_dir / "trials.parquet").read_bytes()[:100])
    result = run_cli(run_dir)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    curves = (run_dir / "report" / "curves.html").read_text()
    assert "No trial has reported a loss yet" in curves
    assert "trials.csv instead" in (run_dir / "report" / "index.html").read_text()


def test_a_run_with_only_failed_trials_gets_a_report_that_says_so(tmp_path):
    run_dir = tmp_path / "failed"
    run_dir.mkdir()
    (run_dir / "settings.json").write_text(json.dumps(settings("failed", 3)))
    pd.DataFrame({"trial_id": ["a", "b", "c"], "number": [0, 1, 2], "status": ["errored", "errored", "diverged"],
                  "param_muon_lr": [0.5, 0.9, 0.7], "objective": [float("nan")] * 3, "reached": [False] * 3,
                  "error": ["ValueError: bad", "RuntimeError: CUDA out of memory", "loss became nan"]}
                 ).to_csv(run_dir / "trials.csv", index=False)
    result = run_cli(run_dir)
    assert result.returncode == 0, result.stderr
    index = (run_dir / "report" / "index.html").read_text()
    assert "All 3 trials failed" in index
    assert "CUDA out of memory" in (run_dir / "report" / "trials.html").read_text()


def test_missing_path(tmp_path):
    assert_one_line_error(run_cli(tmp_path / "nope"), "no such file or directory")


def test_a_file_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_error(run_cli(tmp_path / "notes.txt"), "not a directory")


def test_a_directory_that_is_not_a_run(tmp_path):
    assert_one_line_error(run_cli(tmp_path), "neither a run directory")


def test_the_runs_folder_names_a_run_to_give(tmp_path):
    make_fake_run(tmp_path, 4, name="alpha")
    assert_one_line_error(run_cli(tmp_path / "runs"), "alpha")


def test_an_empty_run(tmp_path):
    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    (run_dir / "settings.json").write_text(json.dumps(settings("empty", 8)))
    assert_one_line_error(run_cli(run_dir), "no trials yet")
    (run_dir / "trials.csv").write_text("trial_id,number,status\n")
    assert_one_line_error(run_cli(run_dir), "no trials yet")
    (run_dir / "trials.csv").unlink()
    (run_dir / "trials.parquet").write_bytes(b"PAR1 half written")  # a search writing its first table
    assert_one_line_error(run_cli(run_dir), "no trials yet", "trials.parquet could not be read")


def test_records_leaderboard_and_transfer(tmp_path):
    records = make_fake_records(tmp_path)
    make_fake_transfer(tmp_path)  # tmp_path/runs/transfer, beside records/
    result = run_cli(records, "--markdown")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == str(records / "report" / "index.html")  # the page to open comes last
    assert "| # | Date | Time | Tokens Used | User | Notes |" in result.stdout
    report = records / "report"
    assert {"index.html", "transfer.html", "leaderboard.md", "plotly.min.js"} <= {p.name for p in report.iterdir()}
    index = (report / "index.html").read_text()
    assert "Fastest To 4.5 Train Loss" in index and "not_significant" in index and 'href="transfer.html"' in index
    # the report folder inside records/ is not read back as records
    assert run_cli(records).returncode == 0


def test_transfers_at_several_lengths(tmp_path):
    records = make_fake_records(tmp_path)
    for name, tokens, rho in (("long", 60_000_000, 0.8), ("short", 6_000_000, 0.4), ("mid", 18_000_000, 0.6)):
        make_fake_transfer(tmp_path, name, budget_tokens=tokens, spearman=rho)
    result = run_cli(records)
    assert result.returncode == 0, result.stderr
    page = (records / "report" / "transfer.html").read_text()
    assert "Correlation against length" in page and "60,000,000" in page
    assert "0.40 [-0.60, 1.00]" in page  # the coefficient with its interval
    # the runs follow their length, shortest first; each with its knob table, largest effect first
    assert page.index("<h2>short") < page.index("<h2>mid") < page.index("<h2>long")
    assert page.count("Which knobs helped") == 3
    assert page.index(">warmup_ratio<") < page.index(">muon_lr<")
    assert "knob_effects.muon_lr" not in page  # not dumped as statistics
    # the file's statistics are shown, so nothing is recomputed from the ranks; the old fake has no knob table
    assert "computed here from the ranks" not in page
    make_fake_transfer(tmp_path, "old")
    assert run_cli(records).returncode == 0
    page = (records / "report" / "transfer.html").read_text()
    assert page.count("Which knobs helped") == 3 and "computed here from the ranks" not in page


def test_one_length_has_no_length_plot(tmp_path):
    records = make_fake_records(tmp_path)
    make_fake_transfer(tmp_path, "a", budget_tokens=6_000_000)
    make_fake_transfer(tmp_path, "b")  # no budget known
    assert run_cli(records).returncode == 0
    assert "Correlation against length" not in (records / "report" / "transfer.html").read_text()


def test_records_without_transfer_have_no_transfer_page(tmp_path):
    records = make_fake_records(tmp_path)
    assert run_cli(records).returncode == 0
    assert not (records / "report" / "transfer.html").exists()
    assert "transfer.html" not in (records / "report" / "index.html").read_text()


def test_a_transfer_run(tmp_path):
    run_dir = make_fake_transfer(tmp_path)
    result = run_cli(run_dir)
    assert result.returncode == 0, result.stderr
    assert "Rank change" in (run_dir / "report" / "index.html").read_text()


def test_a_report_folder_that_cannot_be_made(tmp_path):
    run_dir = make_fake_run(tmp_path, 4)
    (tmp_path / "a_file").write_text("x")
    assert_one_line_error(run_cli(run_dir, "--out", tmp_path / "a_file" / "report"), "cannot write")
