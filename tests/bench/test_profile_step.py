"""bench/profile_step.py's kernel kinds (the GPU part runs on the device only)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
_spec = importlib.util.spec_from_file_location("profile_step", Path(__file__).parents[2] / "bench" / "profile_step.py")
profile_step = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(profile_step)


def test_kernels_are_summed_by_kind_per_step_biggest_first():
    kernels = [  # names as the Nov 30 H200 table has them, times in us over 5 steps
        ("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT", 18_000.0),
        ("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_26", 23_000.0),
        ("triton_poi_fused__unsafe_view_mul_silu_silu_backward_view_2", 6_500.0),
        ("Memcpy DtoD (Device -> Device)", 4_000.0),
        ("void at::native::unrolled_elementwise_kernel<at::native::CUDAFunctor_add<float>>", 3_500.0),
        ("some_new_kernel", 500.0),
    ]
    kinds = profile_step.kernel_kinds(kernels, steps=5)
    assert list(kinds) == ["attention (cuDNN / flash)", "GEMM (cuBLAS / CUTLASS)", "fused by inductor (Triton)",
                           "copies and fills", "eager elementwise and reductions (ATen)", "other"]
    assert kinds["attention (cuDNN / flash)"] == 4.6 and kinds["other"] == 0.1
