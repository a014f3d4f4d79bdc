"""``python -m trainer`` with the blocks' matmuls in FP8, to see whether FP8 keeps the trainer's answer (issue 19).

    python bench/fp8_run.py on --quiet --track speedrun-4.5 --set compile=false ...    # FP8
    python bench/fp8_run.py off --quiet --track speedrun-4.5 --set compile=false ...   # the same process, bf16
    python bench/fp8_run.py fwd-dgrad --quiet --track speedrun-4.5 ...                 # FP8 but the weight gradient
    python bench/fp8_run.py fixed --quiet --track speedrun-4.5 ...                     # FP8, fixed scales
    python bench/fp8_run.py fixed-head --quiet --track speedrun-4.5 ...                # and the head's matmuls
    python bench/fp8_run.py mlp-custom-op --quiet --track speedrun-4.5 ...             # bench/fp8_mlp.py's launch
    python bench/fp8_run.py fp8-linears --quiet --track speedrun-4.5 ...               # the MLP as three linears

The first argument turns FP8 on or off; the rest are ``python -m trainer``'s. With FP8 on, every
``torch.nn.functional.linear`` (the blocks' q/k, v, o, gate, up and down projections; the tied head is a plain
matmul and stays bf16) runs through ``torch._scaled_mm``: the input and the weight in e4m3, the output's gradient
in e5m2, one scale per tensor from its largest magnitude, the forward with fast accumulation, as
``bench/fp8_gemm.py`` timed them. The casts are eager PyTorch, so an FP8 run is slow; it measures the answer, not
the speed. Run both arms with ``compile=false`` so that they differ only in the matmuls. ``fwd-dgrad`` keeps the
weight gradient in bf16 from the bf16 input: no operand is then cast in its transposed layout, the casts that
cost most in the compiled trainer (the activations and output gradients, column-major).

``fixed`` is a speed bound, not a recipe: the inputs and the output gradients are cast with fixed scales
(``FIXED_SCALES``) instead of their largest magnitudes, so each cast is a multiply, a clamp and a conversion that
inductor can fuse into the kernel that makes the tensor, with no reduction over the tensor before it. Its gradient
scale suits b64 only. The recipe that came of it is the trainer's ``runtime.fp8`` (``trainer/fp8.py``), whose scales
follow from what each tensor is; the weights keep their own amax. ``fixed-head`` also runs the chunked loss's three
matmuls (micro-batches above 32k positions) in FP8: the logits' gradient, which is (softmax - onehot) / N, cast with
the fixed scale ``HEAD_GRAD_SCALE`` (right for N near 2^17, micro-batch 64), and the chunks rounded up to a multiple
of 16 rows, as FP8 matmuls need. ``mlp-custom-op`` is the trainer's ``runtime.fp8`` (set here) with its MLP's
backward kernel launched as ``bench/fp8_mlp.py`` launches it (the way that failed in Dec 2's calls 2 and 3; the
tenth session's ``mlp`` arm, its MLP then in bench/fp8_mlp.py); ``fp8-linears`` is ``runtime.fp8`` with each MLP as
three FP8 linears, as before Dec 2.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F

from trainer import fp8 as trainer_fp8

E4M3, E5M2 = trainer_fp8.E4M3, trainer_fp8.E5M2


def require_fp8_gpu() -> None:
    """Exits with one line (status 2) unless a GPU that runs FP8 matmuls (compute capability 8.9 or newer) is here."""
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9):
        print("error: FP8 matmuls need a GPU of compute capability 8.9 or newer", file=sys.stderr)
        sys.exit(2)


def quantize(x: torch.Tensor, fp8: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` in ``fp8`` scaled so that its largest magnitude is the format's largest, and the fp32 scale that
    undoes it (the form ``torch._scaled_mm`` takes)."""
    top = torch.finfo(fp8).max
    amax = x.detach().abs().amax().float().clamp(min=1e-12)
    return (x.float() * (top / amax)).clamp(-top, top).to(fp8), amax / top


# the fixed arm's scales, the fp32 numbers torch._scaled_mm multiplies back: inputs (RMS-normed activations and
# the SiLU product, of order 1) as they are in e4m3 (up to 448), output gradients (guessed of order 1e-6 to 1e-4,
# not measured: the loss is a mean over the batch's positions) times 2^20 in e5m2 (up to 57,344)
FIXED_SCALES = (1.0, 2.0 ** -20)  # (inputs, output gradients)


HEAD_GRAD_SCALE = 2.0 ** -17


def quantize_fixed(x: torch.Tensor, fp8: torch.dtype, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``x / scale`` in ``fp8``, clamped to the format's range, and ``scale`` as the 0-d fp32 tensor that undoes it."""
    q = trainer_fp8.cast(x, fp8, 1.0 / scale)
    return q, torch.full((), scale, dtype=torch.float32, device=x.device)


def scaled_mm(a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor, fast: bool
              ) -> torch.Tensor:
    """(a x scale_a) @ (b x scale_b) in bf16, ``a`` row-major and ``b`` column-major (Hopper's FP8 layout)."""
    return trainer_fp8.scaled_mm(a, b, scale_a, scale_b, torch.bfloat16, fast)


class FP8Linear(torch.autograd.Function):
    """y = x @ w.t() with the matmuls of forward and backward in FP8, the weight gradient too where ``wgrad_fp8``
    (else in bf16, from the input kept in bf16). ``mm`` is the matmul of FP8 operands (``scaled_mm``; a test passes
    one that dequantises and multiplies, to check the layouts and scales on a CPU)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, mm: Callable, wgrad_fp8: bool = True,
                fixed: tuple[float, float] | None = None) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        qx, sx = quantize_fixed(x2, E4M3, fixed[0]) if fixed else quantize(x2, E4M3)
        qw, sw = quantize(w, E4M3)
        ctx.save_for_backward(*((qx, sx) if wgrad_fp8 else (x2, sx)), qw, sw)
        ctx.mm, ctx.wgrad_fp8, ctx.x_shape, ctx.x_dtype, ctx.w_dtype = mm, wgrad_fp8, x.shape, x.dtype, w.dtype
        ctx.fixed = fixed
        y = mm(qx, qw.t(), sx, sw, True)  # [M, in] @ [in, out]: qw is [out, in] row-major, so qw.t() column-major
        return y.view(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x_saved, sx, qw, sw = ctx.saved_tensors
        mm = ctx.mm
        dy2 = dy.reshape(-1, dy.shape[-1])
        qdy, sdy = quantize_fixed(dy2, E5M2, ctx.fixed[1]) if ctx.fixed else quantize(dy2, E5M2)
        dx = mm(qdy, qw.t().contiguous().t(), sdy, sw, False)  # [M, out] @ [out, in]
        if ctx.wgrad_fp8:  # [out, M] @ [M, in]
            dw = mm(qdy.t().contiguous(), x_saved.t().contiguous().t(), sdy, sx, False)
        else:
            dw = dy2.to(torch.bfloat16).t() @ x_saved
        return dx.view(ctx.x_shape).to(ctx.x_dtype), dw.to(ctx.w_dtype), None, None, None


def fp8_linear(mm: Callable = scaled_mm, wgrad_fp8: bool = True, fixed: tuple[float, float] | None = None) -> Callable:
    """A drop-in for ``F.linear`` that takes bias-free 2-D weights whose sides are multiples of 16 (FP8 matmuls need
    them) to ``FP8Linear`` (``fixed``: the inputs' and output gradients' scales, as ``FIXED_SCALES``, else each
    tensor's own), and leaves anything else to the original."""
    original = F.linear

    def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        rows = x.numel() // max(x.shape[-1], 1)
        if bias is not None or weight.dim() != 2 or any(n % 16 for n in (*weight.shape, rows)):
            return original(x, weight, bias)
        with torch.autocast(x.device.type, enabled=False):
            return FP8Linear.apply(x.to(torch.bfloat16), weight.to(torch.bfloat16), mm, wgrad_fp8, fixed)

    return linear


def fp8_chunk_loss_and_grads(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``trainer.loss._chunk_loss_and_grads`` with its three matmuls in FP8 (fixed scales for h and the logits'
    gradient; CUDA only: the loss is the trainer's Triton kernel)."""
    from trainer import kernels

    qh, sh = quantize_fixed(h, E4M3, FIXED_SCALES[0])
    qw, sw = quantize(weight, E4M3)
    logits = scaled_mm(qh, qw.t(), sh, sw, True)
    loss_sum, grad_logits = kernels.cross_entropy_sum_and_grad(logits, targets, scale)
    qg, sg = quantize_fixed(grad_logits, E5M2, HEAD_GRAD_SCALE)
    grad_h = scaled_mm(qg, qw.t().contiguous().t(), sg, sw, False)
    grad_w = trainer_fp8.scaled_mm(qg.t().contiguous(), qh.t().contiguous().t(), sg, sh, torch.float32)
    return loss_sum, grad_h, grad_w


def three_linears(x: torch.Tensor, wg: torch.Tensor, wu: torch.Tensor, wd: torch.Tensor) -> torch.Tensor:
    """``trainer.fp8.mlp`` as three FP8 linears, as ``runtime.fp8`` ran the MLP before Dec 2."""
    return trainer_fp8.linear(F.silu(trainer_fp8.linear(x, wg).float()) * trainer_fp8.linear(x, wu).float(), wd)


def chunk_of_16(n: int, at_most: int) -> int:
    """``trainer.loss.even_chunk`` rounded up to a multiple of 16 rows."""
    even = -(-n // -(-n // at_most))
    return -(-even // 16) * 16


ARMS = {"on": "on", "off": "off", "fwd-dgrad": "on, the weight gradient in bf16",
        "fixed": "on, the inputs and output gradients with fixed scales",
        "fixed-head": "on, fixed scales, the chunked loss's matmuls too",
        "mlp-custom-op": "runtime.fp8, its MLP's backward kernel launched by Triton from a custom op (bench/fp8_mlp.py)",
        "fp8-linears": "runtime.fp8 with each MLP as three FP8 linears (before Dec 2)"}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ARMS:
        sys.exit(f"usage: python bench/fp8_run.py {'|'.join(ARMS)} [python -m trainer's arguments]")
    arm = sys.argv[1]
    if arm != "off":
        require_fp8_gpu()
        # from this file imported under its own name: runpy makes the trainer __main__, and dynamo's guards look
        # up the globals of the code they trace by module name
        import fp8_run

        fixed = fp8_run.FIXED_SCALES if arm.startswith("fixed") else None
        if arm == "fixed-head":
            import trainer.loss

            trainer.loss._chunk_loss_and_grads = fp8_run.fp8_chunk_loss_and_grads
            trainer.loss.even_chunk = fp8_run.chunk_of_16
        if arm == "mlp-custom-op":
            import fp8_mlp

            fp8_mlp.install()
        elif arm == "fp8-linears":
            trainer_fp8.mlp = fp8_run.three_linears
        else:
            torch.nn.functional.linear = fp8_run.fp8_linear(wgrad_fp8=arm != "fwd-dgrad", fixed=fixed)
    print(f"FP8 matmuls in the blocks: {ARMS[arm]}", flush=True)
    sys.argv = ["trainer", *sys.argv[2:], *(["--set", "fp8=true"] if arm in ("mlp-custom-op", "fp8-linears") else [])]
    runpy.run_module("trainer", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
