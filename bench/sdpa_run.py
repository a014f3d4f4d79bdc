"""``python -m trainer`` with some of PyTorch's attention backends turned off, to time the others in the trainer.

    python bench/sdpa_run.py cudnn --quiet --track speedrun-4.5 ...      # what is left: flash, then efficient

The first argument names the backends to turn off (comma-separated: cudnn, flash, mem_efficient, math); the rest are
``python -m trainer``'s. Before the run it prints the attention kernels one call of the model's shape (bf16,
8 heads of 64, 2,048 positions, causal) launches, so the log says which backend ran. Inductor picks the backend
when it traces: give this process compile and token caches of its own (TORCHINDUCTOR_CACHE_DIR, BLUEBERRY_CACHE),
so that no graph cached with another backend can be replayed.
"""

from __future__ import annotations

import runpy
import sys

import torch

BACKENDS = ("cudnn", "flash", "mem_efficient", "math")


def attention_kernels() -> list[str]:
    q, k, v = (torch.randn(1, 8, 2048, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()
        torch.cuda.synchronize()
    names = {e.key for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA}
    return sorted(n[:90] for n in names if any(w in n.lower() for w in ("attn", "attention", "fmha", "sdpa", "flash")))


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python bench/sdpa_run.py BACKEND[,BACKEND...] [python -m trainer's arguments]")
    off = [b for b in sys.argv[1].split(",") if b]
    unknown = [b for b in off if b not in BACKENDS]
    if unknown:
        sys.exit(f"error: unknown attention backend {', '.join(unknown)}; allowed: {', '.join(BACKENDS)}")
    for name in off:
        getattr(torch.backends.cuda, f"enable_{name}_sdp")(False)
    kernels = attention_kernels() if torch.cuda.is_available() else "(no GPU)"
    print(f"attention backends off: {', '.join(off)}; kernels: {kernels}", flush=True)
    sys.argv = ["trainer", *sys.argv[2:]]
    runpy.run_module("trainer", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
