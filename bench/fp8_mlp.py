"""The launch that failed, kept to reproduce it (issue 19): ``runtime.fp8``'s MLP backward kernel
(``trainer/triton_mlp.py``) launched by Triton from inside a ``torch.library.custom_op``, as the tenth session had it,
instead of the trainer's ``triton_op``, which inductor launches itself.

    BLUEBERRY_MLP_CHECK=1 python bench/fp8_run.py mlp-custom-op --quiet --track speedrun-4.5 \\
        --set micro_batch_size=64 --set max_tokens=786432 ...

What the H200 showed (torch 2.11 and its Triton; ``bench/results/dec01j`` and ``bench/results/dec02a``):

- in a process of its own (``bench/fp8_mlp_tune.py``), every one of 48 tile x clamp x packing choices gave the
  formula on two inputs (Dec 2, call 1: no NaN, transposes equal, under one element in a million unequal),
  though in the tenth session some tiles had not;
- in the compiled trainer at b64, launched this way, the same kernel (32 x 128, 8 warps, no clamp) wrote about a
  quarter of the transposed gradient wrong (133.8M of 536.9M bytes unequal to the formula on the same inputs, 0.3M
  of them NaN) in the warm-up runs of inductor's CUDA graphs (call 3), and runs diverged at step 2 with CUDA graphs
  and without them, also with the device synchronised around the launch (``BLUEBERRY_MLP_SYNC``, call 3). One run
  without CUDA graphs and with the check on every call trained (call 1). PyTorch's and Triton's current streams
  were the same (the check's printed launch context);
- as a ``triton_op`` (the trainer's ``trainer.kernels.swiglu_fp8_backward``), the same kernel trained at b64 with
  CUDA graphs, at 397.3k tokens/s against 385.9k for three FP8 linears (call 3).

The cause was not found. ``install()`` puts this op in place of the trainer's; ``BLUEBERRY_MLP_CHECK=1`` checks each
call outside CUDA graph capture against the formula (the first 8 printed) and prints each new launch context;
``BLUEBERRY_MLP_SYNC=1`` synchronises the device around the launch; ``BLUEBERRY_MLP_FORMULA=1`` makes the op the
PyTorch formula (no kernel); ``BLUEBERRY_MLP_TILE`` (JSON) overrides ``trainer.kernels.MLP_TILE``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading

import torch

from trainer import fp8, kernels

AVAILABLE = importlib.util.find_spec("triton") is not None
CHECK = os.environ.get("BLUEBERRY_MLP_CHECK") == "1"
FORMULA = os.environ.get("BLUEBERRY_MLP_FORMULA") == "1"
SYNC = os.environ.get("BLUEBERRY_MLP_SYNC") == "1"
TILE = {**kernels.MLP_TILE, **json.loads(os.environ.get("BLUEBERRY_MLP_TILE", "{}"))}
_SEEN: set = set()
_COUNTS = [0]


def swiglu_backward(gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor, grad_dtype: torch.dtype,
                    h_dtype: torch.dtype, tile: dict | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kernel launched by Triton itself, outputs in any dtypes (fp32 to check it), or its formula where Triton
    does not run on ``gu``'s device."""
    if not kernels._triton_runs_on(gu):
        kernels.swiglu_check(gu, dh, times)
        return kernels.swiglu_backward_formula(gu, dh, times, grad_dtype, h_dtype)
    out = kernels.swiglu_outputs(gu, dh, times, grad_dtype, h_dtype)
    sync = SYNC and gu.is_cuda and not torch.cuda.is_current_stream_capturing()
    if sync:
        torch.cuda.synchronize()
    kernels.swiglu_launch(lambda kernel: kernel, gu, dh, times, *out, tile=tile or TILE)
    if sync:
        torch.cuda.synchronize()
    return out


@torch.library.custom_op("blueberry_bench::swiglu_fp8_backward", mutates_args=())
def swiglu_fp8_backward(gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``trainer.kernels.swiglu_fp8_backward`` as a custom op whose kernel Triton launches."""
    if FORMULA:
        return kernels.swiglu_backward_formula(gu, dh, times, fp8.E5M2, fp8.E4M3)
    out = swiglu_backward(gu, dh, times, fp8.E5M2, fp8.E4M3)
    if CHECK and gu.is_cuda:
        _check(gu, dh, times, out)
    return out


@swiglu_fp8_backward.register_fake
def _(gu, dh, times):
    M, H = dh.shape
    return (gu.new_empty(M, 2 * H, dtype=fp8.E5M2), gu.new_empty(2 * H, M, dtype=fp8.E5M2),
            gu.new_empty(H, M, dtype=fp8.E4M3))


def _check(gu: torch.Tensor, dh: torch.Tensor, times: torch.Tensor, out: tuple[torch.Tensor, ...]) -> None:
    """BLUEBERRY_MLP_CHECK: outside CUDA graph capture, the kernel's outputs against its formula, printed for the
    first 8 calls (whether the inputs are finite, outputs not finite, outputs unequal to the formula's, bitwise);
    each new launch context (capturing or not, the pointers' alignment, the thread, PyTorch's current and default
    streams, Triton's current stream) printed once."""
    capturing = gu.is_cuda and torch.cuda.is_current_stream_capturing()
    streams = ()
    if gu.is_cuda and AVAILABLE:
        import triton

        streams = (torch.cuda.current_stream().cuda_stream, torch.cuda.default_stream().cuda_stream,
                   triton.runtime.driver.active.get_current_stream(gu.device.index))
    key = (capturing, *(t.data_ptr() % 128 for t in (gu, dh, times, *out)), threading.current_thread().name,
           *streams)
    if key not in _SEEN:
        _SEEN.add(key)
        print(f"fp8_mlp check: new launch context (capturing; pointer mod 128 of gu, dh, times, outputs; thread; "
              f"PyTorch's current and default streams, Triton's) {key}", flush=True)
    if capturing or _COUNTS[0] >= 8:
        return
    _COUNTS[0] += 1
    want = kernels.swiglu_backward_formula(gu, dh, times, fp8.E5M2, fp8.E4M3)
    bad_in = bool((~torch.isfinite(gu)).any() or (~torch.isfinite(dh)).any())
    bad_out = [int((~torch.isfinite(t.float())).sum()) for t in out]
    unequal = [int((a.view(torch.uint8) != b.view(torch.uint8)).sum()) for a, b in zip(out, want)]
    print(f"fp8_mlp check {_COUNTS[0]}: inputs not finite {bad_in}, outputs not finite {bad_out}, unequal to the "
          f"formula {unequal}", flush=True)


def install() -> None:
    """The trainer's FP8 MLP (``trainer.fp8.mlp``) calls this module's op instead of its own."""
    kernels.swiglu_fp8_backward = swiglu_fp8_backward
