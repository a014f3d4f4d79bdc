"""The figures of the seventh session's device calls (Dec 1), from what they saved under ``bench/results/dec01g/``
(``bash bench/gpu_dec01g.sh same | verify``, one H200 each).

    python bench/dec01g_summary.py bench/results > bench/results/dec01g-summary.txt

- ``call1-same``: ``bench/warm_workers.py same-answer``: the record's settings after two other trials in one worker
  against two fresh ``python -m trainer`` processes, first with every run ``runtime.deterministic``, then in the
  default mode, on one machine.
- ``call2-verify``: the trainer with ``runtime.deterministic`` (10ab69e, off by default) against the one before
  (f17f8ae) at b4, alternated twice; its answer over 6,086,656 tokens against the saved reference run.
- ``call3-startup``, ``call4-startup``: where a fresh process's start-up goes on a warm compile cache: one run to
  fill the caches, then plain fresh runs and runs under ``bench/sample_stacks.py``, alternated (262,144 tokens each).
  Call 3's sampled stacks (``stacks-*/stacks.txt.gz``) cover the whole process, training and the last evaluation
  included; call 4 also kept when each sample was taken (``timeline.txt.gz``), so its split ends at the first
  clocked step.
- ``call5-fp8fd``: the trainer compiled at b64 for 25 steps with the blocks' forward and input-gradient matmuls in
  FP8 and their weight gradients in bf16 (``bench/fp8_run.py fwd-dgrad``), then all in bf16, on one machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dec01f_summary import speed, worker_answer
from sample_stacks import children, inclusive, read

# what the main thread was doing, by the first of these frames on its stack (dynamo's tracing of Python code
# first: it holds the other steps of a compile)
KINDS = (("dynamo tracing Python code", "convert_frame.py:_compile"),
         ("replaying CUDA graphs", "graphs.py:replay"), ("recording CUDA graphs", "cudagraph_trees.py:record_function"),
         ("running before a recording (cudagraph trees' warm-up)", "cudagraph_trees.py:run_eager"),
         ("AOTAutograd", "aot_autograd.py"))


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

    for n, call in ((3, root / "call3-startup"), (4, root / "call4-startup")):
        print(f"\n== call {n}: a fresh process's start-up on a warm compile cache (the record's settings, 262,144 "
              f"tokens)")
        startup(call)

    print("\n== call 5: compiled, b64, 25 steps: FP8 forward and input gradient, weight gradient bf16; then all bf16")
    for arm, label in (("fwd-dgrad", "FP8 fwd-dgrad"), ("off", "bf16")):
        r = json.loads((root / "call5-fp8fd" / arm / "result.json").read_text())
        print(f"    {label}: {r['tokens_per_s']:,.0f} tokens/s, peak memory {r['peak_memory_bytes'] / 2**30:.1f} GiB, "
              f"warm-up {r['warmup_s']:.0f} s, train loss at step {r['steps']} {r['final_train_loss']:.4f}")


def startup(call: Path) -> None:
    """The start-up of each run, then where the sampled runs' main thread spent its time: all of the process in
    call 3; in call 4, which kept when each sample was taken, the start-up only (to its first clocked step)."""
    for name in ("fill", "plain-1", "sampled-1", "plain-2", "sampled-2"):
        r = json.loads((call / name / "result.json").read_text())
        phases = ", ".join(f"{k} {v:.2f}" for k, v in r["startup_phases"].items() if v)
        cache = ", ".join(f"{k} {v}" for k, v in r["compile_cache"].items())
        print(f"    {name}: {r['startup_s']:.2f} s ({phases}; {cache})")
    for i in (1, 2):
        folder = call / f"stacks-{i}"
        meta = json.loads((folder / "meta.json").read_text())
        until = None
        if "started_at" in meta:
            until = json.loads((call / f"sampled-{i}" / "result.json").read_text())["clock_started_at"] - meta["started_at"]
        meta, stacks = read(folder, until)
        each = meta["wall_s"] / meta["samples"]
        span = f"its first {until:.2f} s, to the first clocked step" if until else f"all {meta['wall_s']:.1f} s"
        runs = children(stacks, "train.py:_run")
        print(f"  sampled-{i}, {span}: the main thread in the run, by the frame it called: "
              + ", ".join(f"{k} {n * each:.2f} s" for k, n in runs.most_common(5)))
        main = inclusive(stacks, None)["MainThread"]
        kinds = {label: 0 for label, _ in KINDS}
        for stack, n in stacks:
            if stack[0] == "MainThread" and "train.py:_run" in stack:
                label = next((lab for lab, frame in KINDS if any(frame in f for f in stack)), None)
                if label:
                    kinds[label] += n
        print(f"    of the main thread's {main['(all)'] * each:.2f} s, outside the run "
              f"{(main['(all)'] - main['train.py:_run']) * each:.2f} s; in it: "
              + ", ".join(f"{k} {n * each:.2f} s" for k, n in kinds.items()))


if __name__ == "__main__":
    main()
