"""The training loop: ``train(config, reporter) -> RunResult``.

    compile + warm-up (restored afterwards) -> clock starts -> for each step: train, read the *previous*
    step's loss from a pinned host buffer (no stall), check the three crossing rules, evaluate every N
    tokens with the clock paused, report at token milestones -> clock stops.

A step is one optimizer update over ``grad_accum_steps`` micro-batches; its train loss is the mean over
them. The only host reads in the hot path are of a step that the GPU has already finished, so the next
step is always queued while the host waits. A crossing is attributed to the step whose loss crossed and
timed by that step's device event, not by when the host noticed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from trainer.clock import Clock, process_age_s
from trainer.config import CROSSING_RULES, ConfigError, RunConfig
from trainer.flops import mfu_fields
from trainer.loss import ChunkedLMLoss, loss_chunk_for
from trainer.model import GPT, compile_regions, count_parameters, next_token_loss
from trainer.optim import build_optimizers, set_lr
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
    mfu: float | None = None  # flops_per_token x tokens_per_s / peak_flops (trainer/flops.py)
    flops_per_token: float = 0.0  # training FLOPs per token, causal attention included
    flops_per_token_6n: float = 0.0  # the 6·N part alone
    peak_flops: float | None = None  # the device's peak in trainer.flops.PEAK_FLOPS; None off the table
    peak_name: str = ""
    peak_memory_bytes: int = 0  # whole process, warm-up (and CUDA graph pools) included
    peak_reserved_bytes: int = 0  # the same for the caching allocator's reserved memory
    startup_s: float = 0.0
    warmup_s: float = 0.0
    # where the start-up went, seconds: process start to train(), data, model and sampler, compile warm-up,
    # the step-0 evaluation (the rest is clock set-up)
    startup_phases: dict[str, float] = field(default_factory=dict)
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
        d = {k: v for k, v in self.to_dict().items() if k not in ("history", "val_history", "config")}
        return d


# ----------------------------------------------------------------------------------------------------------


class WindowSampler:
    """Non-overlapping ``seq_len`` windows of the token stream in a seeded random order, epoch after epoch.

    The whole stream lives on the device (int32: 79M tokens are 316 MB), so a batch is one gather there and
    the host never touches token data in the loop.
    """

    def __init__(self, stream: np.ndarray, seq_len: int, batch: int, seed: int, device: torch.device) -> None:
        self.n_windows = len(stream) // seq_len
        if self.n_windows < batch:
            raise ConfigError(f"the training data has {len(stream):,} tokens: fewer than one batch of "
                              f"{batch} x {seq_len} (micro_batch_size x seq_len)")
        usable = np.asarray(stream[: self.n_windows * seq_len]).astype(np.int32)
        self.windows = torch.from_numpy(usable).to(device).view(self.n_windows, seq_len)
        self.batch, self.seed, self.device = batch, seed, device
        self.epoch, self.pos = 0, 0
        self._order = self._permutation(0)

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


# ----------------------------------------------------------------------------------------------------------


def make_train_step(model: GPT, optimizers: list, hp, horizon_tokens: int, *, autocast, cudagraphs: bool,
                    loss_fn) -> Any:
    """One optimizer update over ``grad_accum_steps`` micro-batches: ``step(next_batch, tokens_after) -> loss``
    (a device tensor, the mean over the micro-batches; nothing is read back to the host). ``optimizers`` is
    read at each call, so the caller may refill the list."""
    params = list(model.parameters())
    device = params[0].device

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
        if hp.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, hp.grad_clip, foreach=device.type == "cuda")
        for opt in optimizers:
            opt.step()
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
        self.path, self._fh = path, None

    def acquire(self) -> float:
        """Block until the lock is ours; return the seconds waited (0 without a lock path)."""
        if not self.path or self._fh is not None:
            return 0.0
        import fcntl

        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        t0 = time.perf_counter()
        self._fh = open(self.path, "a+")  # noqa: SIM115 (held across the run, closed in release)
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        return time.perf_counter() - t0

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the flock
            self._fh = None


def train(config: RunConfig, reporter: Reporter | None = None, *, progress: bool = False) -> RunResult:
    """Train one run as the config says and return its result. Raises ConfigError on bad input."""
    lock = DeviceLock(config.runtime.device_lock)
    try:
        return _train(config, reporter, progress, lock)
    finally:
        lock.release()


def _train(config: RunConfig, reporter: Reporter | None, progress: bool, lock: DeviceLock) -> RunResult:
    from trainer.data import load_tokens, val_windows

    reporter = reporter or NullReporter()
    phases: dict[str, float] = {"before_train": process_age_s()}
    hp, track = config.hp, config.track
    device = resolve_device(config.runtime.device)
    on_cuda = device.type == "cuda"
    fast = not config.runtime.reference
    do_compile = config.runtime.compile if config.runtime.compile is not None else (on_cuda and fast)
    dtype = config.runtime.dtype if config.runtime.dtype != "auto" else ("bf16" if on_cuda else "fp32")
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16"
                else contextlib.nullcontext())
    if on_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    t_phase = time.perf_counter()
    data = load_tokens(config.data, progress=progress)
    phases["data"] = time.perf_counter() - t_phase
    t_phase = time.perf_counter()
    if data.vocab_size > config.model.vocab_size:
        raise ConfigError(f"the tokenizer has {data.vocab_size:,} tokens but model.vocab_size is "
                          f"{config.model.vocab_size:,}")
    torch.manual_seed(hp.seed)
    model = GPT(config.model).to(device)
    n_params = count_parameters(model)
    sampler = WindowSampler(data.train, hp.seq_len, hp.micro_batch_size, hp.seed, device)
    eval_batch = hp.micro_batch_size
    val = torch.from_numpy(val_windows(data.val, hp.seq_len, track.val_tokens)).to(device)
    val = val[: max(eval_batch, len(val) // eval_batch * eval_batch)]

    def loss_of(window: torch.Tensor) -> torch.Tensor:
        return next_token_loss(model, window, reference=not fast)

    cudagraphs = do_compile and on_cuda and config.runtime.cudagraphs is not False
    if do_compile:
        compile_regions(model, cudagraphs)
    loss_chunk = loss_chunk_for(config.runtime.loss_chunk, hp.micro_batch_size * (hp.seq_len - 1))
    if loss_chunk and fast:
        model.lm_loss = ChunkedLMLoss(loss_chunk, compile=do_compile)
    loss_fn = loss_of
    ns_dtype = torch.float16 if on_cuda else torch.float32

    def make_optimizers():
        return build_optimizers(model, muon_lr=hp.muon_lr, adamw_lr=hp.adamw_lr, muon_momentum=hp.muon_momentum,
                                weight_decay=hp.weight_decay, fast=fast, ns_dtype=ns_dtype,
                                compile_ns=do_compile)

    optimizers = list(make_optimizers())  # refilled in place after the warm-up
    train_step = make_train_step(model, optimizers, hp, config.horizon_tokens, autocast=autocast,
                                 cudagraphs=cudagraphs, loss_fn=loss_fn)

    @torch.no_grad()
    def evaluate() -> float:
        total = torch.zeros((), device=device)
        for i in range(0, len(val), eval_batch):
            if cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            with autocast:
                total += loss_fn(val[i: i + eval_batch]).float()
        return (total / math.ceil(len(val) / eval_batch)).item()

    # Warm-up: compile and allocate everything outside the clock, then restore the initial state so the
    # warm-up steps leave no trace on the model or the optimizers.
    if on_cuda:
        torch.cuda.synchronize()
    phases["model"] = time.perf_counter() - t_phase
    phases["device_wait"] = lock.acquire()
    t0 = time.perf_counter()
    if do_compile or on_cuda:
        snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
        for _ in range(2):
            train_step(sampler.peek, hp.tokens_per_step)
        evaluate()
        model.load_state_dict(snapshot)
        optimizers[:] = make_optimizers()
        del snapshot
        # no peak-memory reset here: CUDA graphs allocate their memory pools during warm-up and replays
        # allocate nothing, so a peak taken after warm-up would leave out most of what the run holds
        if on_cuda:
            torch.cuda.synchronize()
    warmup_s = time.perf_counter() - t0

    crossings: dict[str, dict[str, float] | None] = dict.fromkeys(CROSSING_RULES)
    target = track.target
    history: list[dict[str, float]] = []
    val_history: list[dict[str, float]] = []
    tokens_per_step = hp.tokens_per_step
    max_steps = config.max_tokens // tokens_per_step
    if max_steps < 1:
        raise ConfigError(f"max_tokens ({config.max_tokens:,}) is less than one step "
                          f"({tokens_per_step:,} tokens = micro_batch_size x grad_accum_steps x seq_len)")
    ema_decay = math.exp(-tokens_per_step / track.smoothing_tokens)
    state = {"ema_num": 0.0, "ema_den": 0.0, "smoothed": math.nan, "last_loss": math.nan, "val": math.nan,
             "status": "", "next_report": config.report_every_tokens}
    host_losses = torch.empty(max_steps + 1, dtype=torch.float32, pin_memory=on_cuda)

    phases["warmup"] = warmup_s
    t_phase = time.perf_counter()
    val_loss0 = evaluate()
    phases["first_eval"] = time.perf_counter() - t_phase
    clock = Clock(device)
    clock.start()
    clock_started_at = time.time()  # wall time, to place this run's clocked span beside other runs'
    startup_s = process_age_s()
    phases = {k: round(v, 3) for k, v in phases.items()}
    val_history.append({"step": 0, "tokens": 0, "val_loss": val_loss0, "clock_s": 0.0})
    state["val"] = val_loss0

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.max_tokens, unit="tok", unit_scale=True, dynamic_ncols=True,
                   desc=f"{track.name}")

    def cross(rule: str, step: int, tokens: int, time_s: float, loss: float) -> None:
        if target is not None and crossings[rule] is None and loss <= target:
            crossings[rule] = {"step": step, "tokens": tokens, "time_s": time_s, "loss": loss}
            log.info("crossed %s <= %s (%s) at step %d, %s tokens, %.2f s", track.name, target, rule, step,
                     f"{tokens:,}", time_s)

    def should_stop() -> bool:
        rule = config.stop_rule
        if rule == "never" or target is None:
            return False
        if rule == "all":
            return all(crossings[r] is not None for r in CROSSING_RULES)
        return crossings[rule] is not None

    def metrics(step: int, tokens: int, clock_s: float, done: bool = False) -> dict[str, Any]:
        m: dict[str, Any] = {"tokens": tokens, "step": step, "train_loss": state["last_loss"],
                             "smoothed_loss": state["smoothed"], "val_loss": state["val"], "clock_s": clock_s,
                             "tokens_per_s": tokens / clock_s if clock_s > 0 else 0.0, "final": done,
                             "startup_s": startup_s, "startup_phases": phases,
                             "clock_started_at": clock_started_at, "reported_at": time.time()}
        for rule in CROSSING_RULES:
            c = crossings[rule]
            m[f"time_to_target_{rule}_s"] = c["time_s"] if c else None
            m[f"tokens_to_target_{rule}"] = c["tokens"] if c else None
        return m

    def process(step: int, tokens: int, mark) -> None:
        """Handle a finished step: its loss is in host_losses once its event has completed."""
        mark.synchronize()
        loss = float(host_losses[step])
        clock_s = clock.seconds(mark)
        state["last_loss"] = loss
        if not math.isfinite(loss):
            state["status"] = "diverged"
            history.append({"step": step, "tokens": tokens, "train_loss": loss, "smoothed_loss": math.nan,
                            "clock_s": clock_s})
            log.warning("loss is %s at step %d: diverged", loss, step)
            return
        state["ema_num"] = ema_decay * state["ema_num"] + (1 - ema_decay) * loss
        state["ema_den"] = ema_decay * state["ema_den"] + (1 - ema_decay)
        state["smoothed"] = state["ema_num"] / state["ema_den"]
        history.append({"step": step, "tokens": tokens, "train_loss": loss, "smoothed_loss": state["smoothed"],
                        "clock_s": clock_s})
        cross("first_step", step, tokens, clock_s, loss)
        cross("smoothed", step, tokens, clock_s, state["smoothed"])
        if tokens >= state["next_report"]:
            while state["next_report"] <= tokens:
                state["next_report"] += config.report_every_tokens
            reporter.report(metrics(step, tokens, clock_s))
        if bar is not None:
            bar.update(tokens - bar.n)
            bar.set_postfix(loss=f"{loss:.3f}", ema=f"{state['smoothed']:.3f}",
                            tok_s=f"{tokens / max(clock_s, 1e-9):,.0f}", refresh=False)

    pending: deque = deque()
    lag = 1 if on_cuda else 0
    step, tokens_done, next_eval = 0, 0, config.eval_every_tokens
    last_mark = None
    try:
        while step < max_steps and not state["status"] and not should_stop():
            step += 1
            tokens_done += tokens_per_step
            loss = train_step(sampler.next, tokens_done)
            host_losses[step: step + 1].copy_(loss.view(1), non_blocking=True)
            last_mark = clock.mark()
            pending.append((step, tokens_done, last_mark))
            while len(pending) > lag and not state["status"]:
                process(*pending.popleft())
            if tokens_done >= next_eval and not state["status"]:
                while pending:
                    process(*pending.popleft())
                while next_eval <= tokens_done:
                    next_eval += config.eval_every_tokens
                begin = clock.pause()
                val_loss = evaluate()
                clock.resume(begin)
                at = clock.seconds(begin)
                state["val"] = val_loss
                val_history.append({"step": step, "tokens": tokens_done, "val_loss": val_loss, "clock_s": at})
                if math.isfinite(val_loss):
                    cross("val", step, tokens_done, at, val_loss)
        while pending and not state["status"]:
            process(*pending.popleft())
    except torch.OutOfMemoryError as exc:
        state["status"] = "failed"
        error = f"CUDA out of memory at micro_batch_size={hp.micro_batch_size}, seq_len={hp.seq_len}: " \
                f"{str(exc).splitlines()[0]}"
        log.error(error)
    else:
        error = ""
    finally:
        if bar is not None:
            bar.close()

    clock_s = clock.seconds(last_mark) if last_mark is not None else 0.0
    clock_ended_at = time.time()  # the last step has been read back, so it has finished
    done_steps = history[-1]["step"] if history else 0
    done_tokens = history[-1]["tokens"] if history else 0
    if state["status"] not in ("diverged", "failed") and (not val_history or val_history[-1]["step"] != done_steps):
        val_loss = evaluate()
        state["val"] = val_loss
        val_history.append({"step": done_steps, "tokens": done_tokens, "val_loss": val_loss, "clock_s": clock_s})
        if math.isfinite(val_loss):
            cross("val", done_steps, done_tokens, clock_s, val_loss)
    if state["status"]:
        status = state["status"]
    else:
        rule = config.stop_rule if config.stop_rule in CROSSING_RULES else track.record_rule
        if config.stop_rule == "all":
            reached = all(crossings[r] is not None for r in CROSSING_RULES)
        else:
            reached = crossings[rule] is not None
        status = "reached" if target is not None and reached else "budget_exhausted"
    name = _device_name(device)
    tps = done_tokens / clock_s if clock_s > 0 else 0.0
    vals = [v["val_loss"] for v in val_history if math.isfinite(v["val_loss"])]
    result = RunResult(
        status=status, track=track.name, target=target, stop_rule=config.stop_rule, crossings=crossings,
        steps=done_steps, tokens=done_tokens, clock_s=clock_s, final_train_loss=state["last_loss"],
        final_smoothed_loss=state["smoothed"], final_val_loss=state["val"],
        best_val_loss=min(vals) if vals else math.nan, tokens_per_s=tps,
        step_time_ms=1000 * clock_s / done_steps if done_steps else 0.0,
        **mfu_fields(config.model, hp.seq_len, tps, name),
        peak_memory_bytes=torch.cuda.max_memory_allocated(device) if on_cuda else 0,
        peak_reserved_bytes=torch.cuda.max_memory_reserved(device) if on_cuda else 0,
        startup_s=startup_s, warmup_s=warmup_s, startup_phases=phases,
        clock_started_at=clock_started_at, clock_ended_at=clock_ended_at, n_parameters=n_params, device=name,
        data={"source": data.source, "fingerprint": data.fingerprint, "train_tokens": int(len(data.train)),
              "val_tokens": int(len(data.val)), "train_docs": data.n_train_docs},
        error=error,
        history=history, val_history=val_history, config=config.to_dict(),
    )
    reporter.report({**metrics(done_steps, done_tokens, clock_s, done=True), "status": status,
                     "best_val_loss": result.best_val_loss, "warmup_s": warmup_s,
                     "clock_ended_at": clock_ended_at, "device": name, "error": error})
    log.info("%s: %s after %d steps, %s tokens, %.1f s clocked, %.0f tokens/s", track.name, status, done_steps,
             f"{done_tokens:,}", clock_s, tps)
    return result
