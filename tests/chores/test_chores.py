"""chores: atomic writes leave no temporary files, a lock held elsewhere is seen, the record files of a folder."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from chores.files import LockBusy, atomic_write_json, atomic_write_table, file_lock, record_paths
from chores.values import finite, finite_mean, plain


def test_atomic_writes_replace_whole_files_and_leave_nothing_behind(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "a" / "x.json", {"v": math.nan, "w": [1, math.inf]})
    assert json.loads((tmp_path / "a" / "x.json").read_text()) == {"v": None, "w": [1, None]}
    df = pd.DataFrame({"a": [1, 2]})
    atomic_write_table(df, tmp_path / "t.parquet")
    atomic_write_table(df, tmp_path / "t.csv")
    assert pd.read_parquet(tmp_path / "t.parquet").equals(df) and pd.read_csv(tmp_path / "t.csv").equals(df)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "t.csv", "t.parquet", "x.json"]


def test_a_lock_held_by_another_process_is_busy(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from chores.files import file_lock\n"
        f"with file_lock({str(lock)!r}):\n    print('held', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True, env=None)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy), file_lock(lock, wait=False):
            pass
    finally:
        holder.kill()
        holder.wait()
    with file_lock(lock, wait=False) as locked:  # the OS dropped it with the process
        assert locked


def test_record_paths_skip_hidden_report_and_run_files(tmp_path: Path) -> None:
    for name in ("t/a.json", "t/.tmp.json", ".hidden/b.json", "report/c.json", "t/best.json", "t/report/d.json",
                 "run/settings.json", "run/trials/x.json", "run/ray/params.json"):  # a run directory's files
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    assert [p.relative_to(tmp_path).as_posix() for p in record_paths(tmp_path)] == ["t/a.json"]


def test_values() -> None:
    assert finite(1) and finite(2.5) and not finite(True) and not finite(math.nan) and not finite("1")
    assert finite_mean([1.0, math.nan, 3.0, None]) == 2.0 and math.isnan(finite_mean([]))
    assert plain(math.nan) is None and plain(pd.Series([3]).iloc[0]) == 3


_PROBE = """
import json, os, sys
{first}
sys.path.insert(0, sys.argv[1])
import probe_module
print(json.dumps({{"prefix": sys.pycache_prefix, "cached": probe_module.__cached__,
                  "env": [os.environ.get("PYTHONPYCACHEPREFIX"), os.environ.get("PYTHONDONTWRITEBYTECODE")]}}))
"""


def _probe(tmp_path: Path, first: str, **env: str) -> dict:
    import os

    mods = tmp_path / "mods"
    mods.mkdir(exist_ok=True)
    (mods / "probe_module.py").write_text("X = 1\n")
    run_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPYCACHEPREFIX", "BLUEBERRY_PYCACHE")}
    run_env.update(PYTHONDONTWRITEBYTECODE="1", BLUEBERRY_CACHE=str(tmp_path / "cache"),
                   PYTHONPATH=str(Path(__file__).parents[2]), **env)
    out = subprocess.run([sys.executable, "-c", _PROBE.format(first=first), str(mods)], env=run_env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("first", ["from chores.bytecode import use_bytecode_cache; use_bytecode_cache()",
                                   "import search"])
def test_bytecode_goes_to_our_cache_where_the_environment_forbids_writing_it(tmp_path: Path, first: str) -> None:
    got = _probe(tmp_path, first)
    prefix = tmp_path / "cache" / "pycache"
    assert got["prefix"] == str(prefix) and got["env"] == [str(prefix), None]  # children inherit it
    cached = Path(got["cached"])
    assert cached.is_relative_to(prefix) and cached.exists()  # written there, not beside the source
    assert not (tmp_path / "mods" / "__pycache__").exists()


def test_bytecode_cache_off_leaves_python_as_it_is(tmp_path: Path) -> None:
    got = _probe(tmp_path, "import search", BLUEBERRY_PYCACHE="off")
    assert got["prefix"] is None and got["env"] == [None, "1"]
    assert not Path(got["cached"]).exists() and not (tmp_path / "cache").exists()


def test_the_trainer_sets_up_the_bytecode_cache_before_anything_else() -> None:
    import ast

    body = ast.parse((Path(__file__).parents[2] / "trainer" / "__init__.py").read_text()).body
    statements = [node for node in body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    assert ast.unparse(statements[0]) == "from chores.bytecode import use_bytecode_cache"
    assert ast.unparse(statements[1]) == "use_bytecode_cache()"  # before trainer.config and torch are imported
