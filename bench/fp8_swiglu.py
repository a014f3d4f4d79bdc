"""An experiment for ``runtime.fp8`` (issue 19), not yet measured on a GPU: the SwiGLU MLP as one autograd function
whose backward writes the SiLU product's gradients in e5m2, in both layouts, from one Triton kernel.

``bench/fp8_run.py swiglu --set fp8=true ...`` runs the trainer with it. With ``runtime.fp8`` alone, each of the
MLP's three linears is ``trainer.fp8``'s FP8 linear and inductor compiles the SiLU product's backward together with
the casts of the gate's and up projection's output gradients, row-major for their input gradients and transposed for
their weight gradients. In the b64 kernel table with FA4 (``bench/results/dec01i/call7-final2``) that one kernel took
968 us a layer, 31 ms of a 332 ms step: it reads g, u and dh (bf16, [M, 2048] each) and writes four e5m2 tensors of
[M, 2048], 2.7 GB at b64, which at 4 TB/s would take 0.67 ms. The kernel here takes a tile of BM tokens x BH
features, computes both gradients in fp32 and stores each tile twice: as it is, and transposed (BM contiguous bytes
per row of the transposed tensors).

The scales are ``trainer.fp8``'s: the output gradients times N x ``GRAD_BIAS`` for N rows, clamped to e5m2's range.
Everything else is ``trainer.fp8``'s recipe. Without Triton on the tensors' device the same op runs its PyTorch
formula (the tests check the kernel against it under Triton's interpreter).
"""

from __future__ import annotations

import importlib.util
import json
import os

import torch
import torch.nn.functional as F

from trainer import fp8

AVAILABLE = importlib.util.find_spec("triton") is not None
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# tokens and features per program, warps per program, and whether tiles are transposed in fp32 (TILE.trans32);
# bench/fp8_swiglu_tune.py times the choices on a GPU
TILE = {"bm": 128, "bh": 64, "warps": 4, "trans32": False}
TILE.update(json.loads(os.environ.get("BLUEBERRY_SWIGLU_TILE", "{}")))  # a choice of the tune, for a run

if AVAILABLE:
    import triton
    import triton.language as tl

    @triton.jit
    def _swiglu_grads(g_ptr, u_ptr, dh_ptr, times_ptr, dg_ptr, du_ptr, dgt_ptr, dut_ptr, M, H,
                      BM: tl.constexpr, BH: tl.constexpr, TOP: tl.constexpr, TRANS32: tl.constexpr):
        """dg = dh * u * silu'(g) and du = dh * silu(g), times ``times``, clamped to +-TOP, stored in the outputs'
        dtype row-major ([M, H]) and transposed ([H, M]); with TRANS32 the tiles are transposed in fp32 and
        converted again, else transposed in the outputs' dtype."""
        rows = tl.program_id(0) * BM + tl.arange(0, BM)
        cols = tl.program_id(1) * BH + tl.arange(0, BH)
        mask = (rows[:, None] < M) & (cols[None, :] < H)
        at = rows[:, None].to(tl.int64) * H + cols[None, :]
        g = tl.load(g_ptr + at, mask=mask, other=0.0).to(tl.float32)
        u = tl.load(u_ptr + at, mask=mask, other=0.0).to(tl.float32)
        dh = tl.load(dh_ptr + at, mask=mask, other=0.0).to(tl.float32)
        times = tl.load(times_ptr).to(tl.float32)
        sig = tl.sigmoid(g)
        dg = tl.minimum(tl.maximum(dh * u * sig * (1.0 + g * (1.0 - sig)) * times, -TOP), TOP)
        du = tl.minimum(tl.maximum(dh * g * sig * times, -TOP), TOP)
        qdg = dg.to(dg_ptr.dtype.element_ty)
        qdu = du.to(du_ptr.dtype.element_ty)
        tl.store(dg_ptr + at, qdg, mask=mask)
        tl.store(du_ptr + at, qdu, mask=mask)
        at_t = cols[:, None].to(tl.int64) * M + rows[None, :]
        mask_t = (cols[:, None] < H) & (rows[None, :] < M)
        if TRANS32:
            tl.store(dgt_ptr + at_t, tl.trans(dg).to(dgt_ptr.dtype.element_ty), mask=mask_t)
            tl.store(dut_ptr + at_t, tl.trans(du).to(dut_ptr.dtype.element_ty), mask=mask_t)
        else:
            tl.store(dgt_ptr + at_t, tl.trans(qdg), mask=mask_t)
            tl.store(dut_ptr + at_t, tl.trans(qdu), mask=mask_t)


def swiglu_grads_formula(g: torch.Tensor, u: torch.Tensor, dh: torch.Tensor, times: torch.Tensor,
                         out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the kernel computes, in PyTorch: (dg, du, dg transposed, du transposed) in ``out_dtype``."""
    g, u, dh = g.float(), u.float(), dh.float()
    sig = torch.sigmoid(g)
    top = torch.finfo(out_dtype).max
    dg = (dh * u * sig * (1 + g * (1 - sig)) * times).clamp(-top, top).to(out_dtype)
    du = (dh * g * sig * times).clamp(-top, top).to(out_dtype)
    return dg, du, dg.t().contiguous(), du.t().contiguous()


@torch.library.custom_op("blueberry_bench::swiglu_grads", mutates_args=())
def swiglu_grads(g: torch.Tensor, u: torch.Tensor, dh: torch.Tensor, times: torch.Tensor, out_dtype: torch.dtype
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of h = silu(g) * u from dh (all [M, H], contiguous) times the 0-d fp32 ``times``, clamped to
    ``out_dtype``'s range: (dg, du) [M, H] and their transposes [H, M], in ``out_dtype``."""
    if not (AVAILABLE and (g.is_cuda or INTERPRET)):
        return swiglu_grads_formula(g, u, dh, times, out_dtype)
    M, H = g.shape
    dg, du = (torch.empty(M, H, dtype=out_dtype, device=g.device) for _ in range(2))
    dgt, dut = (torch.empty(H, M, dtype=out_dtype, device=g.device) for _ in range(2))
    t = TILE
    grid = (triton.cdiv(M, t["bm"]), triton.cdiv(H, t["bh"]))
    _swiglu_grads[grid](g.contiguous(), u.contiguous(), dh.contiguous(), times, dg, du, dgt, dut, M, H, BM=t["bm"],
                        BH=t["bh"], TOP=torch.finfo(out_dtype).max, TRANS32=t["trans32"], num_warps=t["warps"])
    return dg, du, dgt, dut


@swiglu_grads.register_fake
def _(g, u, dh, times, out_dtype):
    M, H = g.shape
    return (g.new_empty(M, H, dtype=out_dtype), g.new_empty(M, H, dtype=out_dtype),
            g.new_empty(H, M, dtype=out_dtype), g.new_empty(H, M, dtype=out_dtype))


class _SwiGLU(torch.autograd.Function):
    """down(silu(x @ wg.t()) * (x @ wu.t())) with the six matmuls in FP8 as ``trainer.fp8`` runs them."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, wg: torch.Tensor, wu: torch.Tensor, wd: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        one = torch.ones((), dtype=torch.float32, device=x.device)
        qx = fp8.cast(x2, fp8.E4M3, 1.0)
        (qwg, swg), (qwu, swu), (qwd, swd) = fp8.cast_weight(wg), fp8.cast_weight(wu), fp8.cast_weight(wd)
        g = fp8.scaled_mm(qx, qwg.t(), one, swg, torch.bfloat16, fast=True)
        u = fp8.scaled_mm(qx, qwu.t(), one, swu, torch.bfloat16, fast=True)
        qh = fp8.cast(F.silu(g.float()) * u.float(), fp8.E4M3, 1.0)
        y = fp8.scaled_mm(qh, qwd.t(), one, swd, torch.bfloat16, fast=True)
        ctx.save_for_backward(qx, g, u, qh, qwg, swg, qwu, swu, qwd, swd)
        ctx.x_shape, ctx.x_dtype, ctx.w_dtypes = x.shape, x.dtype, (wg.dtype, wu.dtype, wd.dtype)
        return y.view(*x.shape[:-1], wd.shape[0])

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        qx, g, u, qh, qwg, swg, qwu, swu, qwd, swd = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1])
        one = torch.ones((), dtype=torch.float32, device=dy.device)
        times = dy2.shape[0] * fp8.GRAD_BIAS
        s = torch.full((), 1.0 / times, dtype=torch.float32, device=dy.device)
        qdy = fp8.cast(dy2, fp8.E5M2, times)
        dh = fp8.scaled_mm(qdy, qwd.t().contiguous().t(), s, swd, torch.bfloat16)
        dwd = fp8.scaled_mm(qdy.t().contiguous(), qh.t().contiguous().t(), s, one, ctx.w_dtypes[2])
        qdg, qdu, qdgt, qdut = swiglu_grads(g, u, dh, torch.full((), times, dtype=torch.float32, device=dy.device),
                                            fp8.E5M2)
        dx = (fp8.scaled_mm(qdg, qwg.t().contiguous().t(), s, swg, torch.bfloat16)
              + fp8.scaled_mm(qdu, qwu.t().contiguous().t(), s, swu, torch.bfloat16))
        qx_cols = qx.t().contiguous().t()  # [M, d] column-major: the weight gradients' second operand
        dwg = fp8.scaled_mm(qdgt, qx_cols, s, one, ctx.w_dtypes[0])
        dwu = fp8.scaled_mm(qdut, qx_cols, s, one, ctx.w_dtypes[1])
        return dx.view(ctx.x_shape).to(ctx.x_dtype), dwg, dwu, dwd


def swiglu(x: torch.Tensor, wg: torch.Tensor, wu: torch.Tensor, wd: torch.Tensor) -> torch.Tensor:
    """The MLP's output, bf16, its matmuls in FP8 (every side a multiple of 16)."""
    with torch.autocast(x.device.type, enabled=False):
        return _SwiGLU.apply(x.to(torch.bfloat16), *(w.to(torch.bfloat16) for w in (wg, wu, wd)))


def install() -> None:
    """Makes ``trainer.model.SwiGLU`` run ``swiglu`` where its linears are in FP8 (``runtime.fp8``) and fit."""
    from trainer import model

    original = model.SwiGLU.forward

    def forward(self: model.SwiGLU, x: torch.Tensor) -> torch.Tensor:
        wg, wu, wd = self.gate_proj.matrix(), self.up_proj.matrix(), self.down_proj.matrix()
        if self.gate_proj.fp8 and fp8.fits(x.numel() // x.shape[-1], wg) and fp8.fits(16, wd):
            return swiglu(x, wg, wu, wd)
        return original(self, x)

    model.SwiGLU.forward = forward
