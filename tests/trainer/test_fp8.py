"""runtime.fp8 = true on the CPU (torch._scaled_mm runs there too): the FP8 linear, the FP8 MLP and the FP8 chunked
loss against their bf16 counterparts, the model with its matmuls in FP8, the trainer with the FP8 MLP against three
FP8 linears, and the refusals."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from trainer import fp8
from trainer.config import PRESETS, ConfigError, make_config
from trainer.loss import ChunkedLMLoss
from trainer.model import GPT, Attention, Linear, next_token_loss
from trainer.train import check_device_settings, shape_key


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_the_fp8_linear_gives_the_linear_and_its_gradients():
    torch.manual_seed(0)
    rows = 64
    x = torch.randn(2, rows // 2, 32, requires_grad=True)
    w = (torch.randn(48, 32) * 0.02).requires_grad_()
    dy = torch.randn(2, rows // 2, 48) * 0.05 / rows  # the order of a gradient of a mean over the rows
    y = fp8.linear(x, w)
    y.backward(dy)
    x_ref, w_ref = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    y_ref = F.linear(x_ref, w_ref)
    y_ref.backward(dy)
    assert y.dtype == torch.bfloat16 and x.grad.dtype == x.dtype and w.grad.dtype == w.dtype
    # e4m3 keeps 3 mantissa bits and e5m2 2: a few percent, not the 100% of a wrong layout or scale
    assert rel(y, y_ref) < 0.06
    assert rel(x.grad, x_ref.grad) < 0.12
    assert rel(w.grad, w_ref.grad) < 0.12


def test_casts_clamp_to_the_formats_range():
    x = torch.tensor([0.5, -2.0, 1000.0, -1e9])
    assert fp8.cast(x, fp8.E4M3, 1.0).float().tolist() == [0.5, -2.0, 448.0, -448.0]
    assert fp8.cast(x, fp8.E5M2, 4.0).float().tolist() == [2.0, -8.0, 4096.0, -57344.0]
    q, scale = fp8.cast_weight(torch.tensor([[0.01, -0.02]]))
    assert q.float().abs().max().item() == 448.0 and torch.allclose(q.float() * scale, torch.tensor([[0.01, -0.02]]))


def test_shapes_that_do_not_fit_keep_the_bf16_matmul():
    w = torch.randn(48, 32)
    assert fp8.fits(64, w) and not fp8.fits(60, w) and not fp8.fits(64, torch.randn(40, 32))


def _chunked(in_fp8: bool, n: int):
    torch.manual_seed(1)
    h = torch.randn(n, 64, dtype=torch.bfloat16, requires_grad=True)
    w = (torch.randn(320, 64) * 0.05).requires_grad_()
    targets = torch.randint(0, 320, (n,))
    loss = ChunkedLMLoss(48, fp8=in_fp8)(h, w, targets)
    loss.backward()
    return loss.detach(), h.grad, w.grad


@pytest.mark.parametrize("n", [96, 100])  # 100 rows: chunks of 48, 48 and 4, the last one too short for FP8
def test_the_fp8_chunked_loss_gives_the_loss_and_its_gradients(n):
    want = _chunked(False, n)
    got = _chunked(True, n)
    assert abs(got[0].item() - want[0].item()) < 0.01 * want[0].item()
    assert rel(got[1], want[1]) < 0.12 and rel(got[2], want[2]) < 0.12
    assert got[2].dtype == torch.float32


def _model_loss_and_grads(in_fp8: bool):
    torch.manual_seed(0)
    model = GPT(PRESETS["tiny"])
    for module in model.modules():
        if isinstance(module, Linear | Attention):
            module.fp8 = in_fp8
    window = torch.randint(0, PRESETS["tiny"].vocab_size, (2, 16))  # 32 rows a matmul: a multiple of 16
    loss = next_token_loss(model, window)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


# the CPU model is fp32 and the FP8 matmuls write bf16, so the QK-norm sees bf16 with fp32 weights (on a GPU autocast
# makes both bf16)
@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")
def test_the_model_in_fp8_trains_as_in_full_precision(monkeypatch):
    calls, mlps = [], []
    linear, mlp = fp8.linear, fp8.mlp
    monkeypatch.setattr(fp8, "linear", lambda x, w: calls.append(tuple(w.shape)) or linear(x, w))
    monkeypatch.setattr(fp8, "mlp", lambda x, *ws: mlps.append(len(ws)) or mlp(x, *ws))
    want_loss, want_grads = _model_loss_and_grads(False)
    assert calls == [] and mlps == []
    loss, grads = _model_loss_and_grads(True)
    cfg = PRESETS["tiny"]
    assert len(calls) == 3 * cfg.n_layers and mlps == [3] * cfg.n_layers  # v, q and k stacked, o; the MLP whole
    assert abs(loss.item() - want_loss.item()) < 0.01 * want_loss.item()
    for name, g in want_grads.items():
        if name.endswith("proj.weight"):
            assert rel(grads[name], g) < 0.15, name


def test_fp8_is_refused_where_it_cannot_run():
    with pytest.raises(ConfigError, match="fp8=true is a fast-path setting"):
        make_config(overrides={"fp8": True, "reference": True})
    with pytest.raises(ConfigError, match="deterministic=true runs with fp8=false"):
        make_config(overrides={"fp8": True, "deterministic": True})
    with pytest.raises(ConfigError, match="fp8=true needs dtype bf16 or auto"):
        make_config(overrides={"fp8": True, "dtype": "fp32"})
    config = make_config(overrides={"fp8": True})
    with pytest.raises(ConfigError, match=r"^fp8=true needs an NVIDIA GPU of compute capability 8.9 or newer for FP8 "
                                          r"matmuls; this run's device is cpu$"):
        check_device_settings(config)
    assert shape_key(config, torch.device("cpu")) != shape_key(make_config(), torch.device("cpu"))


def test_a_run_refused_for_fp8_leaves_its_bench_clean():
    from trainer.train import TrainingRun, Workbench

    bench = Workbench()
    with pytest.raises(ConfigError, match="fp8=true needs an NVIDIA GPU"):
        next(iter(TrainingRun(make_config(overrides={"fp8": True, "max_tokens": 2048}), bench)))
    assert not bench.dirty and bench.runs == 1 and not bench.shapes


def test_the_fp8_mlp_gives_the_mlp_and_its_gradients():
    torch.manual_seed(0)
    M, d, H = 64, 32, 96
    x = torch.randn(2, M // 2, d, requires_grad=True)
    ws = [(torch.randn(H, d) / d ** 0.5).requires_grad_(), (torch.randn(H, d) / d ** 0.5).requires_grad_(),
          (torch.randn(d, H) / H ** 0.5).requires_grad_()]
    dy = torch.randn(2, M // 2, d) * 0.05 / M  # the order of a gradient of a mean over the rows
    y = fp8.mlp(x, *ws)
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


@pytest.mark.slow
def test_the_trainer_trains_with_the_fp8_mlp_as_with_three_fp8_linears(tmp_path):
    """``python -m trainer`` on the CPU (tiny model, 40 steps; the MLP's backward op is its PyTorch formula here)
    with ``runtime.fp8``, against the same run with each MLP as three FP8 linears: the function's maths, not its
    kernel. The run's device check is lifted for this, since FP8 runs need a GPU."""
    runner = textwrap.dedent("""
        import importlib, runpy, sys
        import torch.nn.functional as F
        from trainer import fp8
        train = importlib.import_module("trainer.train")
        train.check_device_settings = lambda config: None  # FP8 on the CPU: the matmuls run, slowly
        if sys.argv[1] == "linears":
            fp8.mlp = lambda x, wg, wu, wd: fp8.linear(F.silu(fp8.linear(x, wg).float()) * fp8.linear(x, wu).float(), wd)
        sys.argv = ["trainer", "--quiet", "--out", sys.argv[2], "--set", "fp8=true", "--set", "max_tokens=10240",
                    "--set", "stop_rule=never", "--set", "seed=0"]
        runpy.run_module("trainer", run_name="__main__", alter_sys=True)
    """)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    losses = {}
    for arm in ("linears", "mlp"):
        out = tmp_path / arm
        proc = subprocess.run([sys.executable, "-c", runner, arm, str(out)], cwd=Path(__file__).parents[2],
                              capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads((out / "result.json").read_text())
        assert result["status"] == "budget_exhausted" and result["steps"] == 40
        losses[arm] = [h["train_loss"] for h in result["history"]]
    diffs = [abs(a - b) for a, b in zip(losses["mlp"], losses["linears"])]
    assert losses["mlp"][0] == pytest.approx(losses["linears"][0], abs=1e-3)  # the same weights and data
    assert max(diffs) < 0.05 and losses["mlp"][-1] < losses["mlp"][0] - 1.0  # it trains, as the linears do
