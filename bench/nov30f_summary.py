"""The figures of Nov 30, sixth session, from its saved output (issues 14, 17 and 19).

    python bench/nov30f_summary.py bench/results > bench/results/nov30f-summary.txt

- ``startup-nov30f/``: fresh ``python -m trainer`` processes at the record settings, one H200 per call (rows as in
  ``nov30e_summary.py``). Call 1 at bbfac74 (``new``: queued step-0 evaluation, model built during the compile
  imports, library prewarm; ``noprewarm``: the same without the prewarm); call 2 at 85fc71e (``new``: without the
  prewarm; ``old``: ee65970, the code kept), alternated on one warm cache; call 3 at ad8ca40 (``off``: dynamo's
  cache off, i.e. the code kept; with it on, every warm process failed); call 4 (``warm-1`` to ``-3`` under
  cProfile, so slower);
- ``scaling-nov30f/s12-1gpu``: the default search on one H200 for 110 s after a first process warmed the caches;
- ``muon_step/nov30f.json``, ``trainer_speed/nov30f-call1/``, ``same_answer/nov30f-call1/``: call 1;
  ``trainer_speed/nov30f-autotune/``: call 5, the blocks compiled with max-autotune against the default.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nov30e_summary import cache_hits, fresh_rows, median_line, same_line, search, split_rows, warm_line


def startup(root: Path) -> None:
    print("== start-up (issue 14): fresh processes, warm caches unless named first or cold")
    for call in ("call1-h200", "call2-h200", "call3-dynamo", "call4-firstwarm"):
        folder = root / "startup-nov30f" / call
        print(call)
        print("\n".join(fresh_rows(folder) + split_rows(folder)))
    for call, names in (("call1-h200", ("new", "noprewarm")), ("call2-h200", ("new", "old")),
                        ("call3-dynamo", ("off",))):
        for name in names:
            print(median_line(f"{call}, {name}", root / "startup-nov30f" / call, name))


def search_on_one_gpu(root: Path) -> None:
    print("\n== the default search on one H200, 110 s, warm caches (issues 14 and 17)")
    u, t = search(root / "scaling-nov30f" / "s12-1gpu")
    print(f"{u['trials']} trials, {u['trials_per_hour']}/h; busy {u['fraction']:.1%} of the window, "
          f"{u['fraction_after_first_clock']:.1%} after the first clock")
    first = t.sort_values("clock_started_at").iloc[0]
    print(f"first trial: start-up {first['startup_s']:.1f} s, {cache_hits(t, first)}")
    print(warm_line(t))


def trainer(root: Path) -> None:
    print("\n== trainer, call 1 (issue 19)")
    muon = json.loads((root / "muon_step" / "nov30f.json").read_text())
    print("Muon's step alone: " + ", ".join(f"{r['version']} {r['gpu_ms_per_step']:.3f} ms" for r in muon["rows"]))
    for row in json.loads((root / "trainer_speed" / "nov30f-call1" / "summary.json").read_text())["rows"]:
        print(f"{row['name']}: {row['steady_tokens_per_s']:,.0f} tokens/s steady")
    for variant in ("default", "autotune"):
        rows = json.loads((root / "trainer_speed" / "nov30f-autotune" / f"{variant}-summary.json").read_text())["rows"]
        print(f"call 5, blocks compiled {variant}: " + "; ".join(
            f"{r['name']} {r['steady_tokens_per_s']:,.0f} tokens/s steady, warm-up {r['warmup_compile_s']:.1f} s"
            for r in rows))
    print(same_line(root / "same_answer" / "nov30f-call1", show_diff=False))


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
    startup(root)
    search_on_one_gpu(root)
    trainer(root)


if __name__ == "__main__":
    main()
