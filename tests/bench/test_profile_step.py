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


class _Event:
    def __init__(self, name: str, start_us: float, end_us: float) -> None:
        self._name, self._start, self._end = name, int(start_us * 1000), int(end_us * 1000)

    def name(self) -> str:
        return self._name

    def start_ns(self) -> int:
        return self._start

    def end_ns(self) -> int:
        return self._end


def test_gaps_are_charged_to_the_kernels_around_them():
    # a: 0-10, b overlaps a (5-30), then a 50 us gap before c, then 4 us before d; two "steps"
    events = [_Event("a", 0, 10), _Event("b", 5, 30), _Event("c", 80, 90), _Event("d", 94, 100)]
    gaps = profile_step.gpu_gaps(events, steps=2)
    assert gaps["largest_gaps"][0] == {"after": "b", "before": "c", "ms_per_step": 0.025, "gaps_per_step": 0.5}
    assert gaps["largest_gaps"][1]["after"] == "c" and gaps["largest_gaps"][1]["before"] == "d"
    assert gaps["idle_ms_per_step_by_gap_size"] == {"<5 us": 0.002, "5-20 us": 0.0, "20-100 us": 0.025,
                                                    ">=100 us": 0.0}
    busy = profile_step.gpu_busy(events, steps=2)
    assert busy["gpu_busy_ms_per_step"] == round((30 + 10 + 6) / 1e3 / 2, 3)


@pytest.mark.parametrize("argv,residual,chunked", [
    (["--batch", "4"], "torch.bfloat16", False),
    (["--batch", "32"], "torch.bfloat16", True),   # above 32k positions the trainer's loss is the chunked one
    (["--batch", "4", "--fp32-residual"], "None", False),
])
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")  # torch's own, on importing inductor
def test_the_profiled_step_is_the_trainers(argv, residual, chunked):
    """The profiler builds the model, loss and optimizers with trainer.train.build_shape, so what it profiles is the
    step a run takes (on the CPU here: the same objects, not compiled until called)."""
    import torch

    from trainer.loss import ChunkedLMLoss
    from trainer.model import count_parameters
    from trainer.optim import Muon

    args = profile_step.parser().parse_args([*argv, "--out", "unused"])
    shape, opts = profile_step.build(args, torch.device("cpu"))
    model = shape.model
    assert count_parameters(model) == 151_032_320 and model.working_copies is not None
    assert str(model.residual_dtype) == residual
    assert isinstance(model.lm_loss, ChunkedLMLoss) == chunked
    assert isinstance(opts[0], Muon) and shape.compiled and shape.fast
