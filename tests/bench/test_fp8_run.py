import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).parents[2]


def dequantised_mm(a, b, scale_a, scale_b, fast):
    """What torch._scaled_mm computes, on a CPU: the FP8 operands scaled back, multiplied in fp32."""
    return ((a.float() * scale_a) @ (b.float() * scale_b)).to(torch.bfloat16)


@pytest.mark.parametrize("wgrad_fp8,fixed", [(True, False), (False, False), (True, True)])
def test_fp8_linear_computes_the_linear_and_its_gradients(bench_script, wgrad_fp8, fixed):
    fp8 = bench_script("fp8_run")
    torch.manual_seed(0)
    x = torch.randn(2, 16, 32, requires_grad=True)
    w = (torch.randn(48, 32) * 0.02).requires_grad_()
    dy = torch.randn(2, 16, 48) * 1e-5  # of the order FIXED_SCALES expects of an output gradient
    y = fp8.fp8_linear(dequantised_mm, wgrad_fp8=wgrad_fp8, fixed=fp8.FIXED_SCALES if fixed else None)(x, w)
    y.backward(dy)
    x_ref, w_ref = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    F.linear(x_ref, w_ref).backward(dy)
    assert y.shape == (2, 16, 48) and y.dtype == torch.bfloat16
    assert x.grad.shape == x.shape and w.grad.shape == w.shape

    def rel(a, b):
        return ((a.float() - b.float()).norm() / b.float().norm()).item()

    # e4m3 keeps 3 mantissa bits and e5m2 2: a few percent, not the 100% of a wrong layout or scale
    assert rel(y, F.linear(x_ref, w_ref)) < 0.06
    assert rel(x.grad, x_ref.grad) < 0.12
    assert rel(w.grad, w_ref.grad) < (0.12 if wgrad_fp8 else 0.01)  # bf16 from the bf16 input: far closer


def test_the_quantised_tensor_uses_the_formats_range(bench_script):
    fp8 = bench_script("fp8_run")
    x = torch.tensor([[0.5, -2.0], [1.0, 0.25]])
    q, scale = fp8.quantize(x, fp8.E4M3)
    assert q.dtype == torch.float8_e4m3fn
    assert q.float().abs().max().item() == torch.finfo(torch.float8_e4m3fn).max
    assert torch.allclose(q.float() * scale, x)


def test_fixed_scales_are_used_as_given(bench_script):
    fp8 = bench_script("fp8_run")
    x = torch.tensor([[0.5, -2.0], [1000.0, 0.25]])
    q, scale = fp8.quantize_fixed(x, fp8.E4M3, 0.5)
    assert scale.item() == 0.5 and q.dtype == torch.float8_e4m3fn
    assert q.float().tolist() == [[1.0, -4.0], [448.0, 0.5]]  # 2000 clamped to e4m3's largest, not inf


def test_the_fp8_head_gives_the_chunks_loss_and_gradients(bench_script, monkeypatch):
    fp8 = bench_script("fp8_run")
    from trainer import kernels, loss

    def reference_ce(logits, targets, scale):  # the Triton kernel's contract, in PyTorch
        logits = logits.float()
        lse = torch.logsumexp(logits, dim=-1)
        grad = torch.softmax(logits, dim=-1)
        grad[torch.arange(len(targets)), targets] -= 1.0
        return (lse - logits.gather(1, targets[:, None]).squeeze(1)).sum(), (grad * scale).to(torch.bfloat16)

    monkeypatch.setattr(kernels, "cross_entropy_sum_and_grad", reference_ce)
    monkeypatch.setattr(kernels, "ce_usable", lambda logits: True)
    torch.manual_seed(0)
    h = torch.randn(64, 32).to(torch.bfloat16)
    w = (torch.randn(96, 32) * 0.3).to(torch.bfloat16)
    targets = torch.randint(0, 96, (64,))
    scale = torch.tensor(fp8.HEAD_GRAD_SCALE)  # the mean's 1/N for the N the fixed scale is meant for
    got = fp8.fp8_chunk_loss_and_grads(h, w, targets, scale)
    want = loss._chunk_loss_and_grads(h, w, targets, scale)

    def rel(a, b):
        return ((a.float() - b.float()).norm() / b.float().norm()).item()

    assert abs(got[0].item() - want[0].item()) / want[0].item() < 0.01
    assert rel(got[1], want[1]) < 0.12 and rel(got[2], want[2]) < 0.12
    assert got[2].dtype == torch.float32


def test_fp8_chunks_are_multiples_of_16(bench_script):
    fp8 = bench_script("fp8_run")
    from trainer.loss import even_chunk

    for n in (64 * 2047, 32 * 2047, 16 * 2047 + 16):
        chunk = fp8.chunk_of_16(n, 16384)
        assert chunk % 16 == 0 and (n % chunk) % 16 == 0 and chunk >= even_chunk(n, 16384)


def test_other_shapes_keep_the_original_linear(bench_script):
    fp8 = bench_script("fp8_run")
    calls = []
    linear = fp8.fp8_linear(lambda *a: calls.append(a))
    x = torch.randn(3, 32)  # 3 rows: not a multiple of 16
    w = torch.randn(16, 32)
    assert torch.equal(linear(x, w), F.linear(x, w))
    x16, bias = torch.randn(16, 32), torch.randn(16)
    assert torch.equal(linear(x16, w, bias), F.linear(x16, w, bias))  # a bias: not the blocks' matmuls
    assert calls == []


def test_on_needs_an_fp8_gpu_and_off_runs_the_trainer(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "bench/fp8_run.py", "on", "--quiet"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: FP8 matmuls need a GPU of compute capability 8.9 or newer"
    proc = subprocess.run([sys.executable, "bench/fp8_run.py"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and ("usage: python bench/fp8_run.py on|off|fwd-dgrad|fixed|fixed-head|mlp-custom-op|"
                                    "fp8-linears [") in proc.stderr

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "bench/fp8_run.py", "off", "--quiet", "--out", str(out),
                           "--set", "max_tokens=2048"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "FP8 matmuls in the blocks: off" in proc.stdout
    assert json.loads((out / "result.json").read_text())["tokens"] == 2048


def test_three_linears_is_the_mlp_as_three_fp8_linears(bench_script):
    from trainer import fp8

    fp8_run = bench_script("fp8_run")
    torch.manual_seed(0)
    x, wg, wu, wd = torch.randn(32, 16), torch.randn(48, 16), torch.randn(48, 16), torch.randn(16, 48)
    want = fp8.linear(F.silu(fp8.linear(x, wg).float()) * fp8.linear(x, wu).float(), wd)
    assert torch.equal(fp8_run.three_linears(x, wg, wu, wd), want)
    assert ((fp8.mlp(x, wg, wu, wd).float() - want.float()).norm() / want.float().norm()).item() < 0.05
