"""The Triton kernels behind ``trainer.kernels.qk_norm_rope`` (imported on its first call, so that importing the
model does not import Triton: a fresh process imports the compile stack in a thread while it loads data).

Both kernels walk the rows (one token's one head) of the fused q/k projection's output ``x`` [B, T, Hq + Hk, D]:
the first Hq heads of each token are queries, the rest keys. Each program takes ROWS consecutive rows, so a block
may hold both kinds; every row picks its norm weight, and its output or gradient tensor, by its head."""

import triton
import triton.language as tl


@triton.jit
def swap_pairs(v, ROWS: tl.constexpr, HALF: tl.constexpr):
    """[ROWS, 2 * HALF] with the two elements of each adjacent pair exchanged."""
    even, odd = tl.split(tl.reshape(v, (ROWS, HALF, 2)))
    return tl.reshape(tl.join(odd, even), (ROWS, 2 * HALF))


@triton.jit
def qk_fwd(x_ptr, q_ptr, k_ptr, wq_ptr, wk_ptr, c_ptr, s_ptr, n_rows, heads, q_heads, seq_len, eps,
           ROWS: tl.constexpr, HALF: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * ROWS + tl.arange(0, ROWS)
    keep = rows < n_rows
    cols = tl.arange(0, 2 * HALF)
    x = tl.load(x_ptr + rows[:, None] * (2 * HALF) + cols[None, :], mask=keep[:, None], other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / (2 * HALF) + eps)
    h = rows % heads
    token = rows // heads
    is_q = h < q_heads
    w = tl.where(is_q[:, None], tl.load(wq_ptr + cols).to(tl.float32)[None, :],
                 tl.load(wk_ptr + cols).to(tl.float32)[None, :])
    n = x * rstd[:, None] * w
    table_at = (token % seq_len)[:, None] * (2 * HALF) + cols[None, :]
    c = tl.load(c_ptr + table_at, mask=keep[:, None], other=0.0)
    s = tl.load(s_ptr + table_at, mask=keep[:, None], other=0.0)
    y = n * c + swap_pairs(n, ROWS, HALF) * s
    q_at = (token * q_heads + h)[:, None] * (2 * HALF) + cols[None, :]
    k_at = (token * (heads - q_heads) + h - q_heads)[:, None] * (2 * HALF) + cols[None, :]
    tl.store(q_ptr + q_at, y.to(q_ptr.dtype.element_ty), mask=(keep & is_q)[:, None])
    tl.store(k_ptr + k_at, y.to(k_ptr.dtype.element_ty), mask=(keep & ~is_q)[:, None])


@triton.jit
def qk_bwd(x_ptr, gq_ptr, gk_ptr, gx_ptr, wq_ptr, wk_ptr, c_ptr, s_ptr, pq_ptr, pk_ptr, n_rows, heads, q_heads,
           seq_len, eps, gq_sb, gq_st, gq_sh, gk_sb, gk_st, gk_sh, ROWS: tl.constexpr, HALF: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * ROWS + tl.arange(0, ROWS)
    keep = rows < n_rows
    cols = tl.arange(0, 2 * HALF)
    at = rows[:, None] * (2 * HALF) + cols[None, :]
    x = tl.load(x_ptr + at, mask=keep[:, None], other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / (2 * HALF) + eps)
    x_hat = x * rstd[:, None]
    h = rows % heads
    t = (rows // heads) % seq_len
    b = rows // (heads * seq_len)
    is_q = h < q_heads
    # dq and dk may be strided views (the attention's gradients, transposed back): index them by (b, t, head)
    gq_at = (b * gq_sb + t * gq_st + h * gq_sh)[:, None] + cols[None, :]
    gk_at = (b * gk_sb + t * gk_st + (h - q_heads) * gk_sh)[:, None] + cols[None, :]
    g = (tl.load(gq_ptr + gq_at, mask=(keep & is_q)[:, None], other=0.0).to(tl.float32)
         + tl.load(gk_ptr + gk_at, mask=(keep & ~is_q)[:, None], other=0.0).to(tl.float32))
    table_at = t[:, None] * (2 * HALF) + cols[None, :]
    c = tl.load(c_ptr + table_at, mask=keep[:, None], other=0.0)
    s = tl.load(s_ptr + table_at, mask=keep[:, None], other=0.0)
    # the rotation's transpose: the gradient with respect to the normalised, weighted row
    g_n = g * c + swap_pairs(g * s, ROWS, HALF)
    # each weight's gradient: one partial per program and column, summed after the kernel (looping over several
    # row blocks a program, for fewer partials, was slower: 47 -> 60 us at b4, nov30h-call3). Stored as
    # [columns, programs], so that the sum runs along contiguous rows
    part = g_n * x_hat
    tl.store(pq_ptr + cols * tl.num_programs(0) + pid, tl.sum(tl.where(is_q[:, None], part, 0.0), axis=0))
    tl.store(pk_ptr + cols * tl.num_programs(0) + pid, tl.sum(tl.where(is_q[:, None], 0.0, part), axis=0))
    w = tl.where(is_q[:, None], tl.load(wq_ptr + cols).to(tl.float32)[None, :],
                 tl.load(wk_ptr + cols).to(tl.float32)[None, :])
    g_hat = g_n * w
    dot = tl.sum(g_hat * x_hat, axis=1) / (2 * HALF)
    gx = rstd[:, None] * (g_hat - x_hat * dot[:, None])
    tl.store(gx_ptr + at, gx.to(gx_ptr.dtype.element_ty), mask=keep[:, None])
