"""Where a fresh trainer process's start-up goes, split finer than ``startup_phases``, on the trainer's own path.

Runs ``trainer.train.train`` once in this (fresh) process at the given track's settings and times, with a device
sync after each: the import of the compile stack (its thread), loading the tokens, building the shape (model,
validation windows, compile wrappers), each evaluation and the first three training steps; and, inside those,
the time PyTorch's CUDA graph trees spend recording graphs (``CUDAGraphNode.__init__``), the kernels inductor
still autotunes when they first run (with what its autotune cache said) and dynamo's compile times. Run it twice: the second process sees the caches the first left.

    python bench/startup_split.py --out /tmp/split.json                  # record settings, 0.5M tokens
    python bench/startup_split.py --out /tmp/s.json --track tiny-speedrun --set device=cpu --set compile=true
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

T0 = time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--track", default="speedrun-4.5")
    ap.add_argument("--set", dest="extra", action="append", default=[], help="trainer settings (KEY=VALUE)")
    args = ap.parse_args()

    import importlib

    import torch

    from trainer.config import apply_overrides, make_config, parse_set

    tt = importlib.import_module("trainer.train")  # the module (the package exports its train())
    t_imported = time.perf_counter() - T0
    spans: dict[str, list[float]] = defaultdict(list)
    autotuned: list[dict] = []

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def timed(name: str, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                sync()
                spans[name].append(time.perf_counter() - t)
        return wrapper

    def patch_cudagraph_record() -> None:
        try:
            from torch._inductor import cudagraph_trees
        except ImportError:
            return
        node = cudagraph_trees.CUDAGraphNode
        if getattr(node.__init__, "_timed", False):
            return
        init = node.__init__

        def recording(self, *a, **k):
            t = time.perf_counter()
            try:
                return init(self, *a, **k)
            finally:
                spans["cuda graph recording (inside the above)"].append(time.perf_counter() - t)
        recording._timed = True
        node.__init__ = recording
        try:  # which kernels a warm process still autotunes, and what their autotune cache said
            from torch._inductor.runtime.triton_heuristics import CachingAutotuner
        except ImportError:
            return
        bench_all = CachingAutotuner.benchmark_all_configs

        def benchmarking(self, *a, **k):
            t, timings = time.perf_counter(), {}
            try:
                timings = bench_all(self, *a, **k)
                return timings
            finally:
                info = getattr(self, "autotune_cache_info", None) or {}
                autotuned.append({"kernel": getattr(self.fn, "__name__", "?"), "s": round(time.perf_counter() - t, 4),
                                  "configs": len(getattr(self, "launchers", []) or []),
                                  "kernel_ms": sorted(round(float(v), 4) for v in (timings or {}).values()),
                                  "cache": info.get("autotune_cache_state"),
                                  "file": Path(getattr(self, "filename", "") or "").name})
        CachingAutotuner.benchmark_all_configs = benchmarking

    importer = tt._import_compile_stack
    tt._import_compile_stack = timed("import the compile stack (thread)", importer)
    tt.Workbench.tokens = timed("load tokens", tt.Workbench.tokens)
    build = tt.build_shape

    def build_shape(*a, **k):
        t = time.perf_counter()
        shape = build(*a, **k)
        sync()
        spans["build shape (model, val windows, compile wrappers)"].append(time.perf_counter() - t)
        patch_cudagraph_record()
        return shape
    tt.build_shape = build_shape
    tt.Shape.evaluate = timed("evaluate", tt.Shape.evaluate)
    make = tt.make_train_step

    def make_train_step(*a, **k):
        step = make(*a, **k)
        calls = [0]

        def train_step(*sa, **sk):
            calls[0] += 1
            if calls[0] > 3:
                return step(*sa, **sk)
            return timed(f"train step {calls[0]}", step)(*sa, **sk)
        return train_step
    tt.make_train_step = make_train_step

    config = apply_overrides(make_config(args.track),
                             parse_set(["max_tokens=524288", "stop_rule=never", *args.extra]))
    t = time.perf_counter()
    result = tt.train(config)
    total = time.perf_counter() - t
    out = {
        "track": args.track, "settings": args.extra, "torch": torch.__version__, "device": result.device,
        "process_start_to_imports_s": round(t_imported, 3), "train_call_s": round(total, 3),
        "startup_s": result.startup_s, "startup_phases": result.startup_phases, "compile_cache": result.compile_cache,
        "spans_s": {k: [round(v, 3) for v in vs] for k, vs in spans.items()},
        "span_totals_s": {k: round(sum(vs), 3) for k, vs in spans.items()},
        "autotuned": autotuned,
    }
    try:  # dynamo_timed's totals per function, seconds (nested: a total includes the ones it called)
        from torch._dynamo.utils import compilation_time_metrics

        out["dynamo_compile_times_s"] = {k: round(sum(v), 3) for k, v in compilation_time_metrics.items()
                                         if sum(v) >= 0.05}
    except Exception as exc:  # a private table whose shape changes between torch versions; the rest stands
        out["dynamo_compile_times_s"] = f"unavailable: {exc}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"start-up {result.startup_s:.2f} s {result.startup_phases} {result.compile_cache}")
    for k, v in out["span_totals_s"].items():
        print(f"  {k}: {v:.2f} s ({len(spans[k])}x)")
    if autotuned:
        print(f"  autotuned at run time: {len(autotuned)} kernels, {sum(a['s'] for a in autotuned):.2f} s; cache "
              f"{sorted({str(a['cache']) for a in autotuned})}")


if __name__ == "__main__":
    main()
