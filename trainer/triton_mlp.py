"""The Triton kernel behind ``trainer.kernels.swiglu_fp8_backward`` (imported on its first call, as
``trainer.triton_qk`` is, so that importing the model does not import Triton).

One program takes a tile of BM rows (tokens) x BH features of the gate and up projections' outputs ``gu`` [M, 2H]
(g in its first H columns, u in the rest) and of the MLP's hidden gradient dh [M, H], all bf16, and computes in
fp32: dg = dh * u * silu'(g) and du = dh * silu(g), times ``times`` and clamped to the gradients' dtype's range,
and h = silu(g) * u clamped to the hidden dtype's range. It stores dg and du twice, row-major into dgu [M, 2H] and
transposed into dgut [2H, M], and h transposed into ht [H, M]: what the FP8 matmuls of the MLP's backward take
(trainer/fp8.py). Offsets are int64 (M x 2H passes 2^31 at micro-batch 256).

The kernel does not call ``tl.trans``. On an H200 with torch 2.11's Triton, tiles transposed by ``tl.trans`` came out
partly wrong, with NaNs, for some tile shapes and not others: in FP8 one of 24 shapes in an earlier two-output kernel
(``bench/results/dec01j/call2-tune``) and, in this kernel, the shape that had passed there (call 3); in fp32, the
shape that had passed in call 3 failed in call 5. The transposed stores here address the row-major tile with the
transposed tensors' offsets instead, the way inductor's own transposing kernels are written.
"""

import triton
import triton.language as tl


@triton.jit
def swiglu_bwd(gu_ptr, dh_ptr, times_ptr, dgu_ptr, dgut_ptr, ht_ptr, M, H, GRAD_TOP: tl.constexpr,
               H_TOP: tl.constexpr, BM: tl.constexpr, BH: tl.constexpr):
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
    dg = tl.minimum(tl.maximum(dh * u * sig * (1.0 + g * (1.0 - sig)) * times, -GRAD_TOP), GRAD_TOP)
    du = tl.minimum(tl.maximum(dh * silu * times, -GRAD_TOP), GRAD_TOP)
    h = tl.minimum(tl.maximum(silu * u, -H_TOP), H_TOP)
    tl.store(dgu_ptr + at_gu, dg.to(dgu_ptr.dtype.element_ty), mask=mask)
    tl.store(dgu_ptr + at_gu + H, du.to(dgu_ptr.dtype.element_ty), mask=mask)
    # the transposed stores index the same [BM, BH] tile by the transposed tensors' offsets (element (r, c) at
    # c x M + r); Triton lays the values out again for those stores, as for inductor's transposing kernels
    c64 = cols[None, :].to(tl.int64)
    at_t = c64 * M + rows[:, None]
    at_tu = (c64 + H) * M + rows[:, None]  # du's rows of dgut, after dg's H
    tl.store(dgut_ptr + at_t, dg.to(dgut_ptr.dtype.element_ty), mask=mask)
    tl.store(dgut_ptr + at_tu, du.to(dgut_ptr.dtype.element_ty), mask=mask)
    tl.store(ht_ptr + at_t, h.to(ht_ptr.dtype.element_ty), mask=mask)
