"""``runtime.attention = "fa4"``: the attention's kernels from FlashAttention-4 (``flash_attn.cute``, the
``flash-attn-4`` package: CuTe-DSL kernels for Hopper and Blackwell, compiled at their first call).

PyTorch routes its flash backend (``aten::_scaled_dot_product_flash_attention`` and its backward) to FA4 through
a registry (``torch.nn.attention.activate_flash_attention_impl``); the model then calls that op directly
(``trainer.model.Attention``), so compiled graphs name it and never depend on which backend SDPA would pick.

On an H200 at the model's shapes (bench/results/dec01h-summary.txt): the attention's forward and backward took 9-14%
less time than cuDNN's (the backward 318 against 278 TFLOP/s at b32; call 4), the trainer ran 2.2% faster at b32
and 2.5% at b64, and the record's 6,086,656 tokens stayed within the same-answer check's tolerance of the reference
path (call 6).

PyTorch 2.11's registration unpacks two values from FA4's forward, which returns five (flash-attn-4 4.0.0b36); the
two functions below are the interface it expects, and ``active`` registers FA4 through them. FA4 keeps its compiled
kernels on disk beside the token cache (``<cache>/fa4``) for later processes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from trainer.config import ConfigError

INSTALL = "pip install -e '.[fa4]' (and nvidia-cutlass-dsl[cu13] with a CUDA 13 build of torch)"


def _flash_attn_fwd(*args, **kwargs):
    """FA4's forward, returning (out, lse) only."""
    from flash_attn.cute import interface

    return tuple(interface._flash_attn_fwd(*args, **kwargs)[:2])


def _flash_attn_bwd(*args, **kwargs):
    """FA4's backward: (dq, dk, dv)."""
    from flash_attn.cute import interface

    return interface._flash_attn_bwd(*args, **kwargs)


def check(device: torch.device, cache: Path) -> None:
    """Raises ConfigError, naming the setting, unless FA4 can run here: a CUDA GPU of compute capability 9.x or
    10.x, the package importable (imported here, with its kernel cache at ``cache``)."""
    if device.type != "cuda":
        raise ConfigError(f"attention=fa4 needs a CUDA GPU (Hopper or Blackwell); this run's device is {device.type}; "
                          "use attention=sdpa")
    major, minor = torch.cuda.get_device_capability(device)
    if major not in (9, 10):
        raise ConfigError(f"attention=fa4 runs on compute capability 9.x or 10.x (Hopper, Blackwell); this GPU is "
                          f"{major}.{minor}; use attention=sdpa")
    os.environ.setdefault("FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED", "1")  # read when FA4 is imported
    os.environ.setdefault("FLASH_ATTENTION_CUTE_DSL_CACHE_DIR", str(cache))
    try:
        import flash_attn.cute.interface  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"attention=fa4 needs the flash-attn-4 package ({e}): {INSTALL}") from None


@contextlib.contextmanager
def active() -> Iterator[None]:
    """FA4 behind PyTorch's flash backend while the run lasts, then PyTorch's own kernels again (a worker's next
    trial may be a deterministic one, whose SDPA falls back to the flash backend)."""
    import torch.nn.attention as attention
    from torch.nn.attention import _fa4

    attention.register_flash_attention_impl("FA4", register_fn=lambda: _fa4.register_flash_attention_fa4(__name__))
    attention.activate_flash_attention_impl("FA4")
    try:
        yield
    finally:
        restore = getattr(attention, "restore_flash_attention_impl", None)  # a registry without it keeps FA4 on
        if restore is not None:
            restore()
