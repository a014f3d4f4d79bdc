"""QK-norm + RoPE of one layer, forward + backward, in several formulations of the same maths (issue 19).

The trainer's q/k path until Nov 30, seventh session (``now`` here: projections' outputs -> RMSNorm per head ->
RoPE on adjacent pairs -> [B, H, T, D] for the attention) ran at ~0.75 TB/s in the b4 and b32 kernel tables, a
third of the H200's bandwidth; ``swap_bthd`` is the trainer's path since (``trainer.model.rotate_pairs``). Each variant here takes the q and k projections' bf16 outputs ([B, T, 512] and [B, T, 256])
and returns q and k as the attention reads them; all are compiled (``dynamic=False``) under bf16 autocast. Per
variant: GPU time of forward + backward summed over the profiler's kernels (no launch gaps), and the largest
difference from ``now`` in outputs and input gradients. ``triton-rRwW`` is ``trainer.kernels.qk_norm_rope`` (one
Triton kernel each way) with R rows a program and W warps (``--triton-configs``; the trainer's since the eighth
session). The ``b8``/``b32`` rows of call 3 (nov30h) were a version whose backward looped over 8 or 32 row blocks
a program (not kept).

    python bench/rope_variants.py --out DIR --batch 4 32 [--variants now swap_bthd] [--triton-configs 16x2 32x4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from trainer import kernels
from trainer.model import apply_rope, pair_tables, rope_tables, rotate_pairs

H, KV, D, T = 8, 4, 64, 2048


def now(q, k, wq, wk, cos, sin, c2, s2):
    B = q.shape[0]
    q = q.view(B, T, H, D).transpose(1, 2)
    k = k.view(B, T, KV, D).transpose(1, 2)
    q = apply_rope(F.rms_norm(q, (D,), wq, 1e-5), cos, sin)
    k = apply_rope(F.rms_norm(k, (D,), wk, 1e-5), cos, sin)
    return q, k


def bthd(q, k, wq, wk, cos, sin, c2, s2):
    B = q.shape[0]
    q = apply_rope(F.rms_norm(q.view(B, T, H, D), (D,), wq, 1e-5), cos[:, None], sin[:, None])
    k = apply_rope(F.rms_norm(k.view(B, T, KV, D), (D,), wk, 1e-5), cos[:, None], sin[:, None])
    return q.transpose(1, 2), k.transpose(1, 2)


def swap(q, k, wq, wk, cos, sin, c2, s2):
    B = q.shape[0]
    q = q.view(B, T, H, D).transpose(1, 2)
    k = k.view(B, T, KV, D).transpose(1, 2)
    return rotate_pairs(F.rms_norm(q, (D,), wq, 1e-5), c2, s2), rotate_pairs(F.rms_norm(k, (D,), wk, 1e-5), c2, s2)


def swap_bthd(q, k, wq, wk, cos, sin, c2, s2):
    B = q.shape[0]
    q = rotate_pairs(F.rms_norm(q.view(B, T, H, D), (D,), wq, 1e-5), c2[:, None], s2[:, None])
    k = rotate_pairs(F.rms_norm(k.view(B, T, KV, D), (D,), wk, 1e-5), c2[:, None], s2[:, None])
    return q.transpose(1, 2), k.transpose(1, 2)


def fused(q, k, wq, wk, cos, sin, c2, s2):
    """``trainer.kernels.qk_norm_rope``. Since Dec 1 (third session) it takes the fused q/k projection's output, so
    here q and k are first joined (a copy the trainer does not make: its projection writes them joined); the
    saved tables before that date timed the kernel on q and k separately, without that copy."""
    B = q.shape[0]
    joined = torch.cat([q.view(B, T, H, D), k.view(B, T, KV, D)], dim=2)
    q, k = kernels.qk_norm_rope(joined, wq, wk, c2, s2, 1e-5, H)
    return q.transpose(1, 2), k.transpose(1, 2)


def bf16_out(q, k, wq, wk, cos, sin, c2, s2):
    """``now`` with its outputs cast to bf16 inside the graph (what the attention's autocast does anyway)."""
    q, k = now(q, k, wq, wk, cos, sin, c2, s2)
    return q.to(torch.bfloat16), k.to(torch.bfloat16)


def run(compiled, data):
    """One forward + backward from fresh leaves; returns the outputs and the input gradients."""
    q0, k0, wq, wk, gq, gk, cos, sin, c2, s2 = data
    q, k = q0.clone().requires_grad_(True), k0.clone().requires_grad_(True)
    wq.grad = wk.grad = None
    with torch.autocast(q.device.type, dtype=torch.bfloat16):
        oq, ok = compiled(q, k, wq, wk, cos, sin, c2, s2)
    torch.autograd.backward([oq, ok], [gq, gk])
    return oq, ok, q.grad, k.grad, wq.grad, wk.grad


VARIANTS = {"now": now, "bthd": bthd, "swap": swap, "swap_bthd": swap_bthd, "bf16_out": bf16_out}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--batch", type=int, nargs="+", default=[4, 32])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--triton-configs", nargs="*", default=[], metavar="ROWSxWARPS")
    args = ap.parse_args()
    variants = {name: (VARIANTS[name], None) for name in args.variants}
    for conf in args.triton_configs:
        rows, warps = (int(v) for v in conf.split("x"))
        variants[f"triton-r{rows}w{warps}"] = (fused, (rows, warps))
    args.out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(args.device)
    cos, sin = rope_tables(T, D, 10000.0, dev)
    c2, s2 = pair_tables(cos, sin)
    rows = []
    for batch in args.batch:
        g = torch.Generator(device=dev).manual_seed(0)
        q0 = torch.randn(batch, T, H * D, device=dev, generator=g).bfloat16()
        k0 = torch.randn(batch, T, KV * D, device=dev, generator=g).bfloat16()
        wq = (1 + 0.1 * torch.randn(D, device=dev, generator=g)).requires_grad_(True)
        wk = (1 + 0.1 * torch.randn(D, device=dev, generator=g)).requires_grad_(True)
        gq = torch.randn(batch, H, T, D, device=dev, generator=g).bfloat16()
        gk = torch.randn(batch, KV, T, D, device=dev, generator=g).bfloat16()
        ref = None
        for name, (fn, conf) in variants.items():
            if conf is not None:
                kernels.ROWS, kernels.WARPS = conf
            compiled = torch.compile(fn, dynamic=False) if dev.type == "cuda" else fn

            data = (q0, k0, wq, wk, gq, gk, cos, sin, c2, s2)
            outs = run(compiled, data)
            for _ in range(3):
                run(compiled, data)
            row = {"variant": name, "batch": batch, "out_dtype": str(outs[0].dtype)}
            if ref is None:
                ref = [o.detach().float() for o in outs]
            row["max_abs_diff"] = max((o.detach().float() - r).abs().max().item() for o, r in zip(outs, ref))
            if dev.type == "cuda":
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                    for _ in range(10):
                        run(compiled, data)
                    torch.cuda.synchronize()
                events = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
                times = {e.key: e.self_device_time_total / 10 for e in events}
                row["gpu_us_per_pass"] = sum(times.values())
                row["kernels_us"] = dict(sorted(times.items(), key=lambda kv: -kv[1])[:12])
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "kernels_us"}), flush=True)
            torch._dynamo.reset()
    (args.out / "rope_variants.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
