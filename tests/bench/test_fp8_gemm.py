import subprocess
import sys
from pathlib import Path

from trainer.config import make_config
from trainer.model import count_parameters_for

ROOT = Path(__file__).parents[2]


def test_the_linears_are_the_models_matrices(bench_script):
    fp8 = bench_script("fp8_gemm")
    M, layers = fp8.linears(32)
    assert M == 32 * 2048
    m = make_config("speedrun-4.5").model
    norms = m.n_layers * (2 * m.d_model + 2 * m.head_dim) + m.d_model
    assert sum(d_in * d_out * count for _, d_in, d_out, count in layers) == count_parameters_for(m) - norms
    assert all(d % 16 == 0 for _, d_in, d_out, _ in layers for d in (d_in, d_out))  # FP8 matmuls need it


def test_the_report_sums_a_step(bench_script):
    fp8 = bench_script("fp8_gemm")
    row = {"name": "gate", "in": 512, "out": 2048, "count": 32, "fp8_rowwise_forward_ms": 0.1,
           "bf16_ms": {"forward": 0.2, "input_grad": 0.2, "weight_grad": 0.2},
           "fp8_ms": {"forward": 0.1, "input_grad": 0.1, "weight_grad": 0.1},
           "cast_ms": {"weight": 0.0, "input": 0.05, "grad": 0.05}}
    res = {"batch": 32, "M": 65536, "torch": "x", "device": "GPU", "linears": [row],
           "step_ms": {"bf16_ms": 19.2, "fp8_ms": 9.6, "cast_ms": 3.2}}
    text = fp8.report(res)
    assert "gate      512   2048  32     19.20     9.60     3.20   200->100 200->100 200->100; rowwise fwd 100" in text
    assert "bf16 matmuls 19.2 ms; FP8 matmuls 9.6 ms (2.00x) and their casts 3.2 ms (+6.4 ms saved" in text
    assert "+9.6 ms with every cast fused away" in text


def test_without_an_fp8_gpu_it_says_so(tmp_path):
    proc = subprocess.run([sys.executable, "bench/fp8_gemm.py", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: FP8 matmuls need a GPU of compute capability 8.9 or newer"
