"""Hand-written Triton kernels for the fast path on CUDA (issue 19).

``qk_norm_rope``: the attention's QK-norm (RMSNorm over each head's ``head_dim``, fp32 weight) followed by the
rotary embedding on adjacent pairs, in one pass over the projection's output ``[B, T, H, D]``. Compiled by
inductor, the same maths took five kernels a layer at the record settings, its forward two kernels of 21-26 us
moving ~1 TB/s of the H200's ~4.8 (b4 kernel table, ``bench/results/profile/nov30g``). Here the forward reads x
once and writes y once; the backward reads x and dy, recomputes the norm, writes dx and a per-program partial of
the weight's gradient (summed by one small reduction). Each row (one token's one head) is normalised in fp32,
rotated in fp32 and rounded once, as inductor's fused kernels do (no bf16 rounding between norm and rotation).

The rotation is ``trainer.model.rotate_pairs``' x * c + swap(x) * s with ``pair_tables``' [T, D] tables; each
row is loaded whole (vectorised) and the pair swap happens in registers. (A first version loaded the even and
odd elements with stride-2 loads: 2-5x slower than inductor's kernels, ``bench/results/nov30h/call1-qk``.)

Registered as the custom op ``blueberry::qk_norm_rope`` with its own backward, so ``torch.compile`` keeps it as
one opaque call inside the compiled block (and inside the block's CUDA graph). Without Triton (a CPU build of
torch) ``AVAILABLE`` is False and the model uses its compiled PyTorch formula; with ``TRITON_INTERPRET=1`` the
same kernels run on the CPU, which is how the tests check them against the reference formula.
"""

from __future__ import annotations

import importlib.util
import os

import torch

AVAILABLE = importlib.util.find_spec("triton") is not None  # a CPU build of torch ships without Triton
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

# rows (one token's one head each) per program, and warps per program: the fastest of six at b4 and near the best at
# b32 on an H200 (bench/rope_variants.py; bench/results/nov30h/call2-qk2)
ROWS = 16
WARPS = 2


def _head_dim_fits(D: int) -> bool:
    """The kernels take whole rows as one Triton block: D must be a power of two (and even, for the pairs)."""
    return D >= 2 and D & (D - 1) == 0


def usable(x: torch.Tensor) -> bool:
    """Whether ``qk_norm_rope`` can run on ``x`` ([..., D]) here: Triton on its device, D a power of two."""
    return AVAILABLE and (x.is_cuda or INTERPRET) and _head_dim_fits(x.shape[-1])


def _check(x: torch.Tensor, w: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> None:
    if x.dim() != 4 or not x.is_contiguous():
        raise ValueError(f"qk_norm_rope wants a contiguous [B, T, H, D] tensor, got shape {tuple(x.shape)} "
                         f"with strides {x.stride()}")
    D = x.shape[-1]
    if not _head_dim_fits(D):
        raise ValueError(f"qk_norm_rope wants a power-of-two head dim, got {D}")
    if w.shape != (D,) or c.shape != s.shape or c.shape[1] != D or c.shape[0] < x.shape[1]:
        raise ValueError(f"qk_norm_rope: weight {tuple(w.shape)} and tables {tuple(c.shape)}/{tuple(s.shape)} "
                         f"do not fit x {tuple(x.shape)}")
    if c.dtype != torch.float32 or s.dtype != torch.float32 or not (c.is_contiguous() and s.is_contiguous()):
        raise ValueError("qk_norm_rope wants contiguous fp32 tables")


@torch.library.custom_op("blueberry::qk_norm_rope", mutates_args=())
def qk_norm_rope(x: torch.Tensor, weight: torch.Tensor, c: torch.Tensor, s: torch.Tensor, eps: float
                 ) -> torch.Tensor:
    """RMSNorm over the last dim of ``x`` [B, T, H, D] (times ``weight``), then the rotation of adjacent pairs by
    ``pair_tables``' ``c``/``s`` at each row's position t. Same shape and dtype as ``x``."""
    _check(x, weight, c, s)
    B, T, H, D = x.shape
    from trainer import triton_qk

    y = torch.empty_like(x)
    n_rows = B * T * H
    triton_qk.qk_fwd[(-(-n_rows // ROWS),)](x, y, weight, c, s, n_rows, H, T, eps, ROWS=ROWS, HALF=D // 2,
                                            num_warps=WARPS)
    return y


@qk_norm_rope.register_fake
def _(x, weight, c, s, eps):
    return torch.empty_like(x)


@torch.library.custom_op("blueberry::qk_norm_rope_backward", mutates_args=())
def qk_norm_rope_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, c: torch.Tensor,
                          s: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``qk_norm_rope`` with respect to ``x`` and ``weight``."""
    from trainer import triton_qk

    B, T, H, D = x.shape
    if grad.stride(-1) != 1:
        grad = grad.contiguous()
    gx = torch.empty_like(x)
    n_rows = B * T * H
    programs = -(-n_rows // ROWS)
    parts = torch.empty(programs, D, device=x.device, dtype=torch.float32)
    triton_qk.qk_bwd[(programs,)](x, grad, gx, weight, c, s, parts, n_rows, H, T, eps,
                                  grad.stride(0), grad.stride(1), grad.stride(2), ROWS=ROWS, HALF=D // 2,
                                  num_warps=WARPS)
    return gx, parts.sum(0).to(weight.dtype)


@qk_norm_rope_backward.register_fake
def _(grad, x, weight, c, s, eps):
    return torch.empty_like(x), torch.empty_like(weight)


def _setup(ctx, inputs, output):
    x, weight, c, s, eps = inputs
    ctx.save_for_backward(x, weight, c, s)
    ctx.eps = eps


def _backward(ctx, grad):
    x, weight, c, s = ctx.saved_tensors
    gx, gw = qk_norm_rope_backward(grad, x, weight, c, s, ctx.eps)
    return gx, gw, None, None, None


qk_norm_rope.register_autograd(_backward, setup_context=_setup)
