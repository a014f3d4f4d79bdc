"""bench/nested_regions.py: a Region run through the nested compile region gives the plain Region's loss and
gradients (eager, where the marker is a plain call)."""

from __future__ import annotations

from dataclasses import replace

import torch


def test_region_through_the_nested_block_matches_the_plain_region(bench_script):
    from trainer.config import PRESETS
    from trainer.model import GPT, Region, next_token_loss

    nested = bench_script("nested_regions")
    torch.manual_seed(0)
    model = GPT(replace(PRESETS["tiny"], n_layers=3))
    model.stages = [Region(list(model.blocks)[:2]), Region(list(model.blocks)[2:])]
    tokens = torch.randint(0, model.cfg.vocab_size, (2, 17))
    want = next_token_loss(model, tokens)
    want.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    plain = Region.forward
    try:
        Region.forward = nested._region_forward
        got = next_token_loss(model, tokens)
        got.backward()
    finally:
        Region.forward = plain
    assert torch.equal(got, want)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
