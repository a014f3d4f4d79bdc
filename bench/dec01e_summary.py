"""The figures of the fifth session's device calls (Dec 1), from what they saved under ``bench/results/dec01e/``
(``bash bench/gpu_dec01e.sh oldpath | autotune32 | sdpa32 | gcstart | workers``, one H200 each).

    python bench/dec01e_summary.py bench/results > bench/results/dec01e-summary.txt

- ``call1-oldpath``: the default search for 180 s with the code of when issue 14 was filed (669ccbb: a process per
  trial), then for 180 s with the working tree's warm workers, on one GPU, each after one ``python -m trainer`` of its
  tree had warmed its compile cache;
- ``call2-autotune32``: trainer speed at b32 (20 steps) with the default compile, then with inductor's GEMM autotuning
  (``TORCHINDUCTOR_MAX_AUTOTUNE_GEMM=1``), each compiling cold;
- ``call3-sdpa32``: trainer speed at b32 (20 steps) with the default attention (cuDNN), with cuDNN turned off
  (FlashAttention-2) and with cuDNN and flash off (memory-efficient), each on caches of its own (``bench/sdpa_run.py``);
- ``call4-gcstart``: fresh processes at b4 (20 steps) of 91315d6 (new: Python's cyclic collector paused from the
  trainer's import to the first run's clock, reverted after this call) and of 7ea2144 (mid), alternated, after each
  tree's first, cold process;
- ``call5-workers``: ``bench/warm_workers.py same-answer`` (the record's settings after two other trials in one worker
  against a fresh process, and a second fresh process) and ``memory`` (20 trials in one worker).

Call 1's two searches are counted by one rule, the one the working tree's search applies to itself
(``search.summary.trials_finished``): a trial counts when its clock ended inside the search's session and it was not
interrupted; per GPU-hour is that count over the session's wall time. The old code writes the session's bounds
(``utilisation.json``) but not the count, so the count is made here from ``trials.csv`` for both. A second, stricter
wall is the whole command, Ray's start and shutdown included (``<name>-window.txt``).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pandas as pd
from dec01c_summary import rates, starts
from nov30g_summary import speed_rows

from search.summary import trials_finished

ARMS = (("old-1gpu", "669ccbb, a process per trial"), ("warm-1gpu", "the working tree, warm workers"))


def arm(call: Path, name: str) -> dict:
    run = call / "runs" / name
    session = json.loads((run / "utilisation.json").read_text())[0]
    trials = pd.read_csv(run / "trials.csv")
    began, ended = (float(x) for x in (call / f"{name}-window.txt").read_text().split())
    n = trials_finished(trials, session["started"], session["ended"])
    # start-up: the working tree records each trial's latency from Tune's start to its first clocked step and
    # whether its worker was reused; the old code only the process's own start-up (process age at its first step)
    fresh, reused = [], []
    for t in trials.to_dict("records"):
        if t["status"] == "interrupted" or pd.isna(t["clock_started_at"]):
            continue
        latency = t.get("start_latency_s", t["startup_s"])
        (reused if t.get("warm_start") is True else fresh).append(float(latency))
    return {"trials": n, "wall": session["wall_s"], "command": ended - began,
            "per_gpu_hour": n / session["wall_s"] * 3600, "per_gpu_hour_command": n / (ended - began) * 3600,
            "fraction": session["fraction"], "after_first": session["fraction_after_first_clock"],
            "fresh": fresh, "reused": reused}


def seconds(xs: list[float]) -> str:
    return ", ".join(f"{x:.1f}" for x in xs)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results") / "dec01e"
    call = root / "call1-oldpath"
    print("== call 1: the default search on one H200, 180 s each: the code of when issue 14 was filed (669ccbb), "
          "then warm workers")
    for tree in ("old", "new"):
        r = json.loads((call / f"warm-{tree}-result.json").read_text())
        print(f"    {tree} tree's first `python -m trainer` (its compile cache cold): {r['startup_s']:.1f} s to the "
              f"first clocked step (warm-up {r['startup_phases']['warmup']:.1f} s)")
    arms = {name: arm(call, name) for name, _ in ARMS}
    for name, label in ARMS:
        a = arms[name]
        line = (f"    {name} ({label}): {a['trials']} trials in {a['wall']:.0f} s, {a['per_gpu_hour']:.0f} per "
                f"GPU-hour ({a['per_gpu_hour_command']:.0f} over the whole command's {a['command']:.0f} s); training "
                f"{a['fraction']:.0%} of the wall ({a['after_first']:.0%} after the first clock)")
        print(line)
        print(f"      fresh trials start in {seconds(a['fresh'])} s" +
              (f"; reused workers' trials in a median of {statistics.median(a['reused']):.2f} s ({len(a['reused'])})"
               if a["reused"] else ""))
    old, new = arms["old-1gpu"], arms["warm-1gpu"]
    ratio = new["per_gpu_hour"] / old["per_gpu_hour"]
    print(f"    warm workers against the old path: {ratio:.1f}x the trials per GPU-hour "
          f"({new['per_gpu_hour_command'] / old['per_gpu_hour_command']:.1f}x over the whole commands); "
          f"with one old trial more, {ratio * old['trials'] / (old['trials'] + 1):.1f}x")

    call = root / "call2-autotune32"
    print("\n== call 2: b32, the default compile then inductor's GEMM autotuning (Triton templates against cuBLAS), "
          "both cold")
    for compile_kind in ("default", "autotune"):
        r = speed_rows(call / f"speed-{compile_kind}.log")[0]
        print(f"    {compile_kind}: steady tokens/s {r['steady_tokens_per_s']:,.0f}, peak memory "
              f"{r['peak_memory_gib']:.1f} GiB, warm-up {r['warmup_compile_s']:.0f} s")

    call = root / "call3-sdpa32"
    print("\n== call 3: b32 with each attention backend, each compiling cold on caches of its own")
    for name, label in (("default", "cuDNN (the default)"), ("cudnn-off", "cuDNN off"),
                        ("cudnn-flash-off", "cuDNN and flash off")):
        r = speed_rows(call / f"speed-{name}.log")[0]
        kernels = [line for line in (call / f"speed-{name}" / "b32-cold.log").read_text().splitlines()
                   if line.startswith("attention backends off")]
        # the kernel names the wrapper printed, up to their template arguments
        names = sorted({k.strip("' ").split("<")[0].split("(")[0].removeprefix("void ")
                        for k in kernels[0].split("kernels: ", 1)[1].strip("[]").split("', ")}) if kernels else []
        ran = f"; its kernels {', '.join(names)}" if names else ""
        if "error" in r:
            print(f"    {label}: {r['error'].split('. GPU')[0]}{ran}")
        else:
            print(f"    {label}: steady tokens/s {r['steady_tokens_per_s']:,.0f}, peak memory "
                  f"{r['peak_memory_gib']:.1f} GiB{ran}")

    call = root / "call4-gcstart"
    print("\n== call 4: fresh processes at b4, the collector paused through start-up (new, 91315d6) against 7ea2144 "
          "(mid), alternated")
    for tree in ("new", "mid"):
        first = speed_rows(call / f"speed-cold-{tree}.log")
        rows = [r for i in (1, 2, 3) for r in speed_rows(call / f"speed-{tree}-{i}.log")]
        print(f"    {tree}: first process {starts(first)}; then {starts(rows)}, median "
              f"{statistics.median(r['startup_s'] for r in rows):.2f} s; data phase median "
              f"{statistics.median(r['startup_phases']['data'] for r in rows):.2f} s; steady tokens/s {rates(rows)}")

    call = root / "call5-workers"
    print("\n== call 5: a reused worker against fresh processes, and memory over 20 trials in one worker")
    a = json.loads((call / "same-answer.json").read_text())
    print(f"    the record's settings after {a['warm_worker_runs']} other trials in the worker against a fresh "
          f"process: step loss over {a['steps_compared']} steps differs by up to {a['max_step_loss_diff']:.4f} (mean "
          f"{a['mean_step_loss_diff']:.4f}); val at {a['val_tokens']:,} tokens {a['val_loss_warm']:.4f} against "
          f"{a['val_loss_fresh']:.4f} ({a['val_diff']:.4f})")
    print(f"    two fresh processes: up to {a['fresh_vs_fresh_max_step_loss_diff']:.4f} (mean "
          f"{a['fresh_vs_fresh_mean_step_loss_diff']:.4f}); val {a['fresh_vs_fresh_val_diff']:.4f} apart")
    m = json.loads((call / "memory.json").read_text())
    print(f"    memory reserved after trial 2 {m['reserved_after_2nd'] / 2**30:.2f} GiB, after trial "
          f"{len(m['trials'])} {m['reserved_after_last'] / 2**30:.2f} GiB ({m['growth']:+.1%}); start-up: first "
          f"{m['first_startup_s']:.1f} s, reused median {m['median_warm_startup_s']:.2f} s (each trial a new seed, so "
          f"each evaluates its step-0 weights)")


if __name__ == "__main__":
    main()
