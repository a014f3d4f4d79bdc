"""The figures of the ninth session's device calls (Dec 1), from what they saved under ``bench/results/dec01i/``
(``bash bench/gpu_dec01i.sh fixed | fp8 | part1 | final | verify | final2``, one H200 each; each ``final`` or
``final2`` call ran on the machine of the ``part1`` call before it, which left the first part of FlashAttention-4's
bundle there).

    python bench/dec01i_summary.py bench/results > bench/results/dec01i-summary.txt

- ``call1-fixed`` (at 153c6c5): ``bench/fp8_run.py off | fixed | fixed-head`` compiled at b64 for 25 steps, then
  ``off | fixed`` at b4 for 60 steps: FP8 with fixed scales, a speed bound.
- ``call2-fp8`` (at 7d06eda): ``runtime.fp8`` in the trainer: b64 and b32 in bf16 then with fp8=true, the record's
  6,086,656 tokens at b4 with fp8=true against the saved reference run, and b64 to 12,189,696 tokens in bf16 and
  with fp8=true.
- ``call4-final`` (at 9c71eab, the trainer of 7d06eda; after part1 as call 3): b64 with fp8=true and
  attention=fa4, the b64 kernel table with fp8=true, b96 with both.
- ``call5-verify`` (at b488aab, the loss kernel writing the head's gradient in e5m2): the working tree against
  5fd7861 (the session's start) at b4, alternated twice, and its answer.
- ``call7-final2`` (at 60a55d6, the trainer of b488aab; after part1 as call 6): b64 and b96 with fp8=true and
  attention=fa4, b64 with fp8=true, b64 to 12,189,696 tokens with fp8=true against call 2's bf16 run, the b64 kernel
  table with both.
- ``call8-b128`` (the same machine, the same trainer): b128 with fp8=true and attention=fa4.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dec01f_summary import answer, speed
from dec01h_summary import arms
from same_answer import compare


def run_line(result: Path) -> str:
    """One trainer run's ``result.json`` in a line: tokens/s from the fifth step on and over the whole clock, peak
    memory, the last train loss (``gpu_dec01i.sh``'s ``fp8_run_as`` prints it after each run)."""
    r = json.loads(result.read_text())
    h = r["history"]
    a, b = h[4], h[-1]
    steady = (b["tokens"] - a["tokens"]) / (b["clock_s"] - a["clock_s"])
    return (f"{steady:,.0f} tokens/s from step {a['step']} to {b['step']} ({r['tokens_per_s']:,.0f} over the clock), "
            f"peak {r['peak_memory_bytes'] / 2**30:.1f} GiB, train loss at step {b['step']} {b['train_loss']:.4f}")


def fixed(call: Path) -> None:
    """``gpu_dec01i.sh fixed``'s runs (``run_line``)."""
    for name in ("b64-off", "b64-fixed", "b64-fixed-head", "b4-off", "b4-fixed"):
        print(f"    {name}: {run_line(call / name / 'result.json')}")


def big(fp8_result: Path, bf16_result: Path) -> None:
    """b64 to 12,189,696 tokens with fp8=true against bf16: step losses at 3M, 6M and 12M tokens (10-step means), as
    ``bench/same_answer.py`` compares, and the final val losses."""
    fp8, bf16 = (json.loads(p.read_text()) for p in (fp8_result, bf16_result))
    s = compare(fp8["history"], bf16["history"], [3_000_000, 6_000_000, 12_000_000], 10, 0.05)
    marks = "; ".join(f"{m['mark']:,}: {m['diff']:+.4f} (10-step mean {m['mean_diff']:+.4f})" for m in s["marks"])
    print(f"    step loss fp8 - bf16 at {marks}: {'PASS' if s['pass'] else 'FAIL'} (tolerance 0.05)")
    print(f"    val {fp8['final_val_loss']:.4f} against {bf16['final_val_loss']:.4f} "
          f"({fp8['final_val_loss'] - bf16['final_val_loss']:+.4f}); over the whole runs, evaluations paused, "
          f"{fp8['tokens_per_s']:,.0f} against {bf16['tokens_per_s']:,.0f} tokens/s")


def table(phases: Path) -> None:
    p = json.loads(phases.read_text())
    kinds = ", ".join(f"{k} {v:.1f}" for k, v in p["gpu_ms_per_step_by_kind"].items())
    print(f"    b{p['batch']} table (ms a step): {kinds}; GPU busy {p['gpu_busy_ms_per_step']:.1f} ms")


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec01i"
    print("== call 1 (153c6c5): bench/fp8_run.py, the blocks' matmuls in FP8 with fixed scales (fixed), and the "
          "chunked loss's too (fixed-head), against bf16 (off); compiled")
    fixed(root / "call1-fixed")

    call = root / "call2-fp8"
    print("\n== call 2 (7d06eda): runtime.fp8 in the trainer, bf16 then fp8=true")
    arms(call, ["bf16-b64", "fp8-b64", "bf16-b32", "fp8-b32"])
    print("  the record's 6,086,656 tokens at b4 with fp8=true")
    answer(call / "same-fp8" / "summary.json", rate=True)
    print("  b64 to 12,189,696 tokens, seed 0")
    big(call / "big-fp8" / "result.json", call / "big-bf16" / "result.json")

    call = root / "call4-final"
    print("\n== call 4 (9c71eab): fp8=true with attention=fa4; the kernel table with fp8=true (sdpa)")
    arms(call, ["fa4-fp8-b64", "fa4-fp8-b96"])
    table(call / "profile-fp8-b64" / "phases-b64.json")

    print("\n== call 5 (b488aab): the trainer against 5fd7861 at b4, alternated; its answer")
    speed(root / "call5-verify", {"new": "b488aab", "old": "5fd7861"})

    call = root / "call7-final2"
    print("\n== call 7 (b488aab, the head's gradient in e5m2 from the loss kernel): fp8=true with attention=fa4, and "
          "alone")
    arms(call, ["fa4-fp8-b64", "fa4-fp8-b96", "fp8-b64"])
    print("  b64 to 12,189,696 tokens with fp8=true against call 2's bf16 run")
    big(call / "big-fp8" / "result.json", root / "call2-fp8" / "big-bf16" / "result.json")
    table(call / "profile-fa4-fp8-b64" / "phases-b64.json")

    print("\n== call 8 (the machine of call 7): b128 with fp8=true and attention=fa4")
    arms(root / "call8-b128", ["fa4-fp8-b128"])


if __name__ == "__main__":
    main()
