import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).parents[2]


def test_the_float32_reference_is_causal_grouped_attention(bench_script):
    fa4 = bench_script("fa4_attention")
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 16, 4, 8, generator=g)  # [B, T, H, D], 4 query heads
    k, v = (torch.randn(2, 16, 2, 8, generator=g) for _ in range(2))  # 2 key/value heads
    want = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True,
                                          enable_gqa=True).transpose(1, 2)
    torch.testing.assert_close(fa4.reference(q, k, v), want, rtol=1e-5, atol=1e-6)
    # the first position sees only itself: its output is its own value, repeated over the group's query heads
    torch.testing.assert_close(fa4.reference(q, k, v)[:, 0], v[:, 0].repeat_interleave(2, dim=1))


def test_causal_flops_count_half_the_square():
    code = ("import sys; sys.path.insert(0, 'bench'); import fa4_attention as f;"
            "print(f.causal_flops(4, 8, 64, 2048)); print(f.shapes())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    fwd, bwd = ast.literal_eval(proc.stdout.splitlines()[0])
    assert fwd == 2 * (2 * 4 * 8 * 2048 * 2048 * 64 / 2)  # QK^T and PV over the lower triangle
    assert bwd == 2.5 * fwd
    assert proc.stdout.splitlines()[1] == "(8, 4, 64, 2048)"  # the record's model: 8 query heads, 4 key/value, of 64


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without a GPU gets")
def test_refuses_to_run_without_a_gpu(tmp_path):
    proc = subprocess.run([sys.executable, "bench/fa4_attention.py", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: bench/fa4_attention.py needs a CUDA GPU"
