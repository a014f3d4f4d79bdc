"""The figures of the eighth session's device calls (Dec 1), from what they saved under ``bench/results/dec01h/``
(``bash bench/gpu_dec01h.sh part1 | fa4 | verify``, one H200; each ``fa4`` or ``verify`` call ran on the machine
of the ``part1`` call before it, which left the first part of FlashAttention-4's bundle there).

    python bench/dec01h_summary.py bench/results > bench/results/dec01h-summary.txt

- ``call2-fa4`` (at 9958c67): ``bench/fa4_attention.py`` (the model's attention alone), then the trainer at b32 and
  b64 with cuDNN's attention and with FA4 through ``bench/sdpa_run.py cudnn,fa4``. FA4 failed at its first call:
  torch 2.11's registration unpacks two of the five values FA4's forward returns.
- ``call4-fa4`` (at 71c09b6): the same with ``bench/fa4_shim.py`` adapting FA4 to that registration, and the
  record's 6,086,656 tokens with FA4 against the saved reference run.
- ``call6-verify`` (at 90bbe56): the trainer with ``runtime.attention`` (default ``sdpa``) against 55df2c5 at b4,
  alternated twice, and its answer; then ``runtime.attention=fa4``: its answer, and b32 and b64 with sdpa then fa4.
- ``call8-recheck`` (at 2100757, the trainer's last change): the same b4 pairs and answer, then four processes at
  b4 with ``runtime.attention=fa4`` (``bench/trainer_speed.py`` twice: a process, then one on the caches it left).
- ``call9-pairs`` (at 9648520, the trainer as in call 8): the b4 pairs alone, a third look at calls 6 and 8.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dec01f_summary import answer, pairs, speed


def attention(call: Path) -> None:
    """``bench/fa4_attention.py``'s arms, per batch: GPU time and TFLOP/s of the forward and forward + backward."""
    report = json.loads((call / "attention" / "attention.json").read_text())
    for row in report["arms"]:
        if "skipped" in row:
            print(f"    {row['arm']}: not run: {row['skipped']}")
            continue
        diffs = row["vs_float32_at_b1"]
        print(f"    {row['arm']}: first call {row['first_call_s']} s; against float32 at B=1 out {diffs['out']}, "
              f"dq {diffs['dq']}, dk {diffs['dk']}, dv {diffs['dv']}")
        for b, r in row["batches"].items():
            worst = max(r["vs_cudnn"].values())
            print(f"      b{b}: forward {r['forward_ms']:.3f} ms ({r['forward_tflops']} TFLOP/s), forward + backward "
                  f"{r['forward_backward_ms']:.3f} ms ({r['forward_backward_tflops']} TFLOP/s, the backward "
                  f"{r['backward_tflops']}); largest difference from cuDNN {worst}")


def arms(call: Path, names: list[str]) -> None:
    """``batch_arm``'s rows (bench/gpu_common.sh): steady tokens/s, step time, peak memory; an arm that failed says
    so."""
    for name in names:
        summary = call / f"speed-{name}" / "summary.json"
        if not summary.exists():
            print(f"    {name}: no summary")
            continue
        for r in json.loads(summary.read_text())["rows"]:
            if "error" in r:
                print(f"    {name}: {r['name']} failed: {r['error']}")
                continue
            print(f"    {name}: steady {r['steady_tokens_per_s']:,.0f} tokens/s, step {r['step_time_ms']:.1f} ms, "
                  f"MFU {r['steady_mfu']:.1%}, peak {r['peak_memory_gib']:.1f} GiB")


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec01h"
    print("== call 2 (9958c67): the attention alone (8 query heads, 4 key/value heads of 64, 2,048 positions, causal, "
          "bf16; CUDA-graph replays)")
    attention(root / "call2-fa4")
    print("  the trainer, cuDNN's attention, then FA4 through bench/sdpa_run.py cudnn,fa4")
    arms(root / "call2-fa4", ["cudnn-b32", "fa4-b32", "cudnn-b64", "fa4-b64"])

    print("\n== call 4 (71c09b6, bench/fa4_shim.py): the attention alone")
    attention(root / "call4-fa4")
    print("  the trainer, cuDNN's attention, then FA4 through bench/sdpa_run.py cudnn,fa4 (caches of its own)")
    arms(root / "call4-fa4", ["cudnn-b64", "fa4-b64", "cudnn-b32", "fa4-b32"])
    print("  the record's 6,086,656 tokens at b4 with FA4 (same_answer.py --sdpa-off cudnn,fa4)")
    answer(root / "call4-fa4" / "same-fa4" / "summary.json", rate=True)

    call = root / "call6-verify"
    print("\n== call 6: the trainer with runtime.attention (90bbe56, default sdpa) against 55df2c5 at b4, alternated; "
          "its answer")
    speed(call, {"new": "90bbe56, runtime.attention=sdpa", "old": "55df2c5"})
    print("  runtime.attention=fa4: the record's 6,086,656 tokens at b4")
    answer(call / "same-fa4" / "summary.json", rate=True)
    print("  b32 and b64, sdpa then fa4")
    arms(call, ["sdpa-b32", "fa4-b32", "sdpa-b64", "fa4-b64"])

    call = root / "call8-recheck"
    print("\n== call 8: the trainer at 2100757 against 55df2c5 at b4, alternated; its answer")
    speed(call, {"new": "2100757", "old": "55df2c5"})
    print("  b4 with runtime.attention=fa4, 20 steps a process")
    pairs(call, {"fa4": "runtime.attention=fa4"})

    call = root / "call9-pairs"
    print("\n== call 9: the trainer as in call 8 (at 9648520) against 55df2c5 at b4, alternated")
    pairs(call, {"new": "9648520", "old": "55df2c5"})


if __name__ == "__main__":
    main()
