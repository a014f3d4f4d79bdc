"""What FP8 matmuls could save in the trainer's step (issue 19): every matmul of one training step at the model's
shapes, timed on the GPU in bf16 as autograd runs it and through ``torch._scaled_mm`` in FP8, and the casts FP8
would add.

    python bench/fp8_gemm.py --batch 32 --out DIR        # DIR/fp8-gemm-b32.json and .txt

A Linear of ``in -> out`` features at M = batch x seq_len positions makes three matmuls a step: the forward
x[M, in] @ W.t(), the input's gradient dy[M, out] @ W and the weight's gradient dy.t() @ x. Hopper's FP8 matmul
takes its first operand row-major and its second column-major, so the backward needs transposed copies of the
FP8 x and dy (and of W). Here the forward is e4m3 x e4m3 with fast accumulation, the gradients e5m2 x e4m3
without it, each with one fp32 scale per tensor: the fastest of the usual recipes, so the savings it shows bound
what a real FP8 path could keep (rowwise scales, which train closer to bf16, are timed for the forward too).

Every time is GPU time: the calls are replayed as a CUDA graph. The casts are timed apart from the matmuls, as
compiled kernels that read a bf16 tensor for its largest magnitude and write it as FP8, row-major and transposed:
one per activation and gradient the matmuls take, and per weight. Fused into the kernels that make those tensors (a
norm, the SiLU product), with the scale of the step before, a cast would cost little more than the bf16 write it
replaces, so the sum of the matmuls alone is the bound, and the casts show how much of it a plain implementation
gives back. The head's logit gradient is left out of the casts (a fused loss kernel could write it as FP8 with a fixed scale), and
the head's M is batch x seq_len, not batch x (seq_len - 1), because FP8 matmuls need multiples of 16.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
from fp8_run import E4M3, E5M2, quantize, require_fp8_gpu

from trainer.config import make_config


def linears(batch: int) -> tuple[int, list[tuple[str, int, int, int]]]:
    """(M, [(name, in, out, count a step)]) for the record track's model at ``batch`` windows a step."""
    cfg = make_config("speedrun-4.5")
    m = cfg.model
    M = batch * cfg.hp.seq_len
    qk = (m.n_heads + m.n_kv_heads) * m.head_dim
    per_block = [("qk", m.d_model, qk), ("v", m.d_model, m.n_kv_heads * m.head_dim),
                 ("o", m.n_heads * m.head_dim, m.d_model), ("gate", m.d_model, m.d_ff), ("up", m.d_model, m.d_ff),
                 ("down", m.d_ff, m.d_model)]
    return M, [(n, i, o, m.n_layers) for n, i, o in per_block] + [("head", m.d_model, m.vocab_size, 1)]


def gpu_ms(fn, reps: int = 20, trials: int = 5) -> float:
    """GPU time of one ``fn()``: ``reps`` calls captured in one CUDA graph (after three warm-up calls), its replay
    timed ``trials`` times, the median. The graph leaves the host out: a compiled cast's Python call takes longer than
    its kernels on a small tensor, and the trainer replays its steps as CUDA graphs too."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            fn()
    graph.replay()
    times = []
    for _ in range(trials):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / reps)
    del graph
    return statistics.median(times)


def make_cast(fp8: torch.dtype):
    """A compiled cast of a bf16 tensor to ``fp8`` with one scale (``fp8_run.quantize``, as the FP8 trainer run casts):
    the FP8 tensor row-major and transposed, and the scale that undoes it."""

    def cast(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, scale = quantize(x, fp8)
        return q, q.t().contiguous(), scale

    return torch.compile(cast, dynamic=False)


def measure_linear(M: int, name: str, d_in: int, d_out: int, count: int, casts: dict) -> dict:
    """One Linear's three matmuls in bf16 and in FP8, the forward with rowwise scales, and the casts it needs."""
    dev = torch.device("cuda")
    one = torch.ones((), device=dev)
    x = torch.randn(M, d_in, device=dev, dtype=torch.bfloat16)
    dy = torch.randn(M, d_out, device=dev, dtype=torch.bfloat16) * 1e-3
    w = torch.randn(d_out, d_in, device=dev, dtype=torch.bfloat16) * 0.02
    x8, x8t, _ = casts[E4M3](x)
    w8, w8t, _ = casts[E4M3](w)
    dy8, dy8t, _ = casts[E5M2](dy)

    def scaled(a, b, fast, sa=one, sb=one):
        return lambda: torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, use_fast_accum=fast)

    # fewer calls per graph where one output is large (the head's logits: 6.4 GB at b32), in case the graph's pool
    # keeps every call's output
    reps = 20 if M * max(d_in, d_out) * 2 < 2**30 else 4

    def time_ms(fn) -> float:
        return gpu_ms(fn, reps)

    row = {"name": name, "in": d_in, "out": d_out, "count": count,
           "bf16_ms": {"forward": time_ms(lambda: x @ w.t()), "input_grad": time_ms(lambda: dy @ w),
                       "weight_grad": time_ms(lambda: dy.t() @ x)},
           "fp8_ms": {"forward": time_ms(scaled(x8, w8.t(), True)),
                      "input_grad": time_ms(scaled(dy8, w8t.t(), False)),
                      "weight_grad": time_ms(scaled(dy8t, x8t.t(), False))}}
    try:
        row["fp8_rowwise_forward_ms"] = time_ms(scaled(x8, w8.t(), True, torch.ones(M, 1, device=dev),
                                                       torch.ones(1, d_out, device=dev)))
    except RuntimeError as e:  # rowwise scales need a newer torch or another dtype pair
        row["fp8_rowwise_forward_ms"] = None
        row["fp8_rowwise_error"] = str(e).splitlines()[0][:200]
    # the casts a step needs for this Linear: its weight and dy always; x once per distinct input (q/k and v
    # share the attention's normed input, gate and up the MLP's), and none for the head's logit gradient
    row["cast_ms"] = {"weight": time_ms(lambda: casts[E4M3](w)),
                      "input": 0.0 if name in ("v", "up") else time_ms(lambda: casts[E4M3](x)),
                      "grad": 0.0 if name == "head" else time_ms(lambda: casts[E5M2](dy))}
    return row


def measure(batch: int) -> dict:
    M, layers = linears(batch)
    # each cast compiles once per shape (dynamic=False): ~20 shapes, over dynamo's default limit of 8
    torch._dynamo.config.recompile_limit = 64
    casts = {E4M3: make_cast(E4M3), E5M2: make_cast(E5M2)}
    rows = []
    for name, d_in, d_out, count in layers:
        rows.append(measure_linear(M, name, d_in, d_out, count, casts))
        torch.cuda.empty_cache()
    step = {k: sum(r["count"] * sum(r[k].values()) for r in rows) for k in ("bf16_ms", "fp8_ms", "cast_ms")}
    return {"batch": batch, "M": M, "torch": torch.__version__, "device": torch.cuda.get_device_name(),
            "linears": rows, "step_ms": step}


def report(res: dict) -> str:
    lines = [f"{res['device']}, torch {res['torch']}: the step's matmuls at micro-batch {res['batch']} "
             f"(M = {res['M']:,} positions), ms a step (a Linear's time x its count)",
             f"  {'linear':6} {'in':>6} {'out':>6} {'x':>3}  {'bf16':>8} {'fp8':>8} {'casts':>8}   "
             f"fwd/dgrad/wgrad bf16 -> fp8 (us, one call)"]
    for r in res["linears"]:
        b, f = r["bf16_ms"], r["fp8_ms"]
        per = " ".join(f"{b[k] * 1e3:.0f}->{f[k] * 1e3:.0f}" for k in ("forward", "input_grad", "weight_grad"))
        rw = r.get("fp8_rowwise_forward_ms")
        rw = f"; rowwise fwd {rw * 1e3:.0f}" if rw is not None else ""
        lines.append(f"  {r['name']:6} {r['in']:>6} {r['out']:>6} {r['count']:>3}  "
                     f"{r['count'] * sum(b.values()):8.2f} {r['count'] * sum(f.values()):8.2f} "
                     f"{r['count'] * sum(r['cast_ms'].values()):8.2f}   {per}{rw}")
    s = res["step_ms"]
    lines += [f"  step: bf16 matmuls {s['bf16_ms']:.1f} ms; FP8 matmuls {s['fp8_ms']:.1f} ms "
              f"({s['bf16_ms'] / s['fp8_ms']:.2f}x) and their casts {s['cast_ms']:.1f} ms "
              f"({s['bf16_ms'] - s['fp8_ms'] - s['cast_ms']:+.1f} ms saved with the casts, "
              f"{s['bf16_ms'] - s['fp8_ms']:+.1f} ms with every cast fused away)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[32])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    require_fp8_gpu()
    args.out.mkdir(parents=True, exist_ok=True)
    for batch in args.batch:
        res = measure(batch)
        text = report(res)
        print(text, flush=True)
        (args.out / f"fp8-gemm-b{batch}.json").write_text(json.dumps(res, indent=1) + "\n")
        (args.out / f"fp8-gemm-b{batch}.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
