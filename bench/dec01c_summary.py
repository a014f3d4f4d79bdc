"""The figures of Dec 1, third session (issue 19: the q/k weight-gradient sum compiled, q and k from one GEMM;
issue 14: the compile caches keyed on the trainer's code), from the saved output in ``bench/results/dec01c/``
(``bash bench/gpu_dec01c.sh survey | fused | final | startprof | tagenv``, one H200 each; not the same machine
from call to call, so compare arms within a call).

    python bench/dec01c_summary.py bench/results > bench/results/dec01c-summary.txt

- ``call1-survey``: b4 and b32 kernel tables with CUDA graphs and where the GPU waits (at da3bcfa: the q/k
  weight-gradient sum compiled); trainer speed at b4, b64, b48. The session's start (aea989e, old) failed there in
  the new code's cached backward graph: the finding behind ``trainer.stable_keys.tag_with_code``;
- ``call2-fused``: q and k from one GEMM (new, 4fdd24f) against mid (c7bcd55: the compiled sum and the cache tag) and
  old, alternated, twice; the answer; new's b4 kernel table;
- ``call3-final``: b32 and b64 of new, b32 of old; warm starts of new and old alternated; a new machine's first run
  with only the carried ``<cache>`` (tokens, portable compile artifacts, bytecode);
- ``call4-startprof``: a warm start of new and of mid under cProfile (new's warm-up was ~1 s longer);
- ``call5-tagenv``: with the tag in the environment too (61e724f): new and old on a new machine, warm starts;
- ``call6-split``: the q/k kernels with each program on queries or on keys only (new) against the commit before
  (mid, 81bd24c: queries and keys mixed in a program): the q/k path alone, then the trainer at b4.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from dec01b_summary import answer_line
from nov30g_summary import speed_rows


def rates(rows: list[dict]) -> str:
    xs = [r["steady_tokens_per_s"] for r in rows]
    return ", ".join(f"{x:,.0f}" for x in xs) + (f" (median {statistics.median(xs):,.0f})" if len(xs) > 1 else "")


def warm(rows: list[dict]) -> list[dict]:
    """The processes that found the compile cache warm (every FX graph a hit)."""
    return [r for r in rows if r["compile_cache"].get("fxgraph_hit") == 10]


def starts(rows: list[dict]) -> str:
    return (", ".join(f"{r['startup_s']:.1f}" for r in rows) + " s (warm-up " +
            ", ".join(f"{r['warmup_compile_s']:.1f}" for r in rows) + ")")


def arm_rows(call: Path, pattern: str, batch: int = 4) -> list[dict]:
    return [r for log in sorted(call.glob(pattern)) for r in speed_rows(log)
            if r["micro_batch_size"] == batch and "error" not in r]


def batch_line(log: Path, batch: int, label: str) -> str:
    """One micro-batch's runs in a speed log: steady tokens/s and the peak memory."""
    rows = [r for r in speed_rows(log) if r["micro_batch_size"] == batch]
    return (f"    {label} b{batch}: steady tokens/s {rates(rows)}, peak memory "
            f"{max(r['peak_memory_gib'] for r in rows):.1f} GiB")


def new_machine_line(call: Path) -> str:
    """A new machine's first run (``new_machine`` in gpu_common.sh): what was carried, the first process and the next."""
    rows = speed_rows(call / "speed-newmachine.log")
    return (f"    new machine (only <cache> carried: {' '.join((call / 'carried-cache.txt').read_text().split())}): "
            f"first process {starts(rows[:1])}, its cache hits {rows[0]['compile_cache']}; the next {starts(rows[1:])}")


def profile_lines(path: Path) -> list[str]:
    d = json.loads(path.read_text())
    gaps = d["gaps"]
    lines = [f"    GPU busy {d['gpu_busy_ms_per_step']:.2f} ms a step, step unsynced {d['step_ms_unsynced']:.2f} ms, "
             f"host {d['host_ms_per_step_unsynced']:.2f} ms to issue a step",
             "    by kind (ms a step): " + ", ".join(f"{k} {v}" for k, v in d["gpu_ms_per_step_by_kind"].items()),
             "    idle under the profiler by gap size (ms a step): " + ", ".join(
                 f"{k} {v}" for k, v in gaps["idle_ms_per_step_by_gap_size"].items())]
    for g in gaps["largest_gaps"][:4]:
        lines.append(f"      {g['ms_per_step']:.3f} ms ({g['gaps_per_step']} a step) after {g['after']} "
                     f"before {g['before']}")
    return lines


def kernel_us(table: Path, name: str, steps: int = 5) -> tuple[float, int]:
    """(us a call, calls a step) of one kernel in a saved b4 table (5 steps)."""
    for line in table.read_text().splitlines():
        cols = line.split()
        if cols and cols[0] == name:
            total = cols[-5]  # the table's "Self CUDA" column: "1.709ms" or "950.1us"
            us = float(total[:-2]) * (1000 if total.endswith("ms") else 1)
            calls = int(cols[-1])
            return us / calls, calls // steps
    raise ValueError(f"{name} not in {table}")


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec01c"
    call = root / "call1-survey"
    print("== call 1: where a step's time goes with CUDA graphs, da3bcfa (bench/profile_step.py --cudagraphs)")
    for batch in (4, 32):
        print(f"  b{batch}:")
        print("\n".join(profile_lines(call / f"profile-new-b{batch}" / f"phases-b{batch}.json")))
    for batch in (4, 64, 48):
        rows = [r for r in speed_rows(call / "speed-new.log") if r["micro_batch_size"] == batch]
        print(f"  trainer, b{batch}: steady tokens/s {rates(rows)}, peak memory "
              f"{max(r['peak_memory_gib'] for r in rows):.1f} GiB")
    old = [r for r in speed_rows(call / "speed-old.log")]
    print("  old (aea989e) after it on the same caches: " + "; ".join(f"{r['name']} {r['error'][:95]}" for r in old))

    call = root / "call2-fused"
    print("\n== call 2: q and k from one GEMM (new) against mid (c7bcd55) and old (aea989e), alternated; steady "
          "tokens/s at b4")
    for arm in ("new", "mid", "old"):
        rows = arm_rows(call, f"speed-{arm}-[0-9].log")
        print(f"    {arm}: {rates(rows)}; warm starts {starts(warm(rows))}")
    print(answer_line(call / "same"))
    print("  new's b4 step under the profiler:")
    print("\n".join(profile_lines(call / "profile-new-b4" / "phases-b4.json")))
    for name, before in (("qk_fwd", "call1-survey"), ("qk_bwd", "call1-survey")):
        us, calls = kernel_us(call / "profile-new-b4" / "kernels-b4.txt", name)
        us0, calls0 = kernel_us(root / before / "profile-new-b4" / "kernels-b4.txt", name)
        print(f"    {name}: {us:.1f} us x {calls} a step (q and k in one call) against {us0:.1f} us x {calls0} "
              f"(call 1: q and k apart)")

    call = root / "call3-final"
    print("\n== call 3: the best batch, warm starts, a new machine's first run")
    for arm in ("new", "old"):
        for batch in (32, 64):
            if any(r["micro_batch_size"] == batch for r in speed_rows(call / f"speed-{arm}-big.log")):
                print(batch_line(call / f"speed-{arm}-big.log", batch, arm))
    for arm in ("new", "old"):
        rows = arm_rows(call, f"speed-start-{arm}-[0-9].log")
        print(f"    {arm} b4 (20 steps): {rates(rows)}; warm starts {starts(warm(rows))}")
    print(new_machine_line(call))

    call = root / "call4-startprof"
    print("\n== call 4: warm starts under cProfile (new against mid); their start-up phases")
    for arm in ("new", "mid"):
        r = json.loads((call / f"{arm}-result.json").read_text())
        print(f"    {arm}: {r['startup_s']:.1f} s {r['startup_phases']}")
    print("  the functions whose time grew most (bench/prof_diff.py):")
    for line in (call / "diff.txt").read_text().splitlines()[1:8]:
        print("    " + line)

    call = root / "call5-tagenv"
    print("\n== call 5: the cache tag in the environment too (new, 61e724f) against old (aea989e), a new machine")
    for arm in ("new", "old"):
        rows = arm_rows(call, f"speed-{arm}-[0-9].log")
        print(f"    {arm} b4 (20 steps): {rates(rows)}; warm starts {starts(warm(rows))}")

    call = root / "call6-split"
    print("\n== call 6: each program on queries or on keys only (new) against queries and keys mixed (mid, 81bd24c)")
    for r in json.loads((call / "rope" / "rope_variants.json").read_text()):
        if r["variant"].startswith("triton"):
            qk = ", ".join(f"{k} {v:.1f} us" for k, v in sorted(r["kernels_us"].items()) if k.startswith("qk_"))
            print(f"    the q/k path alone, b{r['batch']}: {qk}; largest difference from the compiled formula "
                  f"{r['max_abs_diff']:.4f}")
    for arm in ("new", "mid"):
        rows = arm_rows(call, f"speed-{arm}.log")
        print(f"    {arm} b4 (60 steps): {rates(rows)}")


if __name__ == "__main__":
    main()
