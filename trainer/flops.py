"""Training FLOPs per token and MFU against a per-GPU peak table.

MFU = training FLOPs per token x tokens/s / the GPU's peak. The FLOPs per token are the model's whole
training cost: 6·N (N = all parameters, as the leaderboard counts them: forward 2·N, backward 4·N) plus
causal attention, which 6·N leaves out (QK^T and AV: 2·2·T·d per layer and token forward, half of it masked,
times 3 for forward and backward: 6·L·T·d). For the 151M model at T = 2048 that is 906.2M + 201.3M = 1.108
GFLOP per token: attention is 18% of it. The 6·N figure is kept next to it (``flops_per_token_6n``) to compare
with numbers quoted that way (the upstream's notes, results written before attention was counted).

The peak is a measured rate, not the datasheet's: a dense bf16 8192^3 matrix product on random data on the
lent GPUs (780-800 TFLOP/s on both the H100 and the H200; the H100 SXM datasheet says 989 dense).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.config import ModelConfig

# Dense bf16 matmul rates measured on the lent GPUs (an 8192^3 product on random data), FLOP/s. A device is
# matched by the first key its name contains ("NVIDIA H100 80GB HBM3" -> H100).
PEAK_FLOPS: dict[str, float] = {"H100": 780e12, "H200": 790e12}
PEAK_SOURCE = "measured dense bf16 8192^3 matmul, random data"


@dataclass(frozen=True)
class Peak:
    name: str  # the table's key, e.g. "H100"
    flops: float  # FLOP/s


def peak_for(device_name: str) -> Peak | None:
    """The peak of a device by its name (``torch.cuda.get_device_name``), or None (a CPU, an unlisted GPU)."""
    upper = device_name.upper()
    for key, value in PEAK_FLOPS.items():
        if key.upper() in upper:
            return Peak(key, value)
    return None


def flops_per_token(cfg: ModelConfig, seq_len: int) -> dict[str, float]:
    """Training FLOPs per token: ``six_n`` (6·N), ``attention`` (causal, 6·L·T·d) and their ``total``
    (:func:`trainer.model.flops_per_token`, the one definition)."""
    from trainer.model import flops_per_token as model_flops  # imports torch: only when counting

    return model_flops(cfg, seq_len)


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float | None) -> float | None:
    """Model FLOPs utilisation, a fraction; None without a peak."""
    if not peak_flops or peak_flops <= 0:
        return None
    return flops_per_token * tokens_per_s / peak_flops


def mfu_fields(cfg: ModelConfig, seq_len: int, tokens_per_s: float, device_name: str) -> dict[str, Any]:
    """What a run result records about its MFU: ``mfu`` (attention included), ``flops_per_token`` (the
    total it used), ``flops_per_token_6n``, and the peak it was measured against (``peak_name``,
    ``peak_flops``; empty and None off the table)."""
    fpt = flops_per_token(cfg, seq_len)
    peak = peak_for(device_name)
    return {
        "mfu": mfu(tokens_per_s, fpt["total"], peak.flops if peak else None),
        "flops_per_token": fpt["total"],
        "flops_per_token_6n": fpt["six_n"],
        "peak_flops": peak.flops if peak else None,
        "peak_name": peak.name if peak else "",
    }


def describe(result: dict[str, Any]) -> str:
    """One line naming the FLOPs per token and the peak behind a result's MFU (for benchmark tables)."""
    fpt = result.get("flops_per_token") or 0.0
    six_n = result.get("flops_per_token_6n")
    if not six_n:  # a result written before attention was counted: its MFU used 6·N and an unrecorded peak
        return f"MFU: {fpt / 1e9:.3f} GFLOP/token (6·N, attention not counted; peak not recorded)"
    peak = result.get("peak_flops")
    where = f"{result.get('peak_name')} {peak / 1e12:.0f} TFLOP/s ({PEAK_SOURCE})" if peak else "no peak (not a listed GPU)"
    return (f"MFU: {fpt / 1e9:.3f} GFLOP/token (6·N {six_n / 1e9:.3f} + causal attention "
            f"{(fpt - six_n) / 1e9:.3f}) against {where}")
