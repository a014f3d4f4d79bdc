"""FlashAttention-4 (``flash_attn.cute.interface``, the ``flash-attn-4`` package) behind PyTorch's flash backend.

PyTorch's own registration (``torch.nn.attention._fa4``, activated by ``activate_flash_attention_impl("FA4")``) unpacks
two values from FA4's ``_flash_attn_fwd``; flash-attn-4 4.0.0b36 returns five (out, lse, and three that only its
other paths fill), so torch 2.11's registration fails with "too many values to unpack" at the first call. This module
is the interface that registration expects, a thin adapter over FA4's, and ``activate()`` registers FA4 through it.

    import fa4_shim; fa4_shim.activate()     # then SDPA's flash backend runs FA4's kernels
"""

from __future__ import annotations

from flash_attn.cute import interface as _fa4


def _flash_attn_fwd(*args, **kwargs):
    """FA4's forward, returning (out, lse) only."""
    return tuple(_fa4._flash_attn_fwd(*args, **kwargs)[:2])


def _flash_attn_bwd(*args, **kwargs):
    """FA4's backward: (dq, dk, dv)."""
    return _fa4._flash_attn_bwd(*args, **kwargs)


def activate() -> None:
    """Puts FA4 behind SDPA's flash backend for this process, through this adapter."""
    from torch.nn.attention import _fa4 as torch_fa4
    from torch.nn.attention import activate_flash_attention_impl, register_flash_attention_impl

    register_flash_attention_impl("FA4", register_fn=lambda: torch_fa4.register_flash_attention_fa4(__name__))
    activate_flash_attention_impl("FA4")
