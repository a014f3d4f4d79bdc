"""The Triton kernels behind ``trainer.kernels``' cross-entropy ops (imported on their first call, as
``trainer.triton_qk`` is, so that importing the model does not import Triton).

Each row of the logits [N, V] (any float dtype, unit stride along V, rows ``stride`` elements apart) is read in
blocks of BLOCK columns and upcast to fp32 in registers; the tail block is masked (V need not be a multiple of
BLOCK). Row offsets are int64: 32 x 2047 positions x 49,152 is past 2^31 elements.
"""

import triton
import triton.language as tl


@triton.jit
def _row_lse(row_ptr, V, BLOCK: tl.constexpr):
    """logsumexp of one row in fp32, in one pass over it: a running max m and the sum s of exp(x - m), rescaled
    by exp(m_old - m_new) when a block raises the max. Masked columns read as -inf and add exp(-inf) = 0; every
    block holds at least one real column, so the max is finite from the first block on."""
    m = float("-inf")
    s = 0.0
    for start in range(0, V, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(row_ptr + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
    return m + tl.log(s)


@triton.jit
def _grad_block(row_ptr, grad_row_ptr, cols, V, lse, target, scale):
    """(softmax - onehot) * scale for the columns ``cols`` of one row, stored in the gradient's dtype."""
    keep = cols < V
    x = tl.load(row_ptr + cols, mask=keep, other=0.0).to(tl.float32)
    g = (tl.exp(x - lse) - tl.where(cols == target, 1.0, 0.0)) * scale
    tl.store(grad_row_ptr + cols, g.to(grad_row_ptr.dtype.element_ty), mask=keep)


@triton.jit
def ce_fwd(logits_ptr, targets_ptr, loss_ptr, lse_ptr, grad_ptr, scale_ptr, V, stride, grad_stride,
           BLOCK: tl.constexpr, WRITE_GRAD: tl.constexpr):
    """One program a row: lse_i = logsumexp(x_i) and loss_i = lse_i - x_i[t_i] (fp32). With WRITE_GRAD (the
    chunked loss), a second pass over the row, right after the first (partly still in L2), writes the gradient
    (softmax - onehot) * scale as ``ce_bwd`` does; ``grad_ptr``/``scale_ptr`` are unused otherwise."""
    row = tl.program_id(0).to(tl.int64)
    row_ptr = logits_ptr + row * stride
    lse = _row_lse(row_ptr, V, BLOCK)
    target = tl.load(targets_ptr + row)
    picked = tl.load(row_ptr + target).to(tl.float32)
    tl.store(lse_ptr + row, lse)
    tl.store(loss_ptr + row, lse - picked)
    if WRITE_GRAD:
        scale = tl.load(scale_ptr).to(tl.float32)
        grad_row_ptr = grad_ptr + row * grad_stride
        for start in range(0, V, BLOCK):
            _grad_block(row_ptr, grad_row_ptr, start + tl.arange(0, BLOCK), V, lse, target, scale)


@triton.jit
def ce_bwd(logits_ptr, targets_ptr, lse_ptr, scale_ptr, grad_ptr, V, stride, grad_stride, blocks_per_row,
           BLOCK: tl.constexpr):
    """grad[i, j] = (exp(x_ij - lse_i) - [j == t_i]) * scale: one program per BLOCK columns of one row, the
    programs in memory order (a 1-D grid of rows x blocks_per_row), so neighbouring programs stream neighbouring
    memory. ``scale`` is a 0-d fp32 tensor (the incoming gradient over N), read here, never baked in."""
    pid = tl.program_id(0)
    row = (pid // blocks_per_row).to(tl.int64)  # 32-bit division: the grid itself is under 2^31 programs
    start = (pid % blocks_per_row) * BLOCK
    lse = tl.load(lse_ptr + row)
    target = tl.load(targets_ptr + row)
    scale = tl.load(scale_ptr).to(tl.float32)
    _grad_block(logits_ptr + row * stride, grad_ptr + row * grad_stride, start + tl.arange(0, BLOCK), V, lse,
                target, scale)
