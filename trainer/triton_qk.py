"""The Triton kernels behind ``trainer.kernels.qk_norm_rope`` (imported on its first call, so that importing the
model does not import Triton: a fresh process imports the compile stack in a thread while it loads data)."""

import triton
import triton.language as tl


@triton.jit
def swap_pairs(v, ROWS: tl.constexpr, HALF: tl.constexpr):
    """[ROWS, 2 * HALF] with the two elements of each adjacent pair exchanged."""
    even, odd = tl.split(tl.reshape(v, (ROWS, HALF, 2)))
    return tl.reshape(tl.join(odd, even), (ROWS, 2 * HALF))


@triton.jit
def qk_fwd(x_ptr, y_ptr, w_ptr, c_ptr, s_ptr, n_rows, heads, seq_len, eps,
           ROWS: tl.constexpr, HALF: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * ROWS + tl.arange(0, ROWS)
    keep = rows < n_rows
    cols = tl.arange(0, 2 * HALF)
    at = rows[:, None] * (2 * HALF) + cols[None, :]
    x = tl.load(x_ptr + at, mask=keep[:, None], other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / (2 * HALF) + eps)
    n = x * rstd[:, None] * tl.load(w_ptr + cols).to(tl.float32)[None, :]
    t = (rows // heads) % seq_len
    table_at = t[:, None] * (2 * HALF) + cols[None, :]
    c = tl.load(c_ptr + table_at, mask=keep[:, None], other=0.0)
    s = tl.load(s_ptr + table_at, mask=keep[:, None], other=0.0)
    y = n * c + swap_pairs(n, ROWS, HALF) * s
    tl.store(y_ptr + at, y.to(y_ptr.dtype.element_ty), mask=keep[:, None])


@triton.jit
def qk_bwd(x_ptr, gy_ptr, gx_ptr, w_ptr, c_ptr, s_ptr, gw_part_ptr, n_rows, heads, seq_len, eps,
           gy_sb, gy_st, gy_sh, ROWS: tl.constexpr, HALF: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * ROWS + tl.arange(0, ROWS)
    keep = rows < n_rows
    cols = tl.arange(0, 2 * HALF)
    at = rows[:, None] * (2 * HALF) + cols[None, :]
    x = tl.load(x_ptr + at, mask=keep[:, None], other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / (2 * HALF) + eps)
    x_hat = x * rstd[:, None]
    # dy may be a strided view (the attention's gradient, transposed back): index it by (b, t, h)
    h = rows % heads
    t = (rows // heads) % seq_len
    b = rows // (heads * seq_len)
    g_at = (b * gy_sb + t * gy_st + h * gy_sh)[:, None] + cols[None, :]
    g = tl.load(gy_ptr + g_at, mask=keep[:, None], other=0.0).to(tl.float32)
    table_at = t[:, None] * (2 * HALF) + cols[None, :]
    c = tl.load(c_ptr + table_at, mask=keep[:, None], other=0.0)
    s = tl.load(s_ptr + table_at, mask=keep[:, None], other=0.0)
    # the rotation's transpose: the gradient with respect to the normalised, weighted row
    g_n = g * c + swap_pairs(g * s, ROWS, HALF)
    # the weight's gradient: one partial per program and column, summed after the kernel (looping over several
    # row blocks a program, for fewer partials, was slower: 47 -> 60 us at b4, nov30h-call3). Stored as
    # [columns, programs], so that sum runs along contiguous rows (as [programs, columns] its column sum took
    # 8 us a call, 64 calls a step at b4: bench/results/nov30h/call4-final/profile/kernels-b4.txt)
    tl.store(gw_part_ptr + cols * tl.num_programs(0) + pid, tl.sum(g_n * x_hat, axis=0))
    g_hat = g_n * tl.load(w_ptr + cols).to(tl.float32)[None, :]
    dot = tl.sum(g_hat * x_hat, axis=1) / (2 * HALF)
    gx = rstd[:, None] * (g_hat - x_hat * dot[:, None])
    tl.store(gx_ptr + at, gx.to(gx_ptr.dtype.element_ty), mask=keep[:, None])
