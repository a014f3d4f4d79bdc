import pytest
import torch

from trainer.config import ConfigError, make_config
from trainer.loss import AUTO_CHUNK, ChunkedLMLoss, even_chunk, loss_chunk_for
from trainer.model import lm_loss


def _inputs(seed=0, b=3, t=37, d=16, v=50):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(b, t, d, generator=g).requires_grad_()
    w = (torch.randn(v, d, generator=g) * 0.3).requires_grad_()
    targets = torch.randint(0, v, (b, t), generator=g)
    return h, w, targets


@pytest.mark.parametrize("chunk", [1, 7, 37, 111, 10_000])
def test_chunked_loss_matches_plain_loss_and_gradients(chunk):
    h, w, t = _inputs()
    plain = lm_loss(h, w, t)
    g_plain = torch.autograd.grad(plain * 2.5, (h, w))  # an upstream gradient other than 1 is scaled too
    chunked = ChunkedLMLoss(chunk)(h, w, t)
    g_chunked = torch.autograd.grad(chunked * 2.5, (h, w))
    assert chunked.item() == pytest.approx(plain.item(), rel=1e-6)
    for a, b in zip(g_plain, g_chunked):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_chunked_loss_without_grad_and_under_autocast():
    h, w, t = _inputs(1)
    with torch.no_grad():
        assert ChunkedLMLoss(5)(h, w, t).item() == pytest.approx(lm_loss(h, w, t).item(), rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = lm_loss(h, w, t)
        chunked = ChunkedLMLoss(10)(h, w, t)
        gh, gw = torch.autograd.grad(chunked, (h, w))
    # both multiply in bf16 (autocast's choice); the gradients come back in the parameters' dtype
    assert chunked.item() == pytest.approx(plain.item(), rel=1e-3)
    assert gh.dtype == torch.float32 and gw.dtype == torch.float32


def test_even_chunks_and_the_auto_rule():
    assert even_chunk(65_504, 16_384) == 16_376  # 4 equal chunks, one compiled shape
    assert even_chunk(10, 3) == 3 and even_chunk(10, 100) == 10
    assert loss_chunk_for(None, 16 * 2047) == 0  # batch 16 keeps the plain loss
    assert loss_chunk_for(None, 32 * 2047) == AUTO_CHUNK
    assert loss_chunk_for(0, 64 * 2047) == 0 and loss_chunk_for(999, 10) == 999


def test_loss_chunk_setting_is_validated():
    assert make_config(overrides={"loss_chunk": "auto"}).runtime.loss_chunk is None
    assert make_config(overrides={"loss_chunk": "4096"}).runtime.loss_chunk == 4096
    with pytest.raises(ConfigError, match="loss_chunk must be an integer >= 0"):
        make_config(overrides={"loss_chunk": "-1"})
