"""What a search campaign covered and what its promotion shows, as Markdown (issue 15's evidence).

    python bench/campaign_analysis.py RUN_DIR [--promotion PROMOTION_DIR] [--out FILE]

From the search's run directory: trials per region of the space (schedule x micro-batch x grad-accum, horizon
buckets), how far ASHA let each trial run, the ranges of the rates tried, parameter importances (as the report
computes them), and the smoothed loss of the best trials and the record point at equal clock.
From the promotion (default: the newest ``promote-*`` in RUN_DIR): per seed, the step at which each configuration
first crossed the target (the record rule), and the mean smoothed loss per configuration at equal steps.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chores.values import finite

CLOCKS = (10.0, 20.0, 30.0, 40.0)  # seconds at which the best trials' smoothed losses are compared


def interpolate(points: list[dict[str, Any]], x_key: str, y_key: str, x: float) -> float:
    """``y`` at ``x`` by linear interpolation in a history; NaN outside it."""
    xs = [p[x_key] for p in points if finite(p.get(x_key)) and finite(p.get(y_key))]
    ys = [p[y_key] for p in points if finite(p.get(x_key)) and finite(p.get(y_key))]
    if not xs or x < xs[0] or x > xs[-1]:
        return math.nan
    return float(np.interp(x, xs, ys))


def _table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        out.append("| " + " | ".join(_cell(row[c]) for c in cols) + " |")
    return "\n".join(out)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def search_part(run: Path) -> list[str]:
    trials = pd.read_parquet(run / "trials.parquet")
    settings = json.loads((run / "settings.json").read_text())
    done = trials[trials["status"].isin(["completed", "stopped"])].copy()
    out = [f"## Search `{run.name}`: {settings.get('space')} on {settings.get('track')}",
           f"{len(done)} finished trials ({(done['status'] == 'completed').sum()} reached the target under the "
           f"search rule `{settings.get('search_rule')}`), {(trials['status'] == 'interrupted').sum()} interrupted "
           f"by a stop; ASHA rungs {settings['asha']['rungs']} ({settings['asha']['unit']}), max "
           f"{settings['asha']['max_t']}.", ""]
    reached = done["status"] == "completed"
    done["reached"] = reached
    done["objective_s"] = done["objective"].where(reached)
    region = ["param_schedule", "param_micro_batch_size", "param_grad_accum_steps"]
    by = done.groupby(region, dropna=False).agg(trials=("number", "size"), reached=("reached", "sum"),
                                                 best_s=("objective_s", "min"),
                                                 longest_clock_s=("clock_s", "max")).reset_index()
    by.columns = ["schedule", "micro_batch", "grad_accum", "trials", "reached", "best s", "longest clock s"]
    out += ["### Trials per region", _table(by), ""]
    if "param_horizon_ratio" in done:
        decaying = done[done["param_schedule"] != "constant"]
        bins = pd.cut(decaying["param_horizon_ratio"], [0.0, 0.2, 0.4, 0.7, 1.0001])
        hz = decaying.groupby(bins, observed=False).agg(trials=("number", "size"), reached=("reached", "sum"),
                                                        best_s=("objective_s", "min")).reset_index()
        hz.columns = ["horizon / budget", "trials", "reached", "best s"]
        hz["horizon / budget"] = hz["horizon / budget"].astype(str)
        out += ["### Decaying schedules by horizon (fraction of the track's budget)", _table(hz), ""]
    rungs = settings["asha"]["rungs"]
    reach = pd.Series([sum(c >= r * 0.98 for r in rungs) for c in done["clock_s"].fillna(0)])
    out += ["### How far trials ran (rungs passed)",
            ", ".join(f"{k} rungs: {v}" for k, v in sorted(reach.value_counts().items())), ""]
    ranges = []
    for p in ("muon_lr", "adamw_lr", "warmup_ratio", "muon_momentum", "horizon_ratio"):
        col = f"param_{p}"
        if col in done:
            ranges.append({"parameter": p, "min": done[col].min(), "max": done[col].max(),
                           "best 5 min": done.nsmallest(5, "objective")[col].min(),
                           "best 5 max": done.nsmallest(5, "objective")[col].max()})
    out += ["### Ranges tried (all finished trials, and the 5 best)", _table(pd.DataFrame(ranges)), ""]
    out += importance_part(run)
    out += equal_clock_part(run, done)
    return out


def importance_part(run: Path) -> list[str]:
    """The report's own importance (reports.param_importances: a rank effect size, no fANOVA, which needs
    scikit-learn), so this table and the report's importance page agree."""
    from reports._data import load
    from reports.param_importances import _get_param_importances_info

    info = _get_param_importances_info(load(run))
    rows = pd.DataFrame([{"parameter": p.param, "importance (eta2_H)": p.importance, "p": p.p_value,
                          "Spearman rho": p.spearman if p.spearman is not None else math.nan, "groups": p.groups}
                         for p in info.params])
    return [f"### Parameter importance ({info.method}; {info.n_trials} trials)", _table(rows), ""]


def equal_clock_part(run: Path, done: pd.DataFrame) -> list[str]:
    best = done[done["reached"]].nsmallest(5, "objective")["trial_id"].tolist()
    record = done.loc[done["number"] == 0, "trial_id"].tolist()
    rows = []
    for tid in dict.fromkeys(best + record):
        rec = json.loads((run / "trials" / f"{tid}.json").read_text())
        row = {"trial": f"#{rec['number']}" + (" (record point)" if rec["number"] == 0 else ""),
               "objective s": rec.get("objective")}
        for c in CLOCKS:
            row[f"smoothed @ {c:g} s"] = interpolate(rec["history"], "clock_s", "smoothed_loss", c)
        rows.append(row)
    return ["### Best trials and the record point at equal clock (smoothed train loss; one seed each)",
            _table(pd.DataFrame(rows)), ""]


def promotion_part(prom: Path) -> list[str]:
    summary = json.loads((prom / "promotion.json").read_text())
    rule = summary.get("rule", "first_step")
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    for path in sorted(prom.glob("*/seed-*/result.json")):
        data = json.loads(path.read_text())
        if data.get("result"):
            runs[(data["job"]["run"], int(data["job"]["seed"]))] = data["result"]
    labels = sorted({k[0] for k in runs}, key=lambda s: (s != "control", s))
    seeds = sorted({k[1] for k in runs})
    out = [f"## Promotion `{prom.name}` (record rule `{rule}`)", ""]
    rows, same = [], 0
    for seed in seeds:
        row: dict[str, Any] = {"seed": seed}
        steps = []
        for label in labels:
            c = (runs.get((label, seed)) or {}).get("crossings", {}).get(rule)
            row[label] = f"{c['step']} ({c['time_s']:.1f} s)" if c else "-"
            steps.append(c["step"] if c else None)
        row["same step"] = "yes" if None not in steps and len(set(steps)) == 1 else "no"
        same += row["same step"] == "yes"
        rows.append(row)
    out += ["### Step of the first crossing per seed (time on the clock)",
            f"Every configuration crossed at the same step in {same} of {len(seeds)} seeds.", "",
            _table(pd.DataFrame(rows)), ""]
    # the mean smoothed loss at equal steps: the configurations' difference that the crossing step hides
    common = min(min(r["steps"] for (lab, _), r in runs.items() if lab == label) for label in labels)
    marks = [s for s in (100, 200, 300, 350) if s <= common] + [common]
    table = []
    for label in labels:
        row = {"configuration": label}
        for m in marks:
            vals = [next((h["smoothed_loss"] for h in runs[(label, s)]["history"] if h["step"] == m), math.nan)
                    for s in seeds if (label, s) in runs]
            row[f"step {m}"] = float(np.nanmean(vals)) if vals else math.nan
        table.append(row)
    out += ["### Mean smoothed train loss over the seeds at equal steps", _table(pd.DataFrame(table)), ""]
    verdicts = []
    for c in summary.get("candidates", []):
        row = {"candidate": c["label"], "verdict": c.get("verdict"),
               "relative to control": c.get("relative_to_control"), "p": c.get("p_value")}
        for rule, got in (c.get("by_rule") or {}).items():  # the other crossings, beside the record rule's
            if rule != summary.get("rule") and isinstance(got, dict) and got.get("relative_to_control") is not None:
                row[f"{rule}: relative"] = got["relative_to_control"]
                row[f"{rule}: p"] = got.get("p_value")
        verdicts.append(row)
    if verdicts:
        out += [f"### Verdicts (one-sided Welch t-test; the verdict is the record rule's, `{summary.get('rule')}`; "
                "the other crossings beside it decide nothing)", _table(pd.DataFrame(verdicts)), ""]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--promotion", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    lines = search_part(args.run)
    prom = args.promotion or next(iter(sorted(args.run.glob("promote-*"), reverse=True)), None)
    if prom is not None:
        lines += promotion_part(prom)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
