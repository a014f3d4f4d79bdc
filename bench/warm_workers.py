"""Warm trial workers on a GPU: same answer, memory over many trials, and fresh-process start-up.

    python bench/warm_workers.py same-answer --out DIR   # record settings after two other trials in one worker
                                                        # vs a fresh `python -m trainer` process
    python bench/warm_workers.py same-answer --deterministic --out DIR   # the same, every run with
                                                        # runtime.deterministic: no run-to-run noise
    python bench/warm_workers.py memory --out DIR        # 20 trials in one worker: reserved memory and start-up
    python bench/warm_workers.py startup --out DIR       # fresh processes: warm inductor cache, then a new
                                                        # cache directory warmed only by the portable artifacts

Each writes DIR/<name>.json and prints a short table. The search-level comparison (warm workers against a
process per trial) is two `python -m search.run` commands; bench/results/README.md has them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKENS_2M = 2_097_152  # 256 steps of the record's 4 x 2048
OTHER_TRIALS = [  # two trials that differ from the record in every setting a trial may change
    {"seed": 11, "muon_lr": 0.04, "adamw_lr": 0.004, "schedule": "cosine", "warmup_ratio": 0.1,
     "muon_momentum": 0.9, "weight_decay": 0.05, "horizon_tokens": 4_000_000},
    {"seed": 12, "muon_lr": 0.006, "adamw_lr": 0.0003, "schedule": "wsd", "decay_ratio": 0.3,
     "grad_clip": 0.5},
]


def _config(track: str, over: dict):
    from trainer.config import make_config

    return make_config(track, overrides=over)


def _fresh(track: str, over: dict, out: Path, env: dict | None = None) -> dict:
    sets = [w for k, v in over.items() for w in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "trainer", "--track", track, "--quiet", "--out", str(out), *sets]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    if p.returncode != 0:
        raise SystemExit(f"fresh process failed: {p.stderr[-3000:]}")
    return json.loads((out / "result.json").read_text())


def same_answer(args) -> dict:
    from trainer.train import Workbench, train

    # deterministic: every run, the other trials too, so that the record's run reuses their compiled shape
    det = {"deterministic": True} if args.deterministic else {}
    record = {"max_tokens": TOKENS_2M, "stop_rule": "never", "eval_every_tokens": TOKENS_2M, **det}
    bench = Workbench()
    others = [train(_config(args.track, {**t, "max_tokens": 1_048_576, "stop_rule": "never", **det}), bench=bench)
              for t in OTHER_TRIALS]
    warm = train(_config(args.track, record), bench=bench)
    fresh = _fresh(args.track, record, Path(tempfile.mkdtemp()) / "fresh")
    again = _fresh(args.track, record, Path(tempfile.mkdtemp()) / "fresh-again")  # the GPU's own run-to-run noise
    a = [h["train_loss"] for h in warm.history][:200]
    b = [h["train_loss"] for h in fresh["history"]][:200]
    c = [h["train_loss"] for h in again["history"]][:200]
    diffs = [abs(x - y) for x, y in zip(a, b)]
    noise = [abs(x - y) for x, y in zip(c, b)]
    val_w, val_f = warm.val_history[-1], fresh["val_history"][-1]
    out = {
        "track": args.track, "deterministic": args.deterministic, "steps_compared": len(diffs),
        "max_step_loss_diff": max(diffs),
        "mean_step_loss_diff": sum(diffs) / len(diffs), "val_tokens": val_w["tokens"],
        "val_loss_warm": val_w["val_loss"], "val_loss_fresh": val_f["val_loss"],
        "val_diff": abs(val_w["val_loss"] - val_f["val_loss"]),
        "fresh_vs_fresh_max_step_loss_diff": max(noise), "fresh_vs_fresh_mean_step_loss_diff": sum(noise) / len(noise),
        "fresh_vs_fresh_val_diff": abs(again["val_history"][-1]["val_loss"] - val_f["val_loss"]),
        "warm_worker_runs": warm.worker_runs, "warm_start": warm.warm_start, "warm_startup_s": warm.startup_s,
        "fresh_startup_s": fresh["startup_s"], "other_trials_status": [o.status for o in others],
        "device": warm.device, "tokens_per_s_warm": warm.tokens_per_s, "tokens_per_s_fresh": fresh["tokens_per_s"],
        "step_losses_warm": a, "step_losses_fresh": b,
    }
    out["pass"] = out["max_step_loss_diff"] <= 0.01 and out["val_diff"] <= 0.01
    mode = ", deterministic" if args.deterministic else ""
    print(f"same answer ({warm.device}{mode}): max |step loss diff| over {len(diffs)} steps {out['max_step_loss_diff']:.4f}"
          f" (mean {out['mean_step_loss_diff']:.4f}); val at {val_w['tokens']:,} tokens {val_w['val_loss']:.4f} vs "
          f"{val_f['val_loss']:.4f}; {'PASS' if out['pass'] else 'FAIL'}; two fresh processes differ by up to "
          f"{max(noise):.4f} (mean {out['fresh_vs_fresh_mean_step_loss_diff']:.4f}), val by {out['fresh_vs_fresh_val_diff']:.4f}")
    return out


def memory(args) -> dict:
    import torch

    from trainer.train import Workbench, train

    bench = Workbench()
    rows = []
    for i in range(args.trials):
        over = {"seed": 100 + i, "muon_lr": 0.01 * (1 + i % 4), "adamw_lr": 0.001 * (1 + i % 3),
                "schedule": ("constant", "cosine", "linear", "wsd")[i % 4], "max_tokens": args.tokens,
                "stop_rule": "never", "eval_every_tokens": 10**9}
        t0 = time.perf_counter()
        r = train(_config(args.track, over), bench=bench)
        torch.cuda.synchronize()
        rows.append({"trial": i + 1, "reserved_bytes": torch.cuda.memory_reserved(),
                     "allocated_bytes": torch.cuda.memory_allocated(), "startup_s": r.startup_s,
                     "warm_start": r.warm_start, "wall_s": time.perf_counter() - t0, "clock_s": r.clock_s,
                     "final_train_loss": r.final_train_loss})
    second, last = rows[1]["reserved_bytes"], rows[-1]["reserved_bytes"]
    warm_starts = sorted(r["startup_s"] for r in rows[1:])
    out = {"track": args.track, "tokens_per_trial": args.tokens, "trials": rows,
           "reserved_after_2nd": second, "reserved_after_last": last, "growth": last / second - 1,
           "median_warm_startup_s": warm_starts[len(warm_starts) // 2], "first_startup_s": rows[0]["startup_s"]}
    out["pass"] = abs(out["growth"]) <= 0.05
    print(f"memory: reserved {second / 2**30:.2f} GiB after trial 2, {last / 2**30:.2f} GiB after trial "
          f"{len(rows)} ({100 * out['growth']:+.1f}%); start-up: first {rows[0]['startup_s']:.1f} s, warm median "
          f"{out['median_warm_startup_s']:.2f} s")
    return out


def startup(args) -> dict:
    """Fresh `python -m trainer` processes: (1) as the machine is, (2) again with the inductor cache that (1)
    left, (3) with an empty inductor cache but the portable artifacts (1) saved beside the token cache."""
    import shutil

    from trainer.data import cache_root

    over = {"max_tokens": 524_288, "stop_rule": "never"}
    shutil.rmtree(cache_root(_config(args.track, over).data) / "compile", ignore_errors=True)  # start cold
    runs = {}
    base = Path(tempfile.mkdtemp())
    # inductor's and Triton's caches in folders of this benchmark: (1) starts them empty, (3) gets new empty ones,
    # as on a new machine, where only the cache folder beside the token cache (compile artifacts, and the
    # bytecode where chores/bytecode.py keeps it) was carried
    env = {"TORCHINDUCTOR_CACHE_DIR": str(base / "inductor"), "TRITON_CACHE_DIR": str(base / "triton")}
    runs["first"] = _fresh(args.track, over, base / "first", env)
    runs["warm_cache"] = _fresh(args.track, over, base / "warm", env)
    runs["portable_only"] = _fresh(args.track, over, base / "portable",
                                   {"TORCHINDUCTOR_CACHE_DIR": str(base / "new"), "TRITON_CACHE_DIR": str(base / "new-triton")})
    out = {name: {"startup_s": r["startup_s"], "phases": r["startup_phases"],
                  "compile_cache": r.get("compile_cache", {})} for name, r in runs.items()}
    for name, r in out.items():
        print(f"fresh process, {name}: {r['startup_s']:.1f} s to the first clocked step  {r['phases']}  {r['compile_cache']}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("same-answer", "memory", "startup"))
    p.add_argument("--track", default="speedrun-4.5")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--tokens", type=int, default=262_144)
    p.add_argument("--out", default="bench/results/warm_workers")
    p.add_argument("--deterministic", action="store_true",
                   help="same-answer: every run with runtime.deterministic (writes same-answer-deterministic.json)")
    args = p.parse_args()
    if args.deterministic and args.what != "same-answer":
        p.error("--deterministic is for same-answer only")
    fn = {"same-answer": same_answer, "memory": memory, "startup": startup}[args.what]
    result = fn(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{args.what}-deterministic" if args.deterministic else args.what
    (out / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
