"""An experiment for ``runtime.fp8`` (issue 19), measured on an H200 and not in the trainer: the SwiGLU MLP as one
FP8 autograd function, its SiLU product's backward one Triton kernel. With FA4 at b96 it passed the issue's 400k
tokens/s; its answer did not hold, so it stays here (Dec 1, tenth session; ``bench/results/dec01j``).

    python bench/fp8_run.py mlp --quiet --track speedrun-4.5 --set micro_batch_size=64 ...   # the trainer with it

With ``runtime.fp8`` alone, each of the MLP's three linears is ``trainer.fp8``'s FP8 linear, and inductor compiles the
SiLU product's backward with the casts of the gate and up projections' output gradients in both layouts: one kernel
of 968 us a layer at b64 (``bench/results/dec01i/call7-final2``). Here (``mlp``):

- the gate and up projections are one matmul each way: x @ [wg; wu].t() gives gu = [g | u] [M, 2H] (one scale for
  both weights), and the input gradient is [dg | du] @ [wg; wu];
- the forward keeps gu, not h = silu(g) * u; the backward's kernel (``swiglu_fp8_backward``) reads gu and dh once
  and writes [dg | du] x times in e5m2 row-major and transposed, and h again in e4m3, transposed, for the down
  projection's weight gradient;
- everything else is ``trainer.fp8``'s recipe (scales, layouts, fast accumulation in the forward).

What the H200 showed (torch 2.11 and its Triton):

- Speed, one machine (call 7): with FA4, b64 398.8k tokens/s against 387.9k for the trainer's ``runtime.fp8``
  (+2.8%), b96 404.3k.
- The kernel's transposed stores came out partly wrong, with NaNs, for some tile shapes, and a shape that passed in
  one version of the kernel failed in the next: with ``tl.trans`` in FP8 (calls 2 and 3), with ``tl.trans`` in
  fp32 (call 5), and addressing the row-major tile by the transposed offsets, as here (call 7: 32 x 128 with 8 warps
  wrong, 64 x 128 with 8 warps right).
- With the tile that passed (``TILE``), two FA4 speed runs trained normally for 20 steps (train loss 6.461 at b64
  against 6.460 for the trainer's path), but ``python -m trainer`` at b64 with SDPA diverged at step 2 (NaN), in
  the same call. The cause is not found; this module's kernel is the suspect.

The tests run the kernel under Triton's interpreter against its formula, the function against the bf16 MLP, and the
trainer on the CPU with it (the op's formula) against three FP8 linears: there it trains as they do.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading

import torch
import torch.nn.functional as F

from trainer import fp8

AVAILABLE = importlib.util.find_spec("triton") is not None
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# tokens and features per program, warps per program: the fastest shape that passed in call 7 (916 us at b64)
TILE = {"bm": 64, "bh": 128, "warps": 8, "clamp": "minmax", "pack": False}
TILE.update(json.loads(os.environ.get("BLUEBERRY_MLP_TILE", "{}")))  # e.g. a best.json of bench/fp8_mlp_tune.py
CLAMPS = ("minmax", "where", "none")
# BLUEBERRY_MLP_CHECK=1: every call of the op checks the kernel against its formula (``_check``); BLUEBERRY_MLP_FORMULA=1:
# the op is its PyTorch formula, no kernel
CHECK = os.environ.get("BLUEBERRY_MLP_CHECK") == "1"
FORMULA = os.environ.get("BLUEBERRY_MLP_FORMULA") == "1"
SYNC = os.environ.get("BLUEBERRY_MLP_SYNC") == "1"
TRACED = os.environ.get("BLUEBERRY_MLP_TRACED") == "1"
_SEEN: set = set()
_COUNTS = [0]

if AVAILABLE:
    import triton
    import triton.language as tl

    @triton.jit
    def _clamp(x, top, CLAMP: tl.constexpr):
        """x within [-top, top]: by tl.minimum/tl.maximum (0, "minmax": PTX min/max), by comparisons and selects
        (1, "where"), or not at all (2, "none": on the GPU the conversion to FP8 saturates, cvt.rn.satfinite)."""
        if CLAMP == 0:
            x = tl.minimum(tl.maximum(x, -top), top)
        elif CLAMP == 1:
            x = tl.where(x > top, top, tl.where(x < -top, -top, x))
        return x

    @triton.jit
    def _store_t(ptr, v, rows, cols, col0, M, H, mask, BM: tl.constexpr, BH: tl.constexpr, PACK: tl.constexpr):
        """Stores the tile v [BM tokens, BH features] (FP8) into the transposed tensor [., M] at rows ``col0 +
        cols``: byte by byte at the transposed offsets, or (PACK) four tokens of a feature packed little-endian into
        one 32-bit word, ``ptr`` then pointing at the tensor's int32 view [., M / 4]."""
        if PACK:
            b = tl.reshape(v.to(tl.uint8, bitcast=True).to(tl.uint32), [BM // 4, 4, BH])
            shift = (tl.arange(0, 4) * 8).to(tl.uint32)
            words = tl.sum(b << shift[None, :, None], axis=1)
            r4 = tl.program_id(0) * (BM // 4) + tl.arange(0, BM // 4)
            at = (col0 + cols[None, :]).to(tl.int64) * (M // 4) + r4[:, None]
            tl.store(ptr + at, words, mask=(r4[:, None] < M // 4) & (cols[None, :] < H))
        else:
            at = (col0 + cols[None, :]).to(tl.int64) * M + rows[:, None]
            tl.store(ptr + at, v, mask=mask)

    @triton.jit
    def _swiglu_bwd(gu_ptr, dh_ptr, times_ptr, dgu_ptr, dgut_ptr, ht_ptr, M, H, GRAD_TOP: tl.constexpr,
                    H_TOP: tl.constexpr, BM: tl.constexpr, BH: tl.constexpr, CLAMP: tl.constexpr,
                    PACK: tl.constexpr):
        """A tile of BM tokens x BH features: from g, u (gu [M, 2H]) and dh [M, H] in bf16, dg = dh * u * silu'(g)
        and du = dh * silu(g) times ``times``, and h = silu(g) * u, in fp32, within their dtypes' ranges (CLAMP);
        stored as [dg | du] row-major (dgu [M, 2H]) and transposed (dgut [2H, M]), and h transposed (ht [H, M]).
        With PACK, ``dgut_ptr`` and ``ht_ptr`` point at int32 views, h then in e4m3."""
        rows = tl.program_id(0) * BM + tl.arange(0, BM)
        cols = tl.program_id(1) * BH + tl.arange(0, BH)
        mask = (rows[:, None] < M) & (cols[None, :] < H)
        r64 = rows[:, None].to(tl.int64)
        at_gu = r64 * (2 * H) + cols[None, :]
        g = tl.load(gu_ptr + at_gu, mask=mask, other=0.0).to(tl.float32)
        u = tl.load(gu_ptr + at_gu + H, mask=mask, other=0.0).to(tl.float32)
        dh = tl.load(dh_ptr + r64 * H + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        times = tl.load(times_ptr).to(tl.float32)
        sig = tl.sigmoid(g)
        silu = g * sig
        dg = _clamp(dh * u * sig * (1.0 + g * (1.0 - sig)) * times, GRAD_TOP, CLAMP)
        du = _clamp(dh * silu * times, GRAD_TOP, CLAMP)
        h = _clamp(silu * u, H_TOP, CLAMP)
        tl.store(dgu_ptr + at_gu, dg.to(dgu_ptr.dtype.element_ty), mask=mask)
        tl.store(dgu_ptr + at_gu + H, du.to(dgu_ptr.dtype.element_ty), mask=mask)
        grad_t = dgu_ptr.dtype.element_ty
        h_t = tl.float8e4nv if PACK else ht_ptr.dtype.element_ty
        _store_t(dgut_ptr, dg.to(grad_t), rows, cols, 0, M, H, mask, BM, BH, PACK)
        _store_t(dgut_ptr, du.to(grad_t), rows, cols, H, M, H, mask, BM, BH, PACK)  # du's rows, after dg's H
        _store_t(ht_ptr, h.to(h_t), rows, cols, 0, M, H, mask, BM, BH, PACK)


def swiglu_backward_formula(gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor, grad_dtype: torch.dtype,
                            h_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the kernel computes, in PyTorch: (dgu, dgu transposed, h transposed)."""
    H = dh.shape[1]
    g, u, dh = gu[:, :H].float(), gu[:, H:].float(), dh.float()
    sig = torch.sigmoid(g)
    grad_top, h_top = torch.finfo(grad_dtype).max, torch.finfo(h_dtype).max
    dg = (dh * u * sig * (1 + g * (1 - sig)) * times).clamp(-grad_top, grad_top)
    du = (dh * g * sig * times).clamp(-grad_top, grad_top)
    dgu = torch.cat([dg, du], dim=1).to(grad_dtype)
    h = (g * sig * u).clamp(-h_top, h_top).to(h_dtype)
    return dgu, dgu.t().contiguous(), h.t().contiguous()


def _outputs(gu: torch.Tensor, dh: torch.Tensor, grad_dtype: torch.dtype, h_dtype: torch.dtype):
    M, H = dh.shape
    if gu.shape != (M, 2 * H) or not (gu.is_contiguous() and dh.is_contiguous()):
        raise ValueError(f"swiglu_backward wants contiguous gu [M, 2H] and dh [M, H], got {tuple(gu.shape)} and "
                         f"{tuple(dh.shape)}")
    return (torch.empty(M, 2 * H, dtype=grad_dtype, device=gu.device),
            torch.empty(2 * H, M, dtype=grad_dtype, device=gu.device), torch.empty(H, M, dtype=h_dtype, device=gu.device))


def _launch(run, gu, dh, times, dgu, dgut, ht) -> None:
    """``_swiglu_bwd`` over (dgu, dgut, ht) with ``TILE``, through ``run`` (the kernel itself, or
    ``torch.library.wrap_triton`` of it)."""
    M, H = dh.shape
    t = TILE
    pack = t["pack"] and dgu.dtype.itemsize == ht.dtype.itemsize == 1 and M % 4 == 0
    if M and H:
        grid = (triton.cdiv(M, t["bm"]), triton.cdiv(H, t["bh"]))
        words = (dgut.view(torch.int32), ht.view(torch.int32)) if pack else (dgut, ht)
        run(_swiglu_bwd)[grid](gu, dh, times, dgu, *words, M, H, GRAD_TOP=torch.finfo(dgu.dtype).max,
                               H_TOP=torch.finfo(ht.dtype).max, BM=t["bm"], BH=t["bh"],
                               CLAMP=CLAMPS.index(t["clamp"]), PACK=pack, num_warps=t["warps"])


def swiglu_backward(gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor, grad_dtype: torch.dtype,
                    h_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kernel with outputs in any dtypes (fp32 to check it), or its formula where Triton does not run.
    BLUEBERRY_MLP_SYNC=1 synchronises the device before and after the launch (outside CUDA graph capture)."""
    if not (AVAILABLE and (gu.is_cuda or INTERPRET)):
        _outputs(gu, dh, grad_dtype, h_dtype)  # the same contract
        return swiglu_backward_formula(gu, dh, times, grad_dtype, h_dtype)
    out = _outputs(gu, dh, grad_dtype, h_dtype)
    sync = SYNC and gu.is_cuda and not torch.cuda.is_current_stream_capturing()
    if sync:
        torch.cuda.synchronize()
    _launch(lambda k: k, gu, dh, times, *out)
    if sync:
        torch.cuda.synchronize()
    return out


@torch.library.custom_op("blueberry_bench::swiglu_fp8_backward", mutates_args=())
def swiglu_fp8_backward(gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From gu = [g | u] [M, 2H] and dh [M, H] (bf16, contiguous) and the 0-d fp32 ``times``: [dg | du] x times in
    e5m2 row-major [M, 2H] and transposed [2H, M], and h in e4m3 transposed [H, M]."""
    if FORMULA:
        return swiglu_backward_formula(gu, dh, times, fp8.E5M2, fp8.E4M3)
    out = swiglu_backward(gu, dh, times, fp8.E5M2, fp8.E4M3)
    if CHECK and gu.is_cuda:
        _check(gu, dh, times, out)
    return out


@swiglu_fp8_backward.register_fake
def _(gu, dh, times):
    M, H = dh.shape
    return (gu.new_empty(M, 2 * H, dtype=fp8.E5M2), gu.new_empty(2 * H, M, dtype=fp8.E5M2),
            gu.new_empty(H, M, dtype=fp8.E4M3))


@torch.library.triton_op("blueberry_bench::swiglu_fp8_backward_traced", mutates_args=())
def swiglu_fp8_backward_traced(gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``swiglu_fp8_backward`` as a ``torch.library.triton_op``: under torch.compile inductor sees the kernel
    (``wrap_triton``) and launches it from its own generated code, as it does its kernels, inside its CUDA graphs
    too; the custom op's kernel is launched by Triton from the op's Python (BLUEBERRY_MLP_TRACED=1 picks this)."""
    out = _outputs(gu, dh, fp8.E5M2, fp8.E4M3)
    if AVAILABLE and gu.is_cuda:
        _launch(torch.library.wrap_triton, gu, dh, times, *out)
        return out
    return swiglu_backward_formula(gu, dh, times, fp8.E5M2, fp8.E4M3)


def _check(gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor, out: tuple[torch.Tensor, ...]) -> None:
    """BLUEBERRY_MLP_CHECK: outside CUDA graph capture, the kernel's outputs against its formula, printed for the
    first 8 calls (calls, whether the inputs are finite, outputs not finite, outputs unequal to the formula's,
    bitwise); each new launch context (capturing or not, the pointers' alignment, the thread, PyTorch's and
    Triton's current streams) printed once."""
    capturing = gu.is_cuda and torch.cuda.is_current_stream_capturing()
    streams = (torch.cuda.current_stream().cuda_stream, torch.cuda.default_stream().cuda_stream,
               triton.runtime.driver.active.get_current_stream(gu.device.index)) if gu.is_cuda and AVAILABLE else ()
    key = (capturing, *(t.data_ptr() % 128 for t in (gu, dh, times, *out)), threading.current_thread().name,
           *streams)
    if key not in _SEEN:
        _SEEN.add(key)
        print(f"fp8_mlp check: new launch context (capturing; pointer mod 128 of gu, dh, times, outputs; thread; "
              f"PyTorch's current and default streams, Triton's) {key}", flush=True)
    if capturing or _COUNTS[0] >= 8:
        return
    _COUNTS[0] += 1
    want = swiglu_backward_formula(gu, dh, times, fp8.E5M2, fp8.E4M3)
    bad_in = bool((~torch.isfinite(gu)).any() or (~torch.isfinite(dh)).any())
    bad_out = [int((~torch.isfinite(t.float())).sum()) for t in out]
    unequal = [int((a.view(torch.uint8) != b.view(torch.uint8)).sum()) for a, b in zip(out, want)]
    print(f"fp8_mlp check {_COUNTS[0]}: inputs not finite {bad_in}, outputs not finite {bad_out}, unequal to the "
          f"formula {unequal}", flush=True)


class _MLP(torch.autograd.Function):
    """down(silu(x @ wg.t()) * (x @ wu.t())) with its six matmuls in FP8, the gate and up projections as one."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, wg: torch.Tensor, wu: torch.Tensor, wd: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        H = wg.shape[0]
        one = torch.ones((), dtype=torch.float32, device=x.device)
        qx = fp8.cast(x2, fp8.E4M3, 1.0)
        qwgu, swgu = fp8.cast_weight(torch.cat([wg, wu]))  # [2H, d], one scale for both
        gu = fp8.scaled_mm(qx, qwgu.t(), one, swgu, torch.bfloat16, fast=True)  # [M, 2H]: g then u
        qh = fp8.cast(F.silu(gu[:, :H].float()) * gu[:, H:].float(), fp8.E4M3, 1.0)
        qwd, swd = fp8.cast_weight(wd)
        y = fp8.scaled_mm(qh, qwd.t(), one, swd, torch.bfloat16, fast=True)
        ctx.save_for_backward(qx, gu, qwgu, swgu, qwd, swd)  # not h: the backward's kernel makes it again
        ctx.x_shape, ctx.x_dtype = x.shape, x.dtype
        return y.view(*x.shape[:-1], wd.shape[0])

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        qx, gu, qwgu, swgu, qwd, swd = ctx.saved_tensors
        H = gu.shape[1] // 2
        dy2 = dy.reshape(-1, dy.shape[-1])
        times = dy2.shape[0] * fp8.GRAD_BIAS
        qdy = fp8.cast(dy2, fp8.E5M2, times)
        sdy = torch.full((), 1.0 / times, dtype=torch.float32, device=dy.device)
        one = torch.ones((), dtype=torch.float32, device=dy.device)
        dh = fp8.scaled_mm(qdy, qwd.t().contiguous().t(), sdy, swd, torch.bfloat16)  # [M, d] @ [d, H]
        op = swiglu_fp8_backward_traced if TRACED else swiglu_fp8_backward
        qdgu, qdgut, qht = op(gu, dh, torch.full((), times, dtype=torch.float32, device=dy.device))
        dwd = fp8.scaled_mm(qdy.t().contiguous(), qht.t(), sdy, one, torch.bfloat16)  # [d, M] @ [M, H]
        dx = fp8.scaled_mm(qdgu, qwgu.t().contiguous().t(), sdy, swgu, torch.bfloat16)  # [M, 2H] @ [2H, d]
        dwgu = fp8.scaled_mm(qdgut, qx.t().contiguous().t(), sdy, one, torch.bfloat16)  # [2H, M] @ [M, d]
        return dx.view(ctx.x_shape).to(ctx.x_dtype), dwgu[:H], dwgu[H:], dwd


def mlp(x: torch.Tensor, wg: torch.Tensor, wu: torch.Tensor, wd: torch.Tensor) -> torch.Tensor:
    """The SwiGLU MLP (bias-free weights [H, d], [H, d], [d, H]) with its matmuls in FP8, output bf16; every side a
    multiple of 16 (``trainer.fp8.fits``)."""
    with torch.autocast(x.device.type, enabled=False):
        return _MLP.apply(x.to(torch.bfloat16), *(w.to(torch.bfloat16) for w in (wg, wu, wd)))


def install() -> None:
    """Makes ``trainer.model.SwiGLU`` run ``mlp`` where its linears are in FP8 (``runtime.fp8``) and the shapes fit."""
    from trainer import model

    original = model.SwiGLU.forward

    def forward(self: model.SwiGLU, x: torch.Tensor) -> torch.Tensor:
        wg, wu, wd = self.gate_proj.matrix(), self.up_proj.matrix(), self.down_proj.matrix()
        if self.gate_proj.fp8 and fp8.fits(x.numel() // x.shape[-1], wg) and fp8.fits(16, wd):
            return mlp(x, wg, wu, wd)
        return original(self, x)

    model.SwiGLU.forward = forward
