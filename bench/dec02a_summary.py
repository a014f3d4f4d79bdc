"""The figures of the eleventh session's device calls (Dec 2), from what they saved under ``bench/results/dec02a/``
(``bash bench/gpu_dec02a.sh tune | diag | diag2 | part1 | final``, one H200 each; call 4 could not start a machine;
call 6 ran on the machine of the ``part1`` call 5 before it). Issue 19: the SwiGLU MLP as one FP8 function, its
backward kernel launched by Triton from a custom op (calls 1-3, ``bench/fp8_mlp.py`` then) and by inductor as a
``triton_op`` (call 3; the trainer's since call 6).

    python bench/dec02a_summary.py bench/results > bench/results/dec02a-summary.txt

- ``call1-tune`` (at 6f5e01a): every tile x clamp x packing choice, timed and checked on two inputs; the MLP
  against bf16; in the trainer at b64 without CUDA graphs with every call checked against the formula, the best
  choice and the tenth session's; b64 speed, the MLP (custom op, CUDA graphs) against runtime.fp8 alone, twice.
- ``call2-diag`` (at 6687ac9): with CUDA graphs, the best choice checked, the op as its formula, the packed choice
  checked; without CUDA graphs, the MLP and runtime.fp8 alone.
- ``call3-diag2`` (at 06967b5): with CUDA graphs, the best choice checked with each launch context printed; without,
  the device synchronised around the launch; the op as a ``triton_op`` with CUDA graphs, twice, and runtime.fp8.
- ``call6-final`` (at cafad89, the MLP in the trainer): with fp8=true and attention=fa4, b64 the working tree then
  288944e, b96 and b128 the working tree; b64 to 12,189,696 tokens with fp8=true against the ninth session's bf16
  run.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from dec01h_summary import arms
from dec01i_summary import big, run_line
from dec01j_summary import status


def run(call: Path, name: str) -> None:
    """One ``fp8_run_as`` run: its ``run_line``, or how it ended where it ended early; and the check's lines."""
    result = call / name / "result.json"
    if not result.exists():
        error = [line for line in (call / f"{name}.log").read_text().splitlines() if "Error" in line]
        print(f"    {name}: no result ({error[-1][:120] if error else 'no error line'})")
    else:
        r = json.loads(result.read_text())
        short = r["steps"] < 6 or r["status"] == "diverged"  # run_line measures from the fifth step on
        print(f"    {name}: {status(result) if short else run_line(result)}")
    checks = [line for line in (call / f"{name}.log").read_text().splitlines() if line.startswith("fp8_mlp check")]
    if checks:
        calls = [line for line in checks if re.match(r"fp8_mlp check \d+:", line) or "M 131072" in line]
        clean = [line for line in calls if re.search(r"outputs not finite \[0, 0, 0\], (share )?unequal to the "
                                                     r"formula \[0(\.0)?, 0(\.0)?, 0(\.0)?\]", line)]
        print(f"      checked calls: {len(calls)}, of which {len(clean)} with every output equal to the formula")
        for line in [*(c for c in checks if c not in calls), *(c for c in calls if c not in clean)][:3]:
            print(f"      {line[:160]}")


def tune(path: Path) -> None:
    """``bench/fp8_mlp_tune.py``'s ``tune.json``: the inductor row, how many choices passed, the fastest ones, the MLP."""
    t = json.loads(path.read_text())
    rows = t["kernels"]
    print(f"    {rows[0]['kernel']}: {rows[0]['us']:.1f} us")
    ok = [r for r in rows[1:] if "us" in r and r["not_finite"] == 0 and r["transposes_equal"]
          and r["share_unequal"] < 0.01]
    print(f"    choices passing on both inputs: {len(ok)} of {len(rows) - 1}")
    for r in sorted(ok, key=lambda r: r["us"])[:4]:
        print(f"    {r['bm']} x {r['bh']}, {r['warps']} warps, clamp {r['clamp']}, pack {r['pack']}: {r['us']:.1f} us")
    print("    the tenth session's (64 x 128, 8 warps, min/max, bytes): "
          + "; ".join(f"{r['us']:.1f} us, {r['not_finite']} not finite, {r['share_unequal']:.1%} unequal"
                      for r in rows[1:] if (r["bm"], r["bh"], r["warps"], r["clamp"], r["pack"])
                      == (64, 128, 8, "minmax", False)))
    for m in t["mlp"]:
        print(f"    {m['mlp']} ({t['mlp_tile']['clamp']} clamp): finite {m['finite']}, relative error against bf16 "
              f"{m['against_bf16']}")


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec02a"
    call = root / "call1-tune"
    print("== call 1 (6f5e01a): the kernel's 48 choices at b64 (M = 131,072, H = 2048), each checked on two inputs")
    tune(call / "tune" / "tune.json")
    print("  the trainer at b64, no CUDA graphs, each call checked (best choice, then the tenth session's)")
    for name in ("b64-check-best", "b64-check-dec01j"):
        run(call, name)
    print("  b64 with CUDA graphs: the MLP (custom op, best choice) and runtime.fp8 alone (fp8), alternated")
    for name in ("b64-mlp-1", "b64-fp8-1", "b64-mlp-2", "b64-fp8-2"):
        run(call, name)

    call = root / "call2-diag"
    print("\n== call 2 (6687ac9): b64, 6 steps with CUDA graphs (g-), then 25 without (nographs-)")
    for name in ("g-check-best", "g-formula", "g-check-pack", "b64-nographs-mlp", "b64-nographs-fp8"):
        run(call, name)

    call = root / "call3-diag2"
    print("\n== call 3 (06967b5): b64; the custom op checked with CUDA graphs, synchronised without them; the op as a "
          "triton_op with CUDA graphs (traced)")
    for name in ("g-check-streams", "nographs-sync", "b64-traced", "b64-traced-2", "b64-fp8"):
        run(call, name)

    call = root / "call6-final"
    print("\n== call 6 (cafad89): the MLP in the trainer; fp8=true and attention=fa4; b64 the working tree then "
          "288944e (20 steps each), b96 and b128 the working tree")
    arms(call, ["new-fa4-fp8-b64", "old-fa4-fp8-b64", "new-fa4-fp8-b96", "new-fa4-fp8-b128"])
    for name in ("new-fa4-fp8-b64", "old-fa4-fp8-b64", "new-fa4-fp8-b96", "new-fa4-fp8-b128"):
        r = json.loads((call / f"speed-{name}" / "summary.json").read_text())["rows"][0]
        print(f"    {name}: train loss at step {r['steps']} {r['final_train_loss']:.4f}, whole clock "
              f"{r['tokens_per_s']:,.0f} tokens/s")
    print("  b64 to 12,189,696 tokens with fp8=true (SDPA) against the ninth session's bf16 run (dec01i call 2)")
    big(call / "big-fp8" / "result.json", root.parent / "dec01i" / "call2-fp8" / "big-bf16" / "result.json")


if __name__ == "__main__":
    main()
