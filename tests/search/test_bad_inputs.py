"""Bad input to search.run, search.promote and search.transfer (issue 20): each is refused with one line
`error: ...` on stderr and exit 2, before Ray starts or anything is written. In-process (fast): nothing here
may reach Ray, and a traceback would fail the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search import promote, transfer
from search import run as search_run


def _one_line(capsys, code: int, needle: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    return tmp_path


# ----------------------------------------------------------------------------------------------------------
# search.run: a new search

RUN_CASES = [
    (["--runs-dir", "afile"], "--runs-dir afile is a file, not a folder"),
    (["--runs-dir", "afile/runs"], "afile is a file, not a folder"),
    (["--reduction-factor", "nan"], "--reduction-factor must be a finite number"),
    (["--reduction-factor", "inf"], "--reduction-factor must be a finite number"),
    (["--reduction-factor", "1"], "--reduction-factor must be > 1"),
    (["--cpus-per-trial", "nan"], "--cpus-per-trial must be a finite number"),
    (["--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
    (["--cpus-per-trial", "100000"], "does not fit"),
    (["--gpus-per-trial", "nan"], "--gpus-per-trial must be a finite number"),
    (["--gpus-per-trial", "-1"], "--gpus-per-trial must be > 0 and <= 1, got -1"),
    (["--gpus-per-trial", "2"], "--gpus-per-trial must be > 0 and <= 1, got 2"),  # a trial trains on one GPU
    (["--max-concurrent", "0"], "--max-concurrent must be >= 1"),
    (["--storage", "bogus://x"], "unknown scheme 'bogus://'"),
    (["--storage", "afile"], "--storage afile is a file, not a folder"),
    (["--time-budget-s", "-5"], "--time-budget-s must be > 0"),
    (["--time-budget-s", "0"], "--time-budget-s must be > 0"),
    (["--time-budget-s", "nan"], "--time-budget-s must be a finite number"),
    (["--time-budget-s", "inf"], "--time-budget-s must be a finite number"),
    (["--max-failures", "-5"], "--max-failures must be >= 0"),
    (["--name", "../escape"], "--name must be a plain directory name"),
    (["--name", "/abs/path"], "--name must be a plain directory name"),
    (["--name", "a/b"], "--name must be a plain directory name"),
    (["--name", ".."], "--name must be a plain directory name"),
    (["--num-trials", "0"], "--num-trials must be >= 1"),
    (["--num-trials", "-1"], "--num-trials must be >= 1"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--seed", str(2**32)], "--seed must be < 2**32"),
    (["--address", ""], "--address must be host:port or auto"),
    (["--space", "grad_accum", "--set", "muon_lr=50"], "--set muon_lr: the space grad_accum searches it"),
    (["--space", "batch", "--set", "micro_batch_size=4"], "--set micro_batch_size: the space batch searches it"),
    (["--space", "lr_sched", "--set", "hp.schedule=cosine"], "--set hp.schedule: the space lr_sched searches it"),
    (["--space", "grad_accum:16", "--set", "grad_accum_steps=2"], "the space grad_accum:16 searches it"),
    (["--set", "attention=fa4", "--set", "device=cpu"], "attention=fa4 needs a CUDA GPU (Hopper or Blackwell); "
                                                         "this run's device is cpu"),
    (["--set", "attention=flash3"], "attention must be one of sdpa, fa4; got 'flash3'"),
    (["--set", "fp8=true", "--set", "device=cpu"], "fp8=true needs an NVIDIA GPU of compute capability 8.9 or newer "
                                                   "for FP8 matmuls; this run's device is cpu"),
    (["--set", "fp8=true", "--set", "reference=true"], "fp8=true is a fast-path setting"),
]


@pytest.mark.parametrize("args,needle", RUN_CASES, ids=[" ".join(a) for a, _ in RUN_CASES])
def test_search_run_refuses(cwd, capsys, args, needle):
    _one_line(capsys, search_run.main(["--quiet", "--name", "n", *args] if "--name" not in args
                                      else ["--quiet", *args]), needle)
    assert not (cwd / "runs").exists()


def test_bad_data_leaves_no_run_directory(cwd, capsys):
    code = search_run.main(["--quiet", "--name", "d", "--data", str(cwd / "nonexistent.jsonl")])
    _one_line(capsys, code, "nonexistent.jsonl")
    assert not (cwd / "runs" / "d").exists()  # the name stays free: no settings.json left behind


# ----------------------------------------------------------------------------------------------------------
# search.run --resume


def _make_search(root: Path, name: str = "s", extra: list[str] | None = None) -> Path:
    """A search's directory as search.run leaves it after starting (settings.json only), made without Ray."""
    args = search_run._parser().parse_args(["--name", name, "--num-trials", "2", *(extra or [])])
    settings = search_run._settings(args, False)
    settings["flags"] = search_run._flags(args)
    settings["name"] = name
    run_dir = root / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "settings.json").write_text(json.dumps(settings))
    return run_dir


CHANGED = [
    (["--space", "batch"], "--space batch (stored lr_sched)"),
    (["--set", "muon_lr=0.5"], "--set muon_lr=0.5"),
    (["--track", "tiny-marathon"], "--track tiny-marathon (stored tiny-speedrun)"),
    (["--objective", "val"], "--objective val (stored smoothed)"),
    (["--seed", "1"], "--seed 1 (stored 0)"),
    (["--sampler", "random"], "--sampler random (stored tpe)"),
    (["--reduction-factor", "3"], "--reduction-factor 3.0 (stored 2.0)"),
    (["--preset", "nope"], "--preset nope"),
    (["--data", "other.jsonl"], "--data other.jsonl"),
    (["--cpus-per-trial", "0.5"], "--cpus-per-trial 0.5"),
    (["--max-concurrent", "2"], "--max-concurrent 2"),
    (["--storage", "elsewhere"], "--storage elsewhere"),
    (["--space", "batch", "--seed", "2"], "--space batch (stored lr_sched); --seed 2 (stored 0)"),
]


@pytest.mark.parametrize("args,needle", CHANGED, ids=[" ".join(a) for a, _ in CHANGED])
def test_resume_refuses_changed_flags(cwd, capsys, args, needle):
    run_dir = _make_search(cwd)
    before = (run_dir / "settings.json").read_text()
    line = _one_line(capsys, search_run.main(["--quiet", "--resume", "--name", "s", *args]), needle)
    assert "disagree with the search's settings.json" in line
    assert (run_dir / "settings.json").read_text() == before


@pytest.mark.parametrize("value", ["0", "-1"])
def test_resume_refuses_no_trials(cwd, capsys, value):
    _make_search(cwd)
    _one_line(capsys, search_run.main(["--quiet", "--resume", "--name", "s", "--num-trials", value]),
              "--num-trials must be >= 1")


@pytest.mark.parametrize("content,needle", [
    ("{not json", "cannot be read (JSONDecodeError)"),
    ("[1, 2]", "is not a JSON object"),
    (json.dumps({"kind": "transfer", "name": "s"}), "is a transfer run, not a search"),
    (json.dumps({"kind": "promotion"}), "is a promotion run, not a search"),
    (json.dumps({"space": "lr_sched"}), "is not a search's settings (lacks track"),
    (b"\xff\xfe", "cannot be read (UnicodeDecodeError)"),
])
def test_resume_refuses_a_settings_file_that_is_not_a_search(cwd, capsys, content, needle):
    run_dir = cwd / "runs" / "s"
    run_dir.mkdir(parents=True)
    path = run_dir / "settings.json"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    _one_line(capsys, search_run.main(["--quiet", "--resume", "--name", "s"]), needle)
    assert not (run_dir / ".lock").exists()


def test_resume_refused_while_another_command_works_on_the_search(cwd, capsys):
    from search.checks import working_on

    run_dir = _make_search(cwd)
    with working_on(run_dir, "search.run"):
        code = search_run.main(["--quiet", "--resume", "--name", "s"])
    _one_line(capsys, code, "another search.run is working on it right now")


def test_resume_accepts_the_safe_flags_and_says_so(cwd, capsys, monkeypatch):
    import trainer.data

    ran = {}

    def fake_search(settings, base, run_dir, *, quiet, address):
        from search.checks import working_on

        with pytest.raises(Exception, match="another search.run is working on it"), \
                working_on(run_dir, "search.run"):  # the lock is held
            pass
        ran.update(settings)
        return 0

    monkeypatch.setattr(search_run, "_search", fake_search)
    monkeypatch.setattr(trainer.data, "load_tokens", lambda *a, **k: None)
    run_dir = _make_search(cwd)
    same = ["--space", "lr_sched", "--track", "tiny-speedrun", "--seed", "0", "--reduction-factor", "2"]
    code = search_run.main(["--quiet", "--resume", "--name", "s", *same, "--num-trials", "5",
                            "--time-budget-s", "60"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "accepted --num-trials 5 (was 2); --time-budget-s 60.0 (was None)" in err
    assert ran["num_trials"] == 5 and ran["time_budget_s"] == 60.0
    stored = json.loads((run_dir / "settings.json").read_text())
    assert stored["num_trials"] == 5 and stored["time_budget_s"] == 60.0


def test_a_new_search_is_locked_and_its_name_taken_once(cwd, capsys, monkeypatch):
    import trainer.data

    def fake_search(settings, base, run_dir, *, quiet, address):
        assert search_run.main(["--quiet", "--resume", "--name", "s"]) == 2  # a --resume while it runs
        assert search_run.main(["--quiet", "--name", "s"]) == 2  # a second start with its name
        return 0

    monkeypatch.setattr(search_run, "_search", fake_search)
    monkeypatch.setattr(trainer.data, "load_tokens", lambda *a, **k: None)
    assert search_run.main(["--quiet", "--name", "s", "--num-trials", "2"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "another search.run is working on it" in err[0] and "already exists" in err[1], err
    assert json.loads((cwd / "runs" / "s" / "settings.json").read_text())["flags"]["num_trials"] == 2


# ----------------------------------------------------------------------------------------------------------
# search.promote and search.transfer: the same rules for the flags of the same kinds

PROMOTE_CASES = [
    (["--cpus-per-trial", "nan"], "--cpus-per-trial must be a finite number"),
    (["--gpus-per-trial", "inf"], "--gpus-per-trial must be a finite number"),
    (["--gpus-per-trial", "3"], "--gpus-per-trial must be > 0 and <= 1, got 3"),
    (["--num-cpus", "0"], "--num-cpus must be >= 1"),
    (["--num-cpus", "1", "--cpus-per-trial", "2"], "--cpus-per-trial 2 does not fit in --num-cpus 1"),
    (["--max-concurrent", "0"], "--max-concurrent must be >= 1"),
    (["--time-budget-s", "nan"], "--time-budget-s must be a finite number"),
    (["--time-budget-s", "-5"], "--time-budget-s must be > 0"),
    (["--records", "afile"], "--records afile is a file, not a folder"),
    (["--control-record", "adir"], "--control-record adir is a folder, not a file"),
    (["--control-record", "missing.json"], "--control-record missing.json does not exist"),
]


@pytest.mark.parametrize("args,needle", PROMOTE_CASES, ids=[" ".join(a) for a, _ in PROMOTE_CASES])
def test_promote_refuses(cwd, capsys, args, needle):
    _one_line(capsys, promote.main(["runs/x", *args]), needle)


TRANSFER_CASES = [
    (["--num-cpus", "0"], "--num-cpus must be >= 1"),
    (["--num-cpus", "-2"], "--num-cpus must be >= 1"),
    (["--cpus-per-trial", "nan"], "--cpus-per-trial must be a finite number"),
    (["--cpus-per-trial", "4", "--num-cpus", "2"], "does not fit in --num-cpus 2"),
    (["--gpus-per-trial", "nan"], "--gpus-per-trial must be a finite number"),
    (["--gpus-per-trial", "1.5"], "--gpus-per-trial must be > 0 and <= 1, got 1.5"),
    (["--max-concurrent", "0"], "--max-concurrent must be >= 1"),
    (["--runs-dir", "afile"], "--runs-dir afile is a file, not a folder"),
    (["--name", "../escape"], "--name must be a plain directory name"),
    (["--name", "/abs/path"], "--name must be a plain directory name"),
]


@pytest.mark.parametrize("args,needle", TRANSFER_CASES, ids=[" ".join(a) for a, _ in TRANSFER_CASES])
def test_transfer_refuses(cwd, capsys, args, needle):
    _one_line(capsys, transfer.main(["adir", *args]), needle)
    assert not (cwd / "runs").exists()


def test_resume_starts_a_local_ray_unless_the_cluster_address_is_given_again(cwd, capsys, monkeypatch):
    import trainer.data

    seen = []
    monkeypatch.setattr(search_run, "_search", lambda settings, base, run_dir, *, quiet, address: seen.append(address)
                        or 0)
    monkeypatch.setattr(trainer.data, "load_tokens", lambda *a, **k: None)
    run_dir = _make_search(cwd)
    settings = json.loads((run_dir / "settings.json").read_text())
    settings["address"] = "auto"  # the search last ran on a cluster (`ray start --head`) that is gone now
    (run_dir / "settings.json").write_text(json.dumps(settings))
    assert search_run.main(["--quiet", "--resume", "--name", "s"]) == 0
    assert seen == [None]
    assert "accepted a local Ray (the last run joined --address auto" in capsys.readouterr().err
    assert json.loads((run_dir / "settings.json").read_text())["address"] is None
