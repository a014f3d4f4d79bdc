"""The honest clock: it counts training steps only.

On CUDA every mark is a device event, so a time is what the GPU took, read without stalling it: the
loop records an event after each step and reads it later, once it has completed. Evaluation is bracketed
by marks and subtracted. On CPU the marks are host timestamps (the CPU computes synchronously).
"""

from __future__ import annotations

import os
import time

import torch


class _HostEvent:
    def __init__(self) -> None:
        self.t = 0.0

    def record(self) -> None:
        self.t = time.perf_counter()

    def elapsed_time(self, end: _HostEvent) -> float:  # milliseconds, like torch.cuda.Event
        return (end.t - self.t) * 1000.0

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True


class Clock:
    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._start = None
        self._pauses: list[tuple[object, object]] = []  # (begin, end) marks of evaluation pauses

    def _event(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
        else:
            e = _HostEvent()
        e.record()
        return e

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self._start = self._event()

    def mark(self):
        return self._event()

    def pause(self):
        return self._event()

    def resume(self, begin) -> None:
        self._pauses.append((begin, self._event()))

    def seconds(self, mark) -> float:
        """Clocked seconds from the start to ``mark``, pauses before it subtracted (waits for the mark)."""
        assert self._start is not None, "clock not started"
        mark.synchronize()
        total = self._start.elapsed_time(mark)
        for begin, end in self._pauses:
            end.synchronize()
            if self._start.elapsed_time(end) <= total + 1e-6:
                total -= begin.elapsed_time(end)
        return total / 1000.0


def process_age_s() -> float:
    """Seconds since this process started (Linux /proc; elsewhere since this module was imported)."""
    try:
        with open(f"/proc/{os.getpid()}/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED_AT


_IMPORTED_AT = time.perf_counter()
