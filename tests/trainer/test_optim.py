import copy

import pytest
import torch

from trainer.config import PRESETS
from trainer.model import GPT, Linear
from trainer.optim import (
    Muon,
    WorkingCopies,
    accumulate,
    build_optimizers,
    clip_coefficient,
    newton_schulz,
    newton_schulz_gram,
    newton_schulz_transposed,
    partition,
    step_scaled,
)


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


def _decaying_spectrum(shape: tuple[int, int], decay: float, n: int = 2) -> torch.Tensor:
    """n matrices with singular values k^-decay, as gradients' spectra fall off."""
    gen = torch.Generator().manual_seed(0)
    s = min(shape)
    U, _ = torch.linalg.qr(torch.randn(n, shape[0], s, generator=gen))
    V, _ = torch.linalg.qr(torch.randn(n, shape[1], s, generator=gen))
    return (U * torch.arange(1, s + 1).float() ** -decay) @ V.mT


def test_gram_newton_schulz_is_the_same_iteration():
    torch.manual_seed(0)
    for G in (torch.randn(3, 64, 16, dtype=torch.float64), torch.randn(3, 16, 64, dtype=torch.float64)):
        want = newton_schulz(G, 5, torch.float64)
        for restart in (3, 1, 99):  # wherever X is rebuilt, and never
            got = newton_schulz_gram(G, 5, torch.float64, restart=restart)
            assert got.shape == G.shape and got.is_contiguous()
            assert torch.allclose(got, want, atol=1e-12), restart


def test_gram_newton_schulz_in_fp16_is_as_accurate_as_the_plain_form():
    for shape in ((256, 64), (64, 256)):
        for decay in (1.0, 2.0):
            G = _decaying_spectrum(shape, decay)
            exact = newton_schulz(G.double(), 5, torch.float64)

            def error(X: torch.Tensor, exact: torch.Tensor = exact) -> float:
                return ((X.double() - exact).norm() / exact.norm()).item()

            plain = error(newton_schulz(G, 5, torch.float16))
            gram = error(newton_schulz_gram(G, 5, torch.float16))
            assert gram < 2.5 * plain, (shape, decay, gram, plain)
            # without the restart the fp16 Gram form drifts: the restart is what keeps it accurate
            assert error(newton_schulz_gram(G, 5, torch.float16, restart=99)) > 4 * plain


def test_fast_muon_matches_reference_muon():
    torch.manual_seed(0)
    # 8 x 16 and 16 x 8 take newton_schulz, 40 x 8 and 8 x 40 (aspect >= GRAM_MIN_ASPECT) newton_schulz_gram
    params = [torch.nn.Parameter(torch.randn(8, 16)) for _ in range(3)] + [torch.nn.Parameter(torch.randn(16, 8))]
    params += [torch.nn.Parameter(torch.randn(40, 8)) for _ in range(2)] + [torch.nn.Parameter(torch.randn(8, 40))]
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
    for momentum, scale in ((0.95, None), (0.9, 0.5), (0.8, 0.25)):
        for opt in (compiled, eager):
            opt.param_groups[0]["momentum"] = momentum
        for p, c in zip(params, clones):
            p.grad = torch.randn_like(p)
            c.grad = p.grad.clone()
        grad_scale = None if scale is None else torch.tensor(scale)
        compiled.step(grad_scale=grad_scale)
        eager.step(grad_scale=grad_scale)
    # one graph per shape group: no recompile for another momentum or clipping coefficient
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2
    for p, c in zip(params, clones):
        assert torch.allclose(p, c, atol=1e-5)


def test_clipping_inside_the_optimizers_is_clip_grad_norm():
    """The trainer's clipping (``clip_coefficient``, applied by ``step_scaled`` where each optimizer reads its grads) moves the
    weights exactly as ``clip_grad_norm_`` followed by the optimizers' steps, clipping or not."""
    # the fused AdamW (CUDA's default on the fast path) takes the coefficient as its grad_scale
    for fast, fused in ((True, False), (True, True), (False, False)):
        for max_norm in (0.05, 1e6):  # the first clips, the second leaves the grads as they are
            torch.manual_seed(0)
            a, b = GPT(PRESETS["tiny"]), GPT(PRESETS["tiny"])
            b.load_state_dict(a.state_dict())
            opts = {}
            for name, model in (("a", a), ("b", b)):
                opts[name] = build_optimizers(model, muon_lr=0.02, adamw_lr=0.01, muon_momentum=0.95,
                                              weight_decay=0.1, fast=fast, ns_dtype=torch.float32,
                                              fused_adamw=fused)
            assert opts["b"][1].defaults["fused"] is fused
            window = torch.randint(0, PRESETS["tiny"].vocab_size, (2, 17))
            for _ in range(2):
                for model in (a, b):
                    logits = model(window[:, :-1])
                    torch.nn.functional.cross_entropy(logits.flatten(0, 1), window[:, 1:].flatten()).backward()
                torch.nn.utils.clip_grad_norm_(list(a.parameters()), max_norm)
                for opt in opts["a"]:
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                scale = clip_coefficient([p.grad for p in b.parameters()], max_norm)
                assert (scale < 1).item() == (max_norm < 1)
                for opt in opts["b"]:
                    step_scaled(opt, scale)
                    opt.zero_grad(set_to_none=True)
            for pa, pb in zip(a.parameters(), b.parameters()):
                assert torch.allclose(pa, pb, rtol=0, atol=1e-6), (fast, fused, max_norm)


def _linears(model):
    return [m for m in model.blocks.modules() if isinstance(m, Linear)]


@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")  # eager rms_norm, bf16 on fp32
def test_working_copies_keep_the_weights_and_follow_init():
    """The masters hold the weights as they were, the Linears' weights are views of them, the working copies are
    their bf16 rounding after construction and after a re-initialisation, and the forward under bf16 autocast
    is the same as casting the fp32 weights."""
    torch.manual_seed(0)
    model = GPT(PRESETS["tiny"])
    plain = copy.deepcopy(model)
    model.working_copies = WorkingCopies(model)
    for mine, theirs in zip(model.parameters(), plain.parameters()):
        assert torch.equal(mine, theirs)
    stacked = {m.untyped_storage().data_ptr() for m in model.working_copies.masters}
    for linear in _linears(model):
        assert linear.weight.untyped_storage().data_ptr() in stacked
        assert linear.working.dtype == torch.bfloat16 and torch.equal(linear.working, linear.weight.bfloat16())
    for m in (model, plain):
        torch.manual_seed(1)
        m.reset_parameters()
    for mine, theirs in zip(model.parameters(), plain.parameters()):
        assert torch.equal(mine, theirs)
    for linear in _linears(model):
        assert torch.equal(linear.working, linear.weight.bfloat16())
    tokens = torch.randint(0, PRESETS["tiny"].vocab_size, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(model(tokens), plain(tokens))


def test_muon_sums_the_working_copies_gradients_in_fp32():
    """Over two micro-batches Muon reads the fp32 sum of the bf16 gradients (autograd would add them in bf16)
    and steps on it; the working copies are the masters' bf16 rounding after the step."""
    torch.manual_seed(0)
    model = GPT(PRESETS["tiny"])
    model.working_copies = WorkingCopies(model)
    opts = build_optimizers(model, muon_lr=0.02, adamw_lr=0.01, muon_momentum=0.95, weight_decay=0.1, fast=True,
                            ns_dtype=torch.float32)
    muon = opts[0]
    leaves = [leaf for group in muon.shape_groups for leaf in group]
    assert all(leaf.dtype == torch.bfloat16 for leaf in leaves)
    sums = [torch.zeros_like(leaf, dtype=torch.float32) for leaf in leaves]
    for _ in range(2):
        window = torch.randint(0, PRESETS["tiny"].vocab_size, (2, 17))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(window[:, :-1])
        torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), window[:, 1:].flatten()).backward()
        for total, leaf in zip(sums, leaves):
            assert leaf.grad.dtype == torch.bfloat16
            total += leaf.grad.float()
        accumulate(opts)
        assert all(leaf.grad is None for leaf in leaves)
    read = torch.cat([g.flatten() for g in muon.gradients()])
    assert read.dtype == torch.float32 and torch.equal(read, torch.cat([t.flatten() for t in sums]))
    before = [m.clone() for m in model.working_copies.masters]
    muon.step()
    assert muon.gradients() == []  # the sums are spent
    for old, masters, working in zip(before, model.working_copies.masters, model.working_copies.working):
        assert not torch.equal(old, masters) and torch.equal(working, masters.bfloat16())


def test_clip_coefficient_takes_bf16_norms_in_fp32():
    """The clipping norm over bf16 and fp32 gradients is the fp32 norm of their values (``_foreach_norm`` alone
    rounds each bf16 tensor's norm to bf16, ~1e-3 off)."""
    torch.manual_seed(0)
    grads = [torch.randn(64, 64).bfloat16() for _ in range(3)] + [torch.randn(100)]
    exact = torch.linalg.vector_norm(torch.cat([g.float().flatten() for g in grads]))
    assert torch.allclose(clip_coefficient(grads, 1.0), 1.0 / (exact + 1e-6), rtol=1e-5, atol=0)
