"""trainer.flops: FLOPs per token with causal attention, the peak table and MFU."""

from __future__ import annotations

import pytest

from trainer.config import PRESETS
from trainer.flops import PEAK_FLOPS, Peak, describe, flops_per_token, mfu, mfu_fields, peak_for
from trainer.model import count_parameters_for


def test_flops_per_token_of_the_151m_model() -> None:
    cfg = PRESETS["blueberry-151m"]
    f = flops_per_token(cfg, 2048)
    assert count_parameters_for(cfg) == 151_032_320
    assert f["six_n"] == 6 * 151_032_320
    # causal attention: QK^T and AV, 2*2*T*d per layer and token forward, half masked, x3 for the backward
    assert f["attention"] == 3 * (2 * 2 * 2048 * 512 / 2) * 32 == 201_326_592
    assert f["total"] == f["six_n"] + f["attention"]
    assert 0.17 < f["attention"] / f["total"] < 0.19  # about a fifth at 2048 tokens
    assert flops_per_token(cfg, 1024)["attention"] == f["attention"] / 2  # linear in the context


def test_peak_table_matches_device_names() -> None:
    assert PEAK_FLOPS == {"H100": 780e12, "H200": 790e12}
    assert peak_for("NVIDIA H100 80GB HBM3") == Peak("H100", 780e12)
    assert peak_for("NVIDIA H200") == Peak("H200", 790e12)
    assert peak_for("nvidia h200 nvl") == Peak("H200", 790e12)
    assert peak_for("cpu") is None and peak_for("NVIDIA GeForce RTX 4090") is None


def test_mfu() -> None:
    assert mfu(400_000, 1e9, 800e12) == pytest.approx(0.5)
    assert mfu(400_000, 1e9, None) is None and mfu(400_000, 1e9, 0.0) is None


def test_mfu_fields_name_what_they_used() -> None:
    cfg = PRESETS["blueberry-151m"]
    f = flops_per_token(cfg, 2048)
    h100 = mfu_fields(cfg, 2048, 300_000.0, "NVIDIA H100 80GB HBM3")
    assert h100 == {"mfu": pytest.approx(f["total"] * 300_000 / 780e12), "flops_per_token": f["total"],
                    "flops_per_token_6n": f["six_n"], "peak_flops": 780e12, "peak_name": "H100"}
    cpu = mfu_fields(cfg, 2048, 300_000.0, "cpu")
    assert cpu["mfu"] is None and cpu["peak_flops"] is None and cpu["peak_name"] == ""
    assert cpu["flops_per_token"] == f["total"]
    line = describe(h100)
    assert "1.108 GFLOP/token" in line and "6·N 0.906" in line and "attention 0.201" in line
    assert "H100 780 TFLOP/s" in line
    assert "no peak" in describe(cpu)
    assert "attention not counted" in describe({"mfu": 0.1, "flops_per_token": 906e6})  # an older result
