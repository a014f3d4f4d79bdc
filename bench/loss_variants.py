"""The output head's cross-entropy, forward + backward: inductor's compiled formula against the Triton kernels.

At the record settings (b4: 4 x 2047 = 8,188 positions x 49,152, bf16 logits of 805 MB) on an H200 inductor's
log_softmax forward kernel took 526 us (~1.5 TB/s) and its backward 561 us
(``bench/results/nov30h/call4-final/profile/kernels-b4.txt``). ``trainer.kernels.cross_entropy`` replaces them.

Per micro-batch (``--batch``, positions = batch x 2047; d_model 512, h and the head weight fp32 leaves requiring
grad, bf16 autocast as in the trainer), forward + backward of the loss head, matmuls included, in the variants:

- ``formula``: ``trainer.model.lm_loss`` with ``reference=True`` (the formula the trainer compiled until now:
  ``(h @ w.t()).float()`` then ``F.cross_entropy``), compiled as ``compile_regions`` compiles the loss
  (``dynamic=False``, ``trainer.loss.LOSS_COMPILE_OPTIONS``);
- ``kernels``: ``lm_loss`` as the trainer compiles it now (bf16 logits into ``kernels.cross_entropy``);
- above ``trainer.loss.AUTO_CHUNK_ABOVE`` positions (b32; ``--chunk-above``) also ``chunked-formula`` and
  ``chunked-kernels``: ``ChunkedLMLoss(16384, compile=True)`` (``--chunk``) without and with the kernels.

Each: median of ``--reps`` CUDA-event times (after ``--warmup`` passes; the reps queued behind a
``torch.cuda._sleep`` so the events time the GPU, not the launches), peak memory above what was held before the
reps (the inputs and one pass's loss and gradients), the largest relative difference of the loss and of each
gradient from ``formula`` (max |a - b| / max |b|), and a profiler table of the GPU kernels of one pass. Then the kernels alone on random bf16 logits [N, 49,152] for each
``BLOCKxWARPS`` configuration in ``--fwd-configs`` / ``--grad-configs`` / ``--fused-configs`` (the forward, the
gradient and the chunked loss's forward-with-gradient): median time and GB/s over the bytes each must move (the
forward reads the logits once; the gradient reads them and writes as much; the fused kernel reads them twice,
the second time partly from L2, and writes once).

    python bench/loss_variants.py --out DIR [--batch 4 32] [--fwd-configs 8192x8 4096x4] [--grad-configs 4096x8]

Runs on the CPU for a smoke test (Triton's interpreter; no timings worth reading):
    TRITON_INTERPRET=1 python bench/loss_variants.py --device cpu --batch 1 --seq 9 --vocab 1000 --d-model 16 \\
        --reps 2 --warmup 1 --chunk 10 --chunk-above 8 --fwd-configs 256x4 --grad-configs 128x4 --fused-configs 256x4
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from trainer import kernels
from trainer.loss import AUTO_CHUNK, AUTO_CHUNK_ABOVE, LOSS_COMPILE_OPTIONS, ChunkedLMLoss
from trainer.model import lm_loss

DEFAULT_FWD = ["4096x4", "4096x8", "8192x8", "8192x16", "16384x16"]
DEFAULT_GRAD = ["2048x4", "4096x4", "4096x8", "8192x8", "8192x16"]
DEFAULT_FUSED = ["4096x8", "8192x8", "8192x16"]


def _config(text: str) -> tuple[int, int]:
    block, warps = (int(v) for v in text.lower().split("x"))
    if block < 1 or block & (block - 1) or warps < 1:
        raise argparse.ArgumentTypeError(f"want BLOCKxWARPS with a power-of-two BLOCK, got {text!r}")
    return block, warps


def gpu_times(fn, reps: int, warmup: int, device: torch.device) -> list[float]:
    """Milliseconds of each of ``reps`` calls of ``fn`` (CUDA events, the calls queued behind a sleep so the
    host is ahead of the GPU); on the CPU wall time, each call synchronous."""
    for _ in range(warmup):
        fn()
    if device.type != "cuda":
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return times
    torch.cuda.synchronize(device)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    torch.cuda._sleep(200_000_000)  # ~0.1 s: time to queue the reps before the GPU reaches them
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) for start, end in events]


def kernel_table(fn, device: torch.device, top: int = 12) -> dict[str, float]:
    """GPU time (us) of each kernel of one call of ``fn``, largest first."""
    if device.type != "cuda":
        return {}
    torch.cuda.synchronize(device)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize(device)
    events = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    times = {e.key: e.self_device_time_total for e in events}
    return dict(sorted(times.items(), key=lambda kv: -kv[1])[:top])


def rel_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    want = want.detach().float()
    return ((got.detach().float() - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


class formula_only:
    """Inside: ``kernels.ce_usable`` says no, so the loss functions take their PyTorch formulas."""

    def __enter__(self):
        self.saved = kernels.ce_usable
        kernels.ce_usable = lambda logits: False

    def __exit__(self, *exc):
        kernels.ce_usable = self.saved


def step_variants(chunk: int, chunked_above: int) -> dict:
    """name: (make the loss function, without the kernels?, run only above this many positions)."""
    def compiled(fn):
        return torch.compile(fn, dynamic=False, options=LOSS_COMPILE_OPTIONS)

    return {
        "formula": (lambda: compiled(functools.partial(lm_loss, reference=True)), True, 0),
        "kernels": (lambda: compiled(lm_loss), False, 0),
        "chunked-formula": (lambda: ChunkedLMLoss(chunk, compile=True), True, chunked_above),
        "chunked-kernels": (lambda: ChunkedLMLoss(chunk, compile=True), False, chunked_above),
    }


def bench_steps(args, device: torch.device, batch: int) -> list[dict]:
    rows = []
    n = batch * (args.seq - 1)
    g = torch.Generator(device=device).manual_seed(0)
    h = torch.randn(batch, args.seq - 1, args.d_model, device=device, generator=g).requires_grad_(True)
    w = (0.02 * torch.randn(args.vocab, args.d_model, device=device, generator=g)).requires_grad_(True)
    targets = torch.randint(0, args.vocab, (batch, args.seq - 1), device=device, generator=g)
    ref = None
    for name, (make, no_kernels, above) in step_variants(args.chunk, args.chunk_above).items():
        if name not in args.variants or n <= above:
            continue
        torch._dynamo.reset()
        with formula_only() if no_kernels else contextlib.nullcontext():
            loss_fn = make()

            def step(loss_fn=loss_fn):
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    loss = loss_fn(h, w, targets)
                return loss, torch.autograd.grad(loss, (h, w))

            loss, grads = step()  # compiles
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            times = gpu_times(step, args.reps, args.warmup, device)
            row = {"section": "step", "variant": name, "batch": batch, "positions": n,
                   "ms_median": statistics.median(times), "ms_min": min(times)}
            if device.type == "cuda":
                row["peak_gb_above_base"] = (torch.cuda.max_memory_allocated(device) - base) / 1e9
            row["kernels_us"] = kernel_table(step, device) if not args.no_profile else {}
        outs = (loss, *grads)
        if ref is None and name == "formula":
            ref = [o.detach().float() for o in outs]
        if ref is not None:
            row["max_rel_diff_vs_formula"] = {k: rel_diff(o, r) for k, o, r in zip(("loss", "grad_h", "grad_w"),
                                                                                    outs, ref)}
        row["loss"] = loss.item()
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "kernels_us"}), flush=True)
        for kname, us in row["kernels_us"].items():
            print(f"    {us:10.1f} us  {kname[:110]}", flush=True)
    torch._dynamo.reset()
    return rows


def bench_kernels(args, device: torch.device, batch: int) -> list[dict]:
    rows = []
    n, v = batch * (args.seq - 1), args.vocab
    g = torch.Generator(device=device).manual_seed(1)
    logits = (2 * torch.randn(n, v, device=device, generator=g)).to(torch.bfloat16)
    targets = torch.randint(0, v, (n,), device=device, generator=g)
    size = logits.numel() * logits.element_size()
    _, lse, _ = kernels._ce_forward(logits, targets, None)
    scale = torch.full((), 1.0 / n, device=device)
    want_lse = torch.logsumexp(logits.float(), -1) if n * v <= 2**31 else None
    calls = {
        "forward": (args.fwd_configs, 1, lambda: kernels._ce_forward(logits, targets, None)),
        "grad": (args.grad_configs, 2, lambda: kernels.cross_entropy_grad(logits, targets, lse, scale)),
        "fused_sum_and_grad": (args.fused_configs, 3,
                               lambda: kernels.cross_entropy_sum_and_grad(logits, targets, scale)),
    }
    names = {"forward": ("CE_BLOCK", "CE_WARPS"), "grad": ("CE_GRAD_BLOCK", "CE_GRAD_WARPS"),
             "fused_sum_and_grad": ("CE_FUSED_BLOCK", "CE_FUSED_WARPS")}
    saved = {name: getattr(kernels, name) for pair in names.values() for name in pair}
    try:
        for kind, (configs, passes, fn) in calls.items():
            for block, warps in configs:
                for name, value in zip(names[kind], (block, warps)):
                    setattr(kernels, name, value)
                times = gpu_times(fn, args.reps, args.warmup, device)
                med = statistics.median(times)
                row = {"section": "kernel", "kernel": kind, "config": f"{block}x{warps}", "positions": n,
                       "vocab": v, "logits_gb": size / 1e9, "us_median": med * 1e3, "us_min": min(times) * 1e3,
                       "gb_per_s": passes * size / (med * 1e-3) / 1e9, "bytes_counted": passes * size}
                if kind == "forward" and want_lse is not None:
                    row["lse_max_abs_diff"] = (fn()[1] - want_lse).abs().max().item()
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        for name, value in saved.items():
            setattr(kernels, name, value)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--out", type=Path, help="writes DIR/loss_variants.json")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, nargs="+", default=[4, 32], help="micro-batches (x 2047 positions)")
    ap.add_argument("--seq", type=int, default=2048, help="window length; seq - 1 positions a row")
    ap.add_argument("--vocab", type=int, default=49_152)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    names = list(step_variants(0, 0))
    ap.add_argument("--variants", nargs="+", default=names, choices=names)
    ap.add_argument("--chunk", type=int, default=AUTO_CHUNK, help="the chunked variants' chunk")
    ap.add_argument("--chunk-above", type=int, default=AUTO_CHUNK_ABOVE,
                    help="the chunked variants run above this many positions (the trainer's rule)")
    ap.add_argument("--fwd-configs", nargs="*", type=_config, default=[_config(c) for c in DEFAULT_FWD],
                    metavar="BLOCKxWARPS")
    ap.add_argument("--grad-configs", nargs="*", type=_config, default=[_config(c) for c in DEFAULT_GRAD],
                    metavar="BLOCKxWARPS")
    ap.add_argument("--fused-configs", nargs="*", type=_config, default=[_config(c) for c in DEFAULT_FUSED],
                    metavar="BLOCKxWARPS")
    ap.add_argument("--no-profile", action="store_true", help="leave out the per-kernel tables")
    args = ap.parse_args()
    device = torch.device(args.device)
    if "formula" not in args.variants:
        args.variants.insert(0, "formula")  # the reference of the differences
    probe = torch.empty(1, device=device)
    if not kernels.ce_usable(probe):
        raise SystemExit(f"the cross-entropy kernels cannot run on {device} here (Triton, or TRITON_INTERPRET=1 "
                         "on the CPU)")
    meta = {"section": "meta", "torch": torch.__version__, "python": platform.python_version(),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "defaults": {name: getattr(kernels, name) for name in ("CE_BLOCK", "CE_WARPS", "CE_FUSED_BLOCK",
                                                                   "CE_FUSED_WARPS", "CE_GRAD_BLOCK", "CE_GRAD_WARPS")},
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    try:
        import triton

        meta["triton"] = triton.__version__
    except ImportError:
        pass
    print(json.dumps(meta), flush=True)
    rows = [meta]
    for batch in args.batch:
        rows += bench_steps(args, device, batch)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    for batch in args.batch:
        rows += bench_kernels(args, device, batch)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "loss_variants.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
