"""The training loop: ``train(config, reporter) -> RunResult``.

    set-up (from the process's Workbench: data, model, compiled code) -> weights from the seed -> clock starts
    -> for each step: train, read the *previous* step's loss from a pinned host buffer (no stall), check the
    three crossing rules, evaluate every N tokens with the clock paused, report at token milestones
    -> clock stops -> final evaluation and report.

A step is one optimizer update over ``grad_accum_steps`` micro-batches; its train loss is the mean over
them. The only host reads in the hot path are of a step that the GPU has already finished, so the next
step is always queued while the host waits. A crossing is attributed to the step whose loss crossed and
timed by that step's device event, not by when the host noticed.

Warm workers: a process that trains run after run (a search's trial worker) keeps one :class:`Workbench`.
It holds the token data, the token windows on the device, and per *shape* (model, micro-batch, sequence
length, device, compile settings) the model with its compiled blocks and CUDA graphs. A run on a known shape
re-initialises the weights in place from its own seed (the same function a fresh process uses), builds new
optimizers (no state carried over), re-seeds its data order and starts its clock: no compile, no warm-up. No
hyperparameter is baked into compiled code: the compiled regions are the blocks and the loss, which see only
weights and activations, and Muon's update, which takes its momentum and the clipping coefficient as 0-d tensors;
learning rates, weight decay, the clipping threshold and the schedule live in eager optimizer code.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import statistics
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from trainer import graph_index, kernels, stable_keys
from trainer.clock import Clock, process_age_s
from trainer.config import CROSSING_RULES, ConfigError, Hyper, RunConfig
from trainer.flops import mfu_fields
from trainer.loss import ChunkedLMLoss, loss_chunk_for
from trainer.model import GPT, Attention, Linear, compile_regions, count_parameters, next_token_loss
from trainer.optim import (
    WorkingCopies,
    accumulate,
    build_optimizers,
    clip_coefficient,
    gradients,
    set_lr,
    step_scaled,
)
from trainer.schedule import multiplier_for

log = logging.getLogger(__name__)

class Reporter(Protocol):
    def report(self, metrics: dict[str, Any]) -> None: ...


class NullReporter:
    def report(self, metrics: dict[str, Any]) -> None:
        pass


@dataclass
class RunResult:
    status: str  # reached | budget_exhausted | diverged | failed
    track: str
    target: float | None
    stop_rule: str
    crossings: dict[str, dict[str, float] | None]  # rule -> {step, tokens, time_s, loss} or None
    steps: int = 0
    tokens: int = 0
    clock_s: float = 0.0
    final_train_loss: float = math.nan
    final_smoothed_loss: float = math.nan
    final_val_loss: float = math.nan
    best_val_loss: float = math.nan
    tokens_per_s: float = 0.0
    step_time_ms: float = 0.0
    # the median host time to issue one step (the step function's Python and launches; it waits for nothing):
    # close to step_time_ms, the host, not the GPU, sets the pace
    host_step_ms: float = 0.0
    mfu: float | None = None  # flops_per_token x tokens_per_s / peak_flops (trainer/flops.py)
    flops_per_token: float = 0.0  # training FLOPs per token, causal attention included
    flops_per_token_6n: float = 0.0  # the 6·N part alone
    peak_flops: float | None = None  # the device's peak in trainer.flops.PEAK_FLOPS; None off the table
    peak_name: str = ""
    peak_memory_bytes: int = 0  # whole process, warm-up (and CUDA graph pools) included
    peak_reserved_bytes: int = 0  # the same for the caching allocator's reserved memory
    startup_s: float = 0.0  # from the process's start (first run) or the run's start (later runs) to the clock
    warmup_s: float = 0.0
    # where the start-up went, seconds: process start to train() (first run of a process only), data, model
    # and sampler, waiting for the device lock, compile warm-up, the step-0 evaluation (the rest is clock set-up)
    startup_phases: dict[str, float] = field(default_factory=dict)
    # PyTorch's compile caches during this run's warm-up: FX graph and AOTAutograd hits, misses and bypasses
    # (empty when nothing compiled); a warm cache that misses is where a slow start-up comes from
    compile_cache: dict[str, int] = field(default_factory=dict)
    # warm workers: how many runs this process had trained before this one (0: a fresh process), and whether
    # this run found its shape's model and compiled code already warm
    worker_runs: int = 0
    warm_start: bool = False
    clock_started_at: float = 0.0  # wall time (time.time()) of the clock's start and of the last clocked step
    clock_ended_at: float = 0.0
    n_parameters: int = 0
    device: str = ""
    # what it trained on: the source's description, the token cache's key, and the token and document counts
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per step
    val_history: list[dict[str, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def time_to_target(self, rule: str) -> float | None:
        c = self.crossings.get(rule)
        return None if c is None else c["time_s"]

    def tokens_to_target(self, rule: str) -> int | None:
        c = self.crossings.get(rule)
        return None if c is None else int(c["tokens"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in ("history", "val_history", "config")}


# ----------------------------------------------------------------------------------------------------------
# Data order, device, weights


class WindowSampler:
    """Non-overlapping ``seq_len`` windows of the token stream in a seeded random order, epoch after epoch.

    ``windows`` is the whole stream on the device as ``[n_windows, seq_len]`` int32 (79M tokens are 316 MB), so
    a batch is one gather there and the host never touches token data in the loop. The order depends only on
    the seed, so a warm worker's sampler over the same windows gives a fresh process's batches.
    """

    def __init__(self, windows: torch.Tensor, batch: int, seed: int) -> None:
        self.n_windows = windows.shape[0]
        if self.n_windows < batch:
            raise ConfigError(f"the training data has {windows.numel():,} tokens: fewer than one batch of "
                              f"{batch} x {windows.shape[1]} (micro_batch_size x seq_len)")
        self.windows, self.batch, self.seed, self.device = windows, batch, seed, windows.device
        self.epoch, self.pos = 0, 0
        self._order = self._permutation(0)

    @classmethod
    def from_stream(cls, stream: np.ndarray, seq_len: int, batch: int, seed: int,
                    device: torch.device) -> WindowSampler:
        return cls(stream_windows(stream, seq_len, device), batch, seed)

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n_windows, generator=g).to(self.device)

    def peek(self) -> torch.Tensor:
        return self.windows[self._order[: self.batch]].long()

    def next(self) -> torch.Tensor:
        if self.pos + self.batch > self.n_windows:
            self.epoch += 1
            self.pos = 0
            self._order = self._permutation(self.epoch)
        idx = self._order[self.pos: self.pos + self.batch]
        self.pos += self.batch
        return self.windows[idx].long()


def stream_windows(stream: np.ndarray, seq_len: int, device: torch.device) -> torch.Tensor:
    n_windows = len(stream) // seq_len
    usable = np.asarray(stream[: n_windows * seq_len]).astype(np.int32)
    return torch.from_numpy(usable).to(device).view(n_windows, seq_len)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for but no CUDA GPU is visible; use device=cpu or auto")
    return torch.device(name)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


@torch.no_grad()
def init_weights(model: GPT, seed: int) -> None:
    """The run's initial weights, in place, from its seed alone: a fresh model and a warm worker's reused one
    (whatever it trained before) get the same values. Drawn on the model's device, so no CPU pass over 151M
    parameters."""
    torch.manual_seed(seed)
    model.reset_parameters()


# ----------------------------------------------------------------------------------------------------------
# One optimizer update


def make_train_step(model: GPT, optimizers: list, hp, horizon_tokens: int, *, autocast, cudagraphs: bool,
                    loss_fn) -> Any:
    """One optimizer update over ``grad_accum_steps`` micro-batches: ``step(next_batch, tokens_after) -> loss``
    (a device tensor, the mean over the micro-batches; nothing is read back to the host). ``optimizers`` is
    read at each call, so the caller may refill the list."""
    device = next(model.parameters()).device

    def train_step(next_batch, tokens_after: int) -> torch.Tensor:
        set_lr(optimizers, multiplier_for(hp, tokens_after, horizon_tokens))
        if cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        loss_sum = torch.zeros((), device=device)
        for _ in range(hp.grad_accum_steps):
            window = next_batch()
            with autocast:
                loss = loss_fn(window)
            (loss / hp.grad_accum_steps).backward()
            loss_sum += loss.detach()
            if hp.grad_accum_steps > 1:
                accumulate(optimizers)  # the working copies' bf16 gradients into fp32 sums
        scale = None
        if hp.grad_clip > 0:  # as clip_grad_norm_, with the scaling done where each optimizer reads its grads
            scale = clip_coefficient(gradients(optimizers), hp.grad_clip)
        for opt in optimizers:
            step_scaled(opt, scale)
            opt.zero_grad(set_to_none=True)
        return loss_sum / hp.grad_accum_steps

    return train_step


class DeviceLock:
    """An exclusive lock on a file, held from the warm-up to the end of a run (``runtime.device_lock``).

    Runs that share one GPU (a search's fractional GPUs) take turns for their compile warm-up and clocked
    steps, so no clock ever times two runs at once, while the next run's imports, data and model set-up
    overlap the current run's training. Released by the OS if the process dies.
    """

    def __init__(self, path: str) -> None:
        self.path, self._held = path, None

    def acquire(self) -> float:
        """Block until the lock is ours; return the seconds waited (0 without a lock path)."""
        if not self.path or self._held is not None:
            return 0.0
        from chores.files import file_lock

        t0 = time.perf_counter()
        self._held = contextlib.ExitStack()
        self._held.enter_context(file_lock(Path(self.path)))
        return time.perf_counter() - t0

    def release(self) -> None:
        if self._held is not None:
            self._held.close()  # drops the flock
            self._held = None


# ----------------------------------------------------------------------------------------------------------
# What a process keeps between runs


@dataclass
class Shape:
    """A model of one shape, ready to train: compiled (where asked) and, once ``warm``, warmed up."""

    key: tuple
    model: GPT
    device: torch.device
    autocast: Any
    cudagraphs: bool
    compiled: bool
    fast: bool
    loss_fn: Callable[[torch.Tensor], torch.Tensor]
    val: torch.Tensor  # the fixed validation windows, [n, seq_len] on the device
    eval_batch: int
    n_parameters: int
    warm: bool = False
    # the step-0 validation loss per seed: the weights are then init_weights(seed), so a warm worker evaluates
    # each seed once (0.7 s of a warm trial's 0.8 s start on the H200, Nov 30)
    initial_val: dict[int, float] = field(default_factory=dict)

    @torch.no_grad()
    def evaluate(self) -> float:
        total = torch.zeros((), device=self.device)
        for i in range(0, len(self.val), self.eval_batch):
            if self.cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            with self.autocast:
                total += self.loss_fn(self.val[i: i + self.eval_batch]).float()
        return (total / math.ceil(len(self.val) / self.eval_batch)).item()

    def optimizers(self, hp: Hyper) -> list:
        """Fresh optimizers for this model with ``hp``'s rates, as a run builds them: the fast path's where the
        model has it, Muon's Newton-Schulz in fp16 on CUDA (fp32 elsewhere) and compiled where the model is."""
        ns_dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        return list(build_optimizers(self.model, muon_lr=hp.muon_lr, adamw_lr=hp.adamw_lr,
                                     muon_momentum=hp.muon_momentum, weight_decay=hp.weight_decay,
                                     fast=self.fast, ns_dtype=ns_dtype, compile_ns=self.compiled))


class Workbench:
    """What one process keeps between its runs: token data, token windows on the device, and up to
    ``max_shapes`` models with their compiled code and CUDA graphs.

    Memory bound: the models of at most ``max_shapes`` shapes (default 2) plus the CUDA graph memory pool they
    share, and a second shape only while the first holds under 40% of the GPU's memory. A run on a further
    shape first drops every model and compiled graph (``clear``) and starts over. A run that fails (an exception, an
    out-of-memory error) leaves the bench ``dirty``: its owner replaces the process, or calls ``clear``.
    """

    def __init__(self, max_shapes: int = 2) -> None:
        self.max_shapes = max_shapes
        self.runs = 0
        self.dirty = False
        self._data: dict[Any, Any] = {}
        self._windows: dict[tuple, torch.Tensor] = {}
        self.shapes: OrderedDict[tuple, Shape] = OrderedDict()

    def tokens(self, config: RunConfig, progress: bool):
        from trainer.data import load_tokens

        if config.data not in self._data:
            self._data = {config.data: load_tokens(config.data, progress=progress)}
            self._windows.clear()
        return self._data[config.data]

    def windows(self, config: RunConfig, stream: np.ndarray, device: torch.device) -> torch.Tensor:
        key = (config.data, config.hp.seq_len, str(device))
        if key not in self._windows:
            self._windows[key] = stream_windows(stream, config.hp.seq_len, device)
        return self._windows[key]

    def shape(self, config: RunConfig, device: torch.device, val_stream: np.ndarray) -> Shape:
        key = shape_key(config, device)
        if key in self.shapes:
            self.shapes.move_to_end(key)
            return self.shapes[key]
        if len(self.shapes) >= self.max_shapes or (self.shapes and _device_busy(device)):
            self.clear()
        shape = build_shape(config, device, val_stream, key)
        self.shapes[key] = shape
        return shape

    def clear(self) -> None:
        """Drop every model and compiled graph (and CUDA memory they held)."""
        self.shapes.clear()
        self._windows.clear()
        torch._dynamo.reset()  # compiled code; on CUDA also the CUDA graph trees and their memory pool
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        self.dirty = False


_CACHE_COUNTERS = (("inductor", "fxgraph_cache_", "fxgraph_"), ("aot_autograd", "autograd_cache_", "aot_"))


def compile_cache_counters() -> dict[str, int]:
    """This process's compile-cache counters so far: ``fxgraph_{hit,miss,bypass}`` (inductor's FX graph cache)
    and ``aot_{hit,miss,bypass}`` (AOTAutograd's cache). Empty before the compile stack is imported."""
    if "torch._dynamo" not in sys.modules:
        return {}
    from torch._dynamo.utils import counters

    return {f"{short}{what}": int(counters[group][f"{prefix}{what}"])
            for group, prefix, short in _CACHE_COUNTERS for what in ("hit", "miss", "bypass")}


def counters_since(before: dict[str, int]) -> dict[str, int]:
    """What the compile-cache counters gained since ``before``; only the counters that moved."""
    now = compile_cache_counters()
    gained = {k: v - before.get(k, 0) for k, v in now.items()}
    return {k: v for k, v in gained.items() if v}


def _device_busy(device: torch.device, share: float = 0.4) -> bool:
    """Whether the cached shapes already hold more than ``share`` of the GPU: a further shape then starts over
    rather than risk running out of memory beside them (a 151M model at micro-batch 32 holds ~53 GB)."""
    if device.type != "cuda":
        return False
    return torch.cuda.memory_reserved(device) > share * torch.cuda.get_device_properties(device).total_memory


def _settings(config: RunConfig, device: torch.device) -> tuple[bool, bool, str, bool, bool]:
    """(compile, CUDA graphs, dtype, fast path, working copies) as the runtime asks for them on this device."""
    on_cuda = device.type == "cuda"
    fast = not config.runtime.reference
    do_compile = config.runtime.compile if config.runtime.compile is not None else (on_cuda and fast)
    dtype = config.runtime.dtype if config.runtime.dtype != "auto" else ("bf16" if on_cuda else "fp32")
    cudagraphs = bool(do_compile and on_cuda and config.runtime.cudagraphs is not False)
    working = fast and dtype == "bf16" and config.runtime.working_copies is not False
    return bool(do_compile), cudagraphs, dtype, fast, working


def shape_key(config: RunConfig, device: torch.device) -> tuple:
    """Everything compiled code and graphs depend on. Hyperparameters other than the micro-batch and sequence
    length are not in it: they never reach compiled code."""
    hp = config.hp
    loss_chunk = loss_chunk_for(config.runtime.loss_chunk, hp.micro_batch_size * (hp.seq_len - 1))
    return (config.model, str(device), *_settings(config, device), config.runtime.deterministic,
            config.runtime.attention, config.runtime.fp8, config.runtime.blocks_per_region,
            hp.micro_batch_size, hp.seq_len, loss_chunk,
            config.data, config.track.val_tokens)


@contextlib.contextmanager
def deterministic_kernels(on: bool) -> Iterator[None]:
    """``runtime.deterministic``: torch's deterministic algorithms while the run lasts, then as they were. An
    operation with no deterministic kernel then raises rather than run. CUDA's matmuls need a fixed cuBLAS
    workspace for it (``CUBLAS_WORKSPACE_CONFIG``), set here unless the environment sets one."""
    if not on:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


@contextlib.contextmanager
def fa4_kernels(config: RunConfig) -> Iterator[None]:
    """``runtime.attention = "fa4"``: FlashAttention-4 behind PyTorch's flash attention op while the run lasts
    (trainer/fa4.py). The run has checked first that it can run here (``check_device_settings``)."""
    if config.runtime.attention != "fa4":
        yield
        return
    from trainer import fa4

    with fa4.active():
        yield


def check_fp8(config: RunConfig) -> None:
    """For ``runtime.fp8 = true``: a ConfigError naming the setting unless the run's device does FP8 matmuls (CUDA,
    compute capability 8.9 or newer); nothing for other runs."""
    if not config.runtime.fp8:
        return
    device = resolve_device(config.runtime.device)
    if device.type != "cuda" or torch.cuda.get_device_capability(device) < (8, 9):
        where = (f"{torch.cuda.get_device_name(device)} (compute capability "
                 f"{'.'.join(map(str, torch.cuda.get_device_capability(device)))})" if device.type == "cuda"
                 else device.type)
        raise ConfigError(f"fp8=true needs an NVIDIA GPU of compute capability 8.9 or newer for FP8 matmuls; this "
                          f"run's device is {where}")


def check_device_settings(config: RunConfig) -> None:
    """The settings only the run's device can refuse (``attention=fa4``, ``fp8=true``), as ConfigErrors: checked by
    each run before it starts, and by the search, promote and transfer before Ray starts (``search.checks``)."""
    check_fa4(config)
    check_fp8(config)


def check_fa4(config: RunConfig) -> None:
    """For ``runtime.attention = "fa4"``: a ConfigError naming the setting unless FlashAttention-4 can run on this
    run's device (``trainer.fa4.check``); nothing for other runs. The search checks it before it starts Ray."""
    if config.runtime.attention != "fa4":
        return
    from trainer import fa4
    from trainer.data import cache_root

    fa4.check(resolve_device(config.runtime.device), cache_root(config.data) / "fa4")


def _import_compile_stack() -> None:
    """Import dynamo and inductor (~8 s on a GPU machine) in a thread, while the main thread loads data."""
    import torch._dynamo  # noqa: F401
    import torch._inductor.compile_fx  # noqa: F401

    from trainer import kernels

    if kernels.AVAILABLE:
        # the model's and the loss's Triton kernels (imported on their first call otherwise)
        import trainer.triton_ce  # noqa: F401
        import trainer.triton_qk  # noqa: F401


def compile_cache_file(config: RunConfig, device: torch.device, key: tuple) -> Path:
    """Where the portable compile cache of this shape lives: beside the token cache, named by the torch
    version, the GPU, the shape and the trainer's code, so a carried cache directory warms a new machine's first
    compile, and never with another version's graphs."""
    import hashlib

    from trainer.data import cache_root

    gpu = _device_name(device).replace(" ", "-")
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    code = stable_keys.code_digest()  # the graphs inside are keyed on it (stable_keys.tag_with_code)
    return cache_root(config.data) / "compile" / f"torch-{torch.__version__}-{gpu}-{digest}-code-{code}.bin"


def pin_cpu_threads_for_compile() -> None:
    """Fix the CPU thread count that inductor writes into its generated code and cache keys.

    Left at its default, inductor keys compiled graphs on ``torch.get_num_threads()`` where they may hold CPU
    code: a plain process has one thread per core, a Ray trial worker one (Ray sets OMP_NUM_THREADS=1), so a
    worker misses what a ``python -m trainer`` cached on the same machine (``bench/compile_cache_threads.py``).
    On an H200 (Nov 30) a process with OMP_NUM_THREADS=1 hit all 10 FX graphs and 8 AOTAutograd entries a plain
    process had cached, and started in 9.1 s (43.7 s for the plain process that compiled them). A search's Ray
    workers still missed them for a second reason, the module name pickled with a memory format (see
    ``trainer.stable_keys``). A GPU run's CPU kernels are negligible, so one thread costs nothing there, and every
    process shares one cache."""
    import torch._inductor.config as inductor_config

    inductor_config.cpp.threads = 1


def load_compile_cache(path: Path) -> bool:
    """Load PyTorch's portable compile artifacts (``torch.compiler.load_cache_artifacts``) if the file exists."""
    try:
        blob = path.read_bytes()
    except OSError:
        return False
    try:
        return torch.compiler.load_cache_artifacts(blob) is not None
    except Exception as exc:  # a stale or foreign cache must never stop a run: compile from scratch
        log.warning("ignoring the compile cache %s (%s)", path, exc)
        return False


def save_compile_cache(path: Path) -> None:
    """Save what this process compiled so far as portable artifacts (once per shape and machine kind)."""
    if path.exists():
        return
    try:
        saved = torch.compiler.save_cache_artifacts()
    except Exception as exc:
        log.warning("could not save the compile cache (%s)", exc)
        return
    if saved:
        from trainer.io import atomic_write_bytes

        atomic_write_bytes(path, saved[0])


def build_shape(config: RunConfig, device: torch.device, val_stream: np.ndarray, key: tuple) -> Shape:
    from trainer.data import val_windows

    do_compile, cudagraphs, dtype, fast, working = _settings(config, device)
    hp = config.hp
    if do_compile:
        stable_keys.install()  # one cache key per graph in every process (a Ray worker's imports differ)
    if do_compile and device.type == "cuda":
        pin_cpu_threads_for_compile()
        load_compile_cache(compile_cache_file(config, device, key))
    if cudagraphs:
        graph_index.install()  # recording the 64 training graphs: linear walks -> indexed lookups
    with torch.device(device):
        model = GPT(config.model)
        if working:
            model.working_copies = WorkingCopies(model)
        if fast and dtype == "bf16":
            model.residual_dtype = torch.bfloat16
        in_fp8 = fast and config.runtime.fp8
        if in_fp8:
            kernels.register_swiglu_fp8_backward()  # the MLP's backward op, before anything traces a call to it
        for block in model.blocks:
            block.attn.flash_op = fast and config.runtime.attention == "fa4"
            for module in block.modules():
                if isinstance(module, Linear | Attention):
                    module.fp8 = in_fp8
    val = torch.from_numpy(val_windows(val_stream, hp.seq_len, config.track.val_tokens)).to(device)
    eval_batch = hp.micro_batch_size
    val = val[: max(eval_batch, len(val) // eval_batch * eval_batch)]
    if do_compile:
        compile_regions(model, cudagraphs, config.runtime.blocks_per_region)
    loss_chunk = loss_chunk_for(config.runtime.loss_chunk, hp.micro_batch_size * (hp.seq_len - 1))
    if loss_chunk and fast:
        model.lm_loss = ChunkedLMLoss(loss_chunk, compile=do_compile, fp8=in_fp8)

    def loss_fn(window: torch.Tensor) -> torch.Tensor:
        return next_token_loss(model, window, reference=not fast)

    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16"
                else contextlib.nullcontext())
    return Shape(key=key, model=model, device=device, autocast=autocast, cudagraphs=cudagraphs,
                 compiled=do_compile, fast=fast, loss_fn=loss_fn, val=val, eval_batch=eval_batch,
                 n_parameters=count_parameters(model))


# ----------------------------------------------------------------------------------------------------------
# Crossings, smoothing and the stop rule


class Progress:
    """The run's view of its losses: the debiased EMA of the train loss, the three crossings, the stop rule."""

    def __init__(self, config: RunConfig) -> None:
        self.target = config.track.target
        self.track = config.track.name
        self.stop_rule = config.stop_rule
        self.decay = math.exp(-config.hp.tokens_per_step / config.track.smoothing_tokens)
        self._num = self._den = 0.0
        self.smoothed = self.last_loss = self.val = math.nan
        self.crossings: dict[str, dict[str, float] | None] = dict.fromkeys(CROSSING_RULES)

    def step(self, step: int, tokens: int, time_s: float, loss: float) -> None:
        self.last_loss = loss
        self._num = self.decay * self._num + (1 - self.decay) * loss
        self._den = self.decay * self._den + (1 - self.decay)
        self.smoothed = self._num / self._den
        self.cross("first_step", step, tokens, time_s, loss)
        self.cross("smoothed", step, tokens, time_s, self.smoothed)

    def evaluated(self, step: int, tokens: int, time_s: float, val_loss: float) -> None:
        self.val = val_loss
        if math.isfinite(val_loss):
            self.cross("val", step, tokens, time_s, val_loss)

    def cross(self, rule: str, step: int, tokens: int, time_s: float, loss: float) -> None:
        if self.target is not None and self.crossings[rule] is None and loss <= self.target:
            self.crossings[rule] = {"step": step, "tokens": tokens, "time_s": time_s, "loss": loss}
            log.info("crossed %s <= %s (%s) at step %d, %s tokens, %.2f s", self.track, self.target, rule, step,
                     f"{tokens:,}", time_s)

    def should_stop(self) -> bool:
        if self.stop_rule == "never" or self.target is None:
            return False
        if self.stop_rule == "all":
            return all(c is not None for c in self.crossings.values())
        return self.crossings[self.stop_rule] is not None

    def status(self, record_rule: str) -> str:
        if self.target is None:
            return "budget_exhausted"
        rules = CROSSING_RULES if self.stop_rule == "all" else (
            [self.stop_rule] if self.stop_rule in CROSSING_RULES else [record_rule])
        return "reached" if all(self.crossings[r] is not None for r in rules) else "budget_exhausted"


# ----------------------------------------------------------------------------------------------------------
# A run


class Fault(RuntimeError):
    """An injected fault (``runtime.fault``), for tests of what a worker does after a failed run."""


def _inject(fault: str, step: int, model: GPT) -> None:
    kind, _, at = fault.partition("@")
    if step != int(at):
        return
    if kind == "nan":
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(math.nan)
            if model.working_copies is not None:
                model.working_copies.refresh()
    elif kind == "raise":
        raise Fault(f"injected fault at step {step}")
    elif kind == "oom":
        raise torch.OutOfMemoryError(f"injected out-of-memory at step {step}")


class TrainingRun:
    """One run as an iterator of reports: iterate it (or call ``train``) to train. Each item is the metrics
    dict of a report (every ``report_every_tokens``, then the final one, marked ``final``); ``result`` holds
    the RunResult once the iteration has ended. The clock is paused while the consumer holds a report, so
    whatever the consumer does (Ray's bookkeeping, say) is not timed as training."""

    def __init__(self, config: RunConfig, bench: Workbench | None = None, *, progress: bool = False) -> None:
        self.config, self.progress = config, progress
        self.bench = bench if bench is not None else Workbench()
        self.result: RunResult | None = None
        self._begun = time.perf_counter()
        self._before = process_age_s() if self.bench.runs == 0 else 0.0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        lock = DeviceLock(self.config.runtime.device_lock)
        try:
            check_device_settings(self.config)  # before the device is touched: a ConfigError leaves the bench clean
            with deterministic_kernels(self.config.runtime.deterministic), fa4_kernels(self.config):
                yield from self._run(lock)
        except (GeneratorExit, ConfigError):
            raise  # stopped at a report (between steps), or refused before touching the device: state is clean
        except BaseException:
            self.bench.dirty = True  # an exception mid-step leaves no trustworthy model, graphs or pools
            raise
        finally:
            lock.release()
            self.bench.runs += 1

    def _run(self, lock: DeviceLock) -> Iterator[dict[str, Any]]:
        config, bench, hp, track = self.config, self.bench, self.config.hp, self.config.track
        phases: dict[str, float] = {"before_train": self._before}
        device = resolve_device(config.runtime.device)
        on_cuda = device.type == "cuda"
        if on_cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if bench.dirty:
            bench.clear()
        worker_runs = bench.runs
        importer = None
        if _settings(config, device)[0] and "torch._inductor.compile_fx" not in sys.modules:
            importer = threading.Thread(target=_import_compile_stack, name="import-compile", daemon=True)
            importer.start()

        t_phase = time.perf_counter()
        data = bench.tokens(config, self.progress)
        if importer is not None:
            importer.join()  # before anything here touches compile: two threads importing dynamo deadlock
        phases["data"] = time.perf_counter() - t_phase
        t_phase = time.perf_counter()
        if data.vocab_size > config.model.vocab_size:
            raise ConfigError(f"the tokenizer has {data.vocab_size:,} tokens but model.vocab_size is "
                              f"{config.model.vocab_size:,}")
        tokens_per_step = hp.tokens_per_step
        max_steps = config.max_tokens // tokens_per_step
        if max_steps < 1:
            raise ConfigError(f"max_tokens ({config.max_tokens:,}) is less than one step "
                              f"({tokens_per_step:,} tokens = micro_batch_size x grad_accum_steps x seq_len)")
        shape = bench.shape(config, device, data.val)
        warm_start = shape.warm
        model = shape.model
        sampler = WindowSampler(bench.windows(config, data.train, device), hp.micro_batch_size, hp.seed)
        optimizers = shape.optimizers(hp)  # refilled in place after a warm-up
        train_step = make_train_step(model, optimizers, hp, config.horizon_tokens, autocast=shape.autocast,
                                     cudagraphs=shape.cudagraphs, loss_fn=shape.loss_fn)
        if on_cuda:
            torch.cuda.synchronize()
        phases["model"] = time.perf_counter() - t_phase
        phases["device_wait"] = lock.acquire()

        # Warm-up, once per shape: compile and allocate everything outside the clock. It starts with the
        # evaluation, on the weights drawn from the seed: that pass compiles and records the evaluation's graphs
        # and is the run's step-0 validation loss (the weights below are drawn from the same seed again). Two
        # steps then compile and record the training graphs; the weights are drawn again and the optimizers
        # rebuilt, so the warm-up leaves no trace.
        t0 = time.perf_counter()
        counted = compile_cache_counters()
        if not shape.warm and (shape.compiled or on_cuda):
            init_weights(model, hp.seed)
            shape.initial_val[hp.seed] = shape.evaluate()
            for _ in range(2):
                train_step(sampler.peek, tokens_per_step)
            optimizers[:] = shape.optimizers(hp)
            if shape.compiled and on_cuda:
                save_compile_cache(compile_cache_file(config, device, shape.key))
            # no peak-memory reset: CUDA graphs allocate their pools during warm-up and replays allocate
            # nothing, so a peak taken after warm-up would leave out most of what the run holds
        shape.warm = True
        init_weights(model, hp.seed)
        if on_cuda:
            torch.cuda.synchronize()
        warmup_s = time.perf_counter() - t0
        phases["warmup"] = warmup_s
        compile_cache = counters_since(counted)

        prog = Progress(config)
        history: list[dict[str, float]] = []
        val_history: list[dict[str, float]] = []
        host_losses = torch.empty(max_steps + 1, dtype=torch.float32, pin_memory=on_cuda)
        t_phase = time.perf_counter()
        val_loss0 = shape.initial_val.get(hp.seed)
        if val_loss0 is None:
            val_loss0 = shape.initial_val[hp.seed] = shape.evaluate()
        phases["first_eval"] = time.perf_counter() - t_phase
        clock = Clock(device)
        clock.start()
        clock_started_at = time.time()  # wall time, to place this run's clocked span beside other runs'
        startup_s = self._before + (time.perf_counter() - self._begun)
        phases = {k: round(v, 3) for k, v in phases.items()}
        val_history.append({"step": 0, "tokens": 0, "val_loss": val_loss0, "clock_s": 0.0})
        prog.val = val_loss0

        def metrics(step: int, tokens: int, clock_s: float, done: bool = False) -> dict[str, Any]:
            m: dict[str, Any] = {
                "tokens": tokens, "step": step, "train_loss": prog.last_loss, "smoothed_loss": prog.smoothed,
                "val_loss": prog.val, "clock_s": clock_s, "tokens_per_s": tokens / clock_s if clock_s > 0 else 0.0,
                "final": done, "startup_s": startup_s, "startup_phases": phases, "compile_cache": compile_cache,
                "worker_runs": worker_runs,
                "warm_start": warm_start, "worker_pid": os.getpid(), "clock_started_at": clock_started_at,
                "reported_at": time.time()}
            for rule in CROSSING_RULES:
                c = prog.crossings[rule]
                m[f"time_to_target_{rule}_s"] = c["time_s"] if c else None
                m[f"tokens_to_target_{rule}"] = c["tokens"] if c else None
            return m

        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.max_tokens, unit="tok", unit_scale=True, dynamic_ncols=True, desc=track.name)

        status, error = "", ""
        pending: deque = deque()  # (step, tokens, device event) of steps whose loss is not read yet
        lag = 1 if on_cuda else 0
        step, tokens_done, next_eval, next_report = 0, 0, config.eval_every_tokens, config.report_every_tokens
        last_mark = None
        host_s: list[float] = []  # each step's host time to issue it

        def read(s: int, mark) -> tuple[float, float]:
            # step s's loss and clock; its loss is copied to the host asynchronously, so wait for the step first
            # (Nov 30: the tail after a stop rule read it without waiting and got 0.0 or stale memory)
            mark.synchronize()
            return float(host_losses[s]), clock.seconds(mark)

        try:
            while step < max_steps and not status and not prog.should_stop():
                if config.runtime.fault:
                    _inject(config.runtime.fault, step + 1, model)
                step += 1
                tokens_done += tokens_per_step
                issued = time.perf_counter()
                loss = train_step(sampler.next, tokens_done)
                host_s.append(time.perf_counter() - issued)
                host_losses[step: step + 1].copy_(loss.view(1), non_blocking=True)
                last_mark = clock.mark()
                pending.append((step, tokens_done, last_mark))
                evaluate_now = tokens_done >= next_eval
                # read the finished steps' losses (all of them before an evaluation)
                while pending and (len(pending) > lag or evaluate_now) and not status:
                    s, t, mark = pending.popleft()
                    loss_s, clock_s = read(s, mark)
                    if not math.isfinite(loss_s):
                        status = "diverged"
                        prog.last_loss = loss_s
                        history.append({"step": s, "tokens": t, "train_loss": loss_s, "smoothed_loss": math.nan,
                                        "clock_s": clock_s})
                        log.warning("loss is %s at step %d: diverged", loss_s, s)
                        break
                    prog.step(s, t, clock_s, loss_s)
                    history.append({"step": s, "tokens": t, "train_loss": loss_s, "smoothed_loss": prog.smoothed,
                                    "clock_s": clock_s})
                    if bar is not None:
                        bar.update(t - bar.n)
                        bar.set_postfix(loss=f"{loss_s:.3f}", ema=f"{prog.smoothed:.3f}",
                                        tok_s=f"{t / max(clock_s, 1e-9):,.0f}", refresh=False)
                    # a report at each milestone, except at the cap: the final report (after the final
                    # evaluation) stands for it, so nothing downstream scores a stale validation loss
                    if t >= next_report and t < max_steps * tokens_per_step:
                        while next_report <= t:
                            next_report += config.report_every_tokens
                        paused = clock.pause()
                        yield metrics(s, t, clock_s)
                        clock.resume(paused)
                if evaluate_now and not status:
                    while next_eval <= tokens_done:
                        next_eval += config.eval_every_tokens
                    begin = clock.pause()
                    val_loss = shape.evaluate()
                    clock.resume(begin)
                    at = clock.seconds(begin)
                    prog.evaluated(step, tokens_done, at, val_loss)
                    val_history.append({"step": step, "tokens": tokens_done, "val_loss": val_loss, "clock_s": at})
            while pending and not status:  # a stop rule ended the loop with the last steps unread
                s, t, mark = pending.popleft()
                loss_s, clock_s = read(s, mark)
                prog.step(s, t, clock_s, loss_s)
                history.append({"step": s, "tokens": t, "train_loss": loss_s, "smoothed_loss": prog.smoothed,
                                "clock_s": clock_s})
        except torch.OutOfMemoryError as exc:
            status = "failed"
            error = f"CUDA out of memory at micro_batch_size={hp.micro_batch_size}, seq_len={hp.seq_len}: " \
                    f"{str(exc).splitlines()[0]}"
            log.error(error)
            bench.dirty = True  # half-allocated graphs and pools: start the next run from scratch
        finally:
            if bar is not None:
                bar.close()

        clock_s = clock.seconds(last_mark) if last_mark is not None else 0.0
        clock_ended_at = time.time()  # the last step has been read back, so it has finished
        done_steps = history[-1]["step"] if history else 0
        done_tokens = history[-1]["tokens"] if history else 0
        if status not in ("diverged", "failed") and val_history[-1]["step"] != done_steps:
            val_loss = shape.evaluate()
            prog.evaluated(done_steps, done_tokens, clock_s, val_loss)
            val_history.append({"step": done_steps, "tokens": done_tokens, "val_loss": val_loss, "clock_s": clock_s})
        status = status or prog.status(track.record_rule)
        name = _device_name(device)
        tps = done_tokens / clock_s if clock_s > 0 else 0.0
        vals = [v["val_loss"] for v in val_history if math.isfinite(v["val_loss"])]
        self.result = RunResult(
            status=status, track=track.name, target=track.target, stop_rule=config.stop_rule,
            crossings=prog.crossings, steps=done_steps, tokens=done_tokens, clock_s=clock_s,
            final_train_loss=prog.last_loss, final_smoothed_loss=prog.smoothed, final_val_loss=prog.val,
            best_val_loss=min(vals) if vals else math.nan, tokens_per_s=tps,
            step_time_ms=1000 * clock_s / done_steps if done_steps else 0.0,
            host_step_ms=1000 * statistics.median(host_s) if host_s else 0.0,
            **mfu_fields(config.model, hp.seq_len, tps, name),
            peak_memory_bytes=torch.cuda.max_memory_allocated(device) if on_cuda else 0,
            peak_reserved_bytes=torch.cuda.max_memory_reserved(device) if on_cuda else 0,
            startup_s=startup_s, warmup_s=warmup_s, startup_phases=phases, compile_cache=compile_cache,
            worker_runs=worker_runs, warm_start=warm_start, clock_started_at=clock_started_at, clock_ended_at=clock_ended_at,
            n_parameters=shape.n_parameters, device=name,
            data={"source": data.source, "fingerprint": data.fingerprint, "train_tokens": int(len(data.train)),
                  "val_tokens": int(len(data.val)), "train_docs": data.n_train_docs},
            error=error, history=history, val_history=val_history, config=config.to_dict(),
        )
        log.info("%s: %s after %d steps, %s tokens, %.1f s clocked, %.0f tokens/s", track.name, status,
                 done_steps, f"{done_tokens:,}", clock_s, tps)
        yield {**metrics(done_steps, done_tokens, clock_s, done=True), "status": status,
               "best_val_loss": self.result.best_val_loss, "warmup_s": warmup_s, "clock_ended_at": clock_ended_at,
               "device": name, "error": error, "peak_reserved_bytes": self.result.peak_reserved_bytes}


def train(config: RunConfig, reporter: Reporter | None = None, *, progress: bool = False,
          bench: Workbench | None = None) -> RunResult:
    """Train one run as the config says and return its result. Raises ConfigError on bad input. ``bench``: a
    Workbench kept from earlier runs of this process (warm start); default a new one."""
    reporter = reporter or NullReporter()
    run = TrainingRun(config, bench, progress=progress)
    for metrics in run:
        reporter.report(metrics)
    assert run.result is not None
    return run.result
