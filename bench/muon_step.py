"""Muon's optimizer step alone, on the 151M model's hidden matrices: GPU time and host time per step.

    PYTHONPATH=. python bench/muon_step.py --out bench/results/muon_step

Two versions on the same random gradients:
- ``trainer``: ``trainer.optim.Muon`` as the trainer runs it (stack the gradients, two lerps, Newton-Schulz
  compiled on its own, a cast back to fp32, the add);
- ``fused``: a variant tried on Nov 30 (third session) and not kept: the stack, lerps, cast and norm compiled
  into one kernel and the quintic's adds folded into cuBLAS ``baddbmm``. On an H200 it took 7.75 ms a step
  against 6.64 (``bench/results/muon_step/``): the fused kernel writes the tall matrices transposed, and
  ``baddbmm`` ran slower than ``bmm`` plus inductor's fused add.

GPU time is measured with the host running ahead: a ``torch.cuda._sleep`` is queued first, so every step's
kernels are queued before the GPU reaches them and the events time the kernels alone, not the launches.
Host time is the wall time of queuing one step, over the first 3 steps only: queuing many more fills the launch
queue and the host then waits for the GPU (the Nov 30 figures, 26-28 ms, measured 50 steps and are that wait). Also prints how far the two versions' weights end apart.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from trainer.config import PRESETS
from trainer.model import GPT
from trainer.optim import NS_COEFFS, Muon, ns_start, partition


def newton_schulz_fused(G: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor:
    a, b, c = NS_COEFFS
    X, transpose = ns_start(G, dtype)
    for _ in range(steps):
        A = X @ X.mT
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)  # b * A + c * A @ A in one cuBLAS call
        X = torch.baddbmm(X, B, X, beta=a)  # a * X + B @ X
    return X.mT if transpose else X


def fused_update(grads: list[torch.Tensor], buf: torch.Tensor, momentum: torch.Tensor, steps: int,
                 dtype: torch.dtype) -> torch.Tensor:
    g = torch.stack(grads)
    buf.lerp_(g, 1 - momentum)
    return newton_schulz_fused(g.lerp_(buf, momentum), steps, dtype)


class MuonFused:
    def __init__(self, params: list[torch.nn.Parameter], lr: float, momentum: float) -> None:
        self.lr = lr
        self.update = torch.compile(fused_update, dynamic=False)
        groups: dict[tuple, list] = {}
        for p in params:
            groups.setdefault(tuple(p.shape), []).append(p)
        self.groups = list(groups.values())
        self.bufs = [torch.zeros((len(g), *g[0].shape), device=g[0].device) for g in self.groups]
        self.m = torch.tensor(momentum, device=params[0].device)

    @torch.no_grad()
    def step(self) -> None:
        for params, buf in zip(self.groups, self.bufs):
            update = self.update([p.grad for p in params], buf, self.m, 5, torch.float16)
            rows, cols = params[0].shape
            torch._foreach_add_(params, list(update.unbind(0)), alpha=-self.lr * max(1.0, rows / cols) ** 0.5)


HOST_STEPS = 3  # queued while the GPU sleeps: ~400 launches, under the device's launch-queue depth


def measure(name: str, make, steps: int) -> tuple[dict, torch.Tensor]:
    torch.manual_seed(0)
    model = GPT(PRESETS["blueberry-151m"]).cuda()
    hidden, _ = partition(model)
    opt = make(hidden)
    gen = torch.Generator(device="cuda").manual_seed(1)
    grads = [[torch.randn(p.shape, device="cuda", generator=gen) * 1e-3 for p in hidden] for _ in range(3)]

    def one(i: int) -> None:
        for p, g in zip(hidden, grads[i % 3]):
            p.grad = g
        opt.step()

    for i in range(3):  # compile and warm up
        one(i)
    torch.cuda.synchronize()
    torch.cuda._sleep(2_000_000_000)  # ~1 s of GPU time: the host queues every step before the GPU gets there
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    t0 = time.perf_counter()
    for i in range(steps):
        one(i)
        if i == HOST_STEPS - 1:  # later steps would wait for room in the full launch queue, not for the host
            host_ms = (time.perf_counter() - t0) * 1000 / HOST_STEPS
    end.record()
    torch.cuda.synchronize()
    gpu_ms = start.elapsed_time(end) / steps
    weights = torch.cat([p.detach().flatten() for p in hidden])
    return {"version": name, "gpu_ms_per_step": round(gpu_ms, 3), "host_ms_per_step": round(host_ms, 3),
            "steps": steps}, weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    before, w_before = measure("trainer", lambda ps: Muon(ps, lr=0.015, momentum=0.95, ns_dtype=torch.float16,
                                                          compile_ns=True), args.steps)
    rows.append(before)
    now, w_now = measure("fused", lambda ps: MuonFused(ps, lr=0.015, momentum=0.95), args.steps)
    rows.append(now)
    moved = (w_before - w_now).abs()
    summary = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows,
               "weights_max_abs_difference_after_all_steps": moved.max().item(),
               "weights_mean_abs_difference": moved.mean().item(),
               "fused_speedup_gpu": round(before["gpu_ms_per_step"] / now["gpu_ms_per_step"], 3)}
    (args.out / "muon_step.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
