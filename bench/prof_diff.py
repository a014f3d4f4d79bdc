"""Where two cProfile runs of the same program differ: functions by the growth of their cumulative time.

    python bench/prof_diff.py NEW.prof OLD.prof [--top 45]

Used on Dec 1, third session (call 4) for two warm starts of ``python -m trainer`` (``bench/gpu_dec01c.sh startprof``);
its output is ``bench/results/dec01c/call4-startprof/diff.txt``.
"""

from __future__ import annotations

import argparse
import pstats


def cumulative(path: str) -> dict[tuple[str, int, str], tuple[float, int]]:
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    return {(f.split("site-packages/")[-1], line, fn): (ct, nc) for (f, line, fn), (_, nc, _, ct, _) in stats.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("new")
    ap.add_argument("old")
    ap.add_argument("--top", type=int, default=45)
    args = ap.parse_args()
    a, b = cumulative(args.new), cumulative(args.old)
    rows = sorted(((a.get(k, (0.0, 0))[0] - b.get(k, (0.0, 0))[0], k) for k in set(a) | set(b)), key=lambda r: -r[0])
    print(f"{'growth s':>9} {'new s':>7} {'old s':>7} {'calls new/old':>14}  function")
    for growth, key in rows[: args.top]:
        (ca, na), (cb, nb) = a.get(key, (0.0, 0)), b.get(key, (0.0, 0))
        print(f"{growth:+9.2f} {ca:7.2f} {cb:7.2f} {f'{na}/{nb}':>14}  {key[0][-60:]}:{key[1]} {key[2]}")


if __name__ == "__main__":
    main()
