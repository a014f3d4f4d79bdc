"""The Blueberry-Nano GPT, readable top to bottom.

Decoder-only; RMSNorm pre-norm; GQA attention with RMSNorm on queries and keys (QK-norm) and rotary
embeddings on adjacent pairs (torchtune's layout) applied after the QK-norm; SwiGLU MLP; no biases; tied
input/output embeddings; token embeddings scaled by sqrt(d_model); every Linear and the embedding start
from normal(0, 0.02). With the default config this is 151,032,320 parameters, as upstream.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainer import fp8, kernels, stable_keys
from trainer.config import ModelConfig
from trainer.loss import LOSS_COMPILE_OPTIONS


class Linear(nn.Linear):
    """A bias-free ``nn.Linear`` whose forward reads ``working`` when it is set: a bf16 copy of the weight that
    the optimizer rewrites with every update (``trainer.optim.WorkingCopies``), so that no step casts the fp32
    weight to bf16 for its matmul again. Unset (the CPU, fp32 runs, the reference path) it is ``nn.Linear``."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__(d_in, d_out, bias=False)
        self.register_buffer("working", None, persistent=False)
        self.fp8 = False  # the matmuls in FP8 (runtime.fp8; set by the trainer)

    def matrix(self) -> torch.Tensor:
        """The matrix the forward multiplies by: the working copy where there is one, else the weight."""
        return self.weight if self.working is None else self.working

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return project(x, self.matrix(), self.fp8)


def project(x: torch.Tensor, w: torch.Tensor, in_fp8: bool = False) -> torch.Tensor:
    """``F.linear(x, w)`` without bias; with ``in_fp8``, its matmuls in FP8 (trainer/fp8.py) where the shapes fit."""
    if in_fp8 and fp8.fits(x.numel() // x.shape[-1], w):
        return fp8.linear(x, w)
    return F.linear(x, w)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rope_tables(seq_len: int, head_dim: int, base: float, device: torch.device | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape [seq_len, head_dim // 2] in fp32."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def pair_tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``rope_tables``' [T, D/2] tables spread to [T, D] for ``rotate_pairs``: c = (cos_i, cos_i) and
    s = (-sin_i, +sin_i) for the pair (x[2i], x[2i+1])."""
    return cos.repeat_interleave(2, dim=-1), torch.stack((-sin, sin), dim=-1).flatten(-2)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs (x[2i], x[2i+1]) of the last dim by ``rope_tables``' angles; x is [B, H, T, D]
    (or [B, T, H, D] with the tables as [T, 1, D/2]). The reference form of ``rotate_pairs``."""
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)


def rotate_pairs(x: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``apply_rope`` as x * c + swap(x) * s with ``pair_tables``' [T, D] tables, where swap exchanges the two
    elements of each pair: the same rotation, written so that inductor makes one load per input element
    instead of a masked load per half of the stack (b4, H200: the q/k path's forward + backward 101 -> 67 us
    a layer, ``bench/rope_variants.py``, its input copies left out)."""
    xf = x.float()
    swapped = xf.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    return (xf * c + swapped * s).type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.q_proj = Linear(cfg.d_model, cfg.n_heads * cfg.head_dim)
        self.k_proj = Linear(cfg.d_model, cfg.n_kv_heads * cfg.head_dim)
        self.v_proj = Linear(cfg.d_model, cfg.n_kv_heads * cfg.head_dim)
        self.o_proj = Linear(cfg.n_heads * cfg.head_dim, cfg.d_model)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)
        self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)
        # call PyTorch's flash attention op itself rather than SDPA, which picks cuDNN's kernels on Hopper: the trainer
        # sets it for runtime.attention=fa4, which puts FlashAttention-4 behind that op (trainer/fa4.py)
        self.flash_op = False
        self.fp8 = False  # the fused q/k projection in FP8, as the Linears (runtime.fp8; set by the trainer)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, reference: bool = False
                ) -> torch.Tensor:
        """``cos`` and ``sin`` are ``pair_tables``' [T, D] tables."""
        B, T, _ = x.shape
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if reference:
            q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim)
            k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim)
            half_cos, half_sin = cos[:, ::2], sin[:, 1::2]
            q = apply_rope(self.q_norm(q.transpose(1, 2)), half_cos, half_sin)
            k = apply_rope(self.k_norm(k.transpose(1, 2)), half_cos, half_sin)
            y = reference_attention(q, k, v)
        else:
            # q and k from one matmul on the two matrices stacked (their rows are the output features), as
            # [B, T, Hq + Hk, D]: one GEMM forward and two backward instead of two and four. Norm and rotation in
            # that [B, T, H, D] layout, no [B, H, T, D] copy of q and k; the attention takes the transposed views as
            # they are (b4 on an H200: 206k -> 212k tokens/s, bench/results/trainer_speed/nov30g-rope). On CUDA one
            # Triton kernel does both for q and k, and its backward writes the fused projection's gradient whole.
            qk = project(x, torch.cat([self.q_proj.matrix(), self.k_proj.matrix()]), self.fp8)
            qk = qk.view(B, T, self.n_heads + self.n_kv_heads, self.head_dim)
            if kernels.usable(qk):
                q, k = kernels.qk_norm_rope(qk, self.q_norm.weight, self.k_norm.weight, cos, sin, self.q_norm.eps,
                                            self.n_heads)
            else:
                q, k = qk.split([self.n_heads, self.n_kv_heads], dim=2)
                q = rotate_pairs(self.q_norm(q), cos[:, None], sin[:, None])
                k = rotate_pairs(self.k_norm(k), cos[:, None], sin[:, None])
            if self.flash_op:  # the key/value heads stay grouped: the flash kernels take fewer of them than queries
                y = torch.ops.aten._scaled_dot_product_flash_attention(q.transpose(1, 2), k.transpose(1, 2), v,
                                                                       is_causal=True)[0]
            else:
                y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v, is_causal=True,
                                                   enable_gqa=True)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Plain causal attention with K/V heads repeated: the obviously-correct version SDPA must match."""
    groups = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(groups, dim=1)
    v = v.repeat_interleave(groups, dim=1)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    T = q.shape[2]
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = Linear(cfg.d_model, cfg.d_ff)
        self.up_proj = Linear(cfg.d_model, cfg.d_ff)
        self.down_proj = Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_proj.fp8:  # runtime.fp8: the whole MLP as one FP8 function where the shapes fit
            wg, wu, wd = self.gate_proj.matrix(), self.up_proj.matrix(), self.down_proj.matrix()
            if fp8.fits(x.numel() // x.shape[-1], wg) and fp8.fits(16, wd):
                return fp8.mlp(x, wg, wu, wd)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, reference: bool = False
                ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, reference)
        return x + self.mlp(self.mlp_norm(x))


class Region(nn.Module):
    """Consecutive blocks run as one unit, compiled as one graph (``compile_regions``). It registers the blocks it
    runs as its own submodules, but the model keeps it out of its module tree: the parameters, their names and
    the state dict stay the model's ``blocks``."""

    def __init__(self, blocks: list[Block]) -> None:
        super().__init__()
        self.members = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, reference: bool = False
                ) -> torch.Tensor:
        for block in self.members:
            x = block(x, cos, sin, reference)
        return x


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.embed_scale = math.sqrt(cfg.d_model)
        self._rope_len = 0
        self.register_buffer("rope_cos", torch.empty(0), persistent=False)
        self.register_buffer("rope_sin", torch.empty(0), persistent=False)
        self.lm_loss = lm_loss  # replaced by a compiled version in compile_regions
        self.static_tables = False  # the RoPE tables marked as static inputs of compiled graphs (compile_regions)
        # what hidden() runs in order: the blocks, or Regions of them (compile_regions); a plain list, so that the
        # Regions stay out of the module tree
        self.stages: list[nn.Module] = list(self.blocks)
        # the blocks' matrices' bf16 working copies, where the trainer keeps them (trainer.optim.WorkingCopies)
        self.working_copies = None
        # the residual stream's dtype on the fast path (None: the embedding's, fp32); the trainer sets bf16 for
        # bf16 runs, so the norm and residual-add kernels move half the bytes for it (the reference path keeps fp32)
        self.residual_dtype: torch.dtype | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=self.cfg.init_std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        if self.working_copies is not None:
            self.working_copies.refresh()

    def _rope(self, T: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The tables for T positions, the buffers themselves (not slices), so that blocks replayed as CUDA graphs
        can read them in place (``static_tables``)."""
        if self._rope_len != T or self.rope_cos.device != device:
            cos, sin = pair_tables(*rope_tables(T, self.cfg.head_dim, self.cfg.rope_base, device))
            self.rope_cos, self.rope_sin, self._rope_len = cos, sin, T
            if self.static_tables:
                # a CUDA graph copies every input it does not know to stay in place into its own buffer at each
                # replay: for these two 0.5 MB tables, 32 low-occupancy copies a step, ~0.5 ms at the record
                # settings on an H200 (bench/results/dec01b/call1-working/profile-on, _foreach_copy_)
                torch._dynamo.mark_static_address(cos)
                torch._dynamo.mark_static_address(sin)
        return self.rope_cos, self.rope_sin

    def hidden(self, tokens: torch.Tensor, reference: bool = False) -> torch.Tensor:
        """Final-norm hidden states [B, T, d_model] for input tokens [B, T]."""
        cos, sin = self._rope(tokens.shape[1], tokens.device)
        x = self.embed(tokens) * self.embed_scale
        if self.residual_dtype is not None and not reference:
            x = x.to(self.residual_dtype)
        for stage in self.stages:
            x = stage(x, cos, sin, reference)
        return self.final_norm(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, vocab] (tied output head)."""
        return self.hidden(tokens) @ self.embed.weight.t()


def lm_loss(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, reference: bool = False
            ) -> torch.Tensor:
    """Cross-entropy of the tied output head, computed in fp32.

    On CUDA (``kernels.ce_usable``) the logits stay in the matmul's dtype (bf16 under autocast) and the Triton
    kernels upcast them to fp32 block by block, as inductor's kernels of the formula below did; ``reference``
    (and the CPU) keeps the formula."""
    logits = h @ weight.t()
    if not reference and kernels.ce_usable(logits):
        return kernels.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    logits = logits.float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def next_token_loss(model: GPT, window: torch.Tensor, reference: bool = False) -> torch.Tensor:
    """Mean cross-entropy of predicting window[:, 1:] from window[:, :-1] context.

    The model reads the whole window; the last position has no target and is dropped before the
    vocabulary projection (the most expensive matmul), so T-1 positions of each window count.
    """
    h = model.hidden(window, reference)[:, :-1]
    if reference:  # the formula, not the Triton kernels (the chunked loss is a fast-path-only choice)
        return model.lm_loss(h, model.embed.weight, window[:, 1:], reference=True)
    return model.lm_loss(h, model.embed.weight, window[:, 1:])


def compile_regions(model: GPT, cudagraphs: bool = False, blocks_per_region: int = 1) -> None:
    """Compile the blocks, ``blocks_per_region`` at a time, and the loss head in place ("regional" compilation).
    The regions share one compiled graph (a last, shorter region a second), so a cold compile costs one region
    instead of a 32-block graph. ``cudagraphs`` replays each region as a CUDA graph, which removes the per-kernel
    launch cost that bounds small batches; what is left on the host is a cost per region and step (the compiled
    call, the graph's launch, its outputs' bookkeeping), which longer regions divide."""
    stable_keys.tag_with_code()  # compiled graphs keyed on this version of the trainer's code
    mode = "reduce-overhead" if cudagraphs else None
    if blocks_per_region <= 1:
        for block in model.blocks:
            block.compile(dynamic=False, mode=mode)
        model.stages = list(model.blocks)
    else:
        blocks = list(model.blocks)
        model.stages = [Region(blocks[i: i + blocks_per_region]) for i in range(0, len(blocks), blocks_per_region)]
        for region in model.stages:
            region.compile(dynamic=False, mode=mode)
    model.static_tables = cudagraphs
    model._rope_len = 0  # rebuild (and mark) the tables on the next forward
    model.lm_loss = torch.compile(lm_loss, dynamic=False, options=LOSS_COMPILE_OPTIONS)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_parameters_for(cfg: ModelConfig) -> int:
    """Parameter count from the config alone (no allocation), matching ``count_parameters(GPT(cfg))``."""
    d, hd = cfg.d_model, cfg.head_dim
    attn = d * (cfg.n_heads * hd) * 2 + d * (cfg.n_kv_heads * hd) * 2 + 2 * hd
    mlp = 3 * d * cfg.d_ff
    per_block = attn + mlp + 2 * d
    return cfg.vocab_size * d + cfg.n_layers * per_block + d


def flops_per_token(cfg: ModelConfig, seq_len: int) -> dict[str, float]:
    """Training FLOPs per token: the 6·N rule (N = all parameters, as the leaderboard counts them) and the
    causal attention term it leaves out (QK^T and AV: 2·2·T·d per layer forward, half of it masked,
    times 3 for forward + backward)."""
    n = count_parameters_for(cfg)
    attention = 3 * 2 * cfg.n_layers * seq_len * cfg.d_model  # 12·L·T·d / 2 for causal
    return {"six_n": 6.0 * n, "attention": float(attention), "total": 6.0 * n + attention}
