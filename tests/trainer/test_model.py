import torch

from trainer.config import ELIGIBLE_PARAMS, PRESETS
from trainer.model import (
    GPT,
    apply_rope,
    count_parameters,
    count_parameters_for,
    next_token_loss,
    pair_tables,
    reference_attention,
    rope_tables,
    rotate_pairs,
)


def test_blueberry_151m_has_upstream_parameter_count():
    cfg = PRESETS["blueberry-151m"]
    assert count_parameters_for(cfg) == 151_032_320
    with torch.device("meta"):
        model = GPT(cfg)
    assert count_parameters(model) == 151_032_320
    hidden = sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2 and "embed" not in n)
    assert hidden == 125_829_120  # "125.8M in 2-D hidden matrices"


def test_eligible_presets_in_leaderboard_range():
    lo, hi = ELIGIBLE_PARAMS
    for cfg in PRESETS.values():
        assert count_parameters_for(cfg) == count_parameters(GPT(cfg)) if cfg.name != "blueberry-151m" else True
        if cfg.leaderboard_eligible:
            assert lo <= count_parameters_for(cfg) <= hi


def test_tied_embeddings_and_init():
    torch.manual_seed(0)
    model = GPT(PRESETS["tiny"])
    assert model.embed.weight.std().item() == __import__("pytest").approx(0.02, rel=0.05)
    logits = model(torch.randint(0, 100, (2, 8)))
    assert logits.shape == (2, 8, PRESETS["tiny"].vocab_size)


def test_rope_rotates_adjacent_pairs():
    cos, sin = rope_tables(4, 4, 10000.0)
    x = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 1, 4).expand(1, 1, 4, 4).contiguous()
    y = apply_rope(x, cos, sin)
    # position 1, pair 0 rotates by angle 1 rad: (cos 1, sin 1)
    assert torch.allclose(y[0, 0, 1, :2], torch.tensor([torch.cos(torch.tensor(1.0)), torch.sin(torch.tensor(1.0))]))
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1))


def test_rotate_pairs_is_apply_rope_in_either_layout():
    torch.manual_seed(0)
    cos, sin = rope_tables(16, 8, 10000.0)
    c, s = pair_tables(cos, sin)
    x = torch.randn(2, 16, 3, 8)  # [B, T, H, D]
    ref = apply_rope(x.transpose(1, 2), cos, sin)  # [B, H, T, D]
    assert torch.allclose(rotate_pairs(x, c[:, None], s[:, None]).transpose(1, 2), ref, atol=1e-6)
    assert torch.allclose(rotate_pairs(x.transpose(1, 2), c, s), ref, atol=1e-6)
    # the reference path reads the half tables back out of the pair tables
    assert torch.equal(c[:, ::2], cos) and torch.equal(s[:, 1::2], sin)


def test_fast_attention_matches_the_reference_path():
    torch.manual_seed(0)
    model = GPT(PRESETS["tiny"])
    window = torch.randint(0, PRESETS["tiny"].vocab_size, (2, 33))
    fast, ref = next_token_loss(model, window), next_token_loss(model, window, reference=True)
    assert torch.allclose(fast, ref, rtol=1e-5)


def test_sdpa_gqa_matches_reference_attention():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 8, 16, 8), torch.randn(2, 4, 16, 8), torch.randn(2, 4, 16, 8)
    fast = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert torch.allclose(fast, reference_attention(q, k, v), atol=1e-5)


def test_regions_of_blocks_compute_what_the_blocks_do():
    """``compile_regions`` with 2 blocks a region on a 3-layer model: regions of 2 and 1 blocks, two compiled
    graphs for them (and one for the loss), the same loss and gradients as the uncompiled model; the parameters
    and the state dict are still the blocks'."""
    from dataclasses import replace

    from trainer.model import compile_regions, next_token_loss

    torch.manual_seed(0)
    cfg = replace(PRESETS["tiny"], n_layers=3)
    model = GPT(cfg)
    keys = list(model.state_dict())
    tokens = torch.randint(0, cfg.vocab_size, (2, 33))
    want = next_token_loss(model, tokens)
    want.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compile_regions(model, blocks_per_region=2)
    assert [len(r.members) for r in model.stages] == [2, 1]
    got = next_token_loss(model, tokens)
    got.backward()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs == 3
    assert torch.allclose(got, want, rtol=1e-6)
    for p, g in zip(model.parameters(), grads):
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-7)
    assert list(model.state_dict()) == keys and len(list(model.parameters())) == len(grads)


def test_rope_tables_are_whole_buffers_marked_static_for_cuda_graphs():
    """The tables a forward hands the blocks are the model's buffers themselves, rebuilt when T changes, and with
    ``static_tables`` (CUDA graphs) marked as static inputs, so no graph copies them at each replay."""
    model = GPT(PRESETS["tiny"])
    cos, sin = model._rope(16, torch.device("cpu"))
    assert cos is model.rope_cos and sin is model.rope_sin and cos.shape[0] == 16
    assert not hasattr(cos, "_dynamo_static_input_type")
    assert model._rope(8, torch.device("cpu"))[0].shape[0] == 8
    model.static_tables = True
    cos, sin = model._rope(16, torch.device("cpu"))
    assert cos.shape[0] == 16 and getattr(cos, "_dynamo_static_input_type", None) and \
        getattr(sin, "_dynamo_static_input_type", None)
