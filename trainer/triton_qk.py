"""The Triton kernels behind ``trainer.kernels.qk_norm_rope`` (imported on its first call, so that importing the
model does not import Triton: a fresh process imports the compile stack in a thread while it loads data).

Both kernels read the fused q/k projection's output ``x`` [B, T, Hq + Hk, D], whose first Hq heads of each token
are queries and the rest keys. The first ``q_programs`` programs take the query rows (one token's one head each),
ROWS at a time, the others the key rows, so every program works on one kind with one weight, one output and one
gradient tensor. (A first version took ROWS consecutive rows of x, queries and keys mixed, and chose per row. At b4
on H200s, ``bench/results/dec01c-summary.txt``: that version's forward took 10.7 us a layer and its backward 25.6 in
the trainer's kernel table, where the separate q and k kernels before the fused projection had taken 9.6 and 19.4
together; this one takes 7.6 and 18.0 on the q/k path alone, and the trainer ran 1.2% faster with it.)"""

import triton
import triton.language as tl


@triton.jit
def swap_pairs(v, ROWS: tl.constexpr, HALF: tl.constexpr):
    """[ROWS, 2 * HALF] with the two elements of each adjacent pair exchanged."""
    even, odd = tl.split(tl.reshape(v, (ROWS, HALF, 2)))
    return tl.reshape(tl.join(odd, even), (ROWS, 2 * HALF))


@triton.jit
def qk_fwd(x_ptr, q_ptr, k_ptr, wq_ptr, wk_ptr, c_ptr, s_ptr, q_rows, k_rows, q_programs, heads, q_heads, seq_len,
           eps, ROWS: tl.constexpr, HALF: tl.constexpr):
    pid = tl.program_id(0)
    zero = pid * 0  # makes every integer below a runtime value in both branches (Triton passes an argument of 1 as a
    # compile-time constant, and the two branches must give each name the same type)
    if pid < q_programs:
        block, n_rows, part_heads, first_head = pid, q_rows + zero, q_heads + zero, zero
        y_ptr, w_ptr = q_ptr, wq_ptr
    else:
        block, n_rows, part_heads, first_head = pid - q_programs, k_rows + zero, heads - q_heads + zero, q_heads + zero
        y_ptr, w_ptr = k_ptr, wk_ptr
    rows = block * ROWS + tl.arange(0, ROWS)
    keep = rows < n_rows
    cols = tl.arange(0, 2 * HALF)
    token = rows // part_heads
    x_at = (token * heads + first_head + rows % part_heads)[:, None] * (2 * HALF) + cols[None, :]
    x = tl.load(x_ptr + x_at, mask=keep[:, None], other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / (2 * HALF) + eps)
    n = x * rstd[:, None] * tl.load(w_ptr + cols).to(tl.float32)[None, :]
    table_at = (token % seq_len)[:, None] * (2 * HALF) + cols[None, :]
    c = tl.load(c_ptr + table_at, mask=keep[:, None], other=0.0)
    s = tl.load(s_ptr + table_at, mask=keep[:, None], other=0.0)
    y = n * c + swap_pairs(n, ROWS, HALF) * s
    tl.store(y_ptr + rows[:, None] * (2 * HALF) + cols[None, :], y.to(y_ptr.dtype.element_ty), mask=keep[:, None])


@triton.jit
def qk_bwd(x_ptr, gq_ptr, gk_ptr, gx_ptr, wq_ptr, wk_ptr, c_ptr, s_ptr, pq_ptr, pk_ptr, q_rows, k_rows, q_programs,
           k_programs, heads, q_heads, seq_len, eps, gq_sb, gq_st, gq_sh, gk_sb, gk_st, gk_sh,
           ROWS: tl.constexpr, HALF: tl.constexpr):
    pid = tl.program_id(0)
    zero = pid * 0  # as in qk_fwd
    if pid < q_programs:
        block, n_rows, part_heads, first_head = pid, q_rows + zero, q_heads + zero, zero
        g_ptr, w_ptr, p_ptr, n_programs = gq_ptr, wq_ptr, pq_ptr, q_programs + zero
        g_sb, g_st, g_sh = gq_sb + zero, gq_st + zero, gq_sh + zero
    else:
        block, n_rows, part_heads, first_head = pid - q_programs, k_rows + zero, heads - q_heads + zero, q_heads + zero
        g_ptr, w_ptr, p_ptr, n_programs = gk_ptr, wk_ptr, pk_ptr, k_programs + zero
        g_sb, g_st, g_sh = gk_sb + zero, gk_st + zero, gk_sh + zero
    rows = block * ROWS + tl.arange(0, ROWS)
    keep = rows < n_rows
    cols = tl.arange(0, 2 * HALF)
    token = rows // part_heads
    h = rows % part_heads
    t = token % seq_len
    b = token // seq_len
    x_at = (token * heads + first_head + h)[:, None] * (2 * HALF) + cols[None, :]
    x = tl.load(x_ptr + x_at, mask=keep[:, None], other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / (2 * HALF) + eps)
    x_hat = x * rstd[:, None]
    # dq and dk may be strided views (the attention's gradients, transposed back): index them by (b, t, head)
    g_at = (b * g_sb + t * g_st + h * g_sh)[:, None] + cols[None, :]
    g = tl.load(g_ptr + g_at, mask=keep[:, None], other=0.0).to(tl.float32)
    table_at = t[:, None] * (2 * HALF) + cols[None, :]
    c = tl.load(c_ptr + table_at, mask=keep[:, None], other=0.0)
    s = tl.load(s_ptr + table_at, mask=keep[:, None], other=0.0)
    # the rotation's transpose: the gradient with respect to the normalised, weighted row
    g_n = g * c + swap_pairs(g * s, ROWS, HALF)
    # the weight's gradient: one partial per program and column, summed after the kernel (looping over several
    # row blocks a program, for fewer partials, was slower: 47 -> 60 us at b4, nov30h-call3). Stored as
    # [columns, programs], so that the sum runs along contiguous rows
    tl.store(p_ptr + cols * n_programs + block, tl.sum(g_n * x_hat, axis=0))
    g_hat = g_n * tl.load(w_ptr + cols).to(tl.float32)[None, :]
    dot = tl.sum(g_hat * x_hat, axis=1) / (2 * HALF)
    gx = rstd[:, None] * (g_hat - x_hat * dot[:, None])
    tl.store(gx_ptr + x_at, gx.to(gx_ptr.dtype.element_ty), mask=keep[:, None])
