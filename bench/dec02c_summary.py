"""The figures of the thirteenth session's device calls (Dec 2), from what they saved under ``bench/results/dec02c/``
(``bash bench/gpu_dec02c.sh nested | regress | threads | pool | newmachine``, one H200 each, a new loan each call).
Issue 14: a fresh process's start-up to its first clocked step, at the record's settings (b4, 20 steps a process).

    python bench/dec02c_summary.py bench/results > bench/results/dec02c-summary.txt

- ``call1-nested`` (the working tree: each block of a Region a nested compile region, ``bench/nested_regions.py``'s
  change in the trainer, not committed; against 111afa1, ``old``): each tree a cold process, then rounds of two
  warm processes. The working tree's runs all failed; the error is in ``new-0-error.txt``.
- ``call2-regress`` (the working tree at 111afa1, ``new``, against 7ea2144, ``mid``, whose warm processes started in
  a median of 8.65 s on Dec 1): is the start-up slower now than then? Each on inductor and Triton caches of its own.
- ``call3-threads`` (111afa1): one tree on one warm cache, its processes with inductor's compile-worker pool (the
  default) and without it (``TORCHINDUCTOR_COMPILE_THREADS=1``), alternated; ``workers.txt`` counts the compile
  workers alive every 0.5 s.
- ``call4-pool`` (0645d10: no pool where a shape's portable compile artifacts were loaded, reverted in 96e9038) against
  111afa1, each on caches of its own, alternated; ``arms.txt`` says when each arm began, so the worker counts split
  by arm.
- ``call5-newmachine`` (96e9038, the trainer of 111afa1): a cold process, then a new machine's first run (inductor and
  Triton caches emptied, only ``<cache>`` kept), the process after it, and two more.
- ``cpu-nested.txt`` (the 2-core CPU, ``bench/nested_regions_cpu.sh``): the nested regions on the tiny model with 32
  layers, where the blocks have no working copies.

A "start-up" is the run's own ``startup_s``: from the process's start to its first clocked step.
"""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

from nov30g_summary import speed_rows

PHASES = ("before_train", "data", "warmup")


def rows_of(call: Path, arm: str, rounds: range) -> list[dict]:
    """The rows of ``speed-<arm>-<i>.log`` for i in rounds that ran."""
    out = []
    for i in rounds:
        log = call / f"speed-{arm}-{i}.log"
        if log.exists():
            out += speed_rows(log)
    return out


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def warm(rows: list[dict], label: str) -> float:
    """Print the warm processes' start-ups, their median and their phases; return the median."""
    done = [r for r in rows if "error" not in r]
    starts = [r["startup_s"] for r in done]
    median = statistics.median(starts)
    print(f"    {label}: {len(starts)} processes, start-up {fmt(starts)} s (median {median:.2f}, "
          f"{min(starts):.2f}-{max(starts):.2f})")
    for phase in PHASES:
        values = [r["startup_phases"][phase] for r in done]
        print(f"      {phase} {fmt(values)} (median {statistics.median(values):.2f})")
    steady = [r["steady_tokens_per_s"] for r in done]
    print(f"      steady tokens/s median {statistics.median(steady):,.0f}; "
          f"all graphs from the cache: {all(r['compile_cache'] == {'fxgraph_hit': 10, 'aot_hit': 8} for r in done)}")
    return median


def cold(call: Path, arm: str, label: str) -> None:
    (r,) = speed_rows(call / f"speed-{arm}.log")
    print(f"    {label}: start-up {r['startup_s']:.2f} s (warm-up {r['startup_phases']['warmup']:.1f} s), "
          f"{r['compile_cache']}, steady {r['steady_tokens_per_s']:,.0f} tokens/s")


def against(call: Path, other: str, rounds: int) -> None:
    """A call of ``gpu_dec02c.sh``'s ``cold_then_rounds`` with the working tree (new) and ``other``: each tree's cold
    process, then each tree's warm ones and their medians."""
    cold(call, f"{other}-0", f"{other}, cold caches")
    cold(call, "new-0", "new, cold caches")
    new = warm(rows_of(call, "new", range(1, rounds + 1)), "new, warm caches")
    theirs = warm(rows_of(call, other, range(1, rounds + 1)), f"{other}, warm caches")
    print(f"    medians: new {new:.2f} s, {other} {theirs:.2f} s ({new - theirs:+.2f} s)")


def workers(call: Path) -> list[tuple[float, int]]:
    return [(float(t), int(n)) for t, n in (line.split() for line in (call / "workers.txt").read_text().splitlines())]


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec02c"

    call = root / "call1-nested"
    print("== call 1: each block of a Region as a nested compile region (working tree) against 111afa1 (old)")
    error = (call / "new-0-error.txt").read_text()
    first = next(line for line in error.splitlines() if line.startswith("torch._dynamo.exc."))
    why = next(line.strip() for line in error.splitlines() if "Input-to-input aliasing" in line)
    print(f"    new: every run failed: {first.split(':')[0]}")
    print(f"      {why[:150]}")
    cold(call, "old-0", "old, cold caches")
    warm(rows_of(call, "old", range(1, 3)), "old, warm caches")

    call = root / "call2-regress"
    print("== call 2: the working tree (111afa1, new) against 7ea2144 (mid), alternated, caches of their own")
    against(call, "mid", rounds=3)

    call = root / "call3-threads"
    print("== call 3: 111afa1 on one warm cache, with inductor's compile-worker pool and without it, alternated")
    cold(call, "cold", "the first process, cold caches (with the pool)")
    one = warm(rows_of(call, "one", range(1, 5)), "without the pool (TORCHINDUCTOR_COMPILE_THREADS=1)")
    pool = warm(rows_of(call, "pool", range(1, 5)), "with the pool (the default)")
    counts = [n for _, n in workers(call)]
    print(f"    medians: without {one:.2f} s, with {pool:.2f} s ({one - pool:+.2f} s); compile workers alive at "
          f"{len(counts)} samples: 17 at {counts.count(17)}, at most {max(counts)}")

    call = root / "call4-pool"
    print("== call 4: 0645d10 (new: no pool where the portable artifacts were loaded) against 111afa1 (old), alternated")
    against(call, "old", rounds=4)
    arms = [(line.split()[0], float(line.split()[2])) for line in (call / "arms.txt").read_text().splitlines()]
    samples = workers(call)
    end = samples[-1][0]
    for arm in ("new", "old"):
        spans = [(t0, arms[i + 1][1] if i + 1 < len(arms) else end) for i, (name, t0) in enumerate(arms)
                 if name.startswith(arm)]
        alive = [n for t, n in samples if any(a <= t < b for a, b in spans)]
        print(f"    {arm}: samples with the 16 workers and their sidecar alive: {sum(n >= 17 for n in alive)} of "
              f"{len(alive)}")

    call = root / "call5-newmachine"
    print("== call 5: 96e9038 (the trainer of 111afa1): a new machine's first run, only <cache> carried")
    cold(call, "cold", "the first process, cold caches")
    carried = ", ".join(line.replace("\t", " ").replace("/tmp/bbcache-new/", "")
                        for line in (call / "carried-cache.txt").read_text().splitlines())
    print(f"    carried: {carried}")
    first, second = speed_rows(call / "speed-newmachine.log")
    print(f"    the new machine's first process: start-up {first['startup_s']:.2f} s, {first['compile_cache']}; "
          f"the next {second['startup_s']:.2f} s")
    warm(speed_rows(call / "speed-warm.log"), "two more")

    print("== all calls: 111afa1's trainer with PyTorch's defaults, every warm process (calls 1-5)")
    every = (rows_of(root / "call1-nested", "old", range(1, 3)) + rows_of(root / "call2-regress", "new", range(1, 4))
             + rows_of(root / "call3-threads", "pool", range(1, 5)) + rows_of(root / "call4-pool", "old", range(1, 5))
             + [second] + speed_rows(call / "speed-warm.log"))
    starts = sorted(r["startup_s"] for r in every)
    print(f"    {len(starts)} processes over five loans of an H200: median {statistics.median(starts):.2f} s, "
          f"{starts[0]:.2f}-{starts[-1]:.2f} s; at most 10 s: {sum(t <= 10 for t in starts)}")
    for phase in PHASES:
        values = [r["startup_phases"][phase] for r in every]
        print(f"      {phase} {min(values):.2f}-{max(values):.2f} s (median {statistics.median(values):.2f})")

    print("== the CPU (2 cores, torch 2.13): nested regions on the tiny model with 32 layers (cpu-nested.txt)")
    text = (root / "cpu-nested.txt").read_text()
    for arm in ("plain", "nested"):
        got = {name: (float(s), float(w)) for name, s, w in
               re.findall(rf"^({arm}-[\w-]+): start-up ([\d.]+) s, warm-up ([\d.]+) s", text, re.M)}
        warm_ups = [w for name, (_, w) in got.items() if "warm" in name]
        print(f"    {arm}: cold warm-up {got[f'{arm}-cold'][1]:.1f} s; warm warm-ups {fmt(warm_ups)} s")
    losses = set(re.findall(r"first losses (\[[^\]]*\]), final val ([\d.]+)", text))
    print(f"    the same first losses and final val in every process: {len(losses) == 1}")


if __name__ == "__main__":
    main()
