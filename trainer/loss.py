"""Cross-entropy of the tied output head without materialising the whole logit tensor.

The plain loss (``model.lm_loss``) keeps fp32 logits of every position for the backward pass: at micro-batch
64 x 2047 positions that is 64 x 2047 x 49,152 x 4 bytes = 25.8 GB, plus as much again for their gradient, so
large micro-batches do not fit. Here the positions are taken ``chunk`` at a time; each chunk's logits live
only while its loss and its gradients are computed, in the forward pass itself. Because the loss is a scalar,
its gradient with respect to the hidden states and the head weight is fixed up to the one number the backward
pass brings (the incoming gradient), so backward is a scale, not a recomputation: no extra matmul.

Memory: one chunk of fp32 logits, the hidden-state gradient ([N, d], as large as the hidden states) and an
fp32 weight-gradient accumulator ([V, d]). Without grad (evaluation) only the loss is computed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainer import fp8, kernels


def _ce_sum_and_grad(logits: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy of the logits and (softmax - onehot) * scale, the gradient in the logits' dtype. On CUDA
    one Triton kernel gives both (``trainer.kernels``), each block upcast to fp32; the formula below is the same in
    fp32."""
    if kernels.ce_usable(logits):
        return kernels.cross_entropy_sum_and_grad(logits, targets, scale)
    dtype = logits.dtype
    logits = logits.float()
    lse = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(1, targets[:, None]).squeeze(1)
    # softmax - onehot, times the mean's 1/N: the gradient of the loss with respect to the logits
    grad = torch.exp(logits - lse[:, None])
    grad = grad.scatter_add(1, targets[:, None], torch.full_like(picked[:, None], -1.0))
    return (lse - picked).sum(), (grad * scale).to(dtype)


def _ce_sum_and_grad_fp8(logits: torch.Tensor, targets: torch.Tensor, times: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """``_ce_sum_and_grad`` with the gradient (softmax - onehot) * times in e5m2 (``runtime.fp8``'s head): on CUDA
    written so by the Triton kernel itself."""
    if kernels.ce_usable(logits):
        return kernels.cross_entropy_sum_and_grad_fp8(logits, targets, times)
    loss_sum, grad = _ce_sum_and_grad(logits.float(), targets, times)
    return loss_sum, fp8.cast(grad, fp8.E5M2, 1.0)


def _chunk_loss_and_grads(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For one chunk: summed loss, d(scale * loss)/dh and d(scale * loss)/dweight (fp32); ``scale`` is a 0-d
    fp32 tensor. The logits stay in h's dtype."""
    logits = h @ weight.t()
    loss_sum, grad_logits = _ce_sum_and_grad(logits, targets, scale)
    grad_h = grad_logits @ weight
    grad_w = (grad_logits.t() @ h).float()
    return loss_sum, grad_h, grad_w


def _chunk_loss_and_grads_fp8(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``_chunk_loss_and_grads`` with its matmuls in FP8 (``runtime.fp8``, trainer/fp8.py) where the chunk's rows
    are a multiple of 16, as FP8 matmuls need."""
    if not fp8.fits(h.shape[0], weight):
        return _chunk_loss_and_grads(h, weight, targets, scale)
    return fp8.chunk_loss_and_grads(h, weight, targets, scale, _ce_sum_and_grad_fp8)


def _chunk_loss(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = h @ weight.t()
    if kernels.ce_usable(logits):
        return kernels.cross_entropy_sum(logits, targets)
    return F.cross_entropy(logits.float(), targets, reduction="sum")


class _ChunkedLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int,
                dtype: torch.dtype, kernels: tuple) -> torch.Tensor:
        fused, _ = kernels
        n = h.shape[0]
        hc, w = h.to(dtype), weight.to(dtype)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        scale = torch.full((), 1.0 / n, dtype=torch.float32, device=h.device)  # the mean's 1/N, as a tensor
        for i in range(0, n, chunk):
            loss_sum, gh, gw = fused(hc[i: i + chunk], w, targets[i: i + chunk], scale)
            total += loss_sum
            grad_h[i: i + chunk] = gh
            grad_w += gw
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return total / n

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        grad_w = (grad_w * grad_out).to(ctx.weight_dtype)
        return grad_h * grad_out.to(grad_h.dtype), grad_w, None, None, None, None


def _matmul_dtype(h: torch.Tensor) -> torch.dtype:
    device_type = h.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return h.dtype


# Inductor options for the plain loss's compiled kernels (``model.lm_loss``, the loss at micro-batches of up
# to 32k positions; the chunked loss below keeps inductor's defaults: not measured). Their reductions run over
# the whole vocabulary. When such a kernel needs many registers, inductor adds a half-block variant of it at
# load time and benchmarks the two, in every new process: its autotune cache only covers kernels that had
# several variants when generated. At the record settings on an H200 (Nov 30) that was 0.65 s of each fresh
# start, for variants of 0.932 and 0.970 ms (under 0.1% of a 40 ms step apart). Without the variant the kernel
# is the one inductor generated, and nothing is benchmarked. (Coordinate-descent tuning, tried first, re-tuned
# the kernels in every warm process: 4.3 s.)
LOSS_COMPILE_OPTIONS = {"dynamic_scale_rblock": False}


class ChunkedLMLoss:
    """Callable with ``lm_loss``'s signature, ``(h [B, T, d], weight [V, d], targets [B, T]) -> mean loss``.

    ``compile`` compiles the per-chunk kernels (one shape for full chunks, one for the remainder), which fuses
    the fp32 softmax passes over the chunk's logits into a few kernels. ``fp8`` runs the training chunks' matmuls
    in FP8 (``runtime.fp8``), the chunks a multiple of 16 rows where the positions allow; the loss without gradient
    (evaluation) stays bf16.
    """

    def __init__(self, chunk: int, compile: bool = False, fp8: bool = False) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.chunk, self.fp8 = chunk, fp8
        fused, plain = (_chunk_loss_and_grads_fp8 if fp8 else _chunk_loss_and_grads), _chunk_loss
        if compile:
            fused = torch.compile(fused, dynamic=False)
            plain = torch.compile(plain, dynamic=False)
        self.kernels = (fused, plain)

    def __call__(self, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = h.reshape(-1, h.shape[-1])
        targets = targets.reshape(-1)
        chunk = even_chunk(h.shape[0], self.chunk)
        if self.fp8:
            chunk = -(-chunk // 16) * 16
        # autocast does not reach inside an autograd.Function's kernels the same way in forward and
        # backward, so the matmul precision is fixed here, once, as autocast would have chosen it
        dtype = _matmul_dtype(h)
        with torch.autocast(h.device.type, enabled=False):
            if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
                return _ChunkedLoss.apply(h, weight, targets, chunk, dtype, self.kernels)
            _, plain = self.kernels
            hc, w, n = h.to(dtype), weight.to(dtype), h.shape[0]
            total = sum(plain(hc[i: i + chunk], w, targets[i: i + chunk]) for i in range(0, n, chunk))
            return total / n


def even_chunk(n: int, at_most: int) -> int:
    """The chunk size that splits n positions into the fewest chunks of at most ``at_most``, as evenly as
    possible (so a compiled chunk kernel sees one shape, or two)."""
    pieces = -(-n // at_most)
    return -(-n // pieces)


# Positions per micro-batch above which the trainer chunks the loss by default, and the chunk it uses: batch 16
# x 2047 positions (32,752) keeps the plain loss, which is what was measured fastest there.
AUTO_CHUNK_ABOVE = 32_768
AUTO_CHUNK = 16_384


def loss_chunk_for(setting: int | None, positions: int) -> int:
    """The chunk size the trainer uses (0: the plain loss) for the ``loss_chunk`` setting."""
    if setting is None:
        return AUTO_CHUNK if positions > AUTO_CHUNK_ABOVE else 0
    return setting
