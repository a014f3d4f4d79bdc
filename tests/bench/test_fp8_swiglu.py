"""bench/fp8_swiglu.py on the CPU: its Triton kernel under the interpreter against its formula, the op's contract,
the one-function MLP against the bf16 MLP, and its installation in the model."""

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).parents[2]


@pytest.fixture
def swiglu(monkeypatch):
    """bench/fp8_swiglu.py imported once per process (it registers a custom op)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("fp8_swiglu")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_the_kernel_gives_the_formula_in_both_layouts():
    pytest.importorskip("triton")
    body = textwrap.dedent("""
        import torch
        import fp8_swiglu as s
        torch.manual_seed(0)
        M, H = 200, 96  # neither a multiple of the tile (128 x 64): the last tiles are masked
        g, u = (3 * torch.randn(M, H)).bfloat16(), torch.randn(M, H).bfloat16()
        dh = torch.randn(M, H).bfloat16()
        times = torch.tensor(1000.0)
        for dtype, trans32 in ((torch.float32, False), (torch.float8_e5m2, False), (torch.float8_e5m2, True)):
            s.TILE["trans32"] = trans32  # the tiles transposed in the outputs' dtype, or in fp32 and converted
            got = s.swiglu_grads(g, u, dh, times, dtype)
            want = s.swiglu_grads_formula(g, u, dh, times, dtype)
            assert [t.shape for t in got] == [(M, H), (M, H), (H, M), (H, M)] and all(t.dtype == dtype for t in got)
            # the transposed tiles are the row-major ones, exactly
            assert torch.equal(got[2].float(), got[0].float().t()) and torch.equal(got[3].float(), got[1].float().t())
            if dtype == torch.float32:
                for a, b in zip(got, want):
                    assert ((a - b).abs().max() / b.abs().max()).item() < 1e-6
        big = s.swiglu_grads(g, u, dh, torch.tensor(1e9), torch.float8_e5m2)[0].float()
        assert big.abs().max().item() == 57344.0  # clamped to e5m2's largest, never inf
        print("ok")
    """)
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=f"{ROOT / 'bench'}{os.pathsep}{ROOT}")
    proc = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


def test_the_op_passes_opcheck(swiglu):
    g, u, dh = (torch.randn(32, 16) for _ in range(3))
    torch.library.opcheck(swiglu.swiglu_grads, (g, u, dh, torch.tensor(4.0), torch.float8_e5m2),
                          test_utils=("test_schema", "test_faketensor"))


def test_the_one_function_mlp_gives_the_mlp_and_its_gradients(swiglu):
    torch.manual_seed(0)
    M, d, H = 64, 32, 96
    x = torch.randn(M, d, requires_grad=True)
    ws = [(torch.randn(H, d) * 0.1).requires_grad_(), (torch.randn(H, d) * 0.1).requires_grad_(),
          (torch.randn(d, H) * 0.1).requires_grad_()]
    dy = torch.randn(M, d) * 0.05 / M  # the order of a gradient of a mean over the rows
    y = swiglu.swiglu(x, *ws)
    y.backward(dy)
    xr = x.detach().clone().requires_grad_()
    wr = [w.detach().clone().requires_grad_() for w in ws]
    yr = F.linear(F.silu(F.linear(xr, wr[0])) * F.linear(xr, wr[1]), wr[2])
    yr.backward(dy)
    assert y.dtype == torch.bfloat16 and x.grad.dtype == torch.float32
    assert rel(y, yr) < 0.08
    assert rel(x.grad, xr.grad) < 0.15
    for w, w_ref in zip(ws, wr):
        assert rel(w.grad, w_ref.grad) < 0.15


@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")
def test_install_routes_the_models_fp8_mlps(swiglu, monkeypatch):
    from trainer import model
    from trainer.config import PRESETS

    monkeypatch.setattr(model.SwiGLU, "forward", model.SwiGLU.forward)  # restored after the test
    calls = []
    monkeypatch.setattr(swiglu, "swiglu", lambda *a: calls.append(a[0].shape) or swiglu._SwiGLU.apply(
        a[0].bfloat16(), *(w.bfloat16() for w in a[1:])))
    swiglu.install()
    torch.manual_seed(0)
    net = model.GPT(PRESETS["tiny"])
    window = torch.randint(0, PRESETS["tiny"].vocab_size, (2, 16))
    model.next_token_loss(net, window).backward()
    assert calls == []  # not in FP8: the model's own MLP
    for module in net.modules():
        if isinstance(module, model.Linear | model.Attention):
            module.fp8 = True
    loss = model.next_token_loss(net, window)
    loss.backward()
    assert len(calls) == PRESETS["tiny"].n_layers and torch.isfinite(loss)
