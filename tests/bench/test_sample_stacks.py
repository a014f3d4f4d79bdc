"""bench/sample_stacks.py: a script's stacks sampled while it runs, and the report of where its time went."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"

SCRIPT = textwrap.dedent("""
    import sys, threading, time

    def spin(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    def short():
        spin(0.2)

    def long():
        spin(0.8)

    def main():
        helper = threading.Thread(target=spin, args=(0.3,), name="helper")
        helper.start()
        short()
        long()
        helper.join()
        sys.exit(3)

    main()
""")


def test_records_every_thread_and_reports_inclusive_times_and_children(tmp_path, bench_script):
    ss = bench_script("sample_stacks")
    script = tmp_path / "work.py"
    script.write_text(SCRIPT)
    out = tmp_path / "stacks"
    proc = subprocess.run([sys.executable, str(BENCH / "sample_stacks.py"), "--out", str(out), "--interval", "0.002",
                           "--", str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr  # the script's own exit status
    meta, stacks = ss.read(out)
    assert meta["samples"] > 50 and meta["wall_s"] >= 0.8
    per_thread = ss.inclusive(stacks, None)
    assert {"MainThread", "helper"} <= set(per_thread)
    main = per_thread["MainThread"]
    assert main["work.py:spin"] >= 0.9 * main["work.py:main"]  # spinning is nearly all of main()
    assert 2 * main["work.py:short"] < main["work.py:long"]  # 0.2 s against 0.8 s
    below = ss.children(stacks, "work.py:main")
    assert below.most_common(1)[0][0] == "work.py:long" and below["work.py:short"] > 0
    assert "work.py:main" not in ss.inclusive(stacks, "work.py:long")["MainThread"]  # only below the match
    # the first 0.15 s: short() had started and long() had not
    _, early = ss.read(out, until=0.15)
    first = ss.inclusive(early, None)["MainThread"]
    assert first["work.py:short"] > 0 and first["work.py:long"] == 0
    assert sum(n for _, n in ss.read(out, until=1e9)[1]) == sum(n for _, n in stacks)
    # the gzipped copies that bench/results keeps read the same
    for name in ("stacks.txt", "timeline.txt"):
        (out / f"{name}.gz").write_bytes(gzip.compress((out / name).read_bytes()))
        (out / name).unlink()
    assert ss.read(out) == (meta, stacks) and ss.read(out, until=0.15)[1] == early
    text = subprocess.run([sys.executable, str(BENCH / "sample_stacks.py"), "--report", str(out), "--under",
                           "work.py:main"], capture_output=True, text=True, timeout=60).stdout
    assert "MainThread under work.py:main, by the frame it called:" in text and "work.py:long" in text


def test_nothing_to_run_is_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "sample_stacks.py"), "--out", str(tmp_path / "x"), "--"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].endswith("error: nothing to run: give -m "
                                                                               "MODULE [ARGS] or SCRIPT [ARGS] after --")


def test_a_report_of_nothing_recorded_is_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "sample_stacks.py"), "--report", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].endswith("holds no recording (no meta.json)")
    (tmp_path / "meta.json").write_text("{}")
    proc = subprocess.run([sys.executable, str(BENCH / "sample_stacks.py"), "--report", str(tmp_path), "--until", "1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "has no timeline.txt" in proc.stderr
