import torch

from trainer.config import PRESETS
from trainer.model import GPT
from trainer.optim import Muon, newton_schulz, newton_schulz_transposed, partition


def test_partition_covers_every_parameter_once():
    model = GPT(PRESETS["tiny"])
    hidden, other = partition(model)
    assert len(hidden) + len(other) == len(list(model.parameters()))
    assert all(p.ndim == 2 for p in hidden)
    assert model.embed.weight in other and all(p.ndim == 1 for p in other if p is not model.embed.weight)


def test_newton_schulz_orthogonalises_batched_like_single():
    torch.manual_seed(0)
    G = torch.randn(3, 16, 32)
    batched = newton_schulz(G, 5, torch.float32)
    single = torch.stack([newton_schulz(g, 5, torch.float32) for g in G])
    assert torch.allclose(batched, single, atol=1e-5)
    s = torch.linalg.svdvals(batched[0])
    assert s.min() > 0.5 and s.max() < 1.3  # the quintic drives singular values into roughly [0.7, 1.2]
    tall = newton_schulz(torch.randn(32, 16), 5, torch.float32)
    assert tall.shape == (32, 16)


def test_tall_matrices_iterate_from_the_right_like_upstreams_transpose():
    torch.manual_seed(0)
    for G in (torch.randn(4, 48, 16), torch.randn(4, 16, 48), torch.randn(24, 24)):
        ours = newton_schulz(G, 5, torch.float32)
        assert ours.shape == G.shape and ours.is_contiguous()
        assert torch.allclose(ours, newton_schulz_transposed(G, 5, torch.float32), atol=1e-5)


def test_fast_muon_matches_reference_muon():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(8, 16)) for _ in range(3)] + [torch.nn.Parameter(torch.randn(16, 8))]
    clones = [torch.nn.Parameter(p.detach().clone()) for p in params]
    fast = Muon(params, lr=0.02, ns_dtype=torch.float32)
    ref = Muon(clones, lr=0.02, ns_dtype=torch.float32, reference=True)
    for momentum in (0.95, 0.9, 0.93):  # a warm worker's next trial may bring another momentum
        for opt in (fast, ref):
            opt.param_groups[0]["momentum"] = momentum
        grads = [torch.randn_like(p) for p in params]
        for p, c, g in zip(params, clones, grads):
            p.grad, c.grad = g.clone(), g.clone()
        fast.step()
        ref.step()
    for p, c in zip(params, clones):
        assert torch.allclose(p, c, atol=1e-5)


def test_compiled_muon_compiles_once_per_shape_whatever_the_momentum():
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(8, 16)) for _ in range(2)] + [torch.nn.Parameter(torch.randn(16, 8))]
    clones = [torch.nn.Parameter(p.detach().clone()) for p in params]
    compiled = Muon(params, lr=0.02, ns_dtype=torch.float32, compile_ns=True)
    eager = Muon(clones, lr=0.02, ns_dtype=torch.float32)
    for momentum in (0.95, 0.9, 0.8):
        for opt in (compiled, eager):
            opt.param_groups[0]["momentum"] = momentum
        for p, c in zip(params, clones):
            p.grad = torch.randn_like(p)
            c.grad = p.grad.clone()
        compiled.step()
        eager.step()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2  # one per shape group, no recompile
    for p, c in zip(params, clones):
        assert torch.allclose(p, c, atol=1e-5)
