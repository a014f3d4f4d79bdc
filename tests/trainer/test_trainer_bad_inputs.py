"""Bad paths given to `python -m trainer` (issue 20): one line `error: ...`, exit 2, nothing written."""

from __future__ import annotations

import pytest

from trainer import checks
from trainer.__main__ import main
from trainer.config import ConfigError

CASES = [
    (["--out", "afile"], "--out afile is a file, not a folder"),
    (["--out", "afile/run"], "afile is a file, not a folder"),
    (["--out", ""], "--out must be a folder path"),
    (["--record", "adir"], "--record adir is a folder, not a file"),
    (["--record", "missing.json"], "--record missing.json does not exist"),
]


@pytest.mark.parametrize("args,needle", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_trainer_refuses_paths_of_the_wrong_kind(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    code = main(["--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]


@pytest.mark.parametrize("out", ["new", "empty"])
def test_bad_data_leaves_no_run_directory(tmp_path, monkeypatch, capsys, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    code = main(["--quiet", "--out", out, "--data", str(tmp_path / "nonexistent.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "nonexistent.jsonl" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # the --out is free for the next try
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.parametrize("flag,value,kwargs,needle", [
    ("--x", float("nan"), {"above": 0}, "must be a finite number, got nan"),
    ("--x", float("-inf"), {"above": 0}, "must be a finite number"),
    ("--x", 0, {"above": 0}, "must be > 0, got 0"),
    ("--x", 5, {"at_least": 0, "below": 5}, "must be >= 0 and < 5, got 5"),
    ("--x", "3", {}, "must be a finite number"),
])
def test_number_rules(flag, value, kwargs, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        checks.number(flag, value, **kwargs)


def test_checks_pass_good_values(tmp_path):
    checks.number("--x", 1.5, above=0, at_most=2)
    checks.count("--n", 0, minimum=0)
    checks.folder_to_write("--out", tmp_path / "new" / "deeper")
    checks.folder_to_write("--out", tmp_path)
    checks.plain_name("--name", "my-search_1.2")
    for bad in ("../x", "/x", "a/b", ".", "..", "", "-x"):
        with pytest.raises(ConfigError, match="plain directory name"):
            checks.plain_name("--name", bad)
    with pytest.raises(ConfigError, match="whole number"):
        checks.count("--n", 1.5)
