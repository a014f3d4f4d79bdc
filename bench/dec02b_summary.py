"""The figures of the twelfth session's device calls (Dec 2), from what they saved under ``bench/results/dec02b/``
(``bash bench/gpu_dec02b.sh verify | part1 | side``, one H200, the three calls on one machine). Issue 19: the default
path checked after the FP8 MLP went into the trainer, the record's answer with and without fp8=true, and the trainer
beside upstream in one call.

    python bench/dec02b_summary.py bench/results > bench/results/dec02b-summary.txt

- ``call1-verify`` (at febee52): b4, the working tree then 288944e, alternated twice (each a process on a cold then
  a warm compile cache); the working tree's answer (the record's 6,086,656 tokens against the saved reference run,
  on the clock); the same with fp8=true.
- ``call3-side`` (at febee52): ours (``bench/trainer_speed.py``) at b128 with fp8=true and attention=fa4, then at b4
  on the default path; upstream 496192d (``bench/upstream_vs_ours.py --only upstream``) eager at b4 and compiled at
  b16. Both sides have the same model (151,032,320 parameters, seq 2048); ours trains on the corpus, upstream on
  random tokens (tokens/s does not depend on which). Ours found call 1's compile caches on the machine.
- ``call4-startup`` (a new machine; the trainer at a90de87, the MLP's op registered on first use): fresh processes at
  b4 (20 steps) of the working tree, febee52 (the op registered at import, which imported dynamo and inductor) and
  288944e (before the FP8 MLP): each first on a cold cache, then two rounds alternated, each a process on the warm
  cache and a second; then the answer with fp8=true and the default path's.
- ``call6-best`` (a new machine, at 5bed752, the same trainer): b128 then b96 with fp8=true and attention=fa4.
- ``call7-fp8check`` (a new machine, at 51b82df: trainer/fp8.py's backwards share one helper for the output
  gradient's cast): the answer with fp8=true, then b64 with fp8=true (SDPA).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from dec01f_summary import answer, pairs
from nov30g_summary import speed_rows


def ours(log: Path, label: str) -> dict:
    (r,) = speed_rows(log)
    print(f"    ours {label}: steady {r['steady_tokens_per_s']:,.0f} tokens/s (whole clock {r['tokens_per_s']:,.0f}), "
          f"{r['step_time_ms']:.1f} ms a step, MFU {r['steady_mfu']:.1%}, peak {r['peak_memory_gib']:.1f} GiB, "
          f"start-up {r['startup_s']:.1f} s")
    return r


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec02b"
    call = root / "call1-verify"
    print("== call 1 (febee52): the default path at b4 (60 steps a process), the working tree and 288944e alternated")
    pairs(call, {"new": "febee52, the FP8 MLP in the trainer", "old": "288944e, before it"})
    answer(call / "same" / "summary.json", rate=True)
    print("  with fp8=true (the MLP as one function):")
    answer(call / "same-fp8" / "summary.json", rate=True)

    call = root / "call3-side"
    up = json.loads((call / "upstream" / "summary.json").read_text())
    print("== call 3 (febee52): ours beside upstream 496192d, one H200, one call")
    peak = speed_rows(call / "speed-ours-b4.log")[0]
    print(f"  MFU counts {peak['flops_per_token'] / 1e9:.3f} GFLOP a token (6·N {peak['flops_per_token_6n'] / 1e9:.3f} "
          f"+ causal attention) against the {peak['peak_name']}'s measured {peak['peak_flops'] / 1e12:.0f} TFLOP/s")
    b128 = ours(call / "speed-ours-b128-fp8-fa4.log", "b128, fp8=true, attention=fa4")
    b4 = ours(call / "speed-ours-b4.log", "b4, the default path (the record's settings)")
    by = {r["name"]: r for r in up["rows"]}
    for name, r in by.items():
        print(f"    {name}: {r['tokens_per_s']:,.0f} tokens/s, {r['ms_per_step']:.1f} ms a step, MFU {r['mfu']:.1%}, "
              f"peak {r['peak_memory_gib']:.1f} GiB, warm-up {r['warmup_s']:.1f} s")
    print(f"  at the record's b4: ours {b4['steady_tokens_per_s'] / by['upstream-eager-b4']['tokens_per_s']:.1f}x "
          f"upstream eager (the record's setting)")
    print(f"  each side's best measured here: ours b128 {b128['steady_tokens_per_s'] / by['upstream-compiled-b16']['tokens_per_s']:.1f}x "
          f"upstream compiled b16")

    call = root / "call4-startup"
    print("== call 4 (a90de87, a new machine): fresh processes at b4 on warm caches, three trees alternated")
    trees = {"new": "a90de87, the op registered on first use", "old": "febee52, registered at import",
             "mid": "288944e, before the FP8 MLP"}
    for tree, label in trees.items():
        (cold,) = speed_rows(call / f"speed-{tree}-0.log")
        rows = [r for i in (1, 2) for r in speed_rows(call / f"speed-{tree}-{i}.log")]
        starts = [r["startup_s"] for r in rows]
        ph = [r["startup_phases"] for r in rows]
        print(f"    {tree} ({label}): start-up " + ", ".join(f"{x:.2f}" for x in starts)
              + f" s (median {statistics.median(starts):.2f}); before_train "
              + ", ".join(f"{p['before_train']:.2f}" for p in ph) + "; data " + ", ".join(f"{p['data']:.2f}" for p in ph)
              + "; warm-up " + ", ".join(f"{p['warmup']:.2f}" for p in ph))
        rates = ", ".join(f"{r['steady_tokens_per_s']:,.0f}" for r in rows)
        print(f"      steady tokens/s {rates}; its first process (cold cache) {cold['startup_s']:.1f} s")
    print("  with fp8=true:")
    answer(call / "same-fp8" / "summary.json", rate=True)
    print("  the default path:")
    answer(call / "same" / "summary.json", rate=True)

    call = root / "call6-best"
    print("== call 6 (5bed752, a new machine): fp8=true and attention=fa4, 20 steps")
    ours(call / "speed-b128-fp8-fa4.log", "b128")
    ours(call / "speed-b96-fp8-fa4.log", "b96")

    call = root / "call7-fp8check"
    print("== call 7 (51b82df, a new machine): fp8=true")
    answer(call / "same-fp8" / "summary.json", rate=True)
    ours(call / "speed-b64-fp8.log", "b64 (SDPA)")


if __name__ == "__main__":
    main()
