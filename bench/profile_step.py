"""Where a training step's time goes: phase timings with CUDA events and a torch.profiler kernel table.

    python bench/profile_step.py --batch 4 --out bench/results/profile

Builds the model, its loss and its optimizers with the trainer's own ``build_shape`` at the record's track (regional
compile, the blocks' bf16 working copies unless ``--no-working-copies``, the residual stream in bf16 unless
``--fp32-residual``, the chunked loss above 32k positions, Muon with batched Newton-Schulz, fused AdamW, bf16
autocast, grad clip; CUDA graphs with ``--cudagraphs``) on random tokens, warms up, then times each phase over 20
steps. Before Dec 1, fourth session, it built the model itself: its b32 tables had the plain loss, and call 3's the
fp32 residual stream. The kernel kinds leave out the profiler's
``Optimizer.step#...`` ranges, which repeat their kernels' time (the tables saved before Dec 1, second session, count
them in "other").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from trainer import fa4
from trainer.config import Runtime, make_config
from trainer.optim import clip_coefficient, gradients, step_scaled
from trainer.train import Shape, build_shape, shape_key

KINDS = (  # (kind, substrings of a kernel's name), first match wins
    ("attention (cuDNN / flash)", ("sdpa", "flash", "fmha", "attention")),
    ("GEMM (cuBLAS / CUTLASS)", ("nvjet", "gemm", "cutlass", "xmma", "cublas")),
    ("fused by inductor (Triton)", ("triton_",)),
    ("copies and fills", ("memcpy", "memset", "copy_kernel", "fill_kernel")),
    ("eager elementwise and reductions (ATen)", ("elementwise", "vectorized", "reduce_kernel", "foreach",
                                                 "multi_tensor", "at::native", "fused_adam")),
)


def kernel_kinds(kernels: list[tuple[str, float]], steps: int) -> dict[str, float]:
    """GPU milliseconds per step by kind of kernel, biggest first, from (kernel name, self device time in us)."""
    totals: dict[str, float] = {}
    for name, us in kernels:
        if name.startswith("Optimizer."):  # a range around an optimizer's step, not a kernel
            continue
        low = name.lower()
        kind = next((k for k, subs in KINDS if any(sub in low for sub in subs)), "other")
        totals[kind] = totals.get(kind, 0.0) + us / 1000 / steps
    return {k: round(v, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def gpu_busy(events, steps: int) -> dict[str, float]:
    """The GPU's busy time (the union of its kernels', copies' and fills' intervals; the profiler's ranges left out)
    against the span from the first one's start to the last one's end, per step. The profiler slows the host, so
    the idle share here is an upper bound on the trainer's."""
    spans = sorted((e.start_ns(), e.end_ns()) for e in events)
    busy = 0
    start, end = spans[0]
    for s, e in spans[1:]:
        if s > end:
            busy, start = busy + end - start, s
        end = max(end, e)
    busy += end - start
    span = max(e for _, e in spans) - spans[0][0]
    return {"gpu_busy_ms_per_step": round(busy / 1e6 / steps, 3), "gpu_span_ms_per_step": round(span / 1e6 / steps, 3),
            "gpu_idle_share": round(1 - busy / span, 4)}


def short(name: str, width: int = 60) -> str:
    return name if len(name) <= width else name[: width - 3] + "..."


def gpu_gaps(events, steps: int, top: int = 15) -> dict:
    """Where the GPU waits: every gap between the end of the work so far and the next kernel's start, summed per
    step by the pair of kernels around it (the last to end before it, the next to start), the largest first; and
    the idle time by gap size. Under the profiler the host is slower, so these are upper bounds too."""
    spans = sorted((e.start_ns(), e.end_ns(), e.name()) for e in events)
    pairs: dict[tuple[str, str], list[float]] = {}
    sizes = {"<5 us": 0.0, "5-20 us": 0.0, "20-100 us": 0.0, ">=100 us": 0.0}
    end, last = spans[0][1], spans[0][2]
    for s, e, name in spans[1:]:
        if s > end:
            gap_us = (s - end) / 1e3
            entry = pairs.setdefault((short(last), short(name)), [0.0, 0])
            entry[0] += gap_us
            entry[1] += 1
            bucket = "<5 us" if gap_us < 5 else "5-20 us" if gap_us < 20 else "20-100 us" if gap_us < 100 else ">=100 us"
            sizes[bucket] += gap_us
        if e >= end:
            end, last = e, name
    rows = sorted(pairs.items(), key=lambda kv: -kv[1][0])[:top]
    return {"idle_ms_per_step_by_gap_size": {k: round(v / 1e3 / steps, 3) for k, v in sizes.items()},
            "largest_gaps": [{"after": a, "before": b, "ms_per_step": round(v[0] / 1e3 / steps, 3),
                              "gaps_per_step": round(v[1] / steps, 1)} for (a, b), v in rows]}


def build(args: argparse.Namespace, device: torch.device) -> tuple[Shape, list]:
    """The trainer's model, loss (``Shape.loss_fn``) and optimizers for ``args``' micro-batch at the record's track
    and settings, built by ``trainer.train.build_shape`` as a run builds them."""
    config = make_config("speedrun-4.5", overrides={
        "micro_batch_size": args.batch, "compile": True, "cudagraphs": args.cudagraphs, "dtype": "bf16",
        "working_copies": args.working_copies, "blocks_per_region": args.blocks_per_region, "fp8": args.fp8,
        "attention": args.attention})
    torch.manual_seed(0)
    val = np.zeros(config.track.val_tokens, dtype=np.uint16)  # the validation windows are not used here
    shape = build_shape(config, device, val, shape_key(config, device))
    if args.fp32_residual:
        shape.model.residual_dtype = None
    return shape, shape.optimizers(config.hp)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--no-working-copies", dest="working_copies", action="store_false")
    ap.add_argument("--fp32-residual", action="store_true",
                    help="the residual stream in fp32, as the trainer ran it before Dec 1, fourth session")
    ap.add_argument("--cudagraphs", action="store_true", help="replay the blocks as CUDA graphs, as the trainer does")
    ap.add_argument("--blocks-per-region", type=int, default=Runtime().blocks_per_region)
    ap.add_argument("--fp8", action="store_true", help="runtime.fp8: the matmuls in FP8")
    ap.add_argument("--attention", default=Runtime().attention, help="runtime.attention (sdpa or fa4)")
    return ap


def main() -> None:
    args = parser().parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda")
    with fa4.active() if args.attention == "fa4" else contextlib.nullcontext():  # as a run does (fa4_kernels)
        run(args, dev)


def run(args: argparse.Namespace, dev: torch.device) -> None:
    shape, opts = build(args, dev)
    x = torch.randint(0, shape.model.cfg.vocab_size, (args.batch, 2048), device=dev)

    phases = ("fwd_bwd", "clip", "muon", "adamw")

    def step(events=None):
        def mark(i):
            if events is not None:
                events[i].record()
        if args.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        mark(0)
        with shape.autocast:
            loss = shape.loss_fn(x)
        loss.backward()
        mark(1)
        scale = clip_coefficient(gradients(opts), 1.0)  # the trainer's clipping (make_train_step)
        mark(2)
        step_scaled(opts[0], scale)
        opts[0].zero_grad(set_to_none=True)
        mark(3)
        step_scaled(opts[1], scale)
        opts[1].zero_grad(set_to_none=True)
        mark(4)
        return loss

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    totals = dict.fromkeys(phases, 0.0)
    for _ in range(args.steps):
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(5)]
        step(ev)
        torch.cuda.synchronize()
        for i, name in enumerate(phases):
            totals[name] += ev[i].elapsed_time(ev[i + 1]) / args.steps
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    issued = time.perf_counter()
    for _ in range(args.steps):
        step()
    host_ms = (time.perf_counter() - issued) * 1000 / args.steps  # the host's time to issue a step, unsynced
    end.record()
    torch.cuda.synchronize()
    free_ms = start.elapsed_time(end) / args.steps
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    # by the kernels' own time: the top of this table is where the GPU's time goes, one line per kernel
    table_cuda = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=70, max_name_column_width=90)
    table_cpu = prof.key_averages().table(sort_by="cpu_time_total", row_limit=15)
    (args.out / f"kernels-b{args.batch}.txt").write_text(table_cuda + "\n\n" + table_cpu)
    from torch.autograd import DeviceType

    # kernels only (an operator's row repeats its kernels' time): what the GPU spends a step on, by kind
    kernels = [(e.key, e.self_device_time_total) for e in prof.key_averages() if e.device_type == DeviceType.CUDA]
    by_kind = kernel_kinds(kernels, steps=5)
    device_events = [e for e in prof.profiler.kineto_results.events()
                     if e.device_type() == DeviceType.CUDA and not e.is_user_annotation()]
    summary = {"batch": args.batch, "working_copies": args.working_copies, "phase_ms_synced": totals,
               "step_ms_unsynced": free_ms, "host_ms_per_step_unsynced": host_ms,
               "tokens_per_s_unsynced": args.batch * 2048 / free_ms * 1000,
               "gpu_ms_per_step_by_kind": by_kind, "gpu_ms_per_step": round(sum(by_kind.values()), 3),
               "cudagraphs": args.cudagraphs, **gpu_busy(device_events, steps=5),
               "gaps": gpu_gaps(device_events, steps=5)}
    (args.out / f"phases-b{args.batch}.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(table_cuda[:6000])


if __name__ == "__main__":
    main()
