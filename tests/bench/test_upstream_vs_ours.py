import argparse

import pytest
import torch


def test_the_torchtune_stand_in_rotates_adjacent_pairs_by_position(bench_script):
    rope = bench_script("torchtune_rope").RotaryPositionalEmbeddings(dim=16, max_seq_len=32, base=10_000)
    x = torch.randn(2, 11, 3, 16, dtype=torch.bfloat16)
    y = rope(x)
    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    # the same rotation as complex numbers: pair (2i, 2i+1) times exp(1j * pos * base ** (-2i / dim))
    z = torch.view_as_complex(x.float().reshape(2, 11, 3, 8, 2).contiguous())
    angle = torch.arange(11.0)[:, None] * 10_000 ** (-torch.arange(0, 16, 2) / 16)
    want = torch.view_as_real(z * torch.polar(torch.ones_like(angle), angle)[None, :, None, :]).flatten(-2)
    torch.testing.assert_close(y, want.to(torch.bfloat16))
    # decoding positions pick rows of the same table
    pos = torch.tensor([3, 7, 20])
    torch.testing.assert_close(rope(x[:, :3].float(), input_pos=pos)[:, 1], rope(torch.cat(
        [torch.zeros(2, 7, 3, 16), x[:, 1:2].float()], dim=1))[:, 7])
    with pytest.raises(ValueError, match="dim must be even"):
        bench_script("torchtune_rope").RotaryPositionalEmbeddings(dim=7)


@pytest.mark.parametrize("only, sides", [(None, {"ours", "upstream"}), ("upstream", {"upstream"}),
                                         ("ours", {"ours"})])
def test_only_keeps_one_sides_rows(bench_script, only, sides):
    uvo = bench_script("upstream_vs_ours")
    args = argparse.Namespace(warmup=5, steps=30, seed=0, timeout_ours=150, timeout_upstream_eager=150,
                              timeout_upstream_compiled=240, upstream_compiled_b4="no", smoke=False, only=only)
    jobs = uvo.plan(args)
    assert {j["side"] for j in jobs} == sides
    assert [j["name"] for j in jobs if j["side"] == "upstream"] == (
        ["upstream-eager-b4", "upstream-compiled-b16"] if "upstream" in sides else [])
