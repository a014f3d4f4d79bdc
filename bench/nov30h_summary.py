"""The figures of Nov 30, eighth session (issue 19: QK-norm + RoPE as one Triton kernel each way), from its saved
output in ``bench/results/nov30h/`` (``bash bench/gpu_nov30h.sh qk | qk2 | qk3 | final | start``, one H200 each).

    python bench/nov30h_summary.py bench/results > bench/results/nov30h-summary.txt

- ``call1-qk``: the first kernel (even and odd elements by stride-2 loads; dropped), the q/k path alone and the
  trainer against the commit before (``.carry/old``);
- ``call2-qk2``: the kernel rewritten (whole rows, the pair swap in registers), six rows x warps configurations,
  and the trainer at b4 and b32 (30 steps: too short to read, see the README);
- ``call3-qk3``: the backward looping over 8 or 32 row blocks a program (slower; dropped), the trainer with it;
- ``call4-final``: the kernel kept, against the commit before: the q/k path alone, the trainer at b4 twice
  alternated and at b32, the answer, the b4 kernel table;
- ``call5-start``: fresh start-up with Triton imported on the kernels' first call, against the commit before.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from nov30e_summary import same_line
from nov30g_summary import speed_rows, steady

CALLS = {"call1-qk": "call 1, stride-2 loads", "call2-qk2": "call 2, whole rows",
         "call3-qk3": "call 3, backward over row blocks", "call4-final": "call 4, the kernel kept"}


def qk_path(root: Path) -> None:
    print("== the q/k path alone: GPU time per forward + backward, us (the bench's input copies included)")
    for call, label in CALLS.items():
        rows = json.loads((root / call / "rope" / "rope_variants.json").read_text())
        print(f"  {label}")
        for batch in (4, 32):
            cells = [f"{r['variant']} {r['gpu_us_per_pass']:.1f}" for r in rows if r["batch"] == batch]
            print(f"    b{batch:<3}" + ", ".join(cells))


def trainer(root: Path) -> None:
    print("\n== trainer, steady tokens/s: the working tree (new) against the commit before (old), alternated")
    for call, label in CALLS.items():
        print(f"  {label}")
        for code in ("new", "old"):
            logs = sorted((root / call).glob(f"speed-{code}-*.log"))
            rows = [r for log in logs for r in speed_rows(log)]
            b4 = [r["steady_tokens_per_s"] for r in rows if r["micro_batch_size"] == 4]
            print(f"    {code}: {steady(rows)}  (b4 median {statistics.median(b4):,.0f})")
        if (root / call / "same").exists():
            print("    " + same_line(root / call / "same"))


def start(root: Path) -> None:
    print("\n== start-up to the first clocked step, warm caches (call 5; each code's first process was cold)")
    for code in ("new", "old"):
        rows = [r for i in (1, 2, 3) for r in speed_rows(root / "call5-start" / f"speed-{code}-{i}.log")]
        warm = [r for r in rows if r["compile_cache"].get("fxgraph_hit") == 10]
        times = [r["startup_s"] for r in warm]
        print(f"  {code}: " + ", ".join(f"{t:.1f}" for t in times) + f" s (median {statistics.median(times):.1f}); "
              f"warm-up median {statistics.median(r['warmup_compile_s'] for r in warm):.1f} s")


def kernel_table_line(name: str, phases: dict) -> str:
    """One b4 kernel table (``bench/profile_step.py``'s phases-b4.json) as GPU ms a step, in all and by kind."""
    kinds = ", ".join(f"{k} {v:.2f}" for k, v in phases["gpu_ms_per_step_by_kind"].items())
    return f"  {name}: {phases['gpu_ms_per_step']:.2f} ms: {kinds}"


def profile(root: Path) -> None:
    print("\n== b4 kernel table (call 4 against the seventh session's, profile/nov30g): GPU ms a step by kind")
    for name, path in (("nov30g", root.parent / "profile" / "nov30g"), ("nov30h", root / "call4-final" / "profile")):
        print(kernel_table_line(name, json.loads((path / "phases-b4.json").read_text())))


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "nov30h"
    qk_path(root)
    trainer(root)
    start(root)
    profile(root)


if __name__ == "__main__":
    main()
