"""The figures of Nov 30, fifth session, from its saved output (issues 14 and 17).

    python bench/nov30e_summary.py bench/results > bench/results/nov30e-summary.txt

- ``startup-nov30e/``: fresh ``python -m trainer`` processes (``fresh-*.json``: seconds to the first clocked
  step, phases, compile-cache counters) and ``bench/startup_split.py`` runs (``split-*.json``: CUDA graph
  recording, kernels autotuned at run time) of calls 1, 3 and 4;
- ``scaling-nov30e/scale12``: the default search on one GPU and then on two in one call (``utilisation.json``,
  ``trials.csv``: trials per hour, busy share per GPU, each GPU's first trial's start-up and compile cache);
- ``scaling-nov30e/transfer``: the same transfer on one GPU and on two (wall times, each run's start-up).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pandas as pd


def fresh_rows(folder: Path) -> list[str]:
    rows = []
    for p in sorted(folder.glob("fresh-*.json")):
        r = json.loads(p.read_text())
        ph = r["startup_phases"]
        wait = f"  import wait {ph['import_wait']:.2f}" if "import_wait" in ph else ""  # sixth session's trial code
        rows.append(f"  {p.stem[6:]:<16} {r['startup_s']:6.2f} s   before {ph['before_train']:.2f}  data "
                    f"{ph['data']:.2f}{wait}  model {ph['model']:.2f}  warm-up {ph['warmup']:.2f}   "
                    f"{r.get('compile_cache')}")
    return rows


def split_rows(folder: Path) -> list[str]:
    rows = []
    for p in sorted(folder.glob("split-*.json")):
        r = json.loads(p.read_text())
        tuned = r.get("autotuned", [])
        rows.append(f"  {p.stem:<16} {r['startup_s']:6.2f} s   graph recording "
                    f"{r['span_totals_s'].get('cuda graph recording (inside the above)', 0):.2f} s   autotuned at run "
                    f"time: {len(tuned)} kernels, {sum(a['s'] for a in tuned):.2f} s   {r['compile_cache']}")
    return rows


def median_line(label: str, folder: Path, name: str) -> str:
    """``label: s1, s2, ... s (median m)`` over the numbered fresh runs ``fresh-NAME-<digit>.json``."""
    s = [json.loads(p.read_text())["startup_s"] for p in sorted(folder.glob(f"fresh-{name}-[0-9].json"))]
    return f"{label}: {', '.join(f'{x:.2f}' for x in s)} s (median {statistics.median(s):.2f})"


def cache_hits(trials: pd.DataFrame, row: pd.Series) -> dict[str, int]:
    """A trial's compile-cache counters from its ``compile_cache_*`` columns (the ones it reported)."""
    return {k.removeprefix("compile_cache_"): int(row[k]) for k in trials.columns
            if k.startswith("compile_cache_") and pd.notna(row[k])}


def warm_line(trials: pd.DataFrame) -> str:
    warm = trials[trials["warm_start"] == True]["startup_s"]  # noqa: E712 (a column of booleans)
    return f"warm trials: {len(warm)}, start-up median {warm.median():.3f} s"


def same_line(folder: Path, show_diff: bool = True) -> str:
    """``bench/same_answer.py``'s verdict from its ``summary.json``: step-loss differences at the marks, the final
    validation loss against the saved fast run's (and their difference, with ``show_diff``)."""
    same = json.loads((folder / "summary.json").read_text())
    marks = ", ".join(f"{m['diff']:+.3f}" for m in same["marks"])
    val = same["val_loss_change"]
    diff = f" ({val['diff']:+.4f})" if show_diff else ""
    return (f"6,086,656 tokens against the reference run: step-loss differences {marks}; final val {val['now']:.4f} "
            f"against {val['before']:.4f}{diff}: {'PASS' if same['pass'] else 'FAIL'}")


def startup(root: Path) -> None:
    print("== start-up (issue 14): fresh processes, warm caches unless named first")
    for call in ("call1-index", "call3-coordesc", "call4-final"):
        folder = root / "startup-nov30e" / call
        print(call)
        print("\n".join(fresh_rows(folder) + split_rows(folder)))
    one = root / "startup-nov30e" / "call1-index"
    for name in ("walk", "index"):
        print(median_line(f"call 1, {name}", one, name))


def search(run: Path) -> tuple[dict, pd.DataFrame]:
    return json.loads((run / "utilisation.json").read_text())[-1], pd.read_csv(run / "trials.csv")


def scaling(root: Path) -> None:
    print("\n== one GPU against two (issue 17)")
    base = root / "scaling-nov30e"
    rates = {}
    for g in ("1gpu", "2gpu"):
        u, t = search(base / "scale12" / f"s12-{g}")
        rates[g] = u["trials_per_hour"]
        print(f"search on {g}: {u['trials']} trials in {u['ended'] - u['started']:.0f} s, {u['trials_per_hour']}/h; "
              f"busy per GPU {u['per_gpu']} (after its first clock {u['per_gpu_after_first_clock']})")
        cold = t[t["warm_start"] == False]  # noqa: E712 (a column of booleans)
        for _, r in cold.iterrows():
            print(f"  first trial on GPU {int(r['cuda_visible_devices'])}: start-up {r['startup_s']:.1f} s, "
                  f"{cache_hits(t, r)}")
        print(f"  {warm_line(t)}")
    print(f"trials per hour, 2 GPUs / 1 GPU: {rates['2gpu'] / rates['1gpu']:.2f}x")
    walls = {}
    for line in (base / "transfer" / "transfer-walls.txt").read_text().splitlines():
        g, s = line.split(" GPU(s): ")
        walls[g.split()[-1]] = float(s.split(" s")[0])
    print(f"transfer (6 runs of 4M tokens on marathon): 1 GPU {walls['1']:.0f} s, 2 GPUs {walls['2']:.0f} s: "
          f"{walls['2'] / walls['1']:.3f}x")
    for g in ("1gpu", "2gpu"):
        runs = json.loads((base / "transfer" / f"transfer-{g}" / "runs.json").read_text())
        print(f"  {g}: " + "; ".join(f"{k} {v['result']['startup_s']:.1f} s {v['result'].get('compile_cache') or ''}"
                                    for k, v in runs.items()))


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
    startup(root)
    scaling(root)


if __name__ == "__main__":
    main()
