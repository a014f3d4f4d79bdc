"""bench/fp8_mlp.py on the CPU: its Triton kernel under the interpreter against its formula, the op's contract, the
one-function MLP against the bf16 MLP, and its installation in the model. (On the H200 the kernel's transposed
stores came out wrong for some tile shapes, and a trainer run with it diverged: the module's docstring.)"""

import importlib
import json
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
def fp8_mlp(monkeypatch):
    """bench/fp8_mlp.py imported once per process (it registers a custom op)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("fp8_mlp")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_the_kernel_gives_its_formula():
    pytest.importorskip("triton")
    body = textwrap.dedent("""
        import torch
        import fp8_mlp as m
        torch.manual_seed(0)
        M, H = 200, 96  # neither a multiple of the tile (64 x 128): the last tiles are masked
        gu = torch.cat([3 * torch.randn(M, H), torch.randn(M, H)], dim=1).bfloat16()
        dh = torch.randn(M, H).bfloat16()
        times = torch.tensor(1000.0)
        # in fp32 the kernel and the formula agree to rounding
        got = m.swiglu_backward(gu, dh, times, torch.float32, torch.float32)
        want = m.swiglu_backward_formula(gu, dh, times, torch.float32, torch.float32)
        assert [t.shape for t in got] == [(M, 2 * H), (2 * H, M), (H, M)]
        for a, b in zip(got, want):
            assert ((a - b).abs().max() / b.abs().max()).item() < 1e-6
        # the op, each way of clamping and storing the transposes: e5m2 gradients, e4m3 h, the transposed gradient
        # the row-major one's transpose exactly
        for clamp in m.CLAMPS:
            for pack in (False, True):
                m.TILE.update(clamp=clamp, pack=pack)
                dgu, dgut, ht = m.swiglu_fp8_backward(gu, dh, times)
                assert (dgu.dtype, dgut.dtype, ht.dtype) == (torch.float8_e5m2, torch.float8_e5m2,
                                                             torch.float8_e4m3fn)
                assert torch.equal(dgut.float(), dgu.float().t()), (clamp, pack)
                # the interpreter's fp32 -> fp8 conversion does not round as a GPU does
                # (tests/trainer/test_kernels.py), so the values within a factor of 2 where they are in the
                # formats' normal ranges
                for q, ref, tiny in ((dgu, want[0], 2.0 ** -14), (ht.t(), want[2].t(), 2.0 ** -6)):
                    normal = ref.abs() >= tiny
                    ratio = q.float()[normal] / ref[normal]
                    assert normal.sum() > ref.numel() // 2 and ((ratio >= 0.5) & (ratio <= 2.0)).all()
                if clamp != "none":  # "none" leaves it to the GPU's saturating conversion, which this is not
                    top = m.swiglu_fp8_backward(gu, dh, torch.tensor(1e12))[0].float()
                    assert top.abs().max().item() == 57344.0 and torch.isfinite(top).all()  # e5m2's largest
        print("ok")
    """)
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=f"{ROOT / 'bench'}{os.pathsep}{ROOT}")
    proc = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


def test_the_op_passes_opcheck(fp8_mlp):
    gu, dh = torch.randn(32, 32), torch.randn(32, 16)
    torch.library.opcheck(fp8_mlp.swiglu_fp8_backward, (gu, dh, torch.tensor(4.0)),
                          test_utils=("test_schema", "test_faketensor"))


def test_the_one_function_mlp_gives_the_mlp_and_its_gradients(fp8_mlp):
    from trainer import fp8

    torch.manual_seed(0)
    M, d, H = 64, 32, 96
    x = torch.randn(2, M // 2, d, requires_grad=True)
    ws = [(torch.randn(H, d) / d ** 0.5).requires_grad_(), (torch.randn(H, d) / d ** 0.5).requires_grad_(),
          (torch.randn(d, H) / H ** 0.5).requires_grad_()]
    dy = torch.randn(2, M // 2, d) * 0.05 / M  # the order of a gradient of a mean over the rows
    y = fp8_mlp.mlp(x, *ws)
    y.backward(dy)
    xr = x.detach().clone().requires_grad_()
    wr = [w.detach().clone().requires_grad_() for w in ws]
    y_ref = F.linear(F.silu(F.linear(xr, wr[0])) * F.linear(xr, wr[1]), wr[2])
    y_ref.backward(dy)
    assert y.dtype == torch.bfloat16 and y.shape == y_ref.shape and x.grad.dtype == x.dtype
    assert rel(y, y_ref) < 0.08
    assert rel(x.grad, xr.grad) < 0.15
    for w, w_ref in zip(ws, wr):
        assert w.grad.dtype == w.dtype and rel(w.grad, w_ref.grad) < 0.15
    # the same maths as three FP8 linears (the gate and up weights share one scale here, so not bit-equal)
    y3 = fp8.linear(F.silu(fp8.linear(x, ws[0]).float()) * fp8.linear(x, ws[1]).float(), ws[2])
    assert rel(y, y3) < 0.05


@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")
def test_install_routes_the_models_fp8_mlps(fp8_mlp, monkeypatch):
    from trainer import model
    from trainer.config import PRESETS

    monkeypatch.setattr(model.SwiGLU, "forward", model.SwiGLU.forward)  # restored after the test
    calls = []
    mlp = fp8_mlp.mlp
    monkeypatch.setattr(fp8_mlp, "mlp", lambda *a: calls.append(a[0].shape) or mlp(*a))
    fp8_mlp.install()
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


@pytest.mark.slow
def test_the_trainer_trains_with_it_as_with_three_fp8_linears(tmp_path):
    """``python -m trainer`` on the CPU (tiny model, 40 steps, the op's PyTorch formula) with ``runtime.fp8`` and its
    MLPs through ``install()``, against the same run with three FP8 linears: the function's maths, not its kernel.
    The run's device check is lifted for this, since FP8 runs need a GPU."""
    runner = textwrap.dedent("""
        import importlib, json, runpy, sys
        train = importlib.import_module("trainer.train")
        train.check_device_settings = lambda config: None  # FP8 on the CPU: the matmuls run, slowly
        if sys.argv[1] == "mlp":
            import fp8_mlp
            fp8_mlp.install()
        sys.argv = ["trainer", "--quiet", "--out", sys.argv[2], "--set", "fp8=true", "--set", "max_tokens=10240",
                    "--set", "stop_rule=never", "--set", "seed=0"]
        runpy.run_module("trainer", run_name="__main__", alter_sys=True)
    """)
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'bench'}{os.pathsep}{ROOT}", CUDA_VISIBLE_DEVICES="")
    losses = {}
    for arm in ("linears", "mlp"):
        out = tmp_path / arm
        proc = subprocess.run([sys.executable, "-c", runner, arm, str(out)], cwd=ROOT, capture_output=True,
                              text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads((out / "result.json").read_text())
        assert result["status"] == "budget_exhausted" and result["steps"] == 40
        losses[arm] = [h["train_loss"] for h in result["history"]]
    diffs = [abs(a - b) for a, b in zip(losses["mlp"], losses["linears"])]
    assert losses["mlp"][0] == pytest.approx(losses["linears"][0], abs=1e-3)  # the same weights and data
    assert max(diffs) < 0.05 and losses["mlp"][-1] < losses["mlp"][0] - 1.0  # it trains, as the linears do


def test_the_check_prints_what_differs_from_the_formula(fp8_mlp, monkeypatch, capsys):
    monkeypatch.setattr(fp8_mlp, "_COUNTS", [0])
    monkeypatch.setattr(fp8_mlp, "_SEEN", set())
    gu, dh, times = torch.randn(64, 64).bfloat16(), torch.randn(64, 32).bfloat16(), torch.tensor(100.0)
    out = fp8_mlp.swiglu_backward_formula(gu, dh, times, torch.float8_e5m2, torch.float8_e4m3fn)
    fp8_mlp._check(gu, dh, times, out)
    wrong = out[1].clone()
    wrong[:3] = float("nan")  # three rows of 64 (the transposed gradient), as the H200's runs wrote them
    fp8_mlp._check(gu, dh, times, (out[0], wrong, out[2]))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "new launch context" in lines[0]  # one context: printed once
    assert lines[1].endswith("outputs not finite [0, 0, 0], unequal to the formula [0, 0, 0]")
    unequal = int((out[1][:3].view(torch.uint8) != wrong[:3].view(torch.uint8)).sum())
    assert lines[2].endswith(f"outputs not finite [0, 192, 0], unequal to the formula [0, {unequal}, 0]")


def test_the_traced_op_is_the_formula_on_the_cpu(fp8_mlp):
    gu, dh, times = torch.randn(32, 32).bfloat16(), torch.randn(32, 16).bfloat16(), torch.tensor(8.0)
    got = fp8_mlp.swiglu_fp8_backward_traced(gu, dh, times)
    want = fp8_mlp.swiglu_backward_formula(gu, dh, times, torch.float8_e5m2, torch.float8_e4m3fn)
    assert all(torch.equal(a.view(torch.uint8), b.view(torch.uint8)) for a, b in zip(got, want))
