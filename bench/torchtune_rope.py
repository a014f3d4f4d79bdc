"""A stand-in for ``torchtune.modules.RotaryPositionalEmbeddings``, the one thing upstream's ``models/layers.py``
imports from torchtune (which the GPU machine lacks). ``bench/upstream_setup.sh`` copies this file to
``bench/upstream/torchtune/modules/__init__.py``; nothing in the project imports it otherwise.

What it computes is torchtune's documented RoPE, which is the trainer's own reference form
(``trainer.model.rope_tables`` and ``apply_rope``, not the fused ``rotate_pairs`` the trainer runs): input
``[batch, seq, heads, head_dim]``; each adjacent pair of channels (2i, 2i+1) is rotated by the angle
``pos * base ** (-2i / dim)``; the rotation runs in float32 and the result is cast back to the input's dtype.
``input_pos`` (KV-cache decoding) is accepted and used the same way.
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.model import apply_rope, rope_tables

__all__ = ["RotaryPositionalEmbeddings"]


class RotaryPositionalEmbeddings(nn.Module):
    def __init__(self, dim: int, max_seq_len: int = 4096, base: int = 10_000) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"RotaryPositionalEmbeddings: dim must be even, got {dim}")
        self.dim, self.max_seq_len, self.base = dim, max_seq_len, base
        cos, sin = rope_tables(max_seq_len, dim, base)  # [seq, dim/2]
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor, *, input_pos: torch.Tensor | None = None) -> torch.Tensor:
        at = slice(x.shape[1]) if input_pos is None else input_pos
        return apply_rope(x, self.cos[at][:, None, :], self.sin[at][:, None, :])  # tables broadcast over heads
