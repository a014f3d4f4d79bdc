"""Same answer, faster: the fast trainer against the eager reference path, same seed and data order.

Runs ``python -m trainer`` twice in fresh processes on the same track and seed: the default fast path
(compiled blocks, CUDA graphs on CUDA, SDPA, batched Newton-Schulz) and the reference path
(``reference=true compile=false cudagraphs=false``: plain attention, per-matrix Muon, eager). Both read the
same windows in the same order, so their train losses differ only by arithmetic. At each mark (by default
1M, 3M and 6M tokens) it compares the loss of the step that first reaches the mark, and, because one step's
loss carries the run's accumulated rounding differences, also the mean over the ``--window`` steps ending
there. The check passes when every difference is within ``--tolerance`` (0.05).

    python bench/same_answer.py --out bench/results/same_answer                       # the H100 check
    python bench/same_answer.py --out /tmp/sa --track tiny-speedrun --marks 8192 16384 --tokens 16384 --window 4

``--reference-from DIR`` reads a saved reference run (its ``result.json``) instead of running the reference path
again (6.5 minutes on an H200): a change to the fast path leaves the reference path's arithmetic as it was. The
saved run must have the same track, seed and data; ``--against DIR`` also compares the final validation loss
with a saved fast run (the "val loss stays within 0.03" check of a speed change).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RECORD_TOKENS = 6_086_656
PATHS = {
    "fast": [],
    "reference": ["--set", "reference=true", "--set", "compile=false", "--set", "cudagraphs=false"],
}


def run_path(out: Path, name: str, track: str, tokens: int, seed: int, extra: list[str],
             sdpa_off: str = "") -> dict[str, Any]:
    """One path's run in a fresh process; ``sdpa_off`` runs the fast path through ``bench/sdpa_run.py`` with those
    attention backends off (``cudnn``: FlashAttention-2's kernels)."""
    run_dir = out / name
    launch = ["-m", "trainer"]
    if sdpa_off and name == "fast":
        launch = [str(Path(__file__).with_name("sdpa_run.py")), sdpa_off]
    cmd = [sys.executable, *launch, "--quiet", "--track", track, "--out", str(run_dir),
           "--set", f"max_tokens={tokens}", "--set", "stop_rule=never", "--set", f"seed={seed}",
           "--set", "eval_every_tokens=1000000000", *PATHS[name], *extra]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    (out / f"{name}.log").write_text(" ".join(cmd) + "\n" + p.stdout + p.stderr)
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"the {name} run failed (exit {p.returncode}): {tail}")
    result = json.loads((run_dir / "result.json").read_text())
    result["wall_s"] = time.time() - t0
    return result


def saved_run(run_dir: Path, track: str, seed: int) -> dict[str, Any]:
    """A finished run's result.json, checked to be of this track and seed."""
    path = run_dir / "result.json"
    if not path.exists():
        raise SystemExit(f"no result.json in {run_dir}")
    result = json.loads(path.read_text())
    got_track, got_seed = result.get("track"), result.get("config", {}).get("hp", {}).get("seed")
    if got_track != track or got_seed != seed:
        raise SystemExit(f"{run_dir} is track {got_track}, seed {got_seed}; this check is track {track}, seed {seed}")
    result.setdefault("wall_s", float("nan"))
    return result


def compare(fast: list[dict[str, Any]], ref: list[dict[str, Any]], marks: list[int], window: int,
            tolerance: float) -> dict[str, Any]:
    """Per mark: the two losses at the first step reaching it, and their means over the window ending there."""
    rows = []
    for mark in marks:
        i = next((k for k, h in enumerate(fast) if h["tokens"] >= mark), None)
        if i is None or i >= len(ref):
            rows.append({"mark": mark, "error": "the runs did not reach this mark"})
            continue
        lo = max(0, i + 1 - window)
        f_mean = sum(h["train_loss"] for h in fast[lo: i + 1]) / (i + 1 - lo)
        r_mean = sum(h["train_loss"] for h in ref[lo: i + 1]) / (i + 1 - lo)
        rows.append({"mark": mark, "step": fast[i]["step"], "tokens": fast[i]["tokens"],
                     "fast_loss": fast[i]["train_loss"], "reference_loss": ref[i]["train_loss"],
                     "diff": fast[i]["train_loss"] - ref[i]["train_loss"],
                     "window_steps": i + 1 - lo, "fast_mean": f_mean, "reference_mean": r_mean,
                     "mean_diff": f_mean - r_mean})
    ok = all("error" not in r and abs(r["diff"]) <= tolerance and abs(r["mean_diff"]) <= tolerance for r in rows)
    return {"tolerance": tolerance, "pass": ok, "marks": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--track", default="speedrun-4.5")
    ap.add_argument("--tokens", type=int, default=RECORD_TOKENS)
    ap.add_argument("--marks", type=int, nargs="+", default=[1_000_000, 3_000_000, 6_000_000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--window", type=int, default=25, help="steps in the mean ending at each mark (default 25)")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--set", dest="extra", action="append", default=[], help="more trainer settings, both runs")
    ap.add_argument("--reference-from", type=Path, default=None,
                    help="a saved reference run directory (with result.json): compare with it, run only the fast path")
    ap.add_argument("--against", type=Path, default=None,
                    help="a saved fast run directory: report the final validation loss's change from it")
    ap.add_argument("--sdpa-off", default="",
                    help="attention backends off for the fast path (bench/sdpa_run.py), e.g. cudnn")
    ap.add_argument("--parallel", action="store_true",
                    help="run both paths at once on one device (losses unchanged; their speeds then not comparable)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    extra = [x for s in args.extra for x in ("--set", s)]
    if args.reference_from is not None:
        saved = saved_run(args.reference_from, args.track, args.seed)
        runs = {"fast": run_path(args.out, "fast", args.track, args.tokens, args.seed, extra, args.sdpa_off),
                "reference": saved}
    elif args.parallel:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(PATHS)) as pool:
            futures = {name: pool.submit(run_path, args.out, name, args.track, args.tokens, args.seed, extra,
                                         args.sdpa_off) for name in PATHS}
            runs = {name: f.result() for name, f in futures.items()}
    else:
        runs = {name: run_path(args.out, name, args.track, args.tokens, args.seed, extra, args.sdpa_off)
                for name in PATHS}
    summary = compare(runs["fast"]["history"], runs["reference"]["history"], args.marks, args.window,
                      args.tolerance)
    summary.update({
        "command": " ".join([sys.executable, *sys.argv]), "track": args.track, "seed": args.seed,
        "device": runs["fast"]["device"], "parallel": args.parallel,
        "runs": {name: {k: r[k] for k in ("tokens", "steps", "clock_s", "tokens_per_s", "startup_s", "wall_s",
                                          "final_train_loss")} for name, r in runs.items()},
    })
    if args.reference_from is not None:
        summary["reference_from"] = str(args.reference_from)
    if args.against is not None:
        before = saved_run(args.against, args.track, args.seed)
        summary["val_loss_change"] = {"now": runs["fast"]["final_val_loss"], "before": before["final_val_loss"],
                                      "diff": runs["fast"]["final_val_loss"] - before["final_val_loss"],
                                      "before_from": str(args.against), "before_device": before.get("device")}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    if "val_loss_change" in summary:
        v = summary["val_loss_change"]
        print(f"final val loss {v['now']:.4f}, {v['diff']:+.4f} from {v['before']:.4f} ({v['before_from']})")
    print(f"{'mark':>10}{'step':>7}{'fast':>9}{'ref':>9}{'diff':>8}{'fast mean':>11}{'ref mean':>10}{'diff':>8}")
    for r in summary["marks"]:
        if "error" in r:
            print(f"{r['mark']:>10,} {r['error']}")
            continue
        print(f"{r['mark']:>10,}{r['step']:>7}{r['fast_loss']:>9.4f}{r['reference_loss']:>9.4f}{r['diff']:>+8.4f}"
              f"{r['fast_mean']:>11.4f}{r['reference_mean']:>10.4f}{r['mean_diff']:>+8.4f}")
    speed = runs["fast"]["tokens_per_s"] / max(runs["reference"]["tokens_per_s"], 1e-9)
    print(f"{'PASS' if summary['pass'] else 'FAIL'} (tolerance {args.tolerance}); fast path "
          f"{runs['fast']['tokens_per_s']:,.0f} tokens/s, reference {runs['reference']['tokens_per_s']:,.0f} "
          f"({speed:.1f}x{', both at once: not a speed comparison' if args.parallel else ''}) on {summary['device']}")
    sys.exit(0 if summary["pass"] else 1)


if __name__ == "__main__":
    main()
