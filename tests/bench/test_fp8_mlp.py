"""bench/fp8_mlp.py on the CPU: its custom op (the trainer's MLP backward kernel launched by Triton, the way that
failed on the H200) against the trainer's op under Triton's interpreter, its check, and its installation."""

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[2]


@pytest.fixture
def fp8_mlp(monkeypatch):
    """bench/fp8_mlp.py imported once per process (it registers a custom op)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("fp8_mlp")


def test_the_custom_op_gives_the_trainers_op_bytes():
    pytest.importorskip("triton")
    body = textwrap.dedent("""
        import json, os
        import torch
        import fp8_mlp
        from trainer import kernels
        assert fp8_mlp.TILE == {**kernels.MLP_TILE, "bm": 64}  # BLUEBERRY_MLP_TILE overrides the trainer's
        torch.manual_seed(0)
        M, H = 200, 96
        gu = torch.cat([3 * torch.randn(M, H), torch.randn(M, H)], dim=1).bfloat16()
        dh = torch.randn(M, H).bfloat16()
        times = torch.tensor(1000.0)
        kernels.MLP_TILE.update(bm=64)
        got, want = fp8_mlp.swiglu_fp8_backward(gu, dh, times), kernels.swiglu_fp8_backward(gu, dh, times)
        assert all(torch.equal(a.view(torch.uint8), b.view(torch.uint8)) for a, b in zip(got, want))
        print("ok")
    """)
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=f"{ROOT / 'bench'}{os.pathsep}{ROOT}",
               BLUEBERRY_MLP_TILE='{"bm": 64}')
    proc = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


def test_the_custom_op_passes_opcheck(fp8_mlp):
    gu, dh = torch.randn(32, 32), torch.randn(32, 16)
    torch.library.opcheck(fp8_mlp.swiglu_fp8_backward, (gu, dh, torch.tensor(4.0)),
                          test_utils=("test_schema", "test_faketensor"))


def test_install_puts_the_custom_op_in_the_trainers_mlp(fp8_mlp, monkeypatch):
    from trainer import fp8, kernels

    monkeypatch.setattr(kernels, "swiglu_fp8_backward", kernels.swiglu_fp8_backward)  # restored after the test
    calls = []
    op = fp8_mlp.swiglu_fp8_backward
    monkeypatch.setattr(fp8_mlp, "swiglu_fp8_backward", lambda *a: calls.append(a[0].shape) or op(*a))
    fp8_mlp.install()
    x = torch.randn(32, 16, requires_grad=True)
    fp8.mlp(x, torch.randn(48, 16), torch.randn(48, 16), torch.randn(16, 48)).sum().backward()
    assert calls == [(32, 96)] and torch.isfinite(x.grad).all()


def test_the_check_prints_what_differs_from_the_formula(fp8_mlp, monkeypatch, capsys):
    from trainer import kernels

    monkeypatch.setattr(fp8_mlp, "_COUNTS", [0])
    monkeypatch.setattr(fp8_mlp, "_SEEN", set())
    gu, dh, times = torch.randn(64, 64).bfloat16(), torch.randn(64, 32).bfloat16(), torch.tensor(100.0)
    out = kernels.swiglu_backward_formula(gu, dh, times, torch.float8_e5m2, torch.float8_e4m3fn)
    fp8_mlp._check(gu, dh, times, out)
    fp8_mlp._check(gu, dh, times, out)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "new launch context" in lines[0]  # the same tensors: one context, printed once
    assert all(line.endswith("outputs not finite [0, 0, 0], unequal to the formula [0, 0, 0]") for line in lines[1:])
    wrong = out[1].clone()
    wrong[:3] = float("nan")  # three rows of 64 (the transposed gradient), as the H200's runs wrote them
    fp8_mlp._check(gu, dh, times, (out[0], wrong, out[2]))
    lines = [line for line in capsys.readouterr().out.splitlines() if "new launch context" not in line]
    unequal = int((out[1][:3].view(torch.uint8) != wrong[:3].view(torch.uint8)).sum())
    assert lines == [f"fp8_mlp check 3: inputs not finite False, outputs not finite [0, 192, 0], unequal to the "
                     f"formula [0, {unequal}, 0]"]
