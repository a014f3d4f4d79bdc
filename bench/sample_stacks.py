"""Where a process's wall time goes, by sampling every thread's Python stack (a poor man's py-spy, which the GPU
machine lacks; cProfile's overhead would double the time dynamo spends in Python).

    python bench/sample_stacks.py --out DIR -- -m trainer --track speedrun-4.5 --quiet --out /tmp/run
    python bench/sample_stacks.py --report DIR [--under NAME] [--top 40]

The first form runs the module (``-m NAME``) or script like ``python`` would, with a thread that every
``--interval`` seconds records each other thread's stack, and writes DIR/stacks.txt: one line per distinct
stack, ``thread;outermost;...;innermost count`` (the collapsed format flame-graph tools read), plus
DIR/meta.json. The second prints each function's inclusive share of the samples: of all of them, or of those
whose stack passes through a function named NAME (``file:function``, matched as a substring), thread by thread.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import runpy
import sys
import threading
import time
from pathlib import Path


def _frame_name(frame) -> str:
    code = frame.f_code
    return f"{os.path.basename(code.co_filename)}:{code.co_name}"


class Sampler(threading.Thread):
    """Counts the distinct stacks of every thread but itself, every ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="stack-sampler", daemon=True)
        self.interval = interval
        self.counts: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        me = threading.get_ident()
        while not self._done.wait(self.interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack = []
                while frame is not None:
                    stack.append(_frame_name(frame))
                    frame = frame.f_back
                self.counts[";".join([names.get(ident, str(ident)), *reversed(stack)])] += 1
            self.samples += 1

    def stop(self) -> None:
        self._done.set()
        self.join()


def record(out: Path, interval: float, argv: list[str]) -> int:
    if not argv:
        raise SystemExit("error: nothing to run; give -m MODULE [ARGS] or SCRIPT [ARGS] after --")
    out.mkdir(parents=True, exist_ok=True)
    sampler = Sampler(interval)
    t0 = time.perf_counter()
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
        wall = time.perf_counter() - t0
        lines = [f"{stack} {n}" for stack, n in sampler.counts.most_common()]
        (out / "stacks.txt").write_text("\n".join(lines) + "\n")
        (out / "meta.json").write_text(json.dumps({"argv": argv, "interval_s": interval, "samples": sampler.samples,
                                                   "wall_s": wall}, indent=1))
    return code


def read(folder: Path) -> tuple[dict, list[tuple[list[str], int]]]:
    meta = json.loads((folder / "meta.json").read_text())
    stacks = []
    for line in (folder / "stacks.txt").read_text().splitlines():
        if line:
            stack, _, n = line.rpartition(" ")
            stacks.append((stack.split(";"), int(n)))
    return meta, stacks


def inclusive(stacks: list[tuple[list[str], int]], under: str | None) -> dict[str, collections.Counter]:
    """Per thread: samples in which each function is on the stack (once per sample), counting only the part of
    the stack below the first frame matching ``under`` when given (and only those samples)."""
    per_thread: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for stack, n in stacks:
        thread, frames = stack[0], stack[1:]
        if under is not None:
            at = next((i for i, f in enumerate(frames) if under in f), None)
            if at is None:
                continue
            frames = frames[at:]
        for name in set(frames):
            per_thread[thread][name] += n
        per_thread[thread]["(all)"] += n
    return per_thread


def report(folder: Path, under: str | None, top: int) -> None:
    meta, stacks = read(folder)
    seconds = meta["interval_s"]
    print(f"{meta['samples']} samples every {1000 * seconds:.0f} ms over {meta['wall_s']:.1f} s: {' '.join(meta['argv'])}")
    for thread, counts in inclusive(stacks, under).items():
        total = counts["(all)"]
        print(f"\n{thread}: {total} samples (~{total * seconds:.1f} s){f' under {under}' if under else ''}")
        for name, n in counts.most_common(top):
            if name != "(all)":
                print(f"  {n * seconds:7.2f} s {100 * n / total:5.1f}%  {name}")


def main() -> None:
    argv = sys.argv[1:]
    rest: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, rest = argv[:at], argv[at + 1:]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="record: the folder for stacks.txt and meta.json")
    p.add_argument("--interval", type=float, default=0.005, help="record: seconds between samples (0.005)")
    p.add_argument("--report", type=Path, help="print a recorded folder's inclusive times")
    p.add_argument("--under", default=None, help="report: only below the first frame matching this")
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args(argv)
    if args.report:
        report(args.report, args.under, args.top)
    elif args.out:
        sys.exit(record(args.out, args.interval, rest))
    else:
        p.error("give --out DIR -- COMMAND, or --report DIR")


if __name__ == "__main__":
    main()
