"""The figures of Nov 30, seventh session, from its saved output (issues 19, then 14 and 17).

    python bench/nov30g_summary.py bench/results > bench/results/nov30g-summary.txt

- ``block_variants/nov30g-call1``: one block's forward + backward in layout and attention-backend variants
  (``bench/block_variants.py``; at b4 the CUDA-event times are the host's launches, see there);
- ``rope_variants/nov30g-call2``: the q/k path alone, GPU time summed over its kernels (``bench/rope_variants.py``);
- ``trainer_speed/nov30g-rope``, ``same_answer/nov30g-rope``: call 3, the trainer with the q/k path as it was
  (``stack``) and rewritten (``swap_bthd``, kept; ``swap``), then the kept one's answer;
- ``muon_step/nov30g.json``, ``trainer_speed/nov30g-muon``, ``same_answer/nov30g-muon``: call 4, Newton-Schulz
  with a X folded into the Gram side, against the commit before it, alternated;
- ``trainer_speed/nov30g-clip``, ``same_answer/nov30g-clip``, ``scaling-nov30g/``: call 5 on 2 x H200, clipping
  moved into the optimizers against the commit before it on GPU 1 while the default search ran on GPU 0, then
  the same search on both GPUs;
- ``trainer_speed/nov30g-session``: call 6, this session's trainer against its start (b201b22) in one call.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from nov30e_summary import cache_hits, same_line, search, warm_line


def speed_rows(log: Path) -> list[dict]:
    """The rows ``bench/trainer_speed.py`` printed (one JSON object per run) from its saved log."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"name"')]


def steady(rows: list[dict]) -> str:
    return ", ".join(f"{r['name']} {r['steady_tokens_per_s']:,.0f}" for r in rows)


def variants(root: Path) -> None:
    print("== one block, forward + backward (call 1): ms per pass, largest output / relative gradient difference")
    for batch in ("b4", "b32"):
        for r in json.loads((root / "block_variants" / "nov30g-call1" / batch / "block_variants.json").read_text())["rows"]:
            print(f"  {batch:<4}{r['variant']:<13}{r['ms_per_pass']:7.3f} ms   {r['max_abs_out_diff']:.4f} / "
                  f"{r['max_rel_grad_diff']:.4f}")
    print("\n== the q/k path alone (call 2): GPU time per forward + backward, us (the input copies included)")
    for r in json.loads((root / "rope_variants" / "nov30g-call2" / "rope_variants.json").read_text()):
        copies = sum(v for k, v in r["kernels_us"].items() if k.startswith("Memcpy"))
        print(f"  b{r['batch']:<3}{r['variant']:<11}{r['gpu_us_per_pass']:7.1f}  (copies {copies:.1f})  "
              f"max diff {r['max_abs_diff']:.4f}")


def trainer(root: Path) -> None:
    speed = root / "trainer_speed"
    print("\n== trainer, steady tokens/s (call 3: the q/k path)")
    for name in ("b4-stack", "b4-swap_bthd", "b4-swap", "b32-stack", "b32-swap_bthd"):
        print(f"  {name:<15}{steady(speed_rows(speed / 'nov30g-rope' / f'speed-{name}.log'))}")
    print("  " + same_line(root / "same_answer" / "nov30g-rope"))
    print("\n== Muon (call 4)")
    muon = json.loads((root / "muon_step" / "nov30g.json").read_text())
    print("  Muon's step alone: " + ", ".join(f"{r['version']} {r['gpu_ms_per_step']:.3f} ms" for r in muon["rows"]))
    for call in ("nov30g-muon", "nov30g-clip"):
        label = {"nov30g-muon": "call 4, Muon folded", "nov30g-clip": "call 5, clipping in the optimizers (GPU 1)"}
        print(f"\n== {label[call]}: the working tree (new) against the commit before (old), alternated")
        medians = {}
        for code in ("new", "old"):
            rows = [r for i in (1, 2) for r in speed_rows(speed / call / f"speed-{code}-{i}.log")]
            medians[code] = statistics.median(r["steady_tokens_per_s"] for r in rows)
            print(f"  {code}: {steady(rows)}  (median {medians[code]:,.0f})")
        print(f"  new / old: {medians['new'] / medians['old']:.3f}x")
        print("  " + same_line(root / "same_answer" / call))
    print("\n== call 6: this session's trainer (new) against its start, b201b22 (old), one H200")
    for code in ("new", "old"):
        rows = json.loads((speed / "nov30g-session" / f"speed-{code}" / "summary.json").read_text())["rows"]
        print(f"  {code}: {steady(rows)}")


def searches(root: Path) -> None:
    print("\n== the default search, 150 s, 2 x H200 machine of call 5 (issues 14 and 17)")
    for g in ("1gpu", "2gpu"):
        u, t = search(root / "scaling-nov30g" / f"s12-{g}")
        first = t.sort_values("clock_started_at").iloc[0]
        print(f"  {g}: {u['trials']} trials, {u['trials_per_hour']}/h, {u['trials_per_gpu_hour']}/GPU-h; busy per GPU "
              f"{u['per_gpu']}, after its first clock {u['per_gpu_after_first_clock']}")
        print(f"    first trial: start-up {first['startup_s']:.1f} s, {cache_hits(t, first)}; {warm_line(t)}")


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
    variants(root)
    trainer(root)
    searches(root)


if __name__ == "__main__":
    main()
