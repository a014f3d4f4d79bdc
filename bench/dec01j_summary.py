"""The figures of the tenth session's device calls (Dec 1), from what they saved under ``bench/results/dec01j/``
(``bash bench/gpu_dec01j.sh swiglu | tune | mlp | part1 | final | final2``, one H200 each; calls 5 and 7 ran on the
machines of the ``part1`` calls 4 and 6 before them). Issue 19: the SwiGLU MLP as one FP8 function with its own
Triton kernel, against ``runtime.fp8``'s three FP8 linears.

    python bench/dec01j_summary.py bench/results > bench/results/dec01j-summary.txt

- ``call1-swiglu`` (at 028d45a): ``bench/fp8_run.py off --set fp8=true`` and ``swiglu`` (``bench/fp8_swiglu.py``,
  since removed) at b64, alternated; the swiglu arm's b64 kernel table.
- ``call2-tune`` (at 8c108c7): that kernel's tiles, timed and checked against its formula.
- ``call3-mlp`` (at 633545e): the kernel and function then in the trainer (now ``bench/fp8_mlp.py``): its tiles,
  transposed by ``tl.trans`` in FP8 or fp32; b64 with fp8=true, the working tree then 9aa9e68; b64 to 12,189,696
  tokens with fp8=true; the default path at b4, the working tree then 9aa9e68.
- ``call5-final`` (at bc99ad9, transposed in fp32 only): the tile in use checked, then runs with fp8=true and
  attention=fa4 (FA4 was not on the old tree's path: those failed), the 12.2M-token run, the record's tokens at b4.
- ``call7-final2`` (at 8cd1c10, no ``tl.trans``, the fastest correct tile of 8 written into the trainer's copy):
  b64 with fp8=true and attention=fa4, the working tree then 9aa9e68; the 12.2M-token run; b96.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dec01h_summary import arms
from dec01i_summary import run_line


def status(result: Path) -> str:
    """A trainer run's ending: its status, steps and last train loss (null in the JSON where it was not finite)."""
    r = json.loads(result.read_text())
    loss = r["final_train_loss"]
    return f"{r['status']} after {r['steps']} steps (last train loss {'not finite' if loss is None else loss})"


def tune(path: Path, every: bool = True) -> None:
    """``bench/fp8_swiglu_tune.py`` or ``bench/fp8_mlp_tune.py``'s ``tune.json``: the MLP checks, then each kernel's
    time, NaNs and agreement with its formula (``every``: all tiles, else the inductor row and the fastest correct
    one)."""
    t = json.loads(path.read_text())
    for m in t["mlp"]:
        errs = m.get("against_bf16", m.get("rel_err"))
        print(f"    {m['mlp']}: finite {m['finite']}, relative error against bf16 {errs}")
    rows = t["kernels"]
    good = [r for r in rows if "us" in r and "bm" in r and r["not_finite"] == 0 and r["transposes_equal"]
            and r["share_unequal"] < 0.01]
    if not every:
        rows = [rows[0], *(r for r in rows if r.get("bm") is not None and r is min(good, key=lambda g: g["us"])),
                *(r for r in rows if r.get("bm") is not None and (r["not_finite"] or not r["transposes_equal"]))]
    for r in rows:
        tile = (f"{r['bm']} x {r['bh']}, {r['warps']} warps" + (", fp32 transpose" if r.get("trans32") else "")
                if "bm" in r else r["kernel"])
        print(f"    {tile}: {r['us']:.1f} us, {r['not_finite']:,} not finite, transposes equal "
              f"{r['transposes_equal']}, {r['share_unequal']:.1%} unequal to the formula")


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec01j"
    call = root / "call1-swiglu"
    print("== call 1 (028d45a): runtime.fp8 (fp8) against bench/fp8_swiglu.py's MLP (swiglu) at b64, alternated")
    for name in ("b64-fp8", "b64-swiglu", "b64-fp8-2", "b64-swiglu-2"):
        result = call / name / "result.json"
        diverged = json.loads(result.read_text())["status"] == "diverged"
        print(f"    {name}: {status(result) if diverged else run_line(result)}")
    p = json.loads((call / "profile-swiglu" / "phases-b64.json").read_text())
    kinds = ", ".join(f"{k} {v:.1f}" for k, v in p["gpu_ms_per_step_by_kind"].items())
    print(f"    swiglu b64 table (ms a step): {kinds}")

    print("\n== call 2 (8c108c7): bench/fp8_swiglu.py's kernel at b64 (M = 131,072, H = 2048), each tile")
    tune(root / "call2-tune" / "tune" / "tune.json")

    call = root / "call3-mlp"
    print("\n== call 3 (633545e): the MLP as one function in the trainer; its kernel (three outputs), each tile")
    tune(call / "tune" / "tune.json")
    print("  b64 with fp8=true, the working tree (its tile then: 64 x 128, 8 warps, FP8 transpose) and 9aa9e68")
    arms(call, ["new-fp8-b64", "old-fp8-b64"])
    print(f"  b64 to 12,189,696 tokens with fp8=true: {status(call / 'big-fp8' / 'result.json')}")
    print("  the default path at b4 (40 steps), the working tree and 9aa9e68")
    arms(call, ["new-b4", "old-b4"])

    call = root / "call5-final"
    print("\n== call 5 (bc99ad9, transposed in fp32 only; its tile 32 x 128, 8 warps)")
    tune(call / "tune" / "tune.json")
    arms(call, ["new-fa4-fp8-b64", "old-fa4-fp8-b64", "new-fa4-fp8-b96", "new-fa4-fp8-b128"])
    print(f"  b64 to 12,189,696 tokens with fp8=true: {status(call / 'big-fp8' / 'result.json')}")

    call = root / "call7-final2"
    print("\n== call 7 (8cd1c10, no tl.trans): the 8 tiles, then the fastest correct one (64 x 128, 8 warps) in the "
          "trainer's copy")
    tune(call / "tune" / "tune.json")
    print("  with fp8=true and attention=fa4: b64, the working tree then 9aa9e68 (20 steps each); b96")
    arms(call, ["new-fa4-fp8-b64", "old-fa4-fp8-b64", "new-fa4-fp8-b96"])
    for name in ("new-fa4-fp8-b64", "old-fa4-fp8-b64", "new-fa4-fp8-b96"):
        r = json.loads((call / f"speed-{name}" / "summary.json").read_text())["rows"][0]
        print(f"    {name}: train loss at step {r['steps']} {r['final_train_loss']:.4f}")
    print(f"  b64 to 12,189,696 tokens with fp8=true (SDPA): {status(call / 'big-fp8' / 'result.json')}")


if __name__ == "__main__":
    main()
