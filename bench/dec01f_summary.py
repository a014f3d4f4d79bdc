"""The figures of the sixth session's device calls (Dec 1), from what they saved under ``bench/results/dec01f/``
(``bash bench/gpu_dec01f.sh verify | fp8 | final``, one H200 each).

    python bench/dec01f_summary.py bench/results > bench/results/dec01f-summary.txt

- ``call1-verify``: the trainer whose run and warm-up build their optimizers with ``Shape.optimizers`` (db9f805)
  against the one before (ab37952) at b4, alternated; its answer over 6,086,656 tokens; the b32 kernel table with
  ``bench/profile_step.py``, which now builds its optimizers the same way. (Its ``bench/fp8_gemm.py`` run timed the
  casts by the host's calls, and call 2 repeats it.)
- ``call2-fp8``: ``bench/fp8_gemm.py`` at b32 and b64, every time a CUDA graph's replay; trainer speed at b64 and the
  b64 kernel table, so that the step FP8 would shorten is measured on the same machine.
- ``call3-final``: the final trainer on a search's path: a reused worker against fresh processes
  (``bench/warm_workers.py same-answer``), then the default search for 150 s on the one GPU.
- ``call4-fp8answer``: the record's 6,086,656 tokens eager (``compile=false``) in bf16, then with the blocks' matmuls
  in FP8 (``bench/fp8_run.py off``, ``on``), compared as ``bench/same_answer.py`` compares.
- ``call5-fp8speed``, ``call6-fp8speed``: the trainer compiled at b64 for 25 steps with the blocks' matmuls in FP8,
  then in bf16. In call 5 the FP8 run failed to compile (dynamo looked up the FP8 code's globals in ``__main__``,
  which runpy had made the trainer); call 6 ran it with that mended.

What FP8 would give is arithmetic on call 2's measurements: the trainer's b64 step (its steady rate) less what the
FP8 matmuls save, with and without the casts as this benchmark makes them.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pandas as pd
from dec01c_summary import rates, starts, warm
from dec01e_summary import seconds
from nov30g_summary import speed_rows
from same_answer import compare

from search.summary import trials_finished


def pairs(call: Path, labels: dict[str, str]) -> None:
    """The b4 runs of ``b4_pairs`` (bench/gpu_common.sh: ``speed-TREE-1.log`` and ``-2.log``) of each tree in
    ``labels``: steady tokens/s, and the start-up of the processes on a warm cache."""
    for tree, label in labels.items():
        rows = [r for i in (1, 2) for r in speed_rows(call / f"speed-{tree}-{i}.log")]
        print(f"    {tree} ({label}): steady tokens/s {rates(rows)}; processes on a warm cache {starts(warm(rows))}")


def answer(path: Path, rate: bool = False) -> None:
    """A ``bench/same_answer.py`` summary against the saved reference run; ``rate`` adds the fast run's tokens/s."""
    s = json.loads(path.read_text())
    fast, change = s["runs"]["fast"], s["val_loss_change"]
    worst = max(s["marks"], key=lambda m: abs(m["diff"]))
    print(f"    answer: {'PASS' if s['pass'] else 'FAIL'} (tolerance {s['tolerance']}; largest step-loss difference "
          f"{worst['diff']:+.4f} at {worst['mark']:,}); val {change['now']:.4f} against the saved {change['before']:.4f} "
          f"({change['diff']:+.4f}); {fast['tokens']:,} tokens in {fast['clock_s']:.2f} s on the clock"
          + (f", {fast['tokens_per_s']:,.0f} tokens/s" if rate else ""))


def speed(call: Path, labels: dict[str, str] | None = None) -> None:
    """The b4 pairs of ``speed_and_answer`` (bench/gpu_common.sh) with ``labels`` naming the two trees, then the
    working tree's answer."""
    pairs(call, labels or {"new": "db9f805, Shape.optimizers", "old": "ab37952"})
    answer(call / "same" / "summary.json")


def table(phases: Path) -> None:
    p = json.loads(phases.read_text())
    kinds = p["gpu_ms_per_step_by_kind"]
    print(f"    b{p['batch']} table: step {p['step_ms_unsynced']:.1f} ms ({p['tokens_per_s_unsynced']:,.0f} tokens/s "
          f"under the profiler), GEMMs {kinds['GEMM (cuBLAS / CUTLASS)']:.1f} ms, attention "
          f"{kinds['attention (cuDNN / flash)']:.1f} ms")


def fp8(call: Path, b64_rate: float) -> None:
    for batch in (32, 64):
        r = json.loads((call / "fp8" / f"fp8-gemm-b{batch}.json").read_text())
        s = r["step_ms"]
        head = next(x for x in r["linears"] if x["name"] == "head")
        print(f"    b{batch}: the step's matmuls in bf16 {s['bf16_ms']:.1f} ms, in FP8 {s['fp8_ms']:.1f} ms "
              f"({s['bf16_ms'] / s['fp8_ms']:.2f}x), the casts as compiled here {s['cast_ms']:.1f} ms; the head alone "
              f"{sum(head['bf16_ms'].values()):.1f} -> {sum(head['fp8_ms'].values()):.1f} ms")
        if batch == 64:
            step = r["M"] / b64_rate * 1e3
            free = step - (s["bf16_ms"] - s["fp8_ms"])
            plain = free + s["cast_ms"]
            print(f"    b64 arithmetic: the trainer's step {step:.1f} ms ({b64_rate:,.0f} tokens/s); with FP8 matmuls "
                  f"and every cast free {free:.1f} ms = {r['M'] / free * 1e3:,.0f} tokens/s; with the casts as "
                  f"compiled here {plain:.1f} ms = {r['M'] / plain * 1e3:,.0f} tokens/s")


def worker_answer(a: dict) -> None:
    """One line of ``bench/warm_workers.py same-answer``'s JSON."""
    print(f"    the record's settings after {a['warm_worker_runs']} other trials in a worker against a fresh process: "
          f"step loss over {a['steps_compared']} steps differs by up to {a['max_step_loss_diff']:.4f} (mean "
          f"{a['mean_step_loss_diff']:.4f}); val at {a['val_tokens']:,} tokens {a['val_loss_warm']:.4f} against "
          f"{a['val_loss_fresh']:.4f} ({a['val_diff']:.4f}); two fresh processes: up to "
          f"{a['fresh_vs_fresh_max_step_loss_diff']:.4f}, val {a['fresh_vs_fresh_val_diff']:.4f} apart")


def search(call: Path) -> None:
    worker_answer(json.loads((call / "same-answer.json").read_text()))
    run = call / "runs" / "final-1gpu"
    session = json.loads((run / "utilisation.json").read_text())[0]
    trials = pd.read_csv(run / "trials.csv")
    n = trials_finished(trials, session["started"], session["ended"])
    clocked = trials[trials["status"] != "interrupted"]
    reused = clocked[clocked["warm_start"] == True]["start_latency_s"]  # noqa: E712 (a column of bools)
    fresh = clocked[clocked["warm_start"] == False]["start_latency_s"]  # noqa: E712
    print(f"    default search, 150 s: {n} trials in {session['wall_s']:.0f} s, {n / session['wall_s'] * 3600:.0f} "
          f"per GPU-hour; training {session['fraction']:.0%} of the wall ({session['fraction_after_first_clock']:.0%} "
          f"after the first clock); fresh trials start in {seconds(fresh)} s, reused workers' "
          f"in a median of {statistics.median(reused):.2f} s ({len(reused)})")


def fp8_runs(root: Path) -> None:
    call = root / "call4-fp8answer"
    runs = {arm: json.loads((call / arm / "result.json").read_text()) for arm in ("off", "on")}
    s = compare(runs["on"]["history"], runs["off"]["history"], [1_000_000, 3_000_000, 6_000_000], 25, 0.05)
    marks = "; ".join(f"{m['mark']:,}: {m['diff']:+.4f} (25-step mean {m['mean_diff']:+.4f})" for m in s["marks"])
    on, off = runs["on"], runs["off"]
    print(f"    eager, {on['tokens']:,} tokens: FP8 against bf16 step loss {marks}: {'PASS' if s['pass'] else 'FAIL'} "
          f"(tolerance {s['tolerance']}); val {on['final_val_loss']:.4f} against {off['final_val_loss']:.4f} "
          f"({on['final_val_loss'] - off['final_val_loss']:+.4f}); eager tokens/s {on['tokens_per_s']:,.0f} against "
          f"{off['tokens_per_s']:,.0f}")
    error = next(line.split("] ", 1)[-1] for line in (root / "call5-fp8speed" / "on.log").read_text().splitlines()
                 if "AttributeError" in line)
    print(f"    call 5, compiled FP8: failed, {error.removeprefix('[0/0] ').strip()}")
    for arm, label in (("on", "FP8"), ("off", "bf16")):
        r = json.loads((root / "call6-fp8speed" / arm / "result.json").read_text())
        print(f"    call 6, compiled, b64, {r['steps']} steps, {label}: {r['tokens_per_s']:,.0f} tokens/s, peak memory "
              f"{r['peak_memory_bytes'] / 2**30:.1f} GiB, warm-up {r['warmup_s']:.0f} s")


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec01f"
    print("== call 1: the trainer with one optimizer builder (db9f805) against ab37952 at b4, alternated; its answer")
    speed(root / "call1-verify")
    table(root / "call1-verify" / "profile-new" / "phases-b32.json")

    call = root / "call2-fp8"
    print("\n== call 2: FP8 matmuls at the model's shapes (GPU time, CUDA graphs), b64 speed and table")
    b64 = speed_rows(call / "speed-b64.log")[0]
    print(f"    b64: steady tokens/s {b64['steady_tokens_per_s']:,.0f}, peak memory {b64['peak_memory_gib']:.1f} GiB")
    table(call / "profile-b64" / "phases-b64.json")
    fp8(call, b64["steady_tokens_per_s"])

    print("\n== call 3: the final trainer on a search's path, one H200")
    search(root / "call3-final")

    print("\n== calls 4-6: the blocks' matmuls in FP8 (bench/fp8_run.py), its answer eager and its speed compiled")
    fp8_runs(root)


if __name__ == "__main__":
    main()
