"""One typed, frozen, validated configuration tree for a training run.

    RunConfig
    ├── model: ModelConfig      (architecture, from a named preset)
    ├── hp:    Hyper            (every knob a search may touch)
    ├── track: Track            (target, budget, crossing rules, evaluation cadence)
    ├── data:  DataConfig       (train/val sources, tokenizer, cache)
    └── runtime: Runtime        (device, compile, dtype, reporting cadence)

Every dataclass checks itself in ``__post_init__`` and raises :class:`ConfigError` naming the setting
and what is allowed. ``--set key=value`` overrides are derived from the fields: a key is a leaf name
(``muon_lr``) or a dotted path (``hp.muon_lr``); an unknown key is an error, never ignored.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any


class ConfigError(ValueError):
    """A setting is unknown or invalid. The message names it and the allowed values."""


SCHEDULES = ("constant", "cosine", "linear", "wsd")
CROSSING_RULES = ("first_step", "smoothed", "val")
STOP_RULES = (*CROSSING_RULES, "all", "never")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "bf16", "fp32")
FAULTS = ("nan", "raise", "oom")
ATTENTIONS = ("sdpa", "fa4")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive(name: str, value: float) -> None:
    _check(isinstance(value, int | float) and math.isfinite(value) and value > 0,
           f"{name} must be a finite number > 0, got {value!r}")


def _in_unit(name: str, value: float, *, closed_right: bool = True) -> None:
    ok = isinstance(value, int | float) and (0.0 <= value <= 1.0 if closed_right else 0.0 <= value < 1.0)
    _check(ok, f"{name} must be in [0, 1{']' if closed_right else ')'}, got {value!r}")


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    _check(value in allowed, f"{name} must be one of {', '.join(allowed)}; got {value!r}")


# ----------------------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True)
class ModelConfig:
    name: str = "blueberry-151m"
    vocab_size: int = 49_152
    d_model: int = 512
    n_layers: int = 32
    n_heads: int = 8
    n_kv_heads: int = 4
    d_ff: int = 2048
    rope_base: float = 10_000.0
    norm_eps: float = 1e-6
    init_std: float = 0.02
    leaderboard_eligible: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value > 0, f"model.{name} must be a positive integer, got {value!r}")
        _check(self.d_model % self.n_heads == 0,
               f"model.d_model ({self.d_model}) must be divisible by model.n_heads ({self.n_heads})")
        _check(self.n_heads % self.n_kv_heads == 0,
               f"model.n_heads ({self.n_heads}) must be a multiple of model.n_kv_heads ({self.n_kv_heads})")
        _check((self.d_model // self.n_heads) % 2 == 0, "model head dim (d_model / n_heads) must be even for RoPE")
        _positive("model.rope_base", self.rope_base)
        _positive("model.norm_eps", self.norm_eps)
        _positive("model.init_std", self.init_std)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


# Leaderboard rule: 151M +- 5% (seed/leaderboard.md).
ELIGIBLE_PARAMS = (143_000_000, 159_000_000)

PRESETS: dict[str, ModelConfig] = {
    # The upstream model, exactly: 151,032,320 parameters.
    "blueberry-151m": ModelConfig(),
    # CPU-sized: same tokenizer (vocab 49,152), so the embedding dominates; trains at ~0.1 s/step on 2 cores.
    "tiny": ModelConfig(name="tiny", d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=256,
                        leaderboard_eligible=False),
    # Between the two, for quick GPU checks and fractional-GPU searches.
    "small": ModelConfig(name="small", d_model=256, n_layers=8, n_heads=4, n_kv_heads=2, d_ff=1024,
                         leaderboard_eligible=False),
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


# ----------------------------------------------------------------------------------------------------------
# Hyperparameters: every knob a search may touch.


@dataclass(frozen=True)
class Hyper:
    muon_lr: float = 0.015
    adamw_lr: float = 0.001
    muon_momentum: float = 0.95
    weight_decay: float = 0.2
    warmup_ratio: float = 0.0
    schedule: str = "constant"
    min_lr_ratio: float = 0.1
    decay_ratio: float = 0.2
    micro_batch_size: int = 4
    grad_accum_steps: int = 1
    seq_len: int = 2048
    grad_clip: float = 1.0
    seed: int = 0
    # tokens the schedule is laid out over (warmup and decay are fractions of it, and a decaying schedule ends
    # there); 0: the track's budget_tokens (the record's behaviour). A speedrun crosses its target long before
    # the track's budget, so a search can pull the decay's end forward to where it matters.
    horizon_tokens: int = 0

    def __post_init__(self) -> None:
        _positive("muon_lr", self.muon_lr)
        _positive("adamw_lr", self.adamw_lr)
        _in_unit("muon_momentum", self.muon_momentum, closed_right=False)
        _check(isinstance(self.weight_decay, int | float) and self.weight_decay >= 0,
               f"weight_decay must be >= 0, got {self.weight_decay!r}")
        _in_unit("warmup_ratio", self.warmup_ratio, closed_right=False)
        _one_of("schedule", self.schedule, SCHEDULES)
        _in_unit("min_lr_ratio", self.min_lr_ratio)
        _in_unit("decay_ratio", self.decay_ratio)
        for name in ("micro_batch_size", "grad_accum_steps"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        _check(isinstance(self.seq_len, int) and self.seq_len >= 8, f"seq_len must be an integer >= 8, got {self.seq_len!r}")
        _check(isinstance(self.grad_clip, int | float) and self.grad_clip >= 0,
               f"grad_clip must be >= 0 (0 turns clipping off), got {self.grad_clip!r}")
        _check(isinstance(self.seed, int) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}")
        _check(isinstance(self.horizon_tokens, int) and not isinstance(self.horizon_tokens, bool)
               and self.horizon_tokens >= 0,
               f"horizon_tokens must be an integer >= 0 (0: the track's budget), got {self.horizon_tokens!r}")
        if self.schedule == "wsd":
            _check(self.warmup_ratio + self.decay_ratio <= 1.0,
                   f"warmup_ratio + decay_ratio must be <= 1 for the wsd schedule, got "
                   f"{self.warmup_ratio} + {self.decay_ratio}")

    @property
    def batch_sequences(self) -> int:
        """Sequences per optimizer step (the effective batch)."""
        return self.micro_batch_size * self.grad_accum_steps

    @property
    def tokens_per_step(self) -> int:
        return self.batch_sequences * self.seq_len


# The record's settings (seed/leaderboard.md): LR 0.015, warmup 0, constant, grad-accum 1.
RECORD_HYPER = Hyper()


# ----------------------------------------------------------------------------------------------------------
# Tracks


@dataclass(frozen=True)
class Track:
    """What a run is for: model, data, target or budget, token cap, rules and cadences."""

    name: str
    preset: str
    data: str  # a data source name from trainer.data.SOURCES, a path/glob, or an HF dataset name
    description: str = ""
    target: float | None = None  # train/val loss target; None for budget tracks (marathon)
    budget_tokens: int = 0  # marathon: the fixed token budget; speedruns: the schedule's horizon
    max_tokens: int = 0  # hard cap: a run that has not crossed by then ends with budget_exhausted
    record_rule: str = "first_step"
    search_rule: str = "smoothed"
    smoothing_tokens: int = 500_000  # EMA window of the smoothed train loss, in tokens
    eval_every_tokens: int = 1_000_000
    val_tokens: int = 524_288  # fixed validation set size (same tokens whatever the budget)
    report_every_tokens: int = 250_000  # reporter cadence (ASHA rungs are multiples of this)
    hyper: dict[str, Any] = field(default_factory=dict)  # the track's defaults over Hyper()
    # a search's ASHA rungs on a speedrun are in clocked seconds: the first cut, and the most a trial gets
    # (5 s is about 1M tokens at the record's ~200k tokens/s on an H100/H200; 200 s about the 40M-token cap)
    rung_grace_s: float = 5.0
    rung_max_s: float = 200.0

    def __post_init__(self) -> None:
        _check(bool(self.name), "track.name must not be empty")
        preset(self.preset)
        _one_of("record_rule", self.record_rule, CROSSING_RULES)
        _one_of("search_rule", self.search_rule, CROSSING_RULES)
        for name in ("budget_tokens", "max_tokens", "smoothing_tokens", "eval_every_tokens", "val_tokens",
                     "report_every_tokens", "rung_grace_s", "rung_max_s"):
            _positive(name, getattr(self, name))
        _check(self.max_tokens >= self.budget_tokens,
               f"max_tokens ({self.max_tokens}) must be >= budget_tokens ({self.budget_tokens})")
        if self.target is not None:
            _positive("target", self.target)

    @property
    def is_speedrun(self) -> bool:
        return self.target is not None


# CPU tracks: the 49,152-token vocabulary makes every token cost the same whatever the model, so the tiny
# tracks take small steps (4 x 64 tokens): early progress is counted in steps, not tokens.
_TINY: dict[str, Any] = dict(
    smoothing_tokens=4_096, eval_every_tokens=8_192, val_tokens=8_192, report_every_tokens=2_048,
    rung_grace_s=2.0, rung_max_s=120.0,
    hyper={"micro_batch_size": 4, "seq_len": 64, "muon_lr": 0.02, "adamw_lr": 0.01},
)

TRACKS: dict[str, Track] = {
    t.name: t
    for t in (
        Track(
            name="speedrun-4.5", preset="blueberry-151m", data="offline", target=4.5,
            description="fastest to train loss 4.5 (record rule: first step <= 4.5)",
            budget_tokens=20_000_000, max_tokens=40_000_000,
        ),
        Track(
            name="speedrun-3.5", preset="blueberry-151m", data="offline", target=3.5,
            description="fastest to train loss 3.5 (record rule: first step <= 3.5)",
            budget_tokens=40_000_000, max_tokens=60_000_000, rung_max_s=300.0,
        ),
        Track(
            name="marathon", preset="blueberry-151m", data="offline", target=None,
            description="best val loss after a fixed token budget (one epoch of the offline corpus)",
            budget_tokens=79_434_684, max_tokens=79_434_684, eval_every_tokens=5_000_000,
            report_every_tokens=1_000_000,
        ),
        # CPU tracks on the shipped sample: the tiny model gets there in well under a minute on 2 cores.
        Track(
            name="tiny-speedrun", preset="tiny", data="sample", target=7.5,
            description="CPU: tiny model to train loss 7.5 on the shipped sample",
            budget_tokens=49_152, max_tokens=49_152, **_TINY,
        ),
        Track(
            name="tiny-marathon", preset="tiny", data="sample", target=None,
            description="CPU: tiny model, best val loss after 49,152 tokens of the shipped sample",
            budget_tokens=49_152, max_tokens=49_152, **_TINY,
        ),
    )
}


def track(name: str) -> Track:
    if name not in TRACKS:
        raise ConfigError(f"unknown track {name!r}; choose one of {', '.join(TRACKS)}")
    return TRACKS[name]


# ----------------------------------------------------------------------------------------------------------
# Data and runtime


@dataclass(frozen=True)
class DataConfig:
    train: str = "sample"  # source name, file/glob (comma-separated allowed), or HF dataset name
    val: str = ""  # empty: the source's own validation split
    tokenizer: str = ""  # empty: the shipped SmolLM2 tokenizer; else a tokenizer.json path or HF name
    cache_dir: str = ""  # empty: $BLUEBERRY_CACHE or ~/.cache/blueberry-tune
    text_field: str = "text"
    # train tokens to take from a streamed Hugging Face dataset (the hub's, or a local dataset folder): the
    # stream stops there. make_config sets it to the track's max_tokens; 0: the whole dataset (the hub
    # stand-in for the offline corpus then takes as many tokens as the offline corpus has)
    stream_tokens: int = 0

    def __post_init__(self) -> None:
        _check(bool(self.train), "data.train must name a source, a file or an HF dataset")
        _check(isinstance(self.stream_tokens, int) and not isinstance(self.stream_tokens, bool)
               and self.stream_tokens >= 0, f"stream_tokens must be an integer >= 0 (0: all), got {self.stream_tokens!r}")


@dataclass(frozen=True)
class Runtime:
    device: str = "auto"
    dtype: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool | None = None  # None: compile on CUDA, not on CPU
    cudagraphs: bool | None = None  # compiled blocks replayed as CUDA graphs; None: on when compiling on CUDA
    # the blocks' matrices read by the forward as bf16 working copies that Muon rewrites with each update
    # (trainer.optim.WorkingCopies: the same values, no casts a step); None: on wherever the fast path runs in bf16
    working_copies: bool | None = None
    # blocks per compiled region (trainer.model.compile_regions): the host's cost per step falls with longer
    # regions. At the record settings on an H200 the host needed 24-39 ms to issue a 33 ms step with 1 block a
    # region, so the speed swung with the host (204-248k tokens/s); with 4, 23-27 ms and 247.8-248.2k
    # (bench/results/dec01b/call4-regions)
    blocks_per_region: int = 4
    stop_rule: str = ""  # "" -> the track's record rule (speedruns) / never (budget tracks)
    max_tokens: int = 0  # 0 -> the track's cap; lower it for quick runs
    eval_every_tokens: int = 0  # 0 -> the track's
    report_every_tokens: int = 0  # 0 -> the track's
    reference: bool = False  # plain, obviously-correct path (for tests and checks)
    # deterministic kernels only (torch.use_deterministic_algorithms) for the run: the same settings then give
    # the same losses bit for bit on one machine, for checks that want no run-to-run noise. Slower on CUDA: the
    # attention leaves cuDNN, whose backward is not deterministic, for flash attention
    deterministic: bool = False
    # the attention's kernels on the fast path: sdpa (PyTorch's SDPA, which picks cuDNN's on Hopper) or fa4
    # (FlashAttention-4, the flash-attn-4 package, on Hopper and Blackwell GPUs: 2% faster at b32 and b64 on an H200,
    # bench/results/dec01h; trainer/fa4.py)
    attention: str = "sdpa"
    # the blocks' matmuls and the chunked loss's in FP8 with fixed scales (trainer/fp8.py), on GPUs of compute
    # capability 8.9 or newer: for large micro-batches (on an H200 +7.4% tokens/s at b32 and b64 against bf16 in one
    # call, bench/results/dec01i-summary.txt); at the record's b4 it is not faster
    fp8: bool = False
    # positions per chunk of the output-head loss (trainer/loss.py); 0: the plain loss; None: chunk only
    # micro-batches of more than 32,768 positions, whose fp32 logits would otherwise not fit
    loss_chunk: int | None = None
    # a lock file held from warm-up to the end of the run, so runs sharing a GPU never overlap their clocks
    # (search sets it for fractional GPUs); "" for none
    device_lock: str = ""
    # for tests of fault handling: "nan@N" turns the weights to NaN before step N, "raise@N" raises there,
    # "oom@N" raises a CUDA out-of-memory error there; "" for none
    fault: str = ""

    def __post_init__(self) -> None:
        _one_of("device", self.device, DEVICES)
        if self.fault:
            kind, _, at = self.fault.partition("@")
            _check(kind in FAULTS and at.isdigit() and int(at) >= 1,
                   f"fault must be KIND@STEP with KIND one of {', '.join(FAULTS)} and STEP >= 1; got {self.fault!r}")
        _one_of("dtype", self.dtype, DTYPES)
        _one_of("attention", self.attention, ATTENTIONS)
        _check(not (self.attention == "fa4" and self.reference),
               "attention=fa4 is a fast-path kernel; the reference path runs plain attention: set one of them")
        _check(not (self.attention == "fa4" and self.deterministic is True),
               "deterministic=true runs with attention=sdpa (its bit-for-bit check used PyTorch's kernels)")
        _check(isinstance(self.fp8, bool), f"fp8 must be true or false, got {self.fp8!r}")
        _check(not (self.fp8 and self.reference),
               "fp8=true is a fast-path setting; the reference path runs its matmuls in full precision: "
               "set one of them")
        _check(not (self.fp8 and self.deterministic is True),
               "deterministic=true runs with fp8=false (its bit-for-bit check used bf16 matmuls)")
        _check(not (self.fp8 and self.dtype == "fp32"), "fp8=true needs dtype bf16 or auto (its matmuls write bf16)")
        for name in ("reference", "deterministic"):
            _check(isinstance(getattr(self, name), bool), f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.stop_rule:
            _one_of("stop_rule", self.stop_rule, STOP_RULES)
        for name in ("max_tokens", "eval_every_tokens", "report_every_tokens"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")
        _check(not (self.working_copies and self.dtype == "fp32"),
               "working_copies=true needs dtype bf16 or auto (the working copies are bf16)")
        _check(isinstance(self.blocks_per_region, int) and not isinstance(self.blocks_per_region, bool)
               and self.blocks_per_region >= 1, f"blocks_per_region must be an integer >= 1, got {self.blocks_per_region!r}")
        _check(self.loss_chunk is None or (isinstance(self.loss_chunk, int) and not isinstance(self.loss_chunk, bool)
                                           and self.loss_chunk >= 0),
               f"loss_chunk must be an integer >= 0 (0: off) or auto, got {self.loss_chunk!r}")


# ----------------------------------------------------------------------------------------------------------
# The root


@dataclass(frozen=True)
class RunConfig:
    track: Track
    model: ModelConfig
    hp: Hyper = field(default_factory=Hyper)
    data: DataConfig = field(default_factory=DataConfig)
    runtime: Runtime = field(default_factory=Runtime)

    def __post_init__(self) -> None:
        if self.model.leaderboard_eligible:
            from trainer.model import count_parameters_for

            n = count_parameters_for(self.model)
            lo, hi = ELIGIBLE_PARAMS
            _check(lo <= n <= hi, f"model {self.model.name!r} is marked leaderboard-eligible but has {n:,} "
                                  f"parameters; the leaderboard allows {lo:,}-{hi:,}")

    # -- derived -------------------------------------------------------------------------------------------
    @property
    def max_tokens(self) -> int:
        return self.runtime.max_tokens or self.track.max_tokens

    @property
    def horizon_tokens(self) -> int:
        """Tokens the LR schedule is laid out over (its progress = tokens / horizon): ``hp.horizon_tokens``
        when set, else the track's budget (never past the token cap)."""
        return min(self.hp.horizon_tokens or self.track.budget_tokens, self.max_tokens)

    @property
    def stop_rule(self) -> str:
        if self.runtime.stop_rule:
            return self.runtime.stop_rule
        return self.track.record_rule if self.track.is_speedrun else "never"

    @property
    def eval_every_tokens(self) -> int:
        return self.runtime.eval_every_tokens or self.track.eval_every_tokens

    @property
    def report_every_tokens(self) -> int:
        return self.runtime.report_every_tokens or self.track.report_every_tokens

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        track, runtime = Track(**d["track"]), Runtime(**d["runtime"])
        data = dict(d["data"])
        # A config saved before data.stream_tokens existed reads as make_config would make it today (with
        # today's definition of its track, whose caps may have moved since).
        data.setdefault("stream_tokens", _stream_tokens(TRACKS.get(track.name, track), runtime))
        return cls(
            track=track,
            model=ModelConfig(**d["model"]),
            hp=Hyper(**d["hp"]),
            data=DataConfig(**data),
            runtime=runtime,
        )


# ----------------------------------------------------------------------------------------------------------
# Building a config and overriding it by key


_SECTIONS = ("hp", "runtime", "data", "model")  # resolution order of bare keys (leaf names are unique)


def _section_fields(section: str) -> dict[str, dataclasses.Field]:
    cls = {"hp": Hyper, "runtime": Runtime, "data": DataConfig, "model": ModelConfig}[section]
    return {f.name: f for f in fields(cls)}


def override_keys() -> dict[str, str]:
    """Every key ``--set`` accepts, mapped to its section."""
    keys: dict[str, str] = {}
    for section in _SECTIONS:
        for name in _section_fields(section):
            if name == "name" and section == "model":
                continue
            keys.setdefault(name, section)
    return keys


def _field_type(f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints({"hp": Hyper, "runtime": Runtime, "data": DataConfig, "model": ModelConfig}[
        next(s for s in _SECTIONS if f.name in _section_fields(s))
    ])
    return hints[f.name]


def _coerce(key: str, raw: Any, annotation: Any) -> Any:
    """Turn a CLI string (or a JSON value) into the field's type, or raise ConfigError."""
    if not isinstance(raw, str):
        if annotation is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        return raw
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null", "auto") and type(None) in args:
            return None
        annotation = next(a for a in args if a is not type(None))
    try:
        if annotation is bool:
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if annotation is int:
            return int(float(raw)) if ("e" in raw.lower() and float(raw).is_integer()) else int(raw)
        if annotation is float:
            return float(raw)
    except ValueError:
        name = getattr(annotation, "__name__", str(annotation))
        raise ConfigError(f"{key} must be {'a' if name != 'int' else 'an'} {name}, got {raw!r}") from None
    return raw


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return a new config with ``key=value`` overrides applied (bare leaf names or ``section.name``)."""
    known = override_keys()
    per_section: dict[str, dict[str, Any]] = {}
    for key, raw in overrides.items():
        section, _, name = key.rpartition(".")
        if not section:
            if name not in known:
                raise ConfigError(f"unknown setting {key!r}; allowed: {', '.join(sorted(known))}")
            section = known[name]
        elif section not in _SECTIONS or name not in _section_fields(section):
            raise ConfigError(f"unknown setting {key!r}; allowed: {', '.join(sorted(known))} "
                              f"(or section.name with section in {', '.join(_SECTIONS)})")
        f = _section_fields(section)[name]
        per_section.setdefault(section, {})[name] = _coerce(key, raw, _field_type(f))
    changes = {s: replace(getattr(config, s), **v) for s, v in per_section.items()}
    return replace(config, **changes)


def parse_set(items: list[str] | None) -> dict[str, str]:
    """Parse CLI ``key=value`` items."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def make_config(track_name: str = "tiny-speedrun", *, preset_name: str | None = None, data: str | None = None,
                overrides: dict[str, Any] | None = None) -> RunConfig:
    """The config of a run on a track: preset and data from the track unless given, the track's hyper
    defaults over the record's, then the user's overrides."""
    t = track(track_name)
    model = preset(preset_name or t.preset)
    base = RunConfig(track=t, model=model, hp=replace(RECORD_HYPER, **t.hyper), data=DataConfig(train=data or t.data))
    config = apply_overrides(base, overrides or {})
    if not any(k.rpartition(".")[2] == "stream_tokens" for k in overrides or {}):
        # A streamed dataset stops at what the track can use (a lower --set max_tokens keeps the track's cap,
        # so quick runs share the track's token cache).
        config = replace(config, data=replace(config.data, stream_tokens=_stream_tokens(t, config.runtime)))
    return config


def _stream_tokens(t: Track, runtime: Runtime) -> int:
    """What a streamed dataset gives a run: the track's cap, or the run's own if larger."""
    return max(t.max_tokens, runtime.max_tokens)
