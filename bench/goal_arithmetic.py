"""What issue 19's 400k tokens/s at the best micro-batch asks of a step, from a saved kernel table.

    python bench/goal_arithmetic.py bench/results/dec01d/call6-tables/profile-new-b32/phases-b32.json \
        > bench/results/goal-arithmetic.txt

It reads the GPU time a step by kind that ``bench/profile_step.py`` measured (CUDA graphs, the trainer's step) and
the model's FLOPs (``trainer/flops.py``): the matmuls' 6·N per token (N counts the tied embedding once, as the
output head uses it) and causal attention's 6·L·T·d. From those: the rate each kind ran at, against the H200's
measured dense bf16 peak, and how much time a step of that micro-batch may take at 400k tokens/s. Arithmetic on
measured figures, nothing re-measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from trainer.config import preset
from trainer.flops import PEAK_FLOPS
from trainer.model import flops_per_token

GOAL = 400_000  # tokens/s


def main() -> None:
    path = Path(sys.argv[1])
    d = json.loads(path.read_text())
    cfg, seq = preset("blueberry-151m"), 2048
    tokens = d["batch"] * seq
    fpt = flops_per_token(cfg, seq)
    kinds = d["gpu_ms_per_step_by_kind"]
    gemm, attn = kinds["GEMM (cuBLAS / CUTLASS)"], kinds["attention (cuDNN / flash)"]
    rest = d["gpu_busy_ms_per_step"] - gemm - attn
    peak = PEAK_FLOPS["H200"]
    budget = tokens / GOAL * 1e3
    gemm_rate = fpt["six_n"] * tokens / (gemm / 1e3)
    attn_rate = fpt["attention"] * tokens / (attn / 1e3)
    print(f"{path} (micro-batch {d['batch']} x {seq} = {tokens:,} tokens a step)")
    print(f"  GPU busy {d['gpu_busy_ms_per_step']:.1f} ms a step, the step {d['step_ms_unsynced']:.1f} ms: "
          f"{tokens / d['step_ms_unsynced'] * 1e3:,.0f} tokens/s under the profiler")
    print(f"  matmuls: {fpt['six_n'] * tokens / 1e12:.1f} TFLOP in {gemm:.1f} ms = {gemm_rate / 1e12:.0f} TFLOP/s, "
          f"{gemm_rate / peak:.0%} of the H200's {peak / 1e12:.0f} (the GEMM time also holds Muon's Newton-Schulz "
          f"matmuls, which 6·N leaves out, so the model's own ran somewhat faster)")
    print(f"  attention: {fpt['attention'] * tokens / 1e12:.1f} TFLOP in {attn:.1f} ms = {attn_rate / 1e12:.0f} "
          f"TFLOP/s")
    print(f"  the rest (norms, RoPE, SiLU, residual adds, the loss's softmax, the optimizers, copies): {rest:.1f} ms")
    print(f"  {GOAL:,} tokens/s allows {budget:.1f} ms a step")
    print(f"    matmuls at the peak itself: {fpt['six_n'] * tokens / peak * 1e3:.1f} ms; matmuls and attention as "
          f"measured: {gemm + attn:.1f} ms, leaving {budget - gemm - attn:.1f} ms for the rest "
          f"({(budget - gemm - attn) / rest:.0%} of its {rest:.1f} ms)")


if __name__ == "__main__":
    main()
