"""The model's attention alone, forward and backward, on each backend one H200 offers (issue 19): PyTorch's cuDNN
(the trainer's default), FlashAttention-2 (PyTorch's flash backend) and FlashAttention-4 (``flash_attn.cute``, the
``flash-attn-4`` package: CuTe-DSL kernels compiled at first use, with Hopper forward and backward kernels), which
PyTorch's registry puts behind the same flash backend (``trainer/fa4.py``, as ``runtime.attention = "fa4"`` does).

    python bench/fa4_attention.py --out DIR [--batches 4 32 64]     # DIR/attention.json and attention.txt

Each arm calls ``F.scaled_dot_product_attention`` exactly as ``trainer.model.Attention`` does: q, k and v are
[B, H, T, D] views of [B, T, H, D] tensors, 8 query heads and 4 key/value heads of 64, 2,048 positions, causal,
``enable_gqa``, bf16. Times are GPU times of CUDA-graph replays (``fp8_gemm.gpu_ms``), as the trainer replays its
steps; that FA4 can be captured at all is part of what this checks. TFLOP/s counts causal FLOPs (half of the
T x T square): the forward 2 matmuls, the backward 5.

Each arm's output and gradients are compared with cuDNN's on the same inputs (largest difference over the largest
magnitude), and at B = 1 every arm with a float32 reference; bf16 attention differs from it by ~1e-2 of the
largest value. FA4 is activated after the other arms have run, and only for its own. Without the package, or on a
GPU that is not Hopper or Blackwell, the FA4 arm records why it did not run and the others still do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from fp8_gemm import gpu_ms
from torch.nn.attention import SDPBackend, sdpa_kernel

from trainer import fa4
from trainer.config import ConfigError, make_config
from trainer.data import cache_root

ARMS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash2": SDPBackend.FLASH_ATTENTION, "fa4": SDPBackend.FLASH_ATTENTION}


def shapes() -> tuple[int, int, int, int]:
    """(query heads, key/value heads, head dim, positions) of the record track's model."""
    cfg = make_config("speedrun-4.5")
    return cfg.model.n_heads, cfg.model.n_kv_heads, cfg.model.head_dim, cfg.hp.seq_len


def causal_flops(batch: int, heads: int, dim: int, seq: int) -> tuple[float, float]:
    """(forward, backward) FLOPs of causal attention: QK^T and PV forward, five matmuls backward, each over half
    of the T x T square."""
    one = 2.0 * batch * heads * seq * seq * dim / 2
    return 2 * one, 5 * one


def inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """q, k, v as the model hands them to SDPA (views of [B, T, H, D]), leaves that want gradients, and dy."""
    hq, hk, d, t = shapes()
    g = torch.Generator(device="cuda").manual_seed(seed)

    def make(heads: int) -> torch.Tensor:
        return torch.randn(batch, t, heads, d, device="cuda", generator=g, dtype=torch.bfloat16).requires_grad_()

    q, k, v = make(hq), make(hk), make(hk)
    dy = torch.randn(batch, t, hq, d, device="cuda", generator=g, dtype=torch.bfloat16)
    return q, k, v, dy


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The trainer's call: [B, H, T, D] views in, the output back as [B, T, H, D]."""
    y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True,
                                       enable_gqa=True)
    return y.transpose(1, 2)


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Float32 causal attention with the key/value heads repeated, [B, T, H, D] in and out."""
    rep = q.shape[2] // k.shape[2]
    q, k, v = (x.float().transpose(1, 2) for x in (q, k, v))
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    t = q.shape[2]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2)


def run_all(q, k, v, dy) -> list[torch.Tensor]:
    """Output and the three gradients, fresh."""
    for x in (q, k, v):
        x.grad = None
    y = attend(q, k, v)
    y.backward(dy)
    return [y.detach(), q.grad.clone(), k.grad.clone(), v.grad.clone()]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b| over the largest |b|."""
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / b.abs().max())


def eager_ms(fn, reps: int = 20) -> float:
    """GPU time of one ``fn()`` by CUDA events around ``reps`` eager calls (after three warm-up calls): for an arm
    whose kernels cannot be captured in a CUDA graph."""
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def timed(fn) -> tuple[float, str]:
    """(ms, how): from CUDA-graph replays, or from eager calls with why the graph failed."""
    try:
        return gpu_ms(fn), "graph"
    except Exception as e:  # noqa: BLE001 - a kernel that cannot be captured is a finding, timed eagerly
        torch.cuda.synchronize()
        return eager_ms(fn), f"eager ({type(e).__name__}: {str(e)[:200]})"


def kernel_names(q, k, v, dy) -> list[str]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        attend(q, k, v).backward(dy)
        torch.cuda.synchronize()
    return sorted({e.key[:100] for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA})


def activate_fa4(stack: contextlib.ExitStack) -> str:
    """Routes the flash backend to FlashAttention-4 until ``stack`` closes (``trainer.fa4``, as the trainer's
    ``runtime.attention = "fa4"`` does); "" when it did, else why not."""
    try:
        fa4.check(torch.device("cuda"), cache_root(make_config("speedrun-4.5").data) / "fa4")
    except ConfigError as e:
        return str(e)
    stack.enter_context(fa4.active())
    return ""


def measure(arm: str, batches: list[int], expected: dict[int, list[torch.Tensor]]) -> dict:
    hq, hk, d, t = shapes()
    row: dict = {"arm": arm, "batches": {}}
    with sdpa_kernel(ARMS[arm]):
        q1, k1, v1, dy1 = inputs(1, seed=1)
        start = time.perf_counter()
        got = run_all(q1, k1, v1, dy1)
        torch.cuda.synchronize()
        row["first_call_s"] = round(time.perf_counter() - start, 2)  # FA4 compiles its kernels here
        y32 = reference(q1, k1, v1)
        grads32 = torch.autograd.grad(y32, (q1, k1, v1), dy1.float())
        row["vs_float32_at_b1"] = {n: round(rel(a, b), 5) for n, a, b in
                                   zip(("out", "dq", "dk", "dv"), got, [y32, *grads32], strict=True)}
        row["kernels"] = kernel_names(q1, k1, v1, dy1)
        for b in batches:
            q, k, v, dy = inputs(b)
            res = run_all(q, k, v, dy)
            if arm == "cudnn":
                expected[b] = res
            fwd_flops, bwd_flops = causal_flops(b, hq, d, t)

            def forward(q=q, k=k, v=v):
                with torch.no_grad():
                    attend(q, k, v)

            def both(q=q, k=k, v=v, dy=dy):
                attend(q, k, v).backward(dy)

            (fwd_ms, how_f), (both_ms, how_b) = timed(forward), timed(both)
            bwd_ms = both_ms - fwd_ms
            row["batches"][b] = {
                "timed": how_f if how_f == how_b else f"forward {how_f}, forward+backward {how_b}",
                "forward_ms": round(fwd_ms, 3), "forward_backward_ms": round(both_ms, 3),
                "forward_tflops": round(fwd_flops / fwd_ms / 1e9, 1),
                "backward_tflops": round(bwd_flops / bwd_ms / 1e9, 1),
                "forward_backward_tflops": round((fwd_flops + bwd_flops) / both_ms / 1e9, 1),
                "vs_cudnn": {n: round(rel(a, e), 5) for n, a, e in
                             zip(("out", "dq", "dk", "dv"), res, expected[b], strict=True)}}
            del q, k, v, dy, res
            torch.cuda.empty_cache()
    return row


def text(report: dict) -> str:
    lines = [f"attention alone, {report['shape']}; GPU times of CUDA-graph replays, causal FLOPs; {report['gpu']}, "
             f"torch {report['torch']}"]
    for row in report["arms"]:
        if "skipped" in row:
            lines.append(f"{row['arm']}: not run: {row['skipped']}")
            continue
        lines.append(f"{row['arm']}: first call {row['first_call_s']} s; vs float32 at B=1 {row['vs_float32_at_b1']}")
        for b, r in row["batches"].items():
            lines.append(f"  b{b} ({r['timed']}): forward {r['forward_ms']} ms ({r['forward_tflops']} TFLOP/s), forward+backward "
                         f"{r['forward_backward_ms']} ms ({r['forward_backward_tflops']} TFLOP/s; backward "
                         f"{r['backward_tflops']}); vs cuDNN {r['vs_cudnn']}")
        lines.append(f"  kernels: {', '.join(row['kernels'])}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--batches", type=int, nargs="+", default=[4, 32, 64])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("error: bench/fa4_attention.py needs a CUDA GPU")
    if "cudnn" not in args.arms:
        sys.exit("error: --arms must include cudnn: the other arms are compared with it")
    hq, hk, d, t = shapes()
    report = {"shape": f"{hq} query heads, {hk} key/value heads of {d}, {t} positions, bf16",
              "gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "arms": []}
    expected: dict[int, list[torch.Tensor]] = {}
    stack = contextlib.ExitStack()
    for arm in sorted(args.arms, key=list(ARMS).index):
        why = activate_fa4(stack) if arm == "fa4" else ""
        if why:
            report["arms"].append({"arm": arm, "skipped": why})
        else:
            try:
                report["arms"].append(measure(arm, args.batches, expected))
            except Exception as e:  # noqa: BLE001 - one arm's failure is a result; the others still run
                report["arms"].append({"arm": arm, "skipped": f"{type(e).__name__}: {str(e)[:400]}"})
        print(text(report).splitlines()[-1], flush=True)
    stack.close()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "attention.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "attention.txt").write_text(text(report))
    print(text(report), end="")


if __name__ == "__main__":
    main()
