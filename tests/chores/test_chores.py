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
