"""Muon's optimizer step alone, on the 151M model's hidden matrices: GPU time and host time per step.

    PYTHONPATH=. python bench/muon_step.py --out bench/results/muon_step [--versions folded trainer]

Versions on the same random gradients:
- ``before``: the trainer's Muon until Nov 30 (fourth session): a tall matrix is transposed into
  Newton-Schulz and back (upstream's form), so its update comes out with transposed strides;
- ``no-transpose``: a tall matrix iterated from the right (``X (b A + c A^2)``, ``A = X^T X``), no
  transposes, the update keeps the parameter's layout; the lerps still outside the compiled function;
- ``unfolded``: ``no-transpose`` with both momentum lerps and the cast back to fp32 inside the compiled function
  (momentum passed as a tensor, so no value is baked into the graph): the trainer's Muon until Nov 30, seventh
  session;
- ``folded``: ``unfolded`` with the quintic's a X folded into the Gram side, X <- (a I + b A + c A^2) X, which
  drops one X-sized pass per Newton-Schulz step (the trainer's Muon from Nov 30, seventh session, to Dec 1);
- ``trainer``: ``trainer.optim.Muon`` now: ``folded`` with the MLP's 2048 x 512 and 512 x 2048 matrices
  orthogonalised in the Gram form (``newton_schulz_gram``).
On an H200 (Nov 30, fourth session): 6.70, 6.37 and 5.91 ms of GPU time a step for the first three.
(A variant with the stack compiled in and ``baddbmm`` for the quintic's adds took 7.75 ms against 6.64 on
Nov 30, third session, and was dropped.)

GPU time is measured with the host running ahead: a ``torch.cuda._sleep`` is queued first, so every step's
kernels are queued before the GPU reaches them and the events time the kernels alone, not the launches.
Host time is the wall time of queuing one step, over the first 3 steps only: queuing many more fills the launch
queue and the host then waits for the GPU. Also prints how far each version's weights end from ``before``'s.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from trainer.config import PRESETS
from trainer.model import GPT
from trainer.optim import NS_COEFFS, Muon, newton_schulz, newton_schulz_transposed, ns_start, partition


def newton_schulz_unfolded(G: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """``trainer.optim.newton_schulz`` until Nov 30, seventh session: a X added to the product in its own pass."""
    a, b, c = NS_COEFFS
    X = ns_start(G, dtype)
    if G.size(-2) > G.size(-1):
        for _ in range(steps):
            A = X.mT @ X
            X = a * X + X @ (b * A + c * (A @ A))
    else:
        for _ in range(steps):
            A = X @ X.mT
            X = a * X + (b * A + c * (A @ A)) @ X
    return X


class MuonNoTranspose(Muon):
    """The lerps outside the compiled function, Newton-Schulz compiled alone (the trainer's Muon until its lerps
    moved in)."""

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        super().__init__(params, lr=0.015, momentum=0.95, ns_dtype=torch.float16)
        self._ns = torch.compile(newton_schulz_unfolded, dynamic=False)

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        group = self.param_groups[0]
        lr, m = group["lr"], group["momentum"]
        if self._buffers is None:
            self._buffers = [torch.zeros((len(ps), *ps[0].shape), device=ps[0].device) for ps in self.shape_groups]
        for params, buf in zip(self.shape_groups, self._buffers):
            g = torch.stack([p.grad for p in params])
            buf.lerp_(g, 1 - m)
            g.lerp_(buf, m)
            update = self._ns(g, 5, self.ns_dtype).to(params[0].dtype)
            rows, cols = params[0].shape
            torch._foreach_add_(params, list(update.unbind(0)), alpha=-lr * max(1.0, rows / cols) ** 0.5)


class MuonBefore(Muon):
    """Upstream's transposed Newton-Schulz, lerps outside (the trainer's Muon until Nov 30, fourth session)."""

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        super().__init__(params, lr=0.015, momentum=0.95, ns_dtype=torch.float16)
        self._ns = torch.compile(newton_schulz_transposed, dynamic=False)

    step = MuonNoTranspose.step


def update_with(orthogonalise):
    """A Muon update as the trainer's (the clipping coefficient, the momentum lerps, the cast back) with another
    Newton-Schulz."""
    def update(g: torch.Tensor, buf: torch.Tensor, momentum: torch.Tensor, grad_scale: torch.Tensor, steps: int,
               ns_dtype: torch.dtype) -> torch.Tensor:
        g.mul_(grad_scale)  # the clipping coefficient (1 here)
        buf.lerp_(g, 1 - momentum)
        return orthogonalise(g.lerp_(buf, momentum), steps, ns_dtype).to(g.dtype)
    return update


def muon_with(orthogonalise):
    """The trainer's Muon, compiled update and all, with ``orthogonalise`` for every shape group."""
    def make(params: list[torch.nn.Parameter]) -> Muon:
        opt = Muon(params, lr=0.015, momentum=0.95, ns_dtype=torch.float16)
        opt._update = torch.compile(update_with(orthogonalise), dynamic=False)
        return opt
    return make


# ``unfolded``: the trainer's Muon of Nov 30, fourth to sixth sessions; ``folded``: until Dec 1 (``newton_schulz``
# for every shape, no Gram form for the MLP's matrices)
MuonUnfolded = muon_with(newton_schulz_unfolded)
MuonFolded = muon_with(newton_schulz)


VERSIONS = {
    "before": MuonBefore,
    "unfolded": MuonUnfolded,
    "no-transpose": MuonNoTranspose,
    "folded": MuonFolded,
    "trainer": lambda ps: Muon(ps, lr=0.015, momentum=0.95, ns_dtype=torch.float16, compile_ns=True),
}


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
    ap.add_argument("--versions", nargs="+", choices=list(VERSIONS), default=list(VERSIONS),
                    help="which versions to time (the first is the baseline of the speed-up and weight columns)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, weights = [], {}
    for name in args.versions:
        row, weights[name] = measure(name, VERSIONS[name], args.steps)
        rows.append(row)
    first = args.versions[0]
    base = rows[0]["gpu_ms_per_step"]
    for row in rows:
        row[f"speedup_vs_{first}"] = round(base / row["gpu_ms_per_step"], 3)
        moved = (weights[row["version"]] - weights[first]).abs()
        row[f"weights_max_abs_difference_vs_{first}"] = moved.max().item()
        row[f"weights_mean_abs_difference_vs_{first}"] = moved.mean().item()
    summary = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}
    (args.out / "muon_step.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
