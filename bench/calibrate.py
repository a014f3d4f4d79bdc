"""Calibrate the offline tracks: the record settings to 18,767,872 tokens, several seeds.

    # on the GPU (each seed a fresh `python -m trainer` process):
    python bench/calibrate.py run --out $OUT/calibration --seeds 0 1 2 [--concurrent]
    # here: crossings of 4.5 and 3.5 by the three rules, per-step noise, the figure
    python bench/calibrate.py analyze bench/results/calibration --doc docs/calibration.md

The runs use track speedrun-3.5 (evaluation every 1M tokens, same fixed validation set) with stop_rule=never, so
one run yields the crossings of both targets: they are read off its per-step history afterwards.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

TOKENS = 18_767_872
TARGETS = (4.5, 3.5)
CHECKPOINTS = (6_086_656, 18_767_872)


def run(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    procs = []
    for seed in args.seeds:
        cmd = [sys.executable, "-m", "trainer", "--quiet", "--track", "speedrun-3.5", "--out",
               str(args.out / f"seed-{seed}"), "--set", f"seed={seed}", "--set", f"max_tokens={args.tokens}",
               "--set", "stop_rule=never", *[x for s in args.extra for x in ("--set", s)]]
        log = open(args.out / f"seed-{seed}.log", "w")  # noqa: SIM115 (held open while the child runs)
        t0 = time.time()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        procs.append((seed, p, t0))
        if not args.concurrent:
            p.wait()
            print(f"seed {seed}: exit {p.returncode} after {time.time() - t0:.0f} s", flush=True)
    for seed, p, t0 in procs:
        p.wait()
        print(f"seed {seed}: exit {p.returncode} after {time.time() - t0:.0f} s", flush=True)
    (args.out / "command.txt").write_text(" ".join(sys.argv) + "\n")


def _crossings(result: dict, target: float) -> dict[str, dict | None]:
    out: dict[str, dict | None] = {"first_step": None, "smoothed": None, "val": None}
    for h in result["history"]:
        if out["first_step"] is None and h["train_loss"] is not None and h["train_loss"] <= target:
            out["first_step"] = {"tokens": h["tokens"], "time_s": h["clock_s"], "step": h["step"]}
        if out["smoothed"] is None and h["smoothed_loss"] is not None and h["smoothed_loss"] <= target:
            out["smoothed"] = {"tokens": h["tokens"], "time_s": h["clock_s"], "step": h["step"]}
    for v in result["val_history"]:
        if v["val_loss"] is not None and v["val_loss"] <= target:
            out["val"] = {"tokens": v["tokens"], "time_s": v["clock_s"], "step": v["step"]}
            break
    return out


def _at(result: dict, tokens: int, key: str) -> float:
    hist = result["history"] if key != "val_loss" else result["val_history"]
    best = min(hist, key=lambda h: abs(h["tokens"] - tokens))
    return best[key]


def _step_noise(result: dict, start_tokens: int = 2_000_000, half: int = 25) -> float:
    """Std of one step's train loss around a centred 51-step moving mean, after ``start_tokens``."""
    losses = [h["train_loss"] for h in result["history"]]
    toks = [h["tokens"] for h in result["history"]]
    res = []
    for i in range(half, len(losses) - half):
        if toks[i] < start_tokens:
            continue
        window = losses[i - half: i + half + 1]
        res.append(losses[i] - sum(window) / len(window))
    return statistics.pstdev(res) if len(res) > 1 else math.nan


def _fmt_stats(values: list[float | None], fmt: str) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "not reached"
    mean = statistics.mean(got)
    spread = (max(got) - min(got)) / 2 if len(got) > 1 else 0.0
    miss = f" ({len(values) - len(got)} of {len(values)} not reached)" if len(got) < len(values) else ""
    return f"{format(mean, fmt)} ± {format(spread, fmt)}{miss}"


def analyze(args: argparse.Namespace) -> None:
    results = {}
    for path in sorted(args.dir.glob("seed-*/result.json")):
        results[int(path.parent.name.split("-")[1])] = json.loads(path.read_text())
    if not results:
        sys.exit(f"no seed-*/result.json under {args.dir}")
    rows = []
    table = {}
    for seed, r in results.items():
        for target in TARGETS:
            c = _crossings(r, target)
            table[(seed, target)] = c
            for rule, x in c.items():
                rows.append({"seed": seed, "target": target, "rule": rule, **(x or {})})
    summary = {"seeds": sorted(results), "device": next(iter(results.values()))["device"],
               "tokens_per_s": {s: r["tokens_per_s"] for s, r in results.items()},
               "step_noise_std": {s: _step_noise(r) for s, r in results.items()},
               "crossings": rows,
               "at": {s: {str(t): {"smoothed_loss": _at(r, t, "smoothed_loss"), "val_loss": _at(r, t, "val_loss")}
                          for t in CHECKPOINTS} for s, r in results.items()}}
    (args.dir / "summary.json").write_text(json.dumps(summary, indent=2))

    import plotly.graph_objects as go

    fig = go.Figure()
    for seed, r in results.items():
        toks = [h["tokens"] for h in r["history"]]
        fig.add_trace(go.Scattergl(x=toks, y=[h["train_loss"] for h in r["history"]], mode="lines", opacity=0.25,
                                   name=f"seed {seed}: step loss"))
        fig.add_trace(go.Scatter(x=toks, y=[h["smoothed_loss"] for h in r["history"]], mode="lines",
                                 name=f"seed {seed}: smoothed"))
        fig.add_trace(go.Scatter(x=[v["tokens"] for v in r["val_history"]], y=[v["val_loss"] for v in r["val_history"]],
                                 mode="lines+markers", name=f"seed {seed}: validation"))
    for t in TARGETS:
        fig.add_hline(y=t, line_dash="dash", annotation_text=f"target {t}")
    fig.update_layout(title=f"Record settings on the offline corpus ({len(results)} seeds)", xaxis_title="tokens",
                      yaxis_title="loss (nats)", yaxis_range=[2.5, 8], template="plotly_white")
    fig_path = args.doc.parent / "calibration.html"
    fig.write_html(fig_path, include_plotlyjs="cdn")  # the doc stays small; reports/ are the offline ones

    seeds = sorted(results)
    lines = [f"Seeds {', '.join(map(str, seeds))}; device {summary['device']}; generated by "
             f"`python bench/calibrate.py analyze {args.dir} --doc {args.doc}` (curves: `{fig_path.name}`).", "",
             "| target | rule | tokens (mean ± half-range) | clocked s (mean ± half-range) |", "|---|---|---|---|"]
    speeds = [summary["tokens_per_s"][s] for s in seeds]
    alike = max(speeds) <= 1.1 * min(speeds)  # a clock mean only over seeds that ran at the same speed
    for t in TARGETS:
        for rule in ("first_step", "smoothed", "val"):
            toks = [(table[(s, t)][rule] or {}).get("tokens") for s in seeds]
            secs = [(table[(s, t)][rule] or {}).get("time_s") for s in seeds]
            clock = _fmt_stats(secs, ".1f") if alike else "seeds ran at different speeds: see per seed"
            lines.append(f"| {t} | {rule} | {_fmt_stats(toks, ',.0f')} | {clock} |")
    lines += ["", "Per seed (clocks are only comparable between seeds that ran alike: alone, or sharing the GPU):", "",
              "| seed | target | rule | tokens | clocked s | tokens/s |", "|---|---|---|---|---|---|"]
    for s in seeds:
        for t in TARGETS:
            for rule in ("first_step", "smoothed", "val"):
                x = table[(s, t)][rule]
                lines.append(f"| {s} | {t} | {rule} | " + (f"{x['tokens']:,} | {x['time_s']:.1f}" if x else
                             "not reached | -") + f" | {summary['tokens_per_s'][s]:,.0f} |")
    lines += ["", "| seed | per-step std | smoothed @6.09M | val @6.09M | smoothed @18.77M | val @18.77M | tokens/s |",
              "|---|---|---|---|---|---|---|"]
    for s in seeds:
        a = summary["at"][s]
        lines.append(f"| {s} | {summary['step_noise_std'][s]:.3f} | {a[str(CHECKPOINTS[0])]['smoothed_loss']:.3f} | "
                     f"{a[str(CHECKPOINTS[0])]['val_loss']:.3f} | {a[str(CHECKPOINTS[1])]['smoothed_loss']:.3f} | "
                     f"{a[str(CHECKPOINTS[1])]['val_loss']:.3f} | {summary['tokens_per_s'][s]:,.0f} |")
    (args.dir / "tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--tokens", type=int, default=TOKENS)
    r.add_argument("--concurrent", action="store_true", help="all seeds at once on one GPU (clocks not comparable)")
    r.add_argument("--set", dest="extra", action="append", default=[])
    a = sub.add_parser("analyze")
    a.add_argument("dir", type=Path)
    a.add_argument("--doc", type=Path, default=Path("docs/calibration.md"))
    args = ap.parse_args()
    run(args) if args.cmd == "run" else analyze(args)


if __name__ == "__main__":
    main()
