"""search.promote: plans, the CLI's bad input, and one real promotion through Ray on CPU.

The end-to-end promotion (a fake search run on tiny-speedrun, top 1, 2 seeds, runs of 1,024 tokens) runs once
per module and is shared by the tests that read its outputs; a second promotion of the same run is `slow`.
``--resume`` is tested on a copy of that promotion with some results deleted, ``--time-budget-s`` with a
budget too short for every run.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from search import promotion
from search.promote import main, make_plan
from search.records import current_record
from search.trials import PROMOTABLE
from trainer.config import ConfigError, RunConfig, make_config, parse_set

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--set", "max_tokens=1024", "--set", "seq_len=64", "--set", "micro_batch_size=8", "--set", "device=cpu"]


# ----------------------------------------------------------------------------------------------------------
# A fake search run in the documented format (docs/run_directory.md)


def make_search_run(root: Path, *, statuses: tuple[str, ...] | None = None) -> Path:
    run = root / "runs" / "fake-search"
    run.mkdir(parents=True)
    settings = {"kind": "search", "name": "fake-search", "space": "lr_sched", "track": "tiny-speedrun",
                "preset": "tiny", "data": None, "objective": "smoothed", "target": 7.5, "num_trials": 5, "seed": 0,
                "sampler": "tpe", "set": {"max_tokens": "4096", "eval_every_tokens": "1000000"},
                "record_params": {"muon_lr": 0.02, "adamw_lr": 0.01, "warmup_ratio": 0.0, "schedule": "constant"}}
    (run / "settings.json").write_text(json.dumps(settings))
    trials = [  # (status, objective, muon_lr, schedule, micro_batch_size)
        ("completed", 12.0, 0.02, "constant", 4),       # the record's point
        ("completed", 9.0, 0.03, "cosine", 4),          # the best
        ("completed", 9.0, 0.03, "cosine", 4),          # the same configuration again: promoted once
        ("stopped", 1e6 + 7.9, 0.01, "constant", 4),    # censored: behind every trial that reached
        ("errored", None, 0.05, "linear", 4),           # never promoted
        ("completed", 10.0, 0.025, "constant", 8),      # an int column stored as float (below)
    ]
    rows = []
    for i, (status, objective, lr, schedule, micro) in enumerate(trials):
        if statuses is not None:
            status = statuses[i]
        rows.append({"trial_id": f"t{i:02d}", "number": i, "status": status, "objective": objective,
                     "reached": objective is not None and objective < 1e6, "param_muon_lr": lr,
                     "param_adamw_lr": 0.01, "param_warmup_ratio": 0.0, "param_schedule": schedule,
                     "param_min_lr_ratio": 0.1 if schedule != "constant" else np.nan,
                     "param_micro_batch_size": float(micro), "param_effective_batch": micro,
                     "tokens": 4096, "steps": 8, "clock_s": 3.0, "error": ""})
    pd.DataFrame(rows).to_parquet(run / "trials.parquet", index=False)
    return run


# ----------------------------------------------------------------------------------------------------------
# Plans, records, baselines


def test_plan_takes_the_top_distinct_trials_and_the_track_defaults_as_control(tmp_path, caplog):
    caplog.set_level("INFO", logger="search.promote")
    caplog.set_level("INFO", logger="search.trials")
    run = make_search_run(tmp_path)
    plan = make_plan(run, top=3, seeds=[0, 1], overrides={"device": "cpu"}, records_dir=tmp_path / "records",
                     control_record=None)
    labels = [(j.label, j.source.get("trial_id")) for j in plan.jobs]
    # t00 has the control's settings (the record's point): not a candidate, so the censored t03 comes third
    assert labels == [("control", None), ("cand-1", "t01"), ("cand-2", "t05"), ("cand-3", "t03")]
    cand1, cand2, cand3 = (j.config for j in plan.jobs[1:])
    assert cand1.hp.muon_lr == 0.03 and cand1.hp.schedule == "cosine" and cand1.hp.min_lr_ratio == 0.1
    assert cand2.hp.micro_batch_size == 8 and isinstance(cand2.hp.micro_batch_size, int)
    control = plan.jobs[0].config
    assert control.hp == make_config("tiny-speedrun").hp
    assert "trial 0 has the control's settings" in caplog.text
    for job in plan.jobs:  # full runs: every crossing, the track's cap (the search's max_tokens not carried)
        assert job.config.stop_rule == "all" and job.config.max_tokens == job.config.track.max_tokens
        assert job.config.runtime.device == "cpu" and job.config.eval_every_tokens == 1_000_000
    assert plan.not_carried == ["max_tokens"]


def test_control_is_the_best_accepted_record(tmp_path):
    records = tmp_path / "records"
    base = make_config("tiny-speedrun")

    def write(name: str, **fields: Any) -> None:
        path = records / "tiny-speedrun" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        hp = {**base.to_dict()["hp"], "muon_lr": fields.pop("lr")}
        config = {**base.to_dict(), "hp": hp}
        path.write_text(json.dumps({"id": name, "track": "tiny-speedrun", "config": config, **fields}))

    write("base", lr=0.02, status="baseline", time_s=30.0)
    write("won", lr=0.03, status="candidate", verdict="beats_record", mean_time_s=20.0, date="2026-01-02")
    write("lost", lr=0.05, status="candidate", verdict="not_significant", mean_time_s=10.0)
    record, path = current_record(records, "tiny-speedrun")
    assert record["id"] == "won" and path.name == "won.json"
    plan = make_plan(make_search_run(tmp_path), top=1, seeds=[0, 1], overrides={}, records_dir=records,
                     control_record=None)
    assert plan.jobs[0].config.hp.muon_lr == 0.03 and plan.control_source["record"] == "won"
    assert current_record(records, "speedrun-4.5") is None


# ----------------------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, no traceback


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.promote", *args], capture_output=True, text=True, cwd=cwd)


def _one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr


def test_bad_input_missing_run_no_trials_bad_record(tmp_path):
    run = make_search_run(tmp_path, statuses=("errored", "diverged", "errored", "running", "errored", "diverged"))
    good = make_search_run(tmp_path / "b")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    # the first three side by side (each command is a Python start-up and an import of the search stack)
    with ThreadPoolExecutor(max_workers=2) as pool:
        missing = pool.submit(_cli, str(tmp_path / "runs" / "nope"), cwd=tmp_path)
        no_trials = pool.submit(_cli, str(run), cwd=tmp_path)
        bad_control = pool.submit(_cli, str(good), "--control-record", str(bad), cwd=tmp_path)
    _one_line_error(missing.result(), "no such run directory")
    _one_line_error(no_trials.result(), "no completed or stopped trial")
    _one_line_error(bad_control.result(), "not valid JSON")
    (tmp_path / "records" / "tiny-speedrun").mkdir(parents=True)  # after them: records/ is their default
    (tmp_path / "records" / "tiny-speedrun" / "x.json").write_text(json.dumps(
        {"track": "tiny-speedrun", "status": "baseline", "config": {"hp": {}}}))
    _one_line_error(_cli(str(good), "--records", str(tmp_path / "records"), cwd=tmp_path), "invalid config")


def test_bad_input_in_process(tmp_path, capsys):
    run = make_search_run(tmp_path)
    assert main([str(run), "--set", "no_such_key=1"]) == 2
    assert main([str(run), "--seeds", "0"]) == 2
    assert main([str(run), "--top", "0"]) == 2
    (tmp_path / "notarun").mkdir()
    assert main([str(tmp_path / "notarun")]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 4 and "unknown setting 'no_such_key'" in err and "Traceback" not in err


# ----------------------------------------------------------------------------------------------------------
# A real promotion through Ray Tune on CPU


@pytest.fixture(scope="module")
def ray_cpu():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024**2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def promoted(ray_cpu, tmp_path_factory):
    root = tmp_path_factory.mktemp("promote")
    run = make_search_run(root)
    records = root / "records"
    argv = [str(run), "--top", "1", "--seeds", "2", "--first-seed", "3", "--records", str(records), *QUICK]
    code = main(argv)
    return {"code": code, "run": run, "records": records, "argv": argv, "promotion": next(run.glob("promote-*"))}


def _records(records: Path) -> list[Path]:
    return sorted((records / "tiny-speedrun").glob("*.json"))


def test_promotion_writes_a_candidate_record(promoted):
    assert promoted["code"] == 0
    [path] = _records(promoted["records"])
    rec = json.loads(path.read_text())
    assert rec["id"] == path.stem and rec["status"] == "candidate"
    assert rec["verdict"] in ("beats_record", "not_significant") and "verdict_reason" in rec and "p_value" in rec
    assert rec["track"] == "tiny-speedrun" and rec["target"] == 7.5 and rec["rule"] == "first_step"
    config = RunConfig.from_dict(rec["config"])
    assert config.hp.muon_lr == 0.03 and config.hp.schedule == "cosine" and config.runtime.stop_rule == "all"
    assert rec["seeds"] == [3, 4] and [r["seed"] for r in rec["results"]] == [3, 4]
    for r in rec["results"]:
        assert r["status"] == "budget_exhausted" and r["tokens"] == 1024 and r["steps"] == 2
        for rule in ("first_step", "smoothed", "val"):
            assert f"time_to_target_{rule}_s" in r and f"tokens_to_target_{rule}" in r
        assert len(r["loss_curve"]["train_loss"]) == 2 and math.isfinite(r["val_loss"])
        assert r["env"]["torch"] and r["device"] == "cpu" and r["error"] == ""
    assert set(rec["by_rule"]) == {"first_step", "smoothed", "val"}
    for key in ("mean_time_s", "std_time_s", "mean_tokens", "relative_to_control", "gpu", "software", "git",
                "date", "config_hash", "changes"):
        assert key in rec
    assert rec["software"]["torch"] and rec["gpu"] == "cpu" and set(rec["git"]) == {"commit", "dirty"}
    assert rec["command"] == f"python -m trainer --record {path}"
    # nothing reaches 7.5 in two steps: censored, so no verdict can be "beats_record"
    assert rec["verdict"] == "not_significant" and "never reached" in rec["verdict_reason"]


def test_control_ran_with_the_same_seeds(promoted):
    rec = json.loads(_records(promoted["records"])[0].read_text())
    control = rec["control"]
    assert control["seeds"] == rec["seeds"] and [r["seed"] for r in control["results"]] == [3, 4]
    assert RunConfig.from_dict(control["config"]).hp == make_config("tiny-speedrun", overrides={
        "seq_len": 64, "micro_batch_size": 8}).hp
    assert control["status"] == "the track's defaults, the record's settings"
    promotion = next(promoted["run"].glob("promote-*"))
    for label in ("control", "cand-1"):
        for seed in (3, 4):
            result = json.loads((promotion / label / f"seed-{seed}" / "result.json").read_text())
            assert result["result"]["config"]["hp"]["seed"] == seed
    trials = pd.read_parquet(promotion / "trials.parquet")
    assert sorted(zip(trials["run"], trials["seed"])) == [("cand-1", 3), ("cand-1", 4), ("control", 3), ("control", 4)]
    # warm pair workers: two runs at a time on two CPUs, so the later two ran in a worker that had trained before
    runs = [json.loads(p.read_text())["result"] for p in promotion.glob("*/seed-*/result.json")]
    assert len(runs) == 4 and sum(r["worker_runs"] == 0 for r in runs) <= 2  # at most one fresh run per worker
    assert json.loads((promotion / "settings.json").read_text())["kind"] == "promotion"


def test_trainer_cli_reruns_a_promoted_record(promoted, tmp_path):
    from trainer.__main__ import main as trainer_main

    path = _records(promoted["records"])[0]
    code = trainer_main(["--record", str(path), "--set", "max_tokens=512", "--set", "device=cpu",
                         "--out", str(tmp_path / "rerun"), "--quiet"])
    assert code == 0
    result = json.loads((tmp_path / "rerun" / "result.json").read_text())
    assert result["config"]["hp"]["muon_lr"] == 0.03 and result["tokens"] == 512


@pytest.mark.slow
def test_promoting_twice_writes_new_files(promoted):
    before = {p: p.read_text() for p in _records(promoted["records"])}
    dirs_before = set(promoted["run"].glob("promote-*"))
    assert main(promoted["argv"]) == 0
    after = _records(promoted["records"])
    assert len(after) == len(before) + 1 and all(p.read_text() == text for p, text in before.items())
    assert len(set(promoted["run"].glob("promote-*")) - dirs_before) == 1
    new = json.loads(next(p for p in after if p not in before).read_text())
    assert new["config_hash"] == json.loads(next(iter(before.values())))["config_hash"]


def test_dry_run_runs_nothing(tmp_path, capsys):
    run = make_search_run(tmp_path)
    assert main([str(run), "--dry-run", "--records", str(tmp_path / "records"), *QUICK]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in plan["runs"]] == ["control", "cand-1", "cand-2", "cand-3"]
    assert not list(run.glob("promote-*")) and not (tmp_path / "records").exists()
    assert PROMOTABLE == ("completed", "stopped")


# ----------------------------------------------------------------------------------------------------------
# Promotions over several commands: --resume, --time-budget-s


def _main_error(capsys, argv: list[str], needle: str) -> None:
    """main(argv) is bad input: exit 2, one line on stderr naming the problem, nothing on stdout."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and needle in lines[0], captured.err


def test_runs_this_machine_cannot_start_are_refused_before_anything_is_written(tmp_path, capsys):
    run = make_search_run(tmp_path)
    _main_error(capsys, [str(run), "--records", str(tmp_path / "records"), *QUICK, "--set", "attention=fa4",
                         "--set", "device=cpu"], "attention=fa4 needs a CUDA GPU (Hopper or Blackwell)")
    _main_error(capsys, [str(run), "--records", str(tmp_path / "records"), *QUICK, "--set", "fp8=true",
                         "--set", "device=cpu"], "fp8=true needs an NVIDIA GPU of compute capability 8.9 or newer")
    assert not list(run.glob("promote-*")) and not (tmp_path / "records").exists()


def _copy_promotion(out: Path, to: Path) -> tuple[Path, Path]:
    """A copy of the promotion ``out`` (and of its search run's tables) under ``to``, writing its records to
    ``to/records``: (the copy's directory, its records directory)."""
    run = to / "runs" / out.parent.name
    run.mkdir(parents=True)
    for name in ("settings.json", "trials.parquet"):
        shutil.copy2(out.parent / name, run / name)
    copy = run / out.name
    shutil.copytree(out, copy)
    records = to / "records"
    settings = json.loads((copy / "settings.json").read_text())
    (copy / "settings.json").write_text(json.dumps({**settings, "records": str(records)}))
    return copy, records


def _started(tmp_path: Path) -> tuple[Path, Path]:
    """A promotion started (settings.json written) but none of its runs done, as after a kill at once."""
    run = make_search_run(tmp_path)
    records = tmp_path / "records"
    plan = make_plan(run, top=1, seeds=[3, 4], overrides=parse_set(QUICK[1::2]), records_dir=records,
                     control_record=None)
    return promotion.start_promotion(plan, records_dir=records, alpha=0.05, user="me"), records


def test_resume_of_what_is_not_a_promotion_is_one_line_exit_2(tmp_path, capsys):
    run = make_search_run(tmp_path)
    _one_line_error(_cli("--resume", str(tmp_path / "nowhere"), cwd=tmp_path), "no such promotion directory")
    _main_error(capsys, ["--resume", str(run)], "not a promotion directory")  # a search run
    (tmp_path / "empty").mkdir()
    _main_error(capsys, ["--resume", str(tmp_path / "empty")], "not a promotion directory (no settings.json)")
    _main_error(capsys, ["--resume", str(run / "settings.json")], "not a directory")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "settings.json").write_text(json.dumps({"kind": "promotion", "name": "x"}))
    _main_error(capsys, ["--resume", str(tmp_path / "broken")], "lacks the plan")
    assert not list(run.glob("promote-*"))


def test_resume_rebuilds_the_stored_plan_and_refuses_changes(tmp_path, capsys):
    out, records = _started(tmp_path)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["top"] == 1 and settings["seeds"] == [3, 4] and settings["promotion_id"]
    assert main(["--resume", str(out), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [(r["label"], r["config_hash"]) for r in plan["runs"]] == \
        [(r["label"], r["config_hash"]) for r in settings["runs"]]
    assert plan["resume"]["finished"] == [] and len(plan["resume"]["to_run"]) == 4
    # the same options again are fine; other ones are refused
    assert main(["--resume", str(out), str(out.parent), "--top", "1", "--seeds", "2", "--first-seed", "3",
                 *QUICK, "--dry-run"]) == 0
    capsys.readouterr()
    _main_error(capsys, ["--resume", str(out), "--top", "2"], "--top 2 (stored 1)")
    _main_error(capsys, ["--resume", str(out), "--seeds", "3", "--set", "device=cuda"], "--seeds 3 (stored 2)")
    _main_error(capsys, ["--resume", str(out), str(tmp_path)], "disagree with its settings.json")
    with promotion.working_on(out):  # another command is on it (killed ones hold no lock)
        _main_error(capsys, ["--resume", str(out)], "another search.promote is working on it")
    # a record accepted since does not change the control: it stays the track defaults it started with
    accepted = make_config("tiny-speedrun").to_dict()
    accepted["hp"]["muon_lr"] = 0.05
    (records / "tiny-speedrun").mkdir(parents=True)
    (records / "tiny-speedrun" / "new.json").write_text(json.dumps(
        {"id": "new", "track": "tiny-speedrun", "status": "baseline", "time_s": 1.0, "config": accepted}))
    assert main(["--resume", str(out), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["control"]["record"] is None
    # the search run's best trial changed: not the plan it started with
    trials = pd.read_parquet(out.parent / "trials.parquet")
    trials.loc[trials["trial_id"] == "t01", "param_muon_lr"] = 0.04
    trials.to_parquet(out.parent / "trials.parquet", index=False)
    _main_error(capsys, ["--resume", str(out)], "the configurations differ from those it started with (cand-1")
    assert sorted(p.name for p in out.iterdir()) == [".lock", "settings.json"]  # nothing ran or was written


def test_resume_refuses_a_promotion_whose_records_are_written(promoted, capsys):
    out = promoted["promotion"]
    files = [out / "settings.json", out / "promotion.json", *_records(promoted["records"])]
    before = {p: p.read_text() for p in files}
    _main_error(capsys, ["--resume", str(out)], "its records are written")
    assert {p: p.read_text() for p in files} == before and _records(promoted["records"]) == files[2:]


def test_resume_runs_only_the_missing_runs_and_writes_the_records_once(promoted, tmp_path, capsys):
    # a copy of the finished promotion, as if killed after two of its four runs
    out, records = _copy_promotion(promoted["promotion"], tmp_path)
    settings = json.loads((out / "settings.json").read_text())
    (out / "promotion.json").unlink()
    for name in ("trials.parquet", "trials.csv", "history.parquet"):
        (out / name).unlink()
    gone = [("control", 4), ("cand-1", 3)]
    for label, seed in gone:
        (out / label / f"seed-{seed}" / "result.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in out.glob("*/seed-*/result.json")}
    assert len(kept) == 2

    assert main(["--resume", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"2 of 4 runs to do; if it stops, continue with: python -m search.promote --resume {out.resolve()}" \
        in err
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the finished runs were read, not run again
    for label, seed in gone:
        assert json.loads((out / label / f"seed-{seed}" / "result.json").read_text())["job"] == \
            {"run": label, "seed": seed}
    assert len([d for d in (out / "ray-2").iterdir() if d.name.startswith("PairWorker")]) == 2
    [path] = _records(records)
    rec = json.loads(path.read_text())
    assert rec["seeds"] == [3, 4] and [r["seed"] for r in rec["results"]] == [3, 4]
    assert [r["seed"] for r in rec["control"]["results"]] == [3, 4]
    assert all(r["status"] == "budget_exhausted" and r["tokens"] == 1024 for r in rec["results"])
    assert rec["source"]["promotion_id"] == settings["promotion_id"]
    assert rec["config_hash"] == json.loads(_records(promoted["records"])[0].read_text())["config_hash"]
    summary = json.loads((out / "promotion.json").read_text())
    assert summary["complete"] and summary["failed_runs"] == [] and summary["missing_runs"] == []
    assert len(pd.read_parquet(out / "trials.parquet")) == 4
    assert len(json.loads((out / "settings.json").read_text())["sessions"]) == 2

    # killed after its record but before promotion.json: --resume finds the record, writes no second one
    (out / "promotion.json").unlink()
    assert main(["--resume", str(out)]) == 0
    assert _records(records) == [path] and json.loads(path.read_text()) == rec
    assert json.loads((out / "promotion.json").read_text())["candidates"][0]["id"] == rec["id"]
    assert "0 of 4 runs to do" in capsys.readouterr().err
    _main_error(capsys, ["--resume", str(out)], "its records are written")


@pytest.fixture(scope="module")
def budgeted(ray_cpu, tmp_path_factory) -> tuple[Path, Path, dict[str, Any], str]:
    """A promotion stopped by a time budget too short for its four runs, made once for the tests below (the one
    that resumes it works on a copy): (directory, records, summary, stderr)."""
    root = tmp_path_factory.mktemp("budgeted")
    run = make_search_run(root)
    records = root / "records"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main([str(run), "--top", "1", "--seeds", "2", "--first-seed", "3", "--records", str(records),
                     *QUICK, "--time-budget-s", "1"])
    err = stderr.getvalue()
    assert code == 3, err
    out = next(run.glob("promote-*"))
    return out, records, json.loads((out / "promotion.json").read_text()), err


def test_time_budget_leaves_runs_missing_not_failed_and_writes_no_records(budgeted, capsys):
    out, records, summary, err = budgeted
    assert not summary["complete"] and summary["candidates"] == [] and summary["failed_runs"] == []
    assert summary["missing_runs"], "a 1 s budget cannot fit four runs"
    where = out.resolve()
    assert (f"promotion {where}: the time budget ended with {len(summary['missing_runs'])} of 4 runs missing; "
            f"no records written; continue with: python -m search.promote --resume {where} --time-budget-s 1"
            ) in err.splitlines(), err
    assert not records.exists()
    for name in summary["missing_runs"]:
        label, _, seed = name.rpartition("-seed")
        assert not (out / label / f"seed-{seed}" / "result.json").exists()
    assert main(["--resume", str(out), "--dry-run"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["resume"]["to_run"]) == sorted(summary["missing_runs"])


@pytest.mark.slow
def test_a_promotion_stopped_by_its_budget_is_finished_by_resume(budgeted, tmp_path):
    out, records = _copy_promotion(budgeted[0], tmp_path)
    summary = budgeted[2]
    finished = {p: p.stat().st_mtime_ns for p in out.glob("*/seed-*/result.json")}
    assert len(finished) + len(summary["missing_runs"]) == 4
    assert main(["--resume", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not run again
    assert len(list(out.glob("*/seed-*/result.json"))) == 4
    [path] = _records(records)
    rec = json.loads(path.read_text())
    assert [r["seed"] for r in rec["results"]] == [3, 4] == [r["seed"] for r in rec["control"]["results"]]
    assert all(r["status"] == "budget_exhausted" for r in rec["results"] + rec["control"]["results"])
    summary = json.loads((out / "promotion.json").read_text())
    assert summary["complete"] and summary["failed_runs"] == [] and summary["missing_runs"] == []


def test_plan_with_only_the_controls_settings_has_nothing_to_promote(tmp_path):
    run = make_search_run(tmp_path, statuses=("completed", "errored", "errored", "errored", "errored", "errored"))
    with pytest.raises(ConfigError, match="the control's settings; nothing to promote"):
        make_plan(run, top=2, seeds=[0, 1], overrides={"device": "cpu"}, records_dir=tmp_path / "records",
                  control_record=None)
