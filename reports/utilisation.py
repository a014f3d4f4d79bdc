"""How busy the GPUs were: utilisation.json, one entry per session of a search (``--resume`` adds one).

Each session has its wall window (``wall_s``), the union of the trials' clocked spans in it (``clocked_s``, its
``fraction`` of the window, and ``fraction_after_first_clock``, which leaves the first cold start out) and each
GPU's own clocked share of the window (``per_gpu``), and, in newer files, the trials it finished per hour and per
GPU-hour (the figure to compare between runs on different numbers of GPUs). The union hides a GPU that sat idle while another trained;
the per-GPU shares show it, so a GPU under :data:`BUSY_THRESHOLD` is flagged. The file is read tolerantly:
entries or fields that are not what search.summary writes are left out, with a problem in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._data import RunData, finite_float
from ._style import plural

BUSY_THRESHOLD = 0.85  # a GPU clocked for less of a session's wall time than this is flagged


@dataclass(frozen=True)
class Session:
    number: int  # 1, 2, ... in the file's order
    name: str
    wall_s: float | None
    clocked_s: float | None
    fraction: float | None
    fraction_after_first_clock: float | None
    per_gpu: dict[str, float]  # GPU -> its clocked share of the session's wall time
    per_gpu_after: dict[str, float]  # GPU -> its share of the time after its own first clock (newer files)
    trials_per_hour: float | None = None  # trials finished in the session per hour of its wall time (newer files)
    trials_per_gpu_hour: float | None = None


@dataclass(frozen=True)
class UtilisationInfo:
    state: str  # "ok", "missing" (no file), "unreadable" (not JSON, or not a list of sessions)
    sessions: list[Session]
    gpus: list[str]  # every GPU named in any session, in order
    idle: list[tuple[Session, str, float]]  # (session, GPU, share) under the threshold
    absent: list[tuple[Session, str]]  # a GPU named in another session with no clocked trial in this one
    problems: list[str]
    threshold: float = BUSY_THRESHOLD


def _share(value: Any) -> float | None:
    number = finite_float(value)
    return number if number is not None and number >= 0 else None


def _gpu_order(gpu: str) -> tuple[int, int | str]:
    return (0, int(gpu)) if gpu.isdigit() else (1, gpu)


def _get_utilisation_info(run: RunData) -> UtilisationInfo:
    data = run.utilisation
    if data is None:
        exists = run.path is not None and (run.path / "utilisation.json").exists()
        return UtilisationInfo("unreadable" if exists else "missing", [], [], [], [], [])
    if not isinstance(data, list):
        return UtilisationInfo("unreadable", [], [], [], [], ["utilisation.json is not a list of sessions"])
    sessions, problems, skipped, bad_gpus = [], [], 0, 0
    for entry in data:
        if not isinstance(entry, dict):
            skipped += 1
            continue
        per_gpu = {}
        raw = entry.get("per_gpu")
        if raw is not None and not isinstance(raw, dict):
            bad_gpus += 1
        for gpu, share in (raw.items() if isinstance(raw, dict) else []):
            value = _share(share)
            if value is None:
                bad_gpus += 1
            else:
                per_gpu[str(gpu)] = value
        after = entry.get("per_gpu_after_first_clock")
        per_gpu_after = {str(g): v for g, x in (after.items() if isinstance(after, dict) else [])
                         if (v := _share(x)) is not None}
        sessions.append(Session(number=len(sessions) + 1, name=str(entry.get("session") or ""),
                                wall_s=_share(entry.get("wall_s")), clocked_s=_share(entry.get("clocked_s")),
                                fraction=_share(entry.get("fraction")),
                                fraction_after_first_clock=_share(entry.get("fraction_after_first_clock")),
                                per_gpu=per_gpu, per_gpu_after=per_gpu_after,
                                trials_per_hour=_share(entry.get("trials_per_hour")),
                                trials_per_gpu_hour=_share(entry.get("trials_per_gpu_hour"))))
    if skipped:
        problems.append(f"utilisation.json: {skipped} of {len(data)} entries left out (not a JSON object)")
    if bad_gpus:
        problems.append(f"utilisation.json: {plural(bad_gpus, 'per-GPU share')} left out (not a number ≥ 0)")
    gpus = sorted({gpu for s in sessions for gpu in s.per_gpu}, key=_gpu_order)
    idle = [(s, gpu, s.per_gpu[gpu]) for s in sessions for gpu in gpus
            if gpu in s.per_gpu and s.per_gpu[gpu] < BUSY_THRESHOLD]
    absent = [(s, gpu) for s in sessions if s.per_gpu for gpu in gpus if gpu not in s.per_gpu]
    return UtilisationInfo("ok", sessions, gpus, idle, absent, problems)
