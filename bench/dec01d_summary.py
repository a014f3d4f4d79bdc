"""The figures of Dec 1, fourth session (issue 19: the residual stream in bf16, the final code of the third session
checked; issue 14: warm workers against a process per trial on one GPU), from the saved output in
``bench/results/dec01d/`` (``bash bench/gpu_dec01d.sh verify | resid | survey | final | search1 | tables``, one H200
each; not the same machine from call to call, so compare arms within a call).

    python bench/dec01d_summary.py bench/results > bench/results/dec01d-summary.txt

- ``call1-verify``: the third session's last commit (2926ce7): its answer at 6,086,656 tokens, b32 and b64, a fresh
  process split by ``bench/startup_split.py``, a warm start under cProfile and two more warm starts;
- ``call2-resid``: the residual stream in bf16 (new) against 2926ce7 (mid), b4 alternated twice, new's answer, b32 of
  both;
- ``call3-survey``: b4 and b32 kernel tables, which ``bench/profile_step.py`` then still built with the residual
  stream in fp32 (the trainer's step before the change, on that machine); b64 and b48 of the working tree;
- ``call4-final``: the same tables with the residual stream in bf16, as the trainer runs it; warm starts; a new
  machine's first run with only ``<cache>`` carried;
- ``call5-search1``: the default search on the one GPU for 150 s with a process per trial, then with warm workers
  (the first 55% of wiki shard 0's documents: the whole shard does not fit beside the search bundle);
- ``call6-tables``: the b4 and b32 tables once more, ``bench/profile_step.py`` now building the step with
  ``trainer.train.build_shape`` (at b32 the trainer's chunked loss, which the earlier tables left out).
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

from dec01b_summary import answer_line
from dec01c_summary import arm_rows, batch_line, new_machine_line, profile_lines, rates, starts, warm


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec01d"
    call = root / "call1-verify"
    print("== call 1: the third session's final code (2926ce7)")
    print(answer_line(call / "same"))
    for batch in (32, 64):
        print(batch_line(call / "speed-big.log", batch, "2926ce7"))
    rows = arm_rows(call, "speed-start-[0-9].log")
    print(f"    b4 (20 steps): {rates(rows)}; warm starts {starts(warm(rows))}")
    split = json.loads((call / "split.json").read_text())
    print(f"  a fresh process on those caches (bench/startup_split.py): {split['startup_s']:.2f} s "
          f"{split['startup_phases']}")
    print("    spans (s): " + ", ".join(f"{k} {v}" for k, v in split["span_totals_s"].items()))
    print("    dynamo's compile times (s): " + ", ".join(f"{k} {v}" for k, v in split["dynamo_compile_times_s"].items()))

    call = root / "call2-resid"
    print("\n== call 2: the residual stream in bf16 (new) against fp32 (mid, 2926ce7), alternated; steady tokens/s")
    for arm in ("new", "mid"):
        rows = arm_rows(call, f"speed-{arm}-[0-9].log")
        print(f"    {arm} b4: {rates(rows)}, peak memory {max(r['peak_memory_gib'] for r in rows):.1f} GiB; "
              f"warm starts {starts(warm(rows))}")
    print(answer_line(call / "same", "new: "))
    for arm in ("new", "mid"):
        print(batch_line(call / f"speed-{arm}-b32.log", 32, arm))


    call = root / "call3-survey"
    print("\n== call 3: b64 and b48 of new; kernel tables of the step with the residual stream in fp32 (the profiler's "
          "model did not follow the trainer yet), then (call 4) in bf16")
    for batch in (64, 48):
        print(batch_line(call / "speed-new.log", batch, "new"))
    for batch in (4, 32):
        for label, folder in (("fp32 residual (call 3)", call), ("bf16 residual (call 4)", root / "call4-final")):
            print(f"  b{batch}, {label}:")
            print("\n".join(profile_lines(folder / f"profile-new-b{batch}" / f"phases-b{batch}.json")[:2]))

    call = root / "call4-final"
    print("\n== call 4: warm starts and a new machine's first run (the working tree)")
    rows = arm_rows(call, "speed-start-[0-9].log")
    print(f"    b4 (20 steps): {rates(rows)}; warm starts {starts(warm(rows))}")
    print(new_machine_line(call))

    call = root / "call5-search1"
    print("\n== call 5: the default search on one H200, 150 s each, a process per trial (fresh) then warm workers")
    for arm in ("fresh", "warm"):
        u = json.loads((call / "runs" / f"{arm}-1gpu" / "utilisation.json").read_text())[0]
        with open(call / "runs" / f"{arm}-1gpu" / "trials.csv") as f:
            trials = list(csv.DictReader(f))
        starts_by_kind = {}
        for t in trials:
            if t["status"] != "interrupted" and t["start_latency_s"]:  # as the search's own count
                starts_by_kind.setdefault("warm" if t["warm_start"] == "True" else "fresh", []).append(
                    float(t["start_latency_s"]))
        latency = "; ".join(f"{k} trials {len(v)}, starting in a median of {statistics.median(v):.2f} s"
                            for k, v in sorted(starts_by_kind.items()))
        print(f"    {arm}: {u['trials']} trials in {u['wall_s']:.0f} s, {u['trials_per_gpu_hour']:.0f} per GPU-hour; "
              f"training {u['fraction']:.0%} of the wall ({u['fraction_after_first_clock']:.0%} after the first "
              f"clock); {latency}")

    call = root / "call6-tables"
    print("\n== call 6: the kernel tables with the step built by trainer.train.build_shape (b32: the chunked loss)")
    for batch in (4, 32):
        print(f"  b{batch}:")
        print("\n".join(profile_lines(call / f"profile-new-b{batch}" / f"phases-b{batch}.json")[:2]))


if __name__ == "__main__":
    main()
