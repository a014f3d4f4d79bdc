"""``runtime.fp8 = true``: the blocks' matmuls, and the chunked loss's, in FP8 (``torch._scaled_mm``) for large
micro-batches on Hopper-class GPUs (compute capability 8.9 or newer).

Each linear y = x @ w.t() runs its three matmuls in FP8: the forward and the input gradient with e4m3 inputs and
weights, the gradients in e5m2 (wider range, fewer mantissa bits), one scale per tensor, products accumulated in
fp32 and written in bf16. Hopper's FP8 matmul takes its first operand row-major and its second column-major, so the
weight gradient needs the output gradient and the input transposed; those copies are made in FP8, half the bytes of
bf16.

The scales of the activations and of the gradients are fixed, not measured. Measuring them (the tensor's largest
magnitude before the cast) is a reduction over the whole tensor that the cast must wait for; compiled, those
reductions and casts cost more than FP8 saved (b64 on an H200: -4.0% against bf16,
``bench/results/dec01f-summary.txt``). With fixed scales a cast is a multiply, a clamp and a conversion, which
inductor fuses into the kernel that makes the tensor: at b64 and b32 the trainer ran 7.4% faster than in bf16 in one
call (``bench/results/dec01i-summary.txt``, call 2), and faster still once the loss kernel wrote the logits'
gradient in e5m2 itself (call 7). The fixed scales follow from what the tensors are:

- the inputs are RMS-normalised activations, their attention-weighted values and the SiLU product: of order one,
  so they are cast as they are (e4m3 holds magnitudes from 2^-9 to 448; larger ones are clamped);
- the loss is a mean over the micro-batch's positions, so every gradient carries a factor 1/N for N positions;
  the blocks' output gradients are cast times N x 2^10 (``GRAD_BIAS``), which puts a gradient of 0.05 / N (a
  rough estimate of the residual stream's at initialisation, not a measurement) near 50, and e5m2 keeps magnitudes
  from 2^-16 to 57,344: a wide margin both ways, checked only by the answers below;
- the logits' gradient is (softmax - onehot) / N; the loss kernel writes (softmax - onehot) x 2^8
  (``LOGIT_GRAD_BIAS``) in e5m2 itself, at most 256 in magnitude, where the typical probability 1/49,152 becomes
  5e-3, in e5m2's normal range (from 6e-5), and the matmuls take the 1/N back with the scale.

The weights are cast with their own largest magnitude, measured at each forward: the blocks' (1M elements at most)
once a micro-batch, the head's (49,152 x 512, 25M elements) once for each chunk of the loss.

The MLP runs as one function (``mlp``): its gate and up projections are one FP8 matmul each way, and the backward of
the SiLU product is one Triton kernel (``trainer.kernels.swiglu_fp8_backward``) that writes both gradients in e5m2, in
both layouts, where inductor had compiled the three-linear form into a slower kernel (``bench/results/dec02a-summary.txt``).

Evaluation runs the blocks as training does, in FP8; the loss of an evaluation (no gradient) takes its logits in bf16.

The answers: the record's 6,086,656 tokens at b4 within the same-answer check's tolerance of the reference path
(``bench/results/dec01i-summary.txt``, with three FP8 linears in the MLP); b64 over 12,189,696 tokens within 0.005 of
bf16 in step loss and 0.003 in val with ``mlp`` (``bench/results/dec02a-summary.txt``; 0.014 and 0.013 before it).
"""

from __future__ import annotations

import torch

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
GRAD_BIAS = 2.0 ** 10  # the blocks' output gradients are cast times N x GRAD_BIAS
LOGIT_GRAD_BIAS = 2.0 ** 8  # the loss kernel writes (softmax - onehot) x LOGIT_GRAD_BIAS


def cast(x: torch.Tensor, fp8: torch.dtype, times: float | torch.Tensor) -> torch.Tensor:
    """``x * times`` in ``fp8``, clamped to the format's range (a pointwise op: no reduction before it)."""
    top = torch.finfo(fp8).max
    return (x.float() * times).clamp(-top, top).to(fp8)


def cast_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight in e4m3 scaled so that its largest magnitude is e4m3's largest, and the fp32 scale that undoes
    it."""
    top = torch.finfo(E4M3).max
    amax = w.detach().abs().amax().float().clamp(min=1e-12)
    return (w.float() * (top / amax)).clamp(-top, top).to(E4M3), amax / top


def scaled_mm(a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
              out_dtype: torch.dtype, fast: bool = False) -> torch.Tensor:
    """(a x scale_a) @ (b x scale_b): ``a`` row-major, ``b`` column-major, fp32 scales."""
    return torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=out_dtype, use_fast_accum=fast)


def _one(device: torch.device) -> torch.Tensor:
    return torch.ones((), dtype=torch.float32, device=device)


def _output_grad(dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """A block's output gradient [..., n] as [M, n] in e5m2 times M x ``GRAD_BIAS`` (the loss's 1/M undone, so it
    sits in e5m2's range), the 0-d fp32 scale that takes it back, and the factor."""
    dy2 = dy.reshape(-1, dy.shape[-1])
    times = dy2.shape[0] * GRAD_BIAS
    return cast(dy2, E5M2, times), torch.full((), 1.0 / times, dtype=torch.float32, device=dy.device), times


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        qx = cast(x2, E4M3, 1.0)
        qw, sw = cast_weight(w)
        ctx.save_for_backward(qx, qw, sw)
        ctx.x_shape, ctx.x_dtype, ctx.w_dtype = x.shape, x.dtype, w.dtype
        # qw is [out, in] row-major, so qw.t() is [in, out] column-major; the forward accumulates fast, as is usual
        y = scaled_mm(qx, qw.t(), _one(x.device), sw, torch.bfloat16, fast=True)
        return y.view(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        qx, qw, sw = ctx.saved_tensors
        qdy, sdy, _ = _output_grad(dy)
        dx = scaled_mm(qdy, qw.t().contiguous().t(), sdy, sw, torch.bfloat16)  # [M, out] @ [out, in]
        # [out, M] @ [M, in]
        dw = scaled_mm(qdy.t().contiguous(), qx.t().contiguous().t(), sdy, _one(dy.device), ctx.w_dtype)
        return dx.view(ctx.x_shape).to(ctx.x_dtype), dw


def linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``F.linear(x, w)`` (no bias) with its matmuls in FP8, output bf16. Every side must be a multiple of 16
    (``fits``)."""
    with torch.autocast(x.device.type, enabled=False):
        return _Linear.apply(x.to(torch.bfloat16), w.to(torch.bfloat16))


def fits(rows: int, w: torch.Tensor) -> bool:
    """Whether FP8 matmuls take these shapes: the rows of x and both sides of w multiples of 16."""
    return rows % 16 == 0 and w.shape[0] % 16 == 0 and w.shape[1] % 16 == 0


def chunk_loss_and_grads(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor,
                         cross_entropy) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``trainer.loss``'s per-chunk loss and gradients with the three matmuls in FP8: the summed loss, the hidden
    states' gradient (h's dtype) and the head weight's (fp32). ``scale`` is the 0-d fp32 1/N the gradients carry;
    ``cross_entropy(logits, targets, times) -> (loss sum, (softmax - onehot) * times in e5m2)`` is the loss kernel,
    which writes the logits' gradient in FP8 itself."""
    qh = cast(h, E4M3, 1.0)
    qw, sw = cast_weight(weight)
    one = _one(h.device)
    logits = scaled_mm(qh, qw.t(), one, sw, torch.bfloat16, fast=True)
    times = torch.full((), LOGIT_GRAD_BIAS, dtype=torch.float32, device=h.device)
    loss_sum, qg = cross_entropy(logits, targets, times)
    sg = scale / LOGIT_GRAD_BIAS
    grad_h = scaled_mm(qg, qw.t().contiguous().t(), sg, sw, h.dtype)
    grad_w = scaled_mm(qg.t().contiguous(), qh.t().contiguous().t(), sg, one, torch.float32)
    return loss_sum, grad_h, grad_w


class _MLP(torch.autograd.Function):
    """down(silu(x @ wg.t()) * (x @ wu.t())) with its six matmuls in FP8, the gate and up projections as one."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, wg: torch.Tensor, wu: torch.Tensor, wd: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        H = wg.shape[0]
        one = _one(x.device)
        qx = cast(x2, E4M3, 1.0)
        qwgu, swgu = cast_weight(torch.cat([wg, wu]))  # [2H, d], one scale for both
        gu = scaled_mm(qx, qwgu.t(), one, swgu, torch.bfloat16, fast=True)  # [M, 2H]: g then u
        qh = cast(torch.nn.functional.silu(gu[:, :H].float()) * gu[:, H:].float(), E4M3, 1.0)
        qwd, swd = cast_weight(wd)
        y = scaled_mm(qh, qwd.t(), one, swd, torch.bfloat16, fast=True)
        ctx.save_for_backward(qx, gu, qwgu, swgu, qwd, swd)  # not h: the backward's kernel makes it again
        ctx.x_shape, ctx.x_dtype, ctx.w_dtype = x.shape, x.dtype, wg.dtype
        return y.view(*x.shape[:-1], wd.shape[0])

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        from trainer import kernels

        qx, gu, qwgu, swgu, qwd, swd = ctx.saved_tensors
        H = gu.shape[1] // 2
        qdy, sdy, times = _output_grad(dy)
        one = _one(dy.device)
        dh = scaled_mm(qdy, qwd.t().contiguous().t(), sdy, swd, torch.bfloat16)  # [M, d] @ [d, H]
        qdgu, qdgut, qht = kernels.swiglu_fp8_backward(gu, dh, torch.full((), times, dtype=torch.float32,
                                                                          device=dy.device))
        dwd = scaled_mm(qdy.t().contiguous(), qht.t(), sdy, one, ctx.w_dtype)  # [d, M] @ [M, H]
        dx = scaled_mm(qdgu, qwgu.t().contiguous().t(), sdy, swgu, torch.bfloat16)  # [M, 2H] @ [2H, d]
        dwgu = scaled_mm(qdgut, qx.t().contiguous().t(), sdy, one, ctx.w_dtype)  # [2H, M] @ [M, d]
        return dx.view(ctx.x_shape).to(ctx.x_dtype), dwgu[:H], dwgu[H:], dwd


def mlp(x: torch.Tensor, wg: torch.Tensor, wu: torch.Tensor, wd: torch.Tensor) -> torch.Tensor:
    """The SwiGLU MLP down(silu(gate(x)) * up(x)) (bias-free weights [H, d], [H, d], [d, H]) with its matmuls in
    FP8, output bf16; every side a multiple of 16 (``fits``). The gate and up projections are one matmul each way
    (one weight scale for both), the forward keeps their output gu = [g | u] rather than the product, and the
    product's backward is one kernel (``trainer.kernels.swiglu_fp8_backward``) that writes both gradients in e5m2 in
    both layouts and the product again in e4m3, transposed. At b64 on an H200 with SDPA: 397.3k tokens/s against
    385.9k with three FP8 linears (``bench/results/dec02a``, call 3)."""
    with torch.autocast(x.device.type, enabled=False):
        return _MLP.apply(x.to(torch.bfloat16), wg.to(torch.bfloat16), wu.to(torch.bfloat16), wd.to(torch.bfloat16))
