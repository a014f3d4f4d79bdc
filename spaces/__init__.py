"""Optuna define-by-run search spaces, registered by name.

A space is a plain function ``(trial, base) -> overrides``: it suggests parameters on an ``optuna.Trial``
(parameter names are config keys, so a trial's params *are* its overrides) and may add derived settings
(``grad_accum_steps`` from an effective batch and a micro-batch). ``base`` is the track's default
``Hyper`` (the record's settings), which also gives each space its first trial: ``record_point`` returns
those settings in the space's own parameter names, so every search starts at the record and is never worse
than it.

Imports only optuna and trainer.config (a test checks it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from trainer.config import SCHEDULES, ConfigError, Hyper

SpaceFn = Callable[[optuna.Trial, Hyper], dict[str, Any]]

# Ranges: wide enough to hold the record (Muon 0.015, AdamW 0.001; the tiny tracks use 0.02 / 0.01) and its
# neighbours a factor 4-10 away; log scales for rates.
MUON_LR = (0.002, 0.08)
ADAMW_LR = (1e-4, 3e-2)
MICRO_BATCHES = (1, 2, 4, 8, 16, 32, 64)
EFFECTIVE_BATCHES = (4, 8, 16, 32, 64, 128)
ACCUM_STEPS = (1, 2, 4)  # divides every effective batch above


def _rates(trial: optuna.Trial) -> dict[str, Any]:
    return {"muon_lr": trial.suggest_float("muon_lr", *MUON_LR, log=True),
            "adamw_lr": trial.suggest_float("adamw_lr", *ADAMW_LR, log=True)}


def _schedule(trial: optuna.Trial) -> dict[str, Any]:
    out: dict[str, Any] = {"warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.2),
                           "schedule": trial.suggest_categorical("schedule", list(SCHEDULES))}
    if out["schedule"] != "constant":  # only schedules that decay have a floor
        out["min_lr_ratio"] = trial.suggest_float("min_lr_ratio", 0.0, 0.5)
    if out["schedule"] == "wsd":
        out["decay_ratio"] = trial.suggest_float("decay_ratio", 0.05, 0.5)
        out["warmup_ratio"] = min(out["warmup_ratio"], 1.0 - out["decay_ratio"])
    return out


def lr_sched(trial: optuna.Trial, base: Hyper) -> dict[str, Any]:
    """Muon LR, AdamW LR, warmup ratio, schedule (min-LR ratio and decay ratio where it uses them)."""
    return {**_rates(trial), **_schedule(trial)}


HORIZON_RATIO = (0.1, 1.0)  # the schedule's end as a fraction of the track's budget (1: the track's, as the record)
SPEEDRUN_MICRO = (4, 8, 16)  # micro-batches whose compiled graphs fit two at a time beside each other on a GPU
SPEEDRUN_ACCUM = (1, 2)


def _horizon(trial: optuna.Trial, budget_tokens: int) -> dict[str, Any]:
    """Where the schedule ends (``horizon_tokens``): a fraction of the track's budget, log-scaled. A speedrun
    crosses its target long before the budget, so a decay that ends at the budget has barely begun there."""
    ratio = trial.suggest_float("horizon_ratio", *HORIZON_RATIO, log=True)
    if ratio >= 1.0 or not budget_tokens:
        return {"horizon_tokens": 0}  # the track's budget: exactly the record's behaviour
    return {"horizon_tokens": max(1, round(ratio * budget_tokens))}


def speedrun(trial: optuna.Trial, base: Hyper, budget_tokens: int = 0) -> dict[str, Any]:
    """What moves time to target: both rates, warm-up, schedule with its floor, decay and horizon, micro-batch
    and grad-accum (a larger batch runs more tokens a second), Muon momentum."""
    out = {**_rates(trial), **_schedule(trial)}
    if out["schedule"] != "constant":  # a constant schedule has no end to move (its warm-up is a ratio of it)
        out.update(_horizon(trial, budget_tokens))
    out["micro_batch_size"] = trial.suggest_categorical("micro_batch_size", list(SPEEDRUN_MICRO))
    out["grad_accum_steps"] = trial.suggest_categorical("grad_accum_steps", list(SPEEDRUN_ACCUM))
    out["muon_momentum"] = trial.suggest_float("muon_momentum", 0.85, 0.98)
    return out


def _accum(trial: optuna.Trial, effective: int, choices: tuple[int, ...] = ACCUM_STEPS) -> dict[str, Any]:
    # Optuna's categorical choices must not change between trials, so the accumulation steps come from a
    # fixed set that divides every effective batch on offer, and the micro-batch is derived from them.
    accum = trial.suggest_categorical("grad_accum_steps", list(choices))
    return {"micro_batch_size": effective // accum, "grad_accum_steps": accum}


def grad_accum(trial: optuna.Trial, base: Hyper, effective_batch: int | None = None) -> dict[str, Any]:
    """Micro-batch and grad-accum steps at a given effective batch (``grad_accum:16``) or a free one, with LRs."""
    if effective_batch:
        divisors = tuple(a for a in (1, 2, 4, 8, 16, 32, 64) if effective_batch % a == 0)
        return {**_rates(trial), **_accum(trial, effective_batch, divisors)}
    effective = trial.suggest_categorical("effective_batch", list(EFFECTIVE_BATCHES))
    return {**_rates(trial), **_accum(trial, effective)}


def batch(trial: optuna.Trial, base: Hyper) -> dict[str, Any]:
    """Micro-batch size (no accumulation) with LRs."""
    micro = trial.suggest_categorical("micro_batch_size", list(MICRO_BATCHES))
    return {**_rates(trial), "micro_batch_size": micro, "grad_accum_steps": 1}


def full(trial: optuna.Trial, base: Hyper) -> dict[str, Any]:
    """Everything: rates, schedule, effective batch and its split, Muon momentum, weight decay, clipping."""
    out = {**_rates(trial), **_schedule(trial)}
    effective = trial.suggest_categorical("effective_batch", list(EFFECTIVE_BATCHES))
    out.update(_accum(trial, effective))
    out["muon_momentum"] = trial.suggest_float("muon_momentum", 0.85, 0.98)
    out["weight_decay"] = trial.suggest_float("weight_decay", 0.0, 0.3)
    out["grad_clip"] = trial.suggest_categorical("grad_clip", [0.0, 0.5, 1.0, 2.0])
    return out


@dataclass(frozen=True)
class Space:
    name: str
    description: str
    fn: SpaceFn
    params: tuple[str, ...]  # the parameter names it may suggest (for the record point)
    uses_budget: bool = False  # fn takes the track's budget_tokens (for a horizon relative to it)

    def sample(self, trial: optuna.Trial, base: Hyper, budget_tokens: int = 0) -> dict[str, Any]:
        if self.uses_budget:
            return self.fn(trial, base, budget_tokens=budget_tokens)  # type: ignore[call-arg]
        return self.fn(trial, base)

    def record_point(self, base: Hyper, budget_tokens: int = 0) -> dict[str, Any]:
        """The record's settings (``base``) as this space's first trial."""
        point: dict[str, Any] = {}
        for name in self.params:
            if name == "effective_batch":
                point[name] = base.batch_sequences
            elif name in ("min_lr_ratio", "decay_ratio", "horizon_ratio"):
                continue  # conditional: absent for the record's constant schedule
            else:
                point[name] = getattr(base, name)
        if base.schedule != "constant" and "horizon_ratio" in self.params:
            point["horizon_ratio"] = (min(1.0, base.horizon_tokens / budget_tokens)
                                      if base.horizon_tokens and budget_tokens else 1.0)
        if base.schedule != "constant" and "min_lr_ratio" in self.params:
            point["min_lr_ratio"] = base.min_lr_ratio
        if base.schedule == "wsd" and "decay_ratio" in self.params:
            point["decay_ratio"] = base.decay_ratio
        return point


_RATE = ("muon_lr", "adamw_lr")
_SCHED = ("warmup_ratio", "schedule", "min_lr_ratio", "decay_ratio")
SPACES: dict[str, Space] = {
    s.name: s
    for s in (
        Space("lr_sched", "Muon LR, AdamW LR (log), warmup ratio, schedule + its floor / decay ratio", lr_sched,
              _RATE + _SCHED),
        Space("grad_accum", "micro-batch x grad-accum at a free effective batch (grad_accum:N fixes it), LRs",
              grad_accum, (*_RATE, "effective_batch", "grad_accum_steps")),
        Space("batch", "micro-batch size without accumulation, LRs", batch, (*_RATE, "micro_batch_size")),
        Space("full", "all of the above plus Muon momentum, weight decay and gradient clipping", full,
              _RATE + _SCHED + ("effective_batch", "grad_accum_steps", "muon_momentum", "weight_decay",
                                "grad_clip")),
        Space("speedrun", "time to target: LRs, warmup, schedule and its horizon, micro-batch x grad-accum, "
              "Muon momentum", speedrun,
              _RATE + _SCHED + ("horizon_ratio", "micro_batch_size", "grad_accum_steps", "muon_momentum"),
              uses_budget=True),
    )
}


def get_space(name: str) -> Space:
    """A registered space; ``grad_accum:N`` is grad_accum at effective batch N."""
    base_name, _, arg = name.partition(":")
    if base_name == "grad_accum" and arg:
        try:
            effective = int(arg)
            if effective < 1:
                raise ValueError
        except ValueError:
            raise ConfigError(f"grad_accum:N needs a positive integer effective batch, got {arg!r}") from None
        fixed = functools.partial(grad_accum, effective_batch=effective)
        return Space(name, f"micro-batch x grad-accum at effective batch {effective}, LRs", fixed,
                     (*_RATE, "grad_accum_steps"))
    if name not in SPACES:
        raise ConfigError(f"unknown space {name!r}; choose one of {', '.join(SPACES)} (or grad_accum:N)")
    return SPACES[name]


def describe() -> str:
    width = max(map(len, SPACES))
    return "\n".join(f"{s.name:<{width}}  {s.description}" for s in SPACES.values())
