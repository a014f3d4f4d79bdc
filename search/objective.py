"""The search objective: time to target, censored.

A trial that reached the target (by the chosen rule) scores its clocked seconds to the crossing. A trial
that did not scores ``CENSORED + loss``: behind every trial that reached it, and among themselves ordered by
the loss the rule watches (smoothed train loss, one step's train loss, or validation loss). Budget tracks
(the marathon) have no target and score their validation loss. Lower is better everywhere.
"""

from __future__ import annotations

from typing import Any

from chores.values import finite

CENSORED = 1e6  # seconds; far beyond any real time to target
RULE_LOSS = {"first_step": "train_loss", "smoothed": "smoothed_loss", "val": "val_loss"}
OBJECTIVES = tuple(RULE_LOSS)

LUCK_WARNING = ("the first_step rule ranks trials by the first single step whose loss is under the target; one "
                "step's loss has a standard deviation of about 0.2, so this optimises luck as much as speed. "
                "Prefer the smoothed rule for searching; records still use first_step.")


def objective(metrics: dict[str, Any], rule: str, target: float | None) -> float:
    if target is None:
        loss = metrics.get("val_loss")
        return float(loss) if finite(loss) else CENSORED
    t = metrics.get(f"time_to_target_{rule}_s")
    if finite(t):
        return float(t)
    loss = metrics.get(RULE_LOSS[rule])
    return CENSORED + (float(loss) if finite(loss) else 1e3)


def reached(value: float) -> bool:
    return value < CENSORED


def describe(value: Any, has_target: bool) -> str:
    """An objective for people: seconds to target, or the loss a censored trial ended at (never 1e+06)."""
    if not finite(value):
        return "-"
    if not has_target:
        return f"{value:.4f}" if reached(value) else "no finite val loss"
    if reached(value):
        return f"{value:.2f} s"
    return "not reached (no finite loss)" if value - CENSORED >= 1e3 else f"not reached (loss {value - CENSORED:.3f})"

