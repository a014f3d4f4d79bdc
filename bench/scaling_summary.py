"""Issue 17's figures from the saved output of Nov 30, fourth session (``bench/results/scaling-nov30d/``).

    python bench/scaling_summary.py bench/results/scaling-nov30d

- the default search on one GPU against two (same space, seed and 200 s budget, each from its own copy of one
  warm compile cache): trials finished per hour and per GPU-hour, busy share per GPU (``utilisation.json``);
- the traced two-GPU search, its busy shares recomputed with the two trials that were still training when the
  budget ended (their last results, from Tune's debug log): the search code of that call recorded such trials
  without their clocked time; it now keeps it (``ResultsCallback.record_in_flight``);
- the promotion of the one-GPU search's top 2 x 2 seeds (+ the control) on one GPU and on two: wall time from
  the promotion's start (``settings.json`` written) to its end (``promotion.json`` written), file times.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from search.store import clocked_share  # noqa: E402


def session(run: Path) -> dict:
    return json.loads((run / "utilisation.json").read_text())[-1]


def busy_with_in_flight(run: Path) -> dict:
    u = session(run)
    t = pd.read_csv(run / "trials.csv")
    t = t[t["clock_started_at"].notna()]
    spans = [(a, b, str(int(g))) for a, b, g in zip(t["clock_started_at"], t["clock_ended_at"],
                                                    t["cuda_visible_devices"])]
    for line in (run / "in-flight-last-results.txt").read_text().splitlines():
        fields = {k: re.search(rf"'{k}': ([^,]+)", line).group(1)
                  for k in ("clock_started_at", "reported_at", "cuda_visible_devices")}
        spans.append((float(fields["clock_started_at"]), float(fields["reported_at"]),
                      ast.literal_eval(fields["cuda_visible_devices"])))
    out = {}
    for gpu in sorted({g for _, _, g in spans}):
        s = clocked_share([(a, b) for a, b, g in spans if g == gpu], u["started"], u["ended"])
        out[gpu] = (round(s["fraction"], 3), round(s["fraction_after_first_clock"], 3))
    return out


def promotion_wall_s(folder: Path) -> float:
    times = [datetime.fromisoformat(line.split(" +")[0].replace(" ", "T")[:26])
             for line in (folder / "file-times.txt").read_text().splitlines()]
    return (max(times) - min(times)).total_seconds()


def main() -> None:
    root = Path(sys.argv[1])
    one, two = session(root / "one-gpu"), session(root / "two-gpu")
    print(f"search, 1 GPU: {one['trials']} trials, {one['trials_per_hour']}/h; busy {one['per_gpu']} "
          f"(after each GPU's first clock {one['per_gpu_after_first_clock']})")
    print(f"search, 2 GPUs: {two['trials']} trials, {two['trials_per_hour']}/h; busy {two['per_gpu']} "
          f"(after each GPU's first clock {two['per_gpu_after_first_clock']})")
    print(f"  trials per hour, 2 GPUs / 1 GPU: {two['trials_per_hour'] / one['trials_per_hour']:.2f}x")
    traced = root / "two-gpu-traced"
    t = session(traced)
    print(f"traced 2-GPU search: {t['trials']} trials, {t['trials_per_hour']}/h; busy as recorded then "
          f"{t['per_gpu']} (after first clock {t['per_gpu_after_first_clock']})")
    print(f"  with the 2 trials in flight at the budget's end: (whole window, after first clock) per GPU "
          f"{busy_with_in_flight(traced)}")
    p1, p2 = (promotion_wall_s(root / "promotions" / name)
              for name in ("promote-20261130-125054", "promote-20261130-125759"))
    print(f"promotion (control + 2 candidates x 2 seeds): 1 GPU {p1:.0f} s, 2 GPUs {p2:.0f} s: {p2 / p1:.3f}x")


if __name__ == "__main__":
    main()
