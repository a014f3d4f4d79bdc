"""Hand-written Triton kernels for the fast path on CUDA (issue 19).

``qk_norm_rope``: the attention's QK-norm (RMSNorm over each head's ``head_dim``, fp32 weights) followed by the
rotary embedding on adjacent pairs, in one pass over the fused q/k projection's output ``[B, T, Hq + Hk, D]``
(queries first). Compiled by inductor, the same maths took five kernels a layer at the record settings, its forward
two kernels of 21-26 us moving ~1 TB/s of the H200's ~4.8 (b4 kernel table, ``bench/results/profile/nov30g``). Here
the forward reads x once and writes q and k once; the backward reads x, dq and dk, recomputes the norm, writes the
projection's gradient dx whole and per-program partials of the two weights' gradients (summed in the traced
backward, where inductor compiles the sums). Each row (one token's one head) is normalised in fp32, rotated in fp32
and rounded once, as inductor's fused kernels do (no bf16 rounding between norm and rotation).

The rotation is ``trainer.model.rotate_pairs``' x * c + swap(x) * s with ``pair_tables``' [T, D] tables; each
row is loaded whole (vectorised) and the pair swap happens in registers. (A first version loaded the even and
odd elements with stride-2 loads: 2-5x slower than inductor's kernels, ``bench/results/nov30h/call1-qk``.)

Registered as the custom op ``blueberry::qk_norm_rope`` with its own backward, so ``torch.compile`` keeps it as
one opaque call inside the compiled block (and inside the block's CUDA graph). Without Triton (a CPU build of
torch) ``AVAILABLE`` is False and the model uses its compiled PyTorch formula; with ``TRITON_INTERPRET=1`` the
same kernels run on the CPU, which is how the tests check them against the reference formula.

``cross_entropy``: the output head's mean cross-entropy over logits [N, V] in their own dtype (bf16 under
autocast), each block upcast to fp32 in registers, as inductor's kernels did. Compiled by inductor, at the record
settings (8,188 positions x 49,152, bf16 logits of 805 MB) on an H200 its forward took 526 us (~1.5 TB/s) and its
backward 561 us (``bench/results/nov30h/call4-final/profile/kernels-b4.txt``), where the bandwidth allows ~230 and
~450. Here the forward reads each row once (a running max and sum of exps), writes its fp32 logsumexp and loss;
the backward reads the logits and the saved logsumexp and writes (softmax - onehot) * grad / N in the logits'
dtype, the incoming gradient read by the kernel from its 0-d tensor. ``cross_entropy_sum_and_grad`` is both at once
for ``trainer.loss``'s chunks, which take the gradient in the forward pass. ``ce_usable`` says where they run
(Triton on the logits' device, as for ``usable``); ``bench/loss_variants.py`` times them against the compiled formula.

``swiglu_fp8_backward``: the backward of ``runtime.fp8``'s MLP (``trainer.fp8.mlp``) past its down projection, one
pass that writes the gate's and up projection's gradients in e5m2 in both layouts and the SiLU product in e4m3,
transposed (kernel in ``trainer/triton_mlp.py``; ``bench/fp8_mlp_tune.py`` times and checks it). A ``triton_op``,
which inductor compiles into the graph: see its docstring for why.
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


def _triton_runs_on(x: torch.Tensor) -> bool:
    """Triton is installed and runs on ``x``'s device: CUDA, or the CPU under the interpreter."""
    return AVAILABLE and (x.is_cuda or INTERPRET)


def usable(x: torch.Tensor) -> bool:
    """Whether ``qk_norm_rope`` can run on ``x`` ([..., D]) here: Triton on its device, D a power of two."""
    return _triton_runs_on(x) and _head_dim_fits(x.shape[-1])


def _check(x: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, c: torch.Tensor, s: torch.Tensor,
           q_heads: int) -> None:
    if x.dim() != 4 or not x.is_contiguous():
        raise ValueError(f"qk_norm_rope wants a contiguous [B, T, H, D] tensor, got shape {tuple(x.shape)} "
                         f"with strides {x.stride()}")
    D = x.shape[-1]
    if not _head_dim_fits(D):
        raise ValueError(f"qk_norm_rope wants a power-of-two head dim, got {D}")
    if not 0 < q_heads < x.shape[2]:
        raise ValueError(f"qk_norm_rope: q_heads must leave at least one head of keys, got {q_heads} of {x.shape[2]}")
    if wq.shape != (D,) or wk.shape != (D,) or c.shape != s.shape or c.shape[1] != D or c.shape[0] < x.shape[1]:
        raise ValueError(f"qk_norm_rope: weights {tuple(wq.shape)}/{tuple(wk.shape)} and tables "
                         f"{tuple(c.shape)}/{tuple(s.shape)} do not fit x {tuple(x.shape)}")
    if c.dtype != torch.float32 or s.dtype != torch.float32 or not (c.is_contiguous() and s.is_contiguous()):
        raise ValueError("qk_norm_rope wants contiguous fp32 tables")


@torch.library.custom_op("blueberry::qk_norm_rope", mutates_args=())
def qk_norm_rope(x: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, c: torch.Tensor, s: torch.Tensor, eps: float,
                 q_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused q/k projection's output ``x`` [B, T, Hq + Hk, D] (its first ``q_heads`` heads the queries) to
    (q [B, T, Hq, D], k [B, T, Hk, D]): RMSNorm over each head's D (times ``wq`` or ``wk``), then the rotation of
    adjacent pairs by ``pair_tables``' ``c``/``s`` at each row's position t. One launch for both; x's dtype."""
    _check(x, wq, wk, c, s, q_heads)
    B, T, H, D = x.shape
    from trainer import triton_qk

    q = x.new_empty(B, T, q_heads, D)
    k = x.new_empty(B, T, H - q_heads, D)
    q_programs, k_programs = _programs(x, q_heads)
    triton_qk.qk_fwd[(q_programs + k_programs,)](x, q, k, wq, wk, c, s, q.numel() // D, k.numel() // D, q_programs,
                                                 H, q_heads, T, eps, ROWS=ROWS, HALF=D // 2, num_warps=WARPS)
    return q, k


def _programs(x: torch.Tensor, q_heads: int) -> tuple[int, int]:
    """The kernels' programs for the query rows and for the key rows of ``x`` [B, T, H, D], ROWS rows each."""
    B, T, H, _ = x.shape
    return -(-B * T * q_heads // ROWS), -(-B * T * (H - q_heads) // ROWS)


@qk_norm_rope.register_fake
def _(x, wq, wk, c, s, eps, q_heads):
    B, T, H, D = x.shape
    return x.new_empty(B, T, q_heads, D), x.new_empty(B, T, H - q_heads, D)


@torch.library.custom_op("blueberry::qk_norm_rope_backward", mutates_args=())
def qk_norm_rope_backward(gq: torch.Tensor, gk: torch.Tensor, x: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor,
                          c: torch.Tensor, s: torch.Tensor, eps: float, q_heads: int
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of ``qk_norm_rope`` with respect to ``x`` (one tensor: the fused projection's gradient, with no
    copy to join the q and k parts), and each norm weight's gradient as per-program partials [D, programs] in fp32,
    whose sums over the programs (``_backward``) are the weights' gradients. The sums are left outside the op so
    that inductor compiles them into the backward graph: as ATen's reduction inside the op it took 7.1 us a call,
    64 calls a step at b4 on an H200 (``reduce_kernel`` in ``bench/results/dec01b/call3-host/profile/kernels-b4.txt``)."""
    from trainer import triton_qk

    B, T, H, D = x.shape
    gq = gq if gq.stride(-1) == 1 else gq.contiguous()
    gk = gk if gk.stride(-1) == 1 else gk.contiguous()
    gx = torch.empty_like(x)
    q_programs, k_programs = _programs(x, q_heads)
    pq = torch.empty(D, q_programs, device=x.device, dtype=torch.float32)  # column-major partials
    pk = torch.empty(D, k_programs, device=x.device, dtype=torch.float32)
    triton_qk.qk_bwd[(q_programs + k_programs,)](
        x, gq, gk, gx, wq, wk, c, s, pq, pk, B * T * q_heads, B * T * (H - q_heads), q_programs, k_programs, H,
        q_heads, T, eps, gq.stride(0), gq.stride(1), gq.stride(2), gk.stride(0), gk.stride(1), gk.stride(2),
        ROWS=ROWS, HALF=D // 2, num_warps=WARPS)
    return gx, pq, pk


@qk_norm_rope_backward.register_fake
def _(gq, gk, x, wq, wk, c, s, eps, q_heads):
    D = x.shape[-1]
    q_programs, k_programs = _programs(x, q_heads)
    return (torch.empty_like(x), x.new_empty(D, q_programs, dtype=torch.float32),
            x.new_empty(D, k_programs, dtype=torch.float32))


def _setup(ctx, inputs, output):
    x, wq, wk, c, s, eps, q_heads = inputs
    ctx.save_for_backward(x, wq, wk, c, s)
    ctx.eps, ctx.q_heads = eps, q_heads


def _backward(ctx, gq, gk):
    x, wq, wk, c, s = ctx.saved_tensors
    B, T, H, D = x.shape
    if gq is None:
        gq = x.new_zeros(B, T, ctx.q_heads, D)
    if gk is None:
        gk = x.new_zeros(B, T, H - ctx.q_heads, D)
    gx, pq, pk = qk_norm_rope_backward(gq, gk, x, wq, wk, c, s, ctx.eps, ctx.q_heads)
    return gx, pq.sum(1).to(wq.dtype), pk.sum(1).to(wk.dtype), None, None, None, None


qk_norm_rope.register_autograd(_backward, setup_context=_setup)


# --- cross-entropy of the output head ---------------------------------------------------------------------------

# columns per block and warps per program of the forward kernel (one program a row, BLOCK columns a loop step), of
# the forward that also writes the gradient (the chunked loss's) and of the gradient kernel (one program per BLOCK
# columns of a row). On an H200 (bench/loss_variants.py, bench/results/dec01/call1-gramce/loss), at b4 (8,188 x
# 49,152 bf16 logits) and b32 (65,504 rows): forward 4096x4 198 / 1485 us (8192x8 206 / 1585, 4096x8 219 / 1663);
# forward with the gradient 4096x8 and 8192x8 592 / 4582-4593 us (8192x16 613 / 4802); gradient 2048x4 383 / 3021
# us (4096x4 390 / 3091, 4096x8 396 / 3124)
CE_BLOCK = 4096
CE_WARPS = 4
CE_FUSED_BLOCK = 8192
CE_FUSED_WARPS = 8
CE_GRAD_BLOCK = 2048
CE_GRAD_WARPS = 4


def ce_usable(logits: torch.Tensor) -> bool:
    """Whether the cross-entropy kernels can run on ``logits`` here: Triton on its device, a float dtype."""
    return _triton_runs_on(logits) and logits.dtype.is_floating_point


def _check_ce(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if logits.dim() != 2 or logits.stride(1) != 1 or not logits.dtype.is_floating_point:
        raise ValueError(f"cross_entropy wants float logits [N, V] with unit stride along V, got "
                         f"{logits.dtype} {tuple(logits.shape)} with strides {logits.stride()}")
    if targets.shape != logits.shape[:1] or targets.dtype != torch.int64:
        raise ValueError(f"cross_entropy wants int64 targets [{logits.shape[0]}], got {targets.dtype} "
                         f"{tuple(targets.shape)}")


def _ce_forward(logits: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor | None,
                grad_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per-row loss and logsumexp (fp32 [N]), and with ``scale`` the gradient (softmax - onehot) * scale, in
    ``grad_dtype`` (default the logits')."""
    _check_ce(logits, targets)
    from trainer import triton_ce

    N, V = logits.shape
    targets = targets.contiguous()
    loss = torch.empty(N, device=logits.device, dtype=torch.float32)
    lse = torch.empty_like(loss)
    grad = None if scale is None else torch.empty(logits.shape, dtype=grad_dtype or logits.dtype, device=logits.device)
    if N:
        triton_ce.ce_fwd[(N,)](logits, targets, loss, lse, loss if grad is None else grad,
                               loss if scale is None else scale, V, logits.stride(0), V,
                               BLOCK=CE_BLOCK if grad is None else CE_FUSED_BLOCK, WRITE_GRAD=grad is not None,
                               num_warps=CE_WARPS if grad is None else CE_FUSED_WARPS)
    return loss, lse, grad


def _check_scale(scale: torch.Tensor, logits: torch.Tensor) -> None:
    if scale.dim() != 0 or scale.dtype != torch.float32 or scale.device != logits.device:
        raise ValueError(f"the gradient's scale is a 0-d fp32 tensor on the logits' device, got {scale.dtype} "
                         f"{tuple(scale.shape)} on {scale.device}")


@torch.library.custom_op("blueberry::cross_entropy_mean", mutates_args=())
def cross_entropy_mean(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over the N rows of ``logits`` [N, V] of logsumexp(row) - row[target] (0-d, fp32), and each row's
    logsumexp (fp32 [N], saved for the backward; not differentiable). ``cross_entropy`` returns the first."""
    loss, lse, _ = _ce_forward(logits, targets, None)
    return loss.mean(), lse


@cross_entropy_mean.register_fake
def _(logits, targets):
    return logits.new_empty((), dtype=torch.float32), logits.new_empty(logits.shape[:1], dtype=torch.float32)


@torch.library.custom_op("blueberry::cross_entropy_grad", mutates_args=())
def cross_entropy_grad(logits: torch.Tensor, targets: torch.Tensor, lse: torch.Tensor, scale: torch.Tensor
                       ) -> torch.Tensor:
    """(softmax(logits) - onehot(targets)) * scale from the rows' saved logsumexp, in the logits' dtype;
    ``scale`` is a 0-d fp32 tensor."""
    _check_ce(logits, targets)
    _check_scale(scale, logits)
    from trainer import triton_ce

    N, V = logits.shape
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
    blocks_per_row = -(-V // CE_GRAD_BLOCK)
    if N:
        triton_ce.ce_bwd[(N * blocks_per_row,)](logits, targets.contiguous(), lse.contiguous(), scale, grad, V,
                                                logits.stride(0), V, blocks_per_row, BLOCK=CE_GRAD_BLOCK,
                                                num_warps=CE_GRAD_WARPS)
    return grad


@cross_entropy_grad.register_fake
def _(logits, targets, lse, scale):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _ce_setup(ctx, inputs, output):
    logits, targets = inputs
    _, lse = output
    ctx.mark_non_differentiable(lse)
    ctx.save_for_backward(logits, targets, lse)


def _ce_backward(ctx, grad_loss, grad_lse):
    logits, targets, lse = ctx.saved_tensors
    scale = grad_loss.float() / logits.shape[0]  # stays a tensor: the incoming gradient is never baked in
    return cross_entropy_grad(logits, targets, lse, scale), None


cross_entropy_mean.register_autograd(_ce_backward, setup_context=_ce_setup)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(logits.float(), targets)`` (the mean) by the Triton kernels, logits in their own dtype."""
    return cross_entropy_mean(logits, targets)[0]


@torch.library.custom_op("blueberry::cross_entropy_sum_and_grad", mutates_args=())
def cross_entropy_sum_and_grad(logits: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """For one chunk of the chunked loss: the summed loss over the rows (0-d fp32) and the gradient
    (softmax - onehot) * scale in the logits' dtype, in one kernel; ``scale`` is a 0-d fp32 tensor. No
    autograd: the chunked loss takes its gradients this way, in its forward pass."""
    _check_scale(scale, logits)
    loss, _, grad = _ce_forward(logits, targets, scale)
    return loss.sum(), grad


@cross_entropy_sum_and_grad.register_fake
def _(logits, targets, scale):
    return (logits.new_empty((), dtype=torch.float32),
            torch.empty_like(logits, memory_format=torch.contiguous_format))


@torch.library.custom_op("blueberry::cross_entropy_sum_and_grad_fp8", mutates_args=())
def cross_entropy_sum_and_grad_fp8(logits: torch.Tensor, targets: torch.Tensor, times: torch.Tensor
                                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``cross_entropy_sum_and_grad`` with the gradient (softmax - onehot) * times written in e5m2 by the same
    kernel, for ``runtime.fp8``'s FP8 head (trainer/fp8.py): no bf16 gradient written and read again for its cast.
    ``times`` (a 0-d fp32 tensor) must keep |times| within e5m2's range (57,344): the gradient is not clamped."""
    _check_scale(times, logits)
    loss, _, grad = _ce_forward(logits, targets, times, torch.float8_e5m2)
    return loss.sum(), grad


@cross_entropy_sum_and_grad_fp8.register_fake
def _(logits, targets, times):
    return (logits.new_empty((), dtype=torch.float32),
            torch.empty(logits.shape, dtype=torch.float8_e5m2, device=logits.device))


@torch.library.custom_op("blueberry::cross_entropy_sum", mutates_args=())
def cross_entropy_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The summed loss over the rows (0-d fp32), no gradient: the chunked loss without grad (evaluation)."""
    return _ce_forward(logits, targets, None)[0].sum()


@cross_entropy_sum.register_fake
def _(logits, targets):
    return logits.new_empty((), dtype=torch.float32)


# The FP8 MLP's backward (trainer/fp8.py's mlp; kernel in trainer/triton_mlp.py): tokens and features per program,
# warps, clamp and packing. The fastest of 48 at b64 on an H200 (889 us; bench/results/dec02a/call1-tune), and the
# one the trainer ran with in calls 3 and later there.
MLP_TILE = {"bm": 32, "bh": 128, "warps": 8, "clamp": "none", "pack": False}
MLP_CLAMPS = ("minmax", "where", "none")


def swiglu_backward_formula(gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor, grad_dtype: torch.dtype,
                            h_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What ``swiglu_fp8_backward``'s kernel computes, in PyTorch: (dgu, dgu transposed, h transposed)."""
    H = dh.shape[1]
    g, u, dh = gu[:, :H].float(), gu[:, H:].float(), dh.float()
    sig = torch.sigmoid(g)
    grad_top, h_top = torch.finfo(grad_dtype).max, torch.finfo(h_dtype).max
    dg = (dh * u * sig * (1 + g * (1 - sig)) * times).clamp(-grad_top, grad_top)
    du = (dh * g * sig * times).clamp(-grad_top, grad_top)
    dgu = torch.cat([dg, du], dim=1).to(grad_dtype)
    h = (g * sig * u).clamp(-h_top, h_top).to(h_dtype)
    return dgu, dgu.t().contiguous(), h.t().contiguous()


def swiglu_check(gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor) -> None:
    """Raises ValueError unless gu [M, 2H] and dh [M, H] are contiguous and ``times`` a 0-d fp32 tensor beside them."""
    M, H = dh.shape
    if gu.shape != (M, 2 * H) or not (gu.is_contiguous() and dh.is_contiguous()):
        raise ValueError(f"swiglu_fp8_backward wants contiguous gu [M, 2H] and dh [M, H], got {tuple(gu.shape)} "
                         f"and {tuple(dh.shape)}")
    _check_scale(times, gu)


def swiglu_outputs(gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor, grad_dtype: torch.dtype,
                   h_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inputs checked, and the kernel's three outputs allocated: dgu [M, 2H], dgut [2H, M], ht [H, M]."""
    swiglu_check(gu, dh, times)
    M, H = dh.shape
    return (torch.empty(M, 2 * H, dtype=grad_dtype, device=gu.device),
            torch.empty(2 * H, M, dtype=grad_dtype, device=gu.device),
            torch.empty(H, M, dtype=h_dtype, device=gu.device))


def swiglu_launch(run, gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor, dgu: torch.Tensor,
                  dgut: torch.Tensor, ht: torch.Tensor, tile: dict | None = None) -> None:
    """``triton_mlp.swiglu_bwd`` over the outputs with ``tile`` (default ``MLP_TILE``), launched through ``run``:
    ``torch.library.wrap_triton`` (the op), or the kernel itself (Triton's own launcher: ``bench/fp8_mlp.py``)."""
    from trainer import triton_mlp

    M, H = dh.shape
    t = tile or MLP_TILE
    pack = t["pack"] and dgu.dtype.itemsize == ht.dtype.itemsize == 1 and M % 4 == 0
    if M and H:
        grid = (-(-M // t["bm"]), -(-H // t["bh"]))
        words = (dgut.view(torch.int32), ht.view(torch.int32)) if pack else (dgut, ht)
        run(triton_mlp.swiglu_bwd)[grid](gu, dh, times, dgu, *words, M, H, GRAD_TOP=torch.finfo(dgu.dtype).max,
                                         H_TOP=torch.finfo(ht.dtype).max, BM=t["bm"], BH=t["bh"],
                                         CLAMP=MLP_CLAMPS.index(t["clamp"]), PACK=pack, num_warps=t["warps"])


def _swiglu_fp8_backward(gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The backward of the SwiGLU product h = silu(g) * u for ``runtime.fp8``'s MLP, in one pass: from gu = [g | u]
    [M, 2H] and dh [M, H] (bf16, contiguous) and the 0-d fp32 ``times``, the gradient [dg | du] * times in e5m2
    row-major [M, 2H] and transposed [2H, M], and h again in e4m3, transposed [H, M] (the down projection's weight
    gradient takes it; recomputed here rather than kept from the forward). Without Triton, the formula.

    A ``triton_op``, not a ``custom_op`` as the other kernels here: under torch.compile inductor sees the kernel
    (``wrap_triton``) and launches it from its own code, inside its CUDA graphs too. Launched by Triton from inside
    a custom op instead, in the compiled trainer a quarter of the transposed gradient came out wrong (bitwise
    against the formula, on the same inputs, with the same tile that was right in a process of its own), and runs
    diverged at step 2; the cause was not found (``bench/results/dec02a``, calls 2 and 3)."""
    if not _triton_runs_on(gu):
        swiglu_check(gu, dh, times)
        return swiglu_backward_formula(gu, dh, times, torch.float8_e5m2, torch.float8_e4m3fn)
    out = swiglu_outputs(gu, dh, times, torch.float8_e5m2, torch.float8_e4m3fn)
    swiglu_launch(torch.library.wrap_triton, gu, dh, times, *out)
    return out


def register_swiglu_fp8_backward():
    """``swiglu_fp8_backward``, the op: registered on the first call (``trainer.train.build_shape`` calls it for
    ``runtime.fp8`` before anything is compiled; ``kernels.swiglu_fp8_backward`` calls it on first access), not at
    import. ``triton_op``'s decorator imports dynamo and inductor to look for the kernels in the function, which
    every process that imports the trainer paid at import, in series, whether it compiles or not (a CPU search
    trial, ``python -m trainer --help``): 2.3-3.0 s of ``import trainer.train`` on a 2-core CPU
    (``bench/results/dec02b/cpu-import-time.txt``). A compiling run imports them in a thread while it loads its
    data (``trainer.train._import_compile_stack``)."""
    op = globals().get("swiglu_fp8_backward")
    if op is None:
        op = torch.library.triton_op("blueberry::swiglu_fp8_backward", mutates_args=())(_swiglu_fp8_backward)
        globals()["swiglu_fp8_backward"] = op  # a plain attribute from now on: dynamo reads it as one
    return op


def __getattr__(name: str):
    if name == "swiglu_fp8_backward":
        return register_swiglu_fp8_backward()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
