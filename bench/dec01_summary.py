"""The figures of Dec 1 (issue 19: Muon's Gram-form Newton-Schulz, AdamW's clipping in its fused kernel, the loss
head's Triton cross-entropy), from the saved output in ``bench/results/dec01/`` (``bash bench/gpu_dec01.sh gramce
| final | confirm``, one H200 each; every call against 8d5bc52, the session's start, carried as ``.carry/old``).

    python bench/dec01_summary.py bench/results > bench/results/dec01-summary.txt

- ``call1-gramce``: Muon's step alone, the loss head alone (formula against kernels; kernel configs), the trainer at
  b4 twice alternated and at b32, the answer;
- ``call2-final``: after the gradient kernel's 2048x4 and the q/k backward's column-major partials: the q/k path
  alone, the trainer (b4 figures spread 172-234k on that machine: not read), b32, the answer, the b4 kernel table;
- ``call3-confirm``: the trainer at b4, three times alternated, on a fresh machine;
- ``call4-confirm``: as call 3 after the forward kernel's 4096x4 (the fastest in call 1's sweep at b4 and b32).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from nov30e_summary import same_line
from nov30g_summary import speed_rows
from nov30h_summary import kernel_table_line

CALLS = {"call1-gramce": "call 1", "call2-final": "call 2", "call3-confirm": "call 3",
         "call4-confirm": "call 4 (forward kernel 4096x4)"}


def muon(root: Path) -> None:
    rows = json.loads((root / "call1-gramce" / "muon" / "muon_step.json").read_text())["rows"]
    print("== Muon's step alone (call 1): GPU ms a step; `folded` is the trainer's until now, `trainer` the Gram form")
    for r in rows:
        print(f"  {r['version']:<8}{r['gpu_ms_per_step']:.3f} ms (weights' max difference from folded "
              f"{r['weights_max_abs_difference_vs_folded']:.2e})")


def loss(root: Path) -> None:
    print("\n== the loss head alone, forward + backward with its matmuls (call 1): median ms, peak GB above the inputs")
    lines = [json.loads(x) for x in (root / "call1-gramce" / "loss.log").read_text().splitlines()
             if x.startswith('{"section"')]
    for r in lines:
        if r["section"] == "step":
            diff = max(r["max_rel_diff_vs_formula"].values())
            print(f"  b{r['batch']:<3}{r['variant']:<16}{r['ms_median']:7.3f} ms  {r['peak_gb_above_base']:5.2f} GB  "
                  f"max rel diff {diff:.4f}")
    print("  the kernels alone on random bf16 logits [positions, 49,152], median us:")
    for r in lines:
        if r["section"] == "kernel":
            print(f"    {r['positions']:>6} positions {r['kernel']:<19}{r['config']:<9}{r['us_median']:8.1f}")


def trainer(root: Path) -> None:
    print("\n== trainer, steady tokens/s: the working tree (new) against 8d5bc52 (old), alternated")
    for call, label in CALLS.items():
        if not (root / call).exists():
            continue
        print(f"  {label}")
        for code in ("new", "old"):
            # the b4 runs of 60 steps (speed-CODE-N.log; the b32 log's 20-step b4 run is left out)
            rows = [r for log in sorted((root / call).glob(f"speed-{code}-[0-9].log")) for r in speed_rows(log)]
            b4 = [r["steady_tokens_per_s"] for r in rows]
            b32 = [r["steady_tokens_per_s"] for log in (root / call).glob(f"speed-{code}-b32.log")
                   for r in speed_rows(log) if r["micro_batch_size"] == 32]
            # fresh processes that found every compiled graph cached (the first process of each code compiled)
            starts = [r["startup_s"] for r in rows if r["compile_cache"].get("fxgraph_hit") == 10]
            line = f"    {code}: b4 " + ", ".join(f"{x:,.0f}" for x in b4) + f" (median {statistics.median(b4):,.0f})"
            if b32:
                line += f"; b32 {b32[0]:,.0f}"
            line += "; warm starts " + ", ".join(f"{s:.1f}" for s in starts) + " s"
            print(line)
        if (root / call / "same").exists():
            print("    " + same_line(root / call / "same"))


def profile(root: Path) -> None:
    print("\n== b4 kernel table (call 2 against nov30h call 4): GPU ms a step by kind, under the profiler")
    for name, path in (("nov30h", root.parent / "nov30h" / "call4-final" / "profile"),
                       ("dec01", root / "call2-final" / "profile")):
        d = json.loads((path / "phases-b4.json").read_text())
        phases = ", ".join(f"{k} {v:.2f}" for k, v in d["phase_ms_synced"].items())
        print(f"{kernel_table_line(name, d)}\n    phases synced: {phases}")


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec01"
    muon(root)
    loss(root)
    trainer(root)
    profile(root)


if __name__ == "__main__":
    main()
