"""search.run on CPU with tiny trials: bad input, a whole search, and a SIGKILL followed by --resume."""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import optuna
import pandas as pd
import pytest

from search import run as search_run

# rungs in tokens (not the speedrun's default clock seconds), so they do not depend on this machine's speed
QUICK = ["--set", "max_tokens=6144", "--grace-period", "2048tok", "--max-t", "6144tok", "--quiet"]


def _run(args, cwd, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "search.run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, **kw)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return {**os.environ, "BLUEBERRY_CACHE": str(cache), "RAY_DEDUP_LOGS": "0"}


BAD_INPUT = [
    (["--space", "nope"], "unknown space 'nope'; choose one of lr_sched"),
    (["--track", "nope"], "unknown track 'nope'"),
    (["--set", "bogus=1"], "unknown setting 'bogus'"),
    (["--set", "muon_lr=-1"], "muon_lr must be a finite number > 0"),
    (["--grace-period", "100", "--max-t", "10"], "--grace-period (100 seconds) must be <= --max-t (10 seconds)"),
    (["--grace-period", "5s", "--max-t", "1M"], "disagree on the unit"),
    (["--track", "tiny-marathon", "--grace-period", "5s"], "budget track: its rungs are in tokens"),
    (["--grace-period", "fast"], "--grace-period must be a number"),
    (["--reduction-factor", "1"], "--reduction-factor must be > 1"),
    (["--num-trials", "0"], "--num-trials must be >= 1"),
    (["--address", "127.0.0.1:1"], "cannot reach a Ray cluster at --address 127.0.0.1:1"),
    (["--resume", "--name", "missing"], "nothing to resume"),
]


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory, env):
    """The commands of every BAD_INPUT case, two at a time: each is a Python start-up that imports the search
    stack and exits, and the cases share nothing (each has its own directory), so they run side by side."""
    dirs = [tmp_path_factory.mktemp("bad-input") for _ in BAD_INPUT]
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield [pool.submit(_run, ["--runs-dir", str(where), *args], where, env=env, timeout=120)
               for where, (args, _) in zip(dirs, BAD_INPUT)]


@pytest.mark.parametrize("args,needle", BAD_INPUT)
def test_bad_input_is_one_line_exit_2(bad_input_runs, args, needle):
    p = bad_input_runs[BAD_INPUT.index((args, needle))].result()
    assert p.returncode == 2, p.stderr[-3000:]
    assert needle in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_list_spaces(tmp_path):
    p = _run(["--list-spaces"], tmp_path, timeout=60)
    assert p.returncode == 0 and "lr_sched" in p.stdout and "grad_accum" in p.stdout


@pytest.mark.slow
def test_search_then_kill_then_resume(tmp_path, env, capsys):
    """SIGKILL while the record point (trial 0) runs: --resume keeps what finished and runs every interrupted
    trial again with its own parameters, the record point first; the table says which is which."""
    runs = tmp_path / "runs"
    args = ["--space", "lr_sched", "--runs-dir", str(runs), "--name", "s", "--num-trials", "6", *QUICK]
    driver = subprocess.Popen([sys.executable, "-m", "search.run", *args], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    trial_dir = runs / "s" / "trials"
    deadline = time.time() + 400
    finished_before: list[str] = []
    record_seen = None
    while time.time() < deadline:
        recs = [json.loads(p.read_text()) for p in trial_dir.glob("*.json")] if trial_dir.exists() else []
        finished_before = [r["trial_id"] for r in recs if r["status"] != "running"]
        if record_seen is None and any(r["number"] == 0 and r["status"] == "running" for r in recs):
            record_seen = time.time()
        # the record point has started (its worker cannot finish it within 3 s); better still, another ended
        if record_seen is not None and (finished_before or time.time() > record_seen + 3):
            break
        assert driver.poll() is None, driver.stderr.read().decode()[-3000:]
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything it started, at once
    driver.wait()

    # the name exists: without --resume it is refused (in this process: a refusal starts no Ray)
    capsys.readouterr()
    assert search_run.main(args) == 2 and "already exists" in capsys.readouterr().err

    p = _run([*args, "--resume"], tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-4000:]
    trials = pd.read_parquet(runs / "s" / "trials.parquet")
    assert "running" not in set(trials.status)  # the command has ended: nothing is left running
    interrupted = trials[trials.status == "interrupted"]
    finished = trials[trials.status != "interrupted"]
    assert len(finished) == 6
    assert set(finished_before) <= set(finished.trial_id)  # nothing finished was lost
    assert set(trials.status) <= {"completed", "stopped", "diverged", "errored", "interrupted"}
    assert trials.number.is_unique
    # the record point was interrupted and ran again with its own parameters, before any new trial
    assert 0 in set(interrupted.number)
    for _, old in interrupted.iterrows():
        rerun = finished[finished.number == old.rerun_as].iloc[0]
        assert rerun.rerun_of == old.number
        for col in ("param_muon_lr", "param_adamw_lr", "param_schedule", "param_warmup_ratio"):
            assert rerun[col] == old[col], col
    record = finished[finished.rerun_of == 0].iloc[0]
    assert record.param_muon_lr == 0.02 and record.param_schedule == "constant"
    new_after_kill = finished[finished.rerun_of.isna() & ~finished.trial_id.isin(finished_before)]
    assert (new_after_kill.number > record.number).all()
    # the searcher's history survived: the study holds the trials of both sessions
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{runs / 's' / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 6
    assert len(list((runs / "s" / "ray").glob("session-*"))) == 2
    assert "results:" in p.stdout and "6 trials:" in p.stdout and "interrupted by a stop" in p.stdout


@pytest.mark.slow
def test_budget_track_objective_is_the_final_val_loss(tmp_path, env):
    """A marathon-style search scores each trial by its final validation loss (the evaluation at the budget),
    not a stale one, and a trial that used its whole budget is completed, not stopped."""
    runs = tmp_path / "runs"
    out = tmp_path / "fresh"
    # the fresh run (one thread, as the search's trial) trains while the search runs: they share nothing
    fresh_run = subprocess.Popen([sys.executable, "-m", "trainer", "--track", "tiny-marathon", "--set",
                                  "max_tokens=8192", "--quiet", "--out", str(out)], cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env={**env, "OMP_NUM_THREADS": "1"})
    try:
        p = _run(["--track", "tiny-marathon", "--set", "max_tokens=8192", "--grace-period", "4096", "--num-trials",
                  "1", "--runs-dir", str(runs), "--name", "b", "--quiet"], tmp_path, env=env)
    finally:
        _, fresh_err = fresh_run.communicate(timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    trial = pd.read_parquet(runs / "b" / "trials.parquet").iloc[0]
    assert trial.status == "completed" and trial.tokens == 8192
    assert fresh_run.returncode == 0, fresh_err[-3000:]
    fresh = json.loads((out / "result.json").read_text())
    assert fresh["val_history"][-1]["tokens"] == 8192
    assert trial.objective == pytest.approx(fresh["final_val_loss"], rel=1e-4)
    assert trial.objective < fresh["val_history"][0]["val_loss"] - 0.5  # not the step-0 loss


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_a_search_the_same_way(tmp_path, env, sig):
    """``timeout`` or a batch scheduler sends SIGTERM, a user presses Ctrl-C (SIGINT): the search stops with its
    tables written, no trial left running, exit 130 and the exact --resume command (not Ray's stack dump, nor
    its Tuner.restore hint and exit 0)."""
    runs = tmp_path / "runs"
    args = ["--space", "lr_sched", "--runs-dir", str(runs), "--name", "s", "--num-trials", "6", *QUICK]
    # as from a terminal's foreground, where Ctrl-C comes from: SIGINT at its default even when the tests run as a
    # background job, whose children inherit it ignored (Python then never turns it into KeyboardInterrupt)
    driver = subprocess.Popen([sys.executable, "-m", "search.run", *args], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    trial_dir = runs / "s" / "trials"
    deadline = time.time() + 300
    while not (trial_dir.exists() and any(trial_dir.glob("*.json"))):  # Ray and Tune are up, a trial runs
        assert driver.poll() is None, driver.stderr.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.5)
    time.sleep(1.0)
    driver.send_signal(sig)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err[-3000:]
    assert "SIGTERM received" not in err and "Tuner.restore" not in err, err[-3000:]
    assert f"continue with: python -m search.run --runs-dir {runs} --name s --resume" in err, err[-3000:]
    assert (runs / "s" / "trials.parquet").exists() and (runs / "s" / "settings.json").exists()
    trials = pd.read_parquet(runs / "s" / "trials.parquet")
    assert len(trials) and "running" not in set(trials.status) and "interrupted" in set(trials.status)


@pytest.mark.slow
def test_whole_search_results_on_disk(tmp_path, env):
    runs = tmp_path / "runs"
    p = _run(["--space", "lr_sched", "--runs-dir", str(runs), "--name", "w", "--num-trials", "4", *QUICK], tmp_path,
             env=env)
    assert p.returncode == 0, p.stderr[-4000:]
    d = runs / "w"
    settings = json.loads((d / "settings.json").read_text())
    assert settings["space"] == "lr_sched" and settings["objective"] == "smoothed"
    assert settings["asha"]["rungs"] == [2048, 4096] and settings["asha"]["unit"] == "tokens"
    trials = pd.read_parquet(d / "trials.parquet")
    assert len(trials) == 4 and (d / "trials.csv").exists()
    for col in ("trial_id", "number", "status", "objective", "reached", "tokens", "param_muon_lr", "param_schedule",
                "time_to_target_smoothed_s", "final_smoothed_loss", "startup_s", "startup_device_wait_s",
                "clock_started_at", "clock_ended_at", "error"):
        assert col in trials.columns, col
    assert (trials.clock_ended_at > trials.clock_started_at).all()
    first = trials.sort_values("number").iloc[0]
    assert first.param_muon_lr == 0.02 and first.param_schedule == "constant"  # the record goes first
    history = pd.read_parquet(d / "history.parquet")
    assert set(history.trial_id) == set(trials.trial_id)
    assert (history.groupby("trial_id").tokens.apply(lambda s: s.is_monotonic_increasing)).all()
    best = json.loads((d / "best.json").read_text())
    assert best["command"].startswith("python -m trainer --track tiny-speedrun")
    assert (d / "optuna.db").exists()
    share = json.loads((d / "utilisation.json").read_text())
    assert len(share) == 1 and 0 < share[0]["fraction"] <= 1 and share[0]["clocked_s"] > 0
    assert "clocked training:" in p.stdout


def test_trial_error_is_recorded_and_search_goes_on(tmp_path, env):
    """A trial that raises (here: a micro-batch larger than the data) is recorded with its error."""
    runs = tmp_path / "runs"
    p = _run(["--space", "batch", "--runs-dir", str(runs), "--name", "e", "--num-trials", "2", "--sampler", "random",
              "--set", "seq_len=65536", *QUICK[2:]], tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-4000:]
    trials = pd.read_parquet(runs / "e" / "trials.parquet")
    assert len(trials) == 2 and (trials.status == "errored").all()
    assert trials.error.str.contains("ConfigError").all() and trials.error.str.contains("max_tokens").all()
