"""One transformer block's forward + backward at the record's shape, in layout and kernel variants (issue 19).

Each variant is a block of the 151M model (d 512, 8 query / 4 KV heads of 64, SwiGLU 2048), compiled as the
trainer compiles its blocks (``torch.compile``, ``dynamic=False``) and run under bf16 autocast on fp32 weights.
All variants share one set of weights, so their outputs and gradients are compared with the current block's:

- ``now``: ``trainer.model.Block`` as it is;
- ``bthd``: QK-norm and RoPE applied in the projections' own [B, T, H, D] layout, the attention called on
  transposed views (no [B, H, T, D] copy of q and k; cuDNN takes the strides as they are);
- ``bthd_qkv``: ``bthd`` with q, k and v from one GEMM on the concatenated weight;
- ``bthd_qkv_gu``: ``bthd_qkv`` with gate and up from one GEMM too;
- ``flash`` / ``efficient`` / ``flex``: ``bthd`` with PyTorch's FlashAttention-2 or memory-efficient SDPA
  backend, or a compiled FlexAttention with a causal block mask, in place of cuDNN.

Time: CUDA events around ``--iters`` forward + backward passes after a warm-up, median of ``--repeats``;
per-kernel GPU time of a few passes from the profiler. Output: one JSON and a kernel table per variant.

    python bench/block_variants.py --out bench/results/block_variants/NAME
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import ModelConfig
from trainer.model import Block, apply_rope, rope_tables


def rope_bthd(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``apply_rope`` on [B, T, H, D]: the tables broadcast over heads."""
    return apply_rope(x, cos[:, None, :], sin[:, None, :])


class Variant(nn.Module):
    """A block whose weights are a ``Block``'s (shared, not copied), with the attention and MLP reorganised."""

    def __init__(self, block: Block, *, fuse_qkv: bool, fuse_gate_up: bool, attention: str) -> None:
        super().__init__()
        self.b = block
        self.fuse_qkv, self.fuse_gate_up, self.attention = fuse_qkv, fuse_gate_up, attention
        self.block_mask = None

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k, v as [B, H, T, D] views; returns [B, H, T, D] (any strides)."""
        if self.attention == "flex":
            from torch.nn.attention.flex_attention import flex_attention
            return flex_attention(q, k, v, block_mask=self.block_mask, enable_gqa=True)
        from torch.nn.attention import SDPBackend, sdpa_kernel
        backend = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                   "efficient": SDPBackend.EFFICIENT_ATTENTION}[self.attention]
        if self.attention == "cudnn":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        with sdpa_kernel(backend):
            if self.attention == "efficient" and q.shape[1] != k.shape[1]:  # no GQA there: repeated heads
                g = q.shape[1] // k.shape[1]
                k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=q.shape[1] != k.shape[1])

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, a, m = self.b, self.b.attn, self.b.mlp
        B, T, _ = x.shape
        h = b.attn_norm(x)
        if self.fuse_qkv:
            w = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
            q, k, v = F.linear(h, w).split([a.n_heads * a.head_dim, a.n_kv_heads * a.head_dim,
                                            a.n_kv_heads * a.head_dim], dim=-1)
        else:
            q, k, v = a.q_proj(h), a.k_proj(h), a.v_proj(h)
        q = rope_bthd(a.q_norm(q.view(B, T, a.n_heads, a.head_dim)), cos, sin)
        k = rope_bthd(a.k_norm(k.view(B, T, a.n_kv_heads, a.head_dim)), cos, sin)
        v = v.view(B, T, a.n_kv_heads, a.head_dim)
        y = self.attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + a.o_proj(y.transpose(1, 2).reshape(B, T, -1))
        h = b.mlp_norm(x)
        if self.fuse_gate_up:
            g, u = F.linear(h, torch.cat([m.gate_proj.weight, m.up_proj.weight])).chunk(2, dim=-1)
        else:
            g, u = m.gate_proj(h), m.up_proj(h)
        return x + m.down_proj(F.silu(g) * u)


def time_passes(fn, x, grad, iters: int, repeats: int) -> list[float]:
    """Milliseconds per forward + backward, one figure per repeat."""
    out = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn(x).backward(grad)
        end.record()
        torch.cuda.synchronize()
        out.append(start.elapsed_time(end) / iters)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--batch", type=int, nargs="+", default=[4])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--variants", nargs="+",
                    default=["now", "bthd", "bthd_qkv", "bthd_qkv_gu", "flash", "efficient", "flex"])
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda")
    cfg = ModelConfig()
    T = 2048
    torch.manual_seed(0)
    block = Block(cfg).to(dev)
    for mod in block.modules():
        if isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, std=0.02)
    cos, sin = rope_tables(T, cfg.head_dim, cfg.rope_base, dev)
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "seq_len": T, "rows": []}
    for batch in args.batch:
        x0 = torch.randn(batch, T, cfg.d_model, device=dev)
        grad = torch.randn_like(x0)
        ref = None
        for name in args.variants:
            if name == "now":
                mod = block
            else:
                fq = name.startswith("bthd_qkv")
                mod = Variant(block, fuse_qkv=fq, fuse_gate_up=name == "bthd_qkv_gu",
                              attention=name if name in ("flash", "efficient", "flex") else "cudnn")
                if name == "flex":
                    from torch.nn.attention.flex_attention import create_block_mask
                    mod.block_mask = create_block_mask(lambda b, h, q, kv: q >= kv, None, None, T, T, device=dev)
            compiled = torch.compile(mod, dynamic=False)

            def fn(x, compiled=compiled):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    return compiled(x, cos, sin)

            row = {"variant": name, "batch": batch}
            try:
                t0 = time.perf_counter()
                x = x0.clone().requires_grad_(True)
                block.zero_grad(set_to_none=True)
                y = fn(x)
                y.backward(grad)
                torch.cuda.synchronize()
                row["first_call_s"] = time.perf_counter() - t0
                grads = [p.grad.clone() for p in block.parameters()] + [x.grad.clone()]
                if ref is None:
                    ref = (y.detach().clone(), grads)
                row["max_abs_out_diff"] = (y.detach() - ref[0]).abs().max().item()
                row["max_rel_grad_diff"] = max(((g - r).norm() / r.norm()).item() for g, r in zip(grads, ref[1]))
                xs = x0.clone().requires_grad_(True)
                for _ in range(5):
                    fn(xs).backward(grad)
                ms = time_passes(fn, xs, grad, args.iters, args.repeats)
                row["ms_per_pass"] = statistics.median(ms)
                row["ms_all"] = ms
                row["step_ms_32_blocks"] = 32 * row["ms_per_pass"]
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                    for _ in range(5):
                        fn(xs).backward(grad)
                    torch.cuda.synchronize()
                table = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=40, max_name_column_width=100)
                (args.out / f"kernels-{name}-b{batch}.txt").write_text(table)
            except Exception as exc:  # a backend that cannot run this shape is a result, not a crash
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
            torch._dynamo.reset()
    (args.out / "block_variants.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
