"""runtime.attention = "fa4" on a machine without FA4 or a GPU: the model's direct flash-op path, FA4's adapter for
PyTorch's registration, the registry's activation and restore, and the refusals."""

import sys
import types

import pytest
import torch
import torch.nn.functional as F

from trainer import fa4
from trainer.config import PRESETS, ConfigError
from trainer.model import GPT, next_token_loss


def _math_attention(q, k, v):
    """Causal attention with the key/value heads repeated, [B, H, T, D] in and out (float32 on the CPU)."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


@pytest.fixture
def cpu_flash_op():
    """PyTorch's flash attention op and its backward given CPU kernels for the test, as trainer/fa4.py gives them FA4's
    on a GPU: the math, with the key/value heads grouped as the flash kernels take them. Records each call's shapes."""
    calls = []
    lib = torch.library.Library("aten", "IMPL", "CPU")

    def forward(query, key, value, dropout_p=0.0, is_causal=False, return_debug_mask=False, *, scale=None):
        calls.append(("forward", tuple(query.shape), tuple(key.shape), is_causal))
        out = _math_attention(query, key, value)
        lse = torch.zeros(query.shape[:3], dtype=torch.float32)
        empty = torch.empty(0)
        return out, lse, None, None, query.shape[2], key.shape[2], empty, empty, empty

    def backward(grad_out, query, key, value, out, logsumexp, cum_seq_q, cum_seq_k, max_q, max_k, dropout_p,
                 is_causal, philox_seed, philox_offset, *, scale=None):
        calls.append(("backward", tuple(grad_out.shape)))
        # below autograd here: the gradients by hand (dS = P * (dP - rowsum(dO * O))), the groups summed back
        group = query.shape[1] // key.shape[1]
        k, v = key.repeat_interleave(group, 1), value.repeat_interleave(group, 1)
        s = query.shape[-1] ** -0.5
        t = query.shape[2]
        scores = (query @ k.transpose(-1, -2) * s).masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), -torch.inf)
        p = scores.softmax(-1)
        d_scores = p * (grad_out @ v.transpose(-1, -2) - (grad_out * (p @ v)).sum(-1, keepdim=True))
        dq = d_scores @ k * s
        dk, dv = d_scores.transpose(-1, -2) @ query * s, p.transpose(-1, -2) @ grad_out
        grouped = (*key.shape[:2], group, *key.shape[2:])
        return dq, dk.view(grouped).sum(2), dv.view(grouped).sum(2)

    lib.impl("_scaled_dot_product_flash_attention", forward)
    lib.impl("_scaled_dot_product_flash_attention_backward", backward)
    yield calls
    del lib


def _loss_and_grads(flash_op: bool):
    torch.manual_seed(0)
    model = GPT(PRESETS["tiny"])
    for block in model.blocks:
        block.attn.flash_op = flash_op
    window = torch.randint(0, PRESETS["tiny"].vocab_size, (2, 17))
    loss = next_token_loss(model, window)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_the_flash_op_path_gives_the_sdpa_paths_loss_and_gradients(cpu_flash_op):
    want_loss, want_grads = _loss_and_grads(flash_op=False)
    assert cpu_flash_op == []  # SDPA never calls the flash op on the CPU
    loss, grads = _loss_and_grads(flash_op=True)
    cfg = PRESETS["tiny"]
    hd = cfg.d_model // cfg.n_heads
    # one forward and one backward per block, the key/value heads grouped (fewer than the query heads), causal
    assert cpu_flash_op.count(("forward", (2, cfg.n_heads, 17, hd), (2, cfg.n_kv_heads, 17, hd), True)) == cfg.n_layers
    assert sum(c[0] == "backward" for c in cpu_flash_op) == cfg.n_layers
    torch.testing.assert_close(loss, want_loss, rtol=1e-6, atol=1e-6)
    for name, g in want_grads.items():
        torch.testing.assert_close(grads[name], g, rtol=1e-5, atol=1e-6, msg=name)


def test_the_adapter_hands_pytorch_the_two_values_it_unpacks(monkeypatch):
    interface = types.ModuleType("flash_attn.cute.interface")
    interface._flash_attn_fwd = lambda *a, **k: ("out", "lse", None, None, None)  # flash-attn-4 4.0.0b36's five
    interface._flash_attn_bwd = lambda *a, **k: ("dq", "dk", "dv")
    cute = types.ModuleType("flash_attn.cute")
    cute.interface = interface
    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))
    monkeypatch.setitem(sys.modules, "flash_attn.cute", cute)
    monkeypatch.setitem(sys.modules, "flash_attn.cute.interface", interface)
    assert fa4._flash_attn_fwd(1, 2, 3, causal=True) == ("out", "lse")
    assert fa4._flash_attn_bwd(1, 2, 3) == ("dq", "dk", "dv")


def test_fa4_is_active_for_the_run_only():
    attention = torch.nn.attention
    before = attention.current_flash_attention_impl()
    with fa4.active():
        assert attention.current_flash_attention_impl() == "FA4"
    assert attention.current_flash_attention_impl() == before is None
    with pytest.raises(RuntimeError), fa4.active():
        raise RuntimeError("a run that fails")
    assert attention.current_flash_attention_impl() is None


def test_refusals_name_the_setting(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match=r"^attention=fa4 needs a CUDA GPU \(Hopper or Blackwell\); this run's device"
                                          r" is cpu; use attention=sdpa$"):
        fa4.check(torch.device("cpu"), tmp_path)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    with pytest.raises(ConfigError, match=r"compute capability 9.x or 10.x \(Hopper, Blackwell\); this GPU is 8.0"):
        fa4.check(torch.device("cuda"), tmp_path)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # not installed
    with pytest.raises(ConfigError, match=r"^attention=fa4 needs the flash-attn-4 package .*pip install -e '\.\[fa4\]'"):
        fa4.check(torch.device("cuda"), tmp_path)
