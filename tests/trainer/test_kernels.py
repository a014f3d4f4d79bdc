"""``trainer.kernels``: the Triton QK-norm + RoPE kernels against the model's PyTorch formula.

The kernels run on the CPU under Triton's interpreter (``TRITON_INTERPRET=1``, read when the kernels are
defined, so each check runs in its own process). On a GPU the same kernels compile for the device; the GPU check
is ``bench/qk_kernel.py`` with ``bench/same_answer.py``.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

_PRELUDE = textwrap.dedent("""
    import torch
    import torch.nn.functional as F
    from trainer import kernels
    from trainer.model import pair_tables, rope_tables, rotate_pairs
    assert kernels.usable(torch.zeros(2, 8)), "the interpreter should make the kernels usable on the CPU"
    assert not kernels.usable(torch.zeros(2, 12)), "a head dim that is not a power of two takes the formula"

    def formula(x, w, c, s, eps):
        return rotate_pairs(F.rms_norm(x, (x.shape[-1],), w, eps), c[:, None], s[:, None])
""")


def _run(body: str) -> str:
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", _PRELUDE + textwrap.dedent(body)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_forward_and_backward_match_the_formula():
    out = _run("""
        torch.manual_seed(0)
        B, T, H, D, eps = 2, 24, 3, 16, 1e-6
        c, s = pair_tables(*rope_tables(32, D, 10000.0))  # tables longer than T, as the model keeps them
        c, s = c[:T], s[:T]
        for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 0.05)):
            x = 3 * torch.randn(B, T, H, D)
            x[0, 0, 0] *= 3e-4  # a row whose mean square is near eps
            x = x.to(dtype)
            w = 1 + 0.2 * torch.randn(D)
            g = torch.randn(B, H, T, D).to(dtype)  # the attention's gradient comes back transposed
            xk, wk = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
            y = kernels.qk_norm_rope(xk, wk, c, s, eps)
            assert y.dtype == dtype and y.shape == x.shape
            y.transpose(1, 2).backward(g)
            xr, wr = x.float().requires_grad_(True), w.clone().requires_grad_(True)
            ref = formula(xr, wr, c, s, eps)
            ref.transpose(1, 2).backward(g.float())
            for name, got, want in (("y", y, ref), ("dx", xk.grad, xr.grad), ("dw", wk.grad, wr.grad)):
                err = ((got.float() - want).abs().max() / want.abs().max()).item()
                assert err < tol, (dtype, name, err)
                print(dtype, name, err)
        print("ok")
    """)
    assert out.strip().endswith("ok")


def test_registered_op_passes_opcheck_and_compiles():
    out = _run("""
        torch.manual_seed(1)
        D = 8
        c, s = pair_tables(*rope_tables(5, D, 10000.0))
        x = torch.randn(2, 5, 2, D, requires_grad=True)
        w = torch.randn(D, requires_grad=True)
        torch.library.opcheck(kernels.qk_norm_rope, (x, w, c, s, 1e-6),
                              test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))

        def f(x, w):
            return kernels.qk_norm_rope(x, w, c, s, 1e-6).square().sum()

        compiled = torch.compile(f, dynamic=False, fullgraph=True)
        want = torch.autograd.grad(f(x, w), (x, w))
        got = torch.autograd.grad(compiled(x, w), (x, w))
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, want))
        print("ok")
    """)
    assert out.strip().endswith("ok")


def test_tiny_model_steps_the_same_with_the_kernels():
    out = _run("""
        from trainer.config import PRESETS
        from trainer.model import GPT, next_token_loss

        def grads(use_kernels):
            kernels_usable = kernels.usable
            if not use_kernels:
                kernels.usable = lambda x: False
            try:
                torch.manual_seed(0)
                model = GPT(PRESETS["tiny"])
                window = torch.randint(0, PRESETS["tiny"].vocab_size, (2, 17), generator=torch.Generator().manual_seed(1))
                loss = next_token_loss(model, window)
                loss.backward()
                return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}
            finally:
                kernels.usable = kernels_usable

        loss_k, grads_k = grads(True)
        loss_f, grads_f = grads(False)
        assert abs(loss_k - loss_f) < 1e-6 * abs(loss_f), (loss_k, loss_f)
        for name, g in grads_f.items():
            err = ((grads_k[name] - g).abs().max() / g.abs().max().clamp_min(1e-12)).item()
            assert err < 1e-4, (name, err)
        assert any("q_norm" in n for n in grads_f)
        print("ok", loss_k)
    """)
    assert out.strip().startswith("ok")
