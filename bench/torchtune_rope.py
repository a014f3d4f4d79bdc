"""A stand-in for ``torchtune.modules.RotaryPositionalEmbeddings``, the one thing upstream's ``models/layers.py``
imports from torchtune (which the GPU machine lacks). ``bench/upstream_setup.sh`` copies this file to
``bench/upstream/torchtune/modules/__init__.py``; nothing in the project imports it otherwise.

What it computes is torchtune's documented RoPE: input ``[batch, seq, heads, head_dim]``; each adjacent pair of
channels (2i, 2i+1) is rotated by the angle ``pos * base ** (-2i / dim)``; the rotation runs in float32 and the
result is cast back to the input's dtype. ``input_pos`` (KV-cache decoding) is accepted and used the same way.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RotaryPositionalEmbeddings"]


class RotaryPositionalEmbeddings(nn.Module):
    def __init__(self, dim: int, max_seq_len: int = 4096, base: int = 10_000) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"RotaryPositionalEmbeddings: dim must be even, got {dim}")
        self.dim, self.max_seq_len, self.base = dim, max_seq_len, base
        inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # [dim/2]
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)  # [seq, dim/2]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, *, input_pos: torch.Tensor | None = None) -> torch.Tensor:
        seq = x.shape[1]
        cos = self.cos[:seq] if input_pos is None else self.cos[input_pos]
        sin = self.sin[:seq] if input_pos is None else self.sin[input_pos]
        cos, sin = cos[:, None, :], sin[:, None, :]  # broadcast over heads: [seq, 1, dim/2]
        pairs = x.float().unflatten(-1, (-1, 2))
        even, odd = pairs[..., 0], pairs[..., 1]
        out = torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1).flatten(-2)
        return out.type_as(x)
