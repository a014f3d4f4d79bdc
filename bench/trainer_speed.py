"""Trainer speed on one GPU: tokens/s, MFU, step time, peak memory, warm-up and start-up per micro-batch.

Each configuration runs in a fresh process through ``python -m trainer`` (the real clocked loop, real data),
so compile time and start-up are what a user sees. The first run of each shape compiles cold; the record
settings are then run a second time to measure start-up with the compile cache warm.

    python bench/trainer_speed.py --out bench/results/trainer_speed --batches 4 8 16 32 64 --steps 60

MFU is the run result's (trainer/flops.py): training FLOPs per token with causal attention (6·N + 6·L·T·d,
1.108 GFLOP/token for the 151M model at T = 2048) against the GPU's measured dense bf16 peak (H100 780,
H200 790 TFLOP/s). The table prints both, and each row keeps them (flops_per_token, peak_name, peak_flops).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run_one(out: Path, name: str, track: str, batch: int, steps: int, extra: list[str], sdpa_off: str = "") -> dict:
    run_dir = out / name
    tokens = steps * batch * 2048
    trainer = [str(Path(__file__).with_name("sdpa_run.py")), sdpa_off] if sdpa_off else ["-m", "trainer"]
    cmd = [sys.executable, *trainer, "--quiet", "--track", track, "--out", str(run_dir),
           "--set", f"micro_batch_size={batch}", "--set", f"max_tokens={tokens}", "--set", "stop_rule=never",
           "--set", "eval_every_tokens=1000000000", *extra]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    (out / f"{name}.log").write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        return {"name": name, "micro_batch_size": batch, "error": (p.stderr.strip().splitlines() or ["?"])[-1],
                "wall_s": wall}
    r = json.loads((run_dir / "result.json").read_text())
    # steady state: skip the first 10 clocked steps (allocator and cache warm-up inside the clock)
    h = r["history"]
    k = min(10, len(h) - 2)
    steady = (h[-1]["tokens"] - h[k]["tokens"]) / (h[-1]["clock_s"] - h[k]["clock_s"])
    return {"name": name, "micro_batch_size": batch, "steps": r["steps"], "tokens": r["tokens"],
            "clock_s": r["clock_s"], "tokens_per_s": r["tokens_per_s"], "steady_tokens_per_s": steady,
            "step_time_ms": r["step_time_ms"], "host_step_ms": r.get("host_step_ms"), "mfu": r["mfu"], "flops_per_token": r.get("flops_per_token"),
            "flops_per_token_6n": r.get("flops_per_token_6n"), "peak_name": r.get("peak_name", ""),
            "peak_flops": r.get("peak_flops"),
            "steady_mfu": r["mfu"] * steady / r["tokens_per_s"] if r["mfu"] else None,
            "peak_memory_gib": r["peak_memory_bytes"] / 2**30,
            "peak_reserved_gib": r.get("peak_reserved_bytes", 0) / 2**30, "warmup_compile_s": r["warmup_s"],
            "startup_s": r["startup_s"], "startup_phases": r.get("startup_phases", {}),
            "compile_cache": r.get("compile_cache", {}), "wall_s": wall, "device": r["device"],
            "final_train_loss": r["final_train_loss"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--track", default="speedrun-4.5")
    ap.add_argument("--batches", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--set", dest="extra", action="append", default=[])
    ap.add_argument("--no-warm-run", action="store_true", help="leave out the second run of the record settings")
    ap.add_argument("--sdpa-off", default="", help="attention backends to turn off (bench/sdpa_run.py), e.g. cudnn")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    extra = [x for s in args.extra for x in ("--set", s)]
    rows = []
    for b in args.batches:
        rows.append(run_one(args.out, f"b{b}-cold", args.track, b, args.steps, extra, args.sdpa_off))
        print(json.dumps(rows[-1]), flush=True)
    if not args.no_warm_run:
        rows.append(run_one(args.out, "b4-warm-cache", args.track, 4, args.steps, extra, args.sdpa_off))
        print(json.dumps(rows[-1]), flush=True)
    (args.out / "summary.json").write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows,
                                                       "env": {k: v for k, v in os.environ.items()
                                                               if k.startswith(("TORCH", "CUDA"))}}, indent=2))
    from trainer.flops import describe

    done = [r for r in rows if "error" not in r]
    if done:
        print("\n" + describe(done[0]))
    print(f"\n{'run':<16}{'tok/s':>10}{'steady':>10}{'MFU':>7}{'step ms':>9}{'mem GiB':>9}{'warmup s':>9}"
          f"{'start s':>9}{'host ms':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<16} ERROR {r['error'][:90]}")
            continue
        print(f"{r['name']:<16}{r['tokens_per_s']:>10,.0f}{r['steady_tokens_per_s']:>10,.0f}"
              f"{(r['steady_mfu'] or 0) * 100:>6.1f}%{r['step_time_ms']:>9.1f}{r['peak_memory_gib']:>9.1f}"
              f"{r['warmup_compile_s']:>9.1f}{r['startup_s']:>9.1f}{r.get('host_step_ms') or 0:>9.1f}")
    print("\nstart-up phases (s): " + "; ".join(
        f"{r['name']}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.get("startup_phases", {}).items())
        for r in rows if "error" not in r))


if __name__ == "__main__":
    main()
