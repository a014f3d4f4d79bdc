"""Learning-rate schedules as pure functions of training progress (tokens seen / horizon tokens).

Each returns the multiplier applied to every group's peak LR. The warmup is linear from 0 over the first
``warmup_ratio`` of the horizon; after it:
- constant: 1;
- cosine:   from 1 down to ``min_lr_ratio`` along half a cosine;
- linear:   from 1 down to ``min_lr_ratio`` in a straight line;
- wsd:      warmup-stable-decay: 1 until the last ``decay_ratio`` of the horizon, then linear to
            ``min_lr_ratio``.
Progress past 1 holds the final value (a run may go on past its horizon up to its token cap).
"""

from __future__ import annotations

import math

from trainer.config import SCHEDULES, ConfigError, Hyper


def lr_multiplier(progress: float, schedule: str, *, warmup_ratio: float = 0.0, min_lr_ratio: float = 0.1,
                  decay_ratio: float = 0.2) -> float:
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
    p = min(max(progress, 0.0), 1.0)
    if warmup_ratio > 0 and p < warmup_ratio:
        return p / warmup_ratio
    if schedule == "constant":
        return 1.0
    if schedule == "wsd":
        decay_start = 1.0 - decay_ratio
        if p <= decay_start or decay_ratio == 0:
            return 1.0
        q = (p - decay_start) / decay_ratio
        return 1.0 - (1.0 - min_lr_ratio) * q
    q = 0.0 if warmup_ratio >= 1.0 else (p - warmup_ratio) / (1.0 - warmup_ratio)
    if schedule == "cosine":
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * q))
    return 1.0 - (1.0 - min_lr_ratio) * q  # linear


def multiplier_for(hp: Hyper, tokens_done: int, horizon_tokens: int) -> float:
    """The multiplier for the step that ends at ``tokens_done`` (so the first warmup step is not zero)."""
    return lr_multiplier(tokens_done / max(horizon_tokens, 1), hp.schedule, warmup_ratio=hp.warmup_ratio,
                         min_lr_ratio=hp.min_lr_ratio, decay_ratio=hp.decay_ratio)
