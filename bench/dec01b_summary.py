"""The figures of Dec 1, second session (issue 19: the blocks' bf16 working copies, static RoPE tables for the CUDA
graphs, blocks per compiled region), from the saved output in ``bench/results/dec01b/`` (``bash
bench/gpu_dec01b.sh working | static | host | regions``, one H200 each).

    python bench/dec01b_summary.py bench/results > bench/results/dec01b-summary.txt

- ``call1-working``: the trainer at b4 with the working copies (on), without (``--set working_copies=false``, off)
  and the session's start (old, b1a4116), alternated, twice; the answer; b4 kernel tables with CUDA graphs, on/off;
- ``call2-static``: after the static RoPE tables (new) against the working copies alone (mid, dc83144) and old, b4
  twice; b32 new/old; the answer; the b4 kernel table;
- ``call3-host``: with each step's host time (``host_step_ms``): new and old at b4, b32 new, the kernel table with
  the host's time to issue a step;
- ``call4-regions``: 1, 4 and 2 blocks per compiled region at b4, twice alternated; the answer with 4;
- ``call5-final``: the session's code (new, 4 blocks a region) against b1a4116 (old) at b4: new, old, new.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from nov30e_summary import same_line
from nov30g_summary import speed_rows


def answer_line(folder: Path, label: str = "") -> str:
    """``same_line`` and the clock of its fast run: the record's settings over 6,086,656 tokens."""
    fast = json.loads((folder / "summary.json").read_text())["runs"]["fast"]
    return (f"    {label}{same_line(folder)}\n      that run (the record's settings, stop rule off): "
            f"{fast['tokens']:,} tokens in {fast['clock_s']:.2f} s on the clock, {fast['tokens_per_s']:,.0f} tokens/s")


def b4_line(call: Path, arm: str, label: str) -> str:
    """One arm's b4 runs (60 steps, speed-ARM-N.log): steady tokens/s and, where recorded, the host's ms a step."""
    rows = [r for log in sorted(call.glob(f"speed-{arm}-[0-9].log")) for r in speed_rows(log)
            if r["micro_batch_size"] == 4]
    rates = [r["steady_tokens_per_s"] for r in rows]
    line = f"    {label}: b4 " + ", ".join(f"{x:,.0f}" for x in rates) + f" (median {statistics.median(rates):,.0f})"
    hosts = [r["host_step_ms"] for r in rows if r.get("host_step_ms")]
    if hosts:
        line += "; host ms a step " + ", ".join(f"{h:.1f}" for h in hosts)
    return line


def b32_line(call: Path, arm: str, label: str) -> str:
    rows = [r for r in speed_rows(call / f"speed-{arm}-b32.log") if r["micro_batch_size"] == 32]
    return f"    {label}: b32 " + ", ".join(f"{r['steady_tokens_per_s']:,.0f}" for r in rows)


def profile_line(folder: Path, label: str) -> str:
    d = json.loads((folder / "phases-b4.json").read_text())
    copies = [line for line in (folder / "kernels-b4.txt").read_text().splitlines() if "aten::_foreach_copy_" in line]
    calls = copies[0].split()[-1] if copies else "0"
    line = (f"    {label}: GPU busy {d['gpu_busy_ms_per_step']:.2f} ms a step (kernels by kind "
            f"{d['gpu_ms_per_step']:.2f}), step unsynced {d['step_ms_unsynced']:.2f} ms, _foreach_copy_ calls in 5 "
            f"steps {calls}")
    if "host_ms_per_step_unsynced" in d:
        line += f", host {d['host_ms_per_step_unsynced']:.2f} ms to issue a step"
    return line


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec01b"
    call = root / "call1-working"
    print("== call 1: the bf16 working copies (on), without them (off), the session's start b1a4116 (old); steady "
          "tokens/s")
    for arm in ("on", "off", "old"):
        print(b4_line(call, arm, arm))
    print(answer_line(call / "same"))
    print("  b4 step with CUDA graphs (bench/profile_step.py --cudagraphs), under the profiler:")
    print(profile_line(call / "profile-on", "on "))
    print(profile_line(call / "profile-off", "off"))

    call = root / "call2-static"
    print("\n== call 2: static RoPE tables (new) against the working copies alone (mid, dc83144) and b1a4116 (old)")
    for arm in ("new", "mid", "old"):
        print(b4_line(call, arm, arm))
    for arm in ("new", "old"):
        print(b32_line(call, arm, arm))
    print(answer_line(call / "same"))
    print(profile_line(call / "profile", "new"))

    call = root / "call3-host"
    print("\n== call 3: the host's time to issue a step (new) against b1a4116 (old)")
    for arm in ("new", "old"):
        print(b4_line(call, arm, arm))
    print(b32_line(call, "new", "new"))
    print(profile_line(call / "profile", "new"))

    call = root / "call4-regions"
    print("\n== call 4: blocks per compiled region (runtime.blocks_per_region); each arm's first process compiled cold")
    for k in (1, 2, 4):
        rows = [r for log in sorted(call.glob(f"speed-k{k}-[0-9].log")) for r in speed_rows(log)]
        print(b4_line(call, f"k{k}", f"{k} a region"))
        warmups = ", ".join(f"{r['warmup_compile_s']:.1f}" for r in rows)
        starts = ", ".join(f"{r['startup_s']:.1f}" for r in rows)
        print(f"      warm-up s {warmups}; start to the first clocked step s {starts}")
    print(answer_line(call / "same", "4 a region: "))

    call = root / "call5-final"
    print("\n== call 5: the session's code (new) against b1a4116 (old), new / old / new; start to the first clocked step")
    for arm in ("new", "old"):
        rows = [r for log in sorted(call.glob(f"speed-{arm}-[0-9].log")) for r in speed_rows(log)]
        starts = ", ".join(f"{r['startup_s']:.1f}" for r in rows if r["compile_cache"].get("fxgraph_hit") == 10)
        print(b4_line(call, arm, arm) + f"; warm starts {starts} s")


if __name__ == "__main__":
    main()
