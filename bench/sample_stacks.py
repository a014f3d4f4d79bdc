"""Where a process's wall time goes, by sampling every thread's Python stack (a poor man's py-spy, which the GPU
machine lacks; cProfile's overhead would double the time dynamo spends in Python).

    python bench/sample_stacks.py --out DIR -- -m trainer --track speedrun-4.5 --quiet --out /tmp/run
    python bench/sample_stacks.py --report DIR [--under NAME] [--until SECONDS] [--top 40]

The first form runs the module (``-m NAME``) or script like ``python`` would, with a thread that every
``--interval`` seconds records each other thread's stack, and writes DIR/stacks.txt: one line per distinct
stack, ``thread;outermost;...;innermost count`` (the collapsed format flame-graph tools read), DIR/timeline.txt
(when each sample was taken) and DIR/meta.json. The second prints each function's inclusive share of the samples: of
all of them, or of those whose stack passes through a function named NAME (``file:function``, matched as a
substring), thread by thread; with ``--until S``, of the first S seconds only.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import runpy
import sys
import threading
import time
from pathlib import Path

WRAPPERS = ("_contextlib.py:",)  # decorator frames that ``children`` looks through


def _frame_name(frame) -> str:
    code = frame.f_code
    return f"{os.path.basename(code.co_filename)}:{code.co_name}"


class Sampler(threading.Thread):
    """Every ``interval`` seconds, the stack of every thread but itself: ``events`` holds (seconds since the
    start, the collapsed stack) for each."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="stack-sampler", daemon=True)
        self.interval = interval
        self.events: list[tuple[float, str]] = []
        self.samples = 0
        self.t0 = time.perf_counter()
        self._done = threading.Event()

    def run(self) -> None:
        me = threading.get_ident()
        while not self._done.wait(self.interval):
            at = time.perf_counter() - self.t0
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack = []
                while frame is not None:
                    stack.append(_frame_name(frame))
                    frame = frame.f_back
                self.events.append((at, ";".join([names.get(ident, str(ident)), *reversed(stack)])))
            self.samples += 1

    def stop(self) -> None:
        self._done.set()
        self.join()


def record(out: Path, interval: float, argv: list[str]) -> int:
    """Run ``argv`` (``-m MODULE ARGS`` or ``SCRIPT ARGS``) in this process under a Sampler; write DIR/stacks.txt
    (``stack count`` lines, most frequent first), DIR/timeline.txt (``seconds line`` per sample and thread, the line
    of its stack in stacks.txt, from 1) and DIR/meta.json (``started_at``: the epoch time of the start)."""
    out.mkdir(parents=True, exist_ok=True)
    started_at = time.time()
    sampler = Sampler(interval)
    sampler.start()
    code = 0
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sampler.stop()
        wall = time.perf_counter() - sampler.t0
        counts = collections.Counter(stack for _, stack in sampler.events)
        line = {stack: i for i, (stack, _) in enumerate(counts.most_common(), start=1)}
        (out / "stacks.txt").write_text("".join(f"{stack} {n}\n" for stack, n in counts.most_common()))
        (out / "timeline.txt").write_text("".join(f"{t:.4f} {line[stack]}\n" for t, stack in sampler.events))
        (out / "meta.json").write_text(json.dumps({"argv": argv, "interval_s": interval, "samples": sampler.samples,
                                                   "wall_s": wall, "started_at": started_at}, indent=1))
    return code


def _text(folder: Path, name: str) -> str:
    """DIR/NAME, or DIR/NAME.gz as bench/results keeps it."""
    plain = folder / name
    return plain.read_text() if plain.exists() else gzip.decompress((folder / f"{name}.gz").read_bytes()).decode()


def read(folder: Path, until: float | None = None) -> tuple[dict, list[tuple[list[str], int]]]:
    """A recorded folder's meta.json and its stacks with their counts: all of them, or those sampled in the first
    ``until`` seconds (from timeline.txt)."""
    meta = json.loads((folder / "meta.json").read_text())
    stacks = []
    for line in _text(folder, "stacks.txt").splitlines():
        if line:
            stack, _, n = line.rpartition(" ")
            stacks.append((stack.split(";"), int(n)))
    if until is None:
        return meta, stacks
    early: collections.Counter[int] = collections.Counter()
    for line in _text(folder, "timeline.txt").splitlines():
        t, _, index = line.partition(" ")
        if float(t) < until:
            early[int(index) - 1] += 1
    return meta, [(stacks[i][0], n) for i, n in sorted(early.items())]


def _from(frames: list[str], under: str) -> list[str] | None:
    """``frames`` from the first that matches ``under`` on (outermost first), or None where none matches."""
    at = next((i for i, f in enumerate(frames) if under in f), None)
    return None if at is None else frames[at:]


def inclusive(stacks: list[tuple[list[str], int]], under: str | None) -> dict[str, collections.Counter]:
    """Per thread: samples in which each function is on the stack (once per sample), counting only the part of
    the stack below the first frame matching ``under`` when given (and only those samples)."""
    per_thread: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for stack, n in stacks:
        thread, frames = stack[0], stack[1:]
        if under is not None:
            frames = _from(frames, under)
            if frames is None:
                continue
        for name in set(frames):
            per_thread[thread][name] += n
        per_thread[thread]["(all)"] += n
    return per_thread


def children(stacks: list[tuple[list[str], int]], under: str, thread: str = "MainThread") -> collections.Counter:
    """Samples of ``thread`` below the first frame matching ``under``, by the frame right below it (past the
    wrappers of decorators such as ``torch.no_grad``)."""
    out: collections.Counter = collections.Counter()
    for stack, n in stacks:
        if stack[0] != thread:
            continue
        frames = _from(stack[1:], under)
        if frames is None:
            continue
        below = [f for f in frames[1:] if not f.startswith(WRAPPERS)]
        out[below[0] if below else "(itself)"] += n
    return out


def report(folder: Path, under: str | None, top: int, until: float | None = None) -> None:
    meta, stacks = read(folder, until)
    # a sample's share of the wall: more than the interval asked for, as the sampler waits for the GIL
    seconds = meta["wall_s"] / max(meta["samples"], 1)
    print(f"{meta['samples']} samples over {meta['wall_s']:.1f} s (one every {1000 * seconds:.1f} ms; "
          f"{1000 * meta['interval_s']:.0f} ms asked): {' '.join(meta['argv'])}"
          + (f"; the first {until:.2f} s only" if until is not None else ""))
    for thread, counts in inclusive(stacks, under).items():
        total = counts["(all)"]
        print(f"\n{thread}: {total} samples (~{total * seconds:.1f} s){f' under {under}' if under else ''}")
        for name, n in counts.most_common(top):
            if name != "(all)":
                print(f"  {n * seconds:7.2f} s {100 * n / total:5.1f}%  {name}")
    if under:
        print(f"\nMainThread under {under}, by the frame it called:")
        for name, n in children(stacks, under).most_common(top):
            print(f"  {n * seconds:7.2f} s  {name}")


def main() -> None:
    argv = sys.argv[1:]
    rest: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, rest = argv[:at], argv[at + 1:]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="record: the folder for stacks.txt, timeline.txt and meta.json")
    p.add_argument("--interval", type=float, default=0.005, help="record: seconds between samples (0.005)")
    p.add_argument("--report", type=Path, help="print a recorded folder's inclusive times")
    p.add_argument("--under", default=None, help="report: only below the first frame matching this")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--until", type=float, default=None, help="report: only the first UNTIL seconds")
    args = p.parse_args(argv)
    if args.report:
        if not (args.report / "meta.json").exists():
            p.error(f"{args.report} holds no recording (no meta.json)")
        if args.until is not None and not any((args.report / n).exists() for n in ("timeline.txt", "timeline.txt.gz")):
            p.error(f"{args.report} has no timeline.txt (recorded before samples kept their times): leave out --until")
        report(args.report, args.under, args.top, args.until)
    elif args.out:
        if not rest or rest == ["-m"]:
            p.error("nothing to run: give -m MODULE [ARGS] or SCRIPT [ARGS] after --")
        sys.exit(record(args.out, args.interval, rest))
    else:
        p.error("give --out DIR -- COMMAND, or --report DIR")


if __name__ == "__main__":
    main()
