"""What a search prints when it ends, and its clocked share of wall time (``utilisation.json``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from search.objective import describe


def summary(trials, settings: dict[str, Any], run_dir: Path, share: dict[str, float] | None = None) -> str:
    if trials.empty:
        return f"no trials finished\nresults: {run_dir}"
    interrupted = trials[trials["status"] == "interrupted"]
    trials = trials[trials["status"] != "interrupted"]
    counts = trials["status"].value_counts().to_dict()
    lines = [f"{len(trials)} trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))]
    if not interrupted.empty:
        pairs = [f"#{int(r['number'])} " + (f"(rerun as #{int(r['rerun_as'])})" if present(r.get("rerun_as"))
                                             else "(rerun on --resume)") for _, r in interrupted.iterrows()]
        lines.append(f"interrupted by a stop: {', '.join(pairs)}")
    asha = settings.get("asha", {})
    lines.append(f"ASHA rungs in {asha.get('unit', 'tokens')}: {', '.join(f'{r:g}' for r in asha.get('rungs', []))}"
                 f" (max {asha.get('max_t', 0):g})")
    if "warm_start" in trials and "start_latency_s" in trials:
        warm = trials[trials["warm_start"].eq(True)]
        cold = trials[trials["warm_start"].eq(False)]
        parts = []
        for label, part in (("warm", warm), ("fresh", cold)):
            lat = part["start_latency_s"].dropna()
            if len(lat):
                parts.append(f"{len(part)} {label} (median {lat.median():.1f} s)")
        if parts:
            lines.append("trial start to first clocked step: " + ", ".join(parts))
    params = [c for c in trials.columns if c.startswith("param_")]
    show = trials.sort_values(["objective", "number"], na_position="last").head(8)
    has_target = settings.get("target") is not None
    table = [["#", "status", "objective", "tokens", *(p[6:] for p in params)]]
    for _, r in show.iterrows():
        obj_s = describe(r.get("objective"), has_target)
        table.append([str(int(r["number"])), str(r["status"]), obj_s, f"{int(r.get('tokens') or 0):,}",
                      *(fmt(r.get(p)) for p in params)])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    left = {1}  # status reads left-aligned; numbers right-aligned
    for row in table:
        lines.append("  ".join(cell.ljust(w) if i in left else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    if share:
        if share.get("per_gpu"):
            after = share.get("per_gpu_after_first_clock") or {}
            lines.append("clocked share of wall time per GPU: " + ", ".join(
                f"GPU {gpu} {100 * f:.0f}%" + (f" ({100 * after[gpu]:.0f}% after its first clock)" if gpu in after
                                               else "") for gpu, f in share["per_gpu"].items()))
        lines.append(f"clocked training: {share['clocked_s']:.0f} s of {share['wall_s']:.0f} s wall "
                     f"({100 * share['fraction']:.0f}%; {100 * share['fraction_after_first_clock']:.0f}% after the "
                     f"first trial's clock started)")
        if share.get("trials") is not None:
            per_gpu_hour = (f" ({share['trials_per_gpu_hour']:.0f} per GPU-hour on {share['gpus']} GPU"
                            f"{'s' if share['gpus'] != 1 else ''})" if share.get("gpus") else "")
            lines.append(f"this session: {share['trials']} trials finished, {share['trials_per_hour']:.0f} per hour"
                         f"{per_gpu_hour}")
    lines.append(f"results: {run_dir}")
    return "\n".join(lines)


def present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def read_sessions(run_dir: Path) -> list[dict[str, Any]]:
    """utilisation.json's entries, one per session of a search ([] when there is none or it is unreadable)."""
    try:
        data = json.loads((run_dir / "utilisation.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return data if isinstance(data, list) else []


def trials_finished(trials, start: float, end: float) -> int:
    """The trials of a trials table (a DataFrame) whose clock ended in (start, end] and that were not interrupted:
    what a session counts as finished."""
    import pandas as pd

    ended = (trials["clock_ended_at"].between(start, end, inclusive="right")
             if not trials.empty and "clock_ended_at" in trials else pd.Series(dtype=bool))
    if "status" in trials and len(ended):
        ended &= trials["status"] != "interrupted"
    return int(ended.sum()) if len(ended) else 0


def record_share(run_dir: Path, trials, session: str, start: float, end: float) -> dict[str, Any] | None:
    """This session's clocked share of its wall time, appended to utilisation.json (one entry per session)."""
    import pandas as pd

    from search.store import clocked_share
    from trainer.io import atomic_write_json

    spans: list[tuple[float, float]] = []
    per_gpu: dict[str, list[tuple[float, float]]] = {}
    if not trials.empty and {"clock_started_at", "clock_ended_at"} <= set(trials.columns):
        gpus = trials["cuda_visible_devices"] if "cuda_visible_devices" in trials else [""] * len(trials)
        for a, b, gpu in zip(trials["clock_started_at"], trials["clock_ended_at"], gpus):
            if pd.notna(a) and pd.notna(b):
                spans.append((float(a), float(b)))
                if isinstance(gpu, str) and gpu:
                    per_gpu.setdefault(gpu, []).append((float(a), float(b)))
    share = clocked_share(spans, start, end)
    if share and per_gpu:
        # each GPU's own clocked share of the session's wall time: a GPU that sat idle shows here, which the
        # union above hides
        mine = {gpu: g for gpu, s in sorted(per_gpu.items()) if (g := clocked_share(s, start, end))}
        share["per_gpu"] = {gpu: round(g["fraction"], 4) for gpu, g in mine.items()}
        # and after that GPU's own first clock: its steady state, without its first (cold) start
        share["per_gpu_after_first_clock"] = {gpu: round(g["fraction_after_first_clock"], 4)
                                              for gpu, g in mine.items()}
    if share:
        # the session's throughput, the figure to compare across GPU counts
        n = trials_finished(trials, start, end)
        share["trials"] = n
        share["trials_per_hour"] = round(n / share["wall_s"] * 3600, 1)
        if per_gpu:
            share["gpus"] = len(per_gpu)
            share["trials_per_gpu_hour"] = round(share["trials_per_hour"] / len(per_gpu), 1)
    path = run_dir / "utilisation.json"
    history = read_sessions(run_dir)
    history.append({"session": session, "started": start, "ended": end, **(share or {})})
    atomic_write_json(path, history)
    return share
