"""The Triton kernel behind ``trainer.kernels.swiglu_fp8_backward`` (imported on its first call, as
``trainer.triton_qk`` is): the backward of the SwiGLU product h = silu(g) * u for ``runtime.fp8``'s MLP
(``trainer.fp8.mlp``), in one pass.

A program takes BM tokens x BH features: it reads g and u (gu = [g | u] [M, 2H], bf16) and dh [M, H] once, and
writes the gradient [dg | du] times ``times`` in e5m2 twice (row-major [M, 2H] for the input's gradient, transposed
[2H, M] for the weights'), and h again in e4m3, transposed [H, M], for the down projection's weight gradient (Hopper's
FP8 matmul takes its operands K-major, so the weight gradients need these layouts). In the three-linear form inductor
did the same in a kernel of 968 us a layer at b64 (``bench/results/dec01i/call7-final2``); this one takes about 890
(``bench/results/dec02a/call1-tune``).

The choices, all timed and checked on an H200 (``bench/fp8_mlp_tune.py``): the tile (BM, BH, warps); how values are
kept within the FP8 ranges (CLAMP: 0 tl.minimum/tl.maximum, 1 comparisons and selects, 2 none, the GPU's conversion
saturating, cvt.rn.satfinite); and whether the transposed stores are of bytes or of 32-bit words packing four tokens
(PACK). Triton has had miscompiles of transposed FP8 stores (triton-lang/triton#11111: with PTX min.NaN/max.NaN in
the kernel); every choice passed on two inputs in that check.
"""

import triton
import triton.language as tl


@triton.jit
def clamp(x, top, CLAMP: tl.constexpr):
    """x within [-top, top] (CLAMP 0 or 1), or as it is (2)."""
    if CLAMP == 0:
        x = tl.minimum(tl.maximum(x, -top), top)
    elif CLAMP == 1:
        x = tl.where(x > top, top, tl.where(x < -top, -top, x))
    return x


@triton.jit
def store_t(ptr, v, rows, cols, col0, M, H, mask, BM: tl.constexpr, BH: tl.constexpr, PACK: tl.constexpr):
    """The tile v [BM tokens, BH features] (FP8) stored into the transposed tensor [., M] at its rows ``col0 +
    cols``: byte by byte at the transposed offsets, or (PACK) four tokens of a feature packed little-endian into one
    32-bit word, ``ptr`` then pointing at the tensor's int32 view [., M / 4]."""
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
def swiglu_bwd(gu_ptr, dh_ptr, times_ptr, dgu_ptr, dgut_ptr, ht_ptr, M, H, GRAD_TOP: tl.constexpr,
               H_TOP: tl.constexpr, BM: tl.constexpr, BH: tl.constexpr, CLAMP: tl.constexpr, PACK: tl.constexpr):
    """dg = dh * u * silu'(g) and du = dh * silu(g), times ``times`` (a 0-d fp32 tensor), and h = silu(g) * u, in
    fp32; stored as [dg | du] row-major (dgu) and transposed (dgut), and h transposed (ht). The outputs' dtypes are
    the pointers' (e5m2 and e4m3 in training, fp32 to check the kernel); with PACK, ``dgut_ptr`` and ``ht_ptr`` point
    at int32 views and h is e4m3."""
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
    dg = clamp(dh * u * sig * (1.0 + g * (1.0 - sig)) * times, GRAD_TOP, CLAMP)
    du = clamp(dh * silu * times, GRAD_TOP, CLAMP)
    h = clamp(silu * u, H_TOP, CLAMP)
    grad_t = dgu_ptr.dtype.element_ty
    h_t = tl.float8e4nv if PACK else ht_ptr.dtype.element_ty
    tl.store(dgu_ptr + at_gu, dg.to(grad_t), mask=mask)
    tl.store(dgu_ptr + at_gu + H, du.to(grad_t), mask=mask)
    store_t(dgut_ptr, dg.to(grad_t), rows, cols, 0, M, H, mask, BM, BH, PACK)
    store_t(dgut_ptr, du.to(grad_t), rows, cols, H, M, H, mask, BM, BH, PACK)  # du's rows, after dg's H
    store_t(ht_ptr, h.to(h_t), rows, cols, 0, M, H, mask, BM, BH, PACK)
