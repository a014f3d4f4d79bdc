"""The figures of the seventh session's device calls (Dec 1), from what they saved under ``bench/results/dec01g/``
(``bash bench/gpu_dec01g.sh same | verify``, one H200 each).

    python bench/dec01g_summary.py bench/results > bench/results/dec01g-summary.txt

- ``call1-same``: ``bench/warm_workers.py same-answer``: the record's settings after two other trials in one worker
  against two fresh ``python -m trainer`` processes, first with every run ``runtime.deterministic``, then in the
  default mode, on one machine.
- ``call2-verify``: the trainer with ``runtime.deterministic`` (10ab69e, off by default) against the one before
  (f17f8ae) at b4, alternated twice; its answer over 6,086,656 tokens against the saved reference run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dec01f_summary import speed, worker_answer


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec01g"
    call = root / "call1-same"
    print("== call 1: a reused worker against fresh processes, every run deterministic, then the default mode")
    runs = {mode: json.loads((call / f"same-answer{suffix}.json").read_text())
            for mode, suffix in (("deterministic", "-deterministic"), ("default", ""))}
    for mode, a in runs.items():
        print(f"  {mode}: {'PASS' if a['pass'] else 'FAIL'} (step loss and val within 0.01); reused worker "
              f"{a['tokens_per_s_warm']:,.0f} tokens/s, started in {a['warm_startup_s']:.2f} s; fresh process "
              f"{a['tokens_per_s_fresh']:,.0f} tokens/s, started in {a['fresh_startup_s']:.1f} s; the 200 step losses "
              f"{'the same' if a['step_losses_warm'] == a['step_losses_fresh'] else 'not the same'} bit for bit")
        worker_answer(a)
    print("\n== call 2: the trainer with runtime.deterministic (10ab69e) against f17f8ae at b4, alternated; its answer")
    speed(root / "call2-verify", {"new": "10ab69e, runtime.deterministic", "old": "f17f8ae"})


if __name__ == "__main__":
    main()
