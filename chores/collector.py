"""Python's cyclic garbage collector paused while a process starts up (issue 14).

A fresh trainer process creates some 400,000 objects that live for the whole process: torch, its compiler stack,
the traced graphs. While they are being created the collector keeps running full collections, each walking every
object made so far, although almost nothing is garbage (on the CPU, 2,925 of 420,000 objects after a run's start-up,
and one full collection took 0.32 s). ``paused()`` stops collection for a block and restores it after;
``StartUp`` does the same from a run's start to its clock, where it freezes what is alive (``gc.freeze``: later
collections skip it) before collecting again, once per process, so the clocked steps neither walk the start-up's
objects nor run with collection off.

Reference counting frees almost everything as before; only garbage in reference cycles waits, and at the freeze
what little there is stays for good.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_frozen = False  # whether this process has frozen its start-up's objects


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside the block (an import, say); the collector as it was after it."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class StartUp:
    """Collection paused from ``begin`` (a process's first run starting) to ``clock`` (its clock starting), where the
    objects alive are frozen, once per process. ``end`` restores the collector if the run stops before its clock.
    Nothing happens where collection was off already or the process has frozen before (a later run, in a warm
    worker, has little to start up)."""

    def __init__(self) -> None:
        self.active = False

    def begin(self) -> None:
        if not _frozen and gc.isenabled():
            gc.disable()
            self.active = True

    def clock(self) -> None:
        global _frozen
        if self.active:
            gc.freeze()
            _frozen = True
        self.end()

    def end(self) -> None:
        if self.active:
            self.active = False
            gc.enable()
