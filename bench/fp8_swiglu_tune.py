"""Times and checks ``bench/fp8_swiglu.py``'s kernel on a GPU (issue 19): each tile choice at the b64 shape (M =
131,072 tokens, H = 2048 features) against the op's PyTorch formula, and inductor's kernel for the same formula.

    python bench/fp8_swiglu_tune.py --out $OUT/swiglu-tune

For every choice of ``fp8_swiglu.TILE`` it prints and saves (``tune.json``): microseconds a call (CUDA events,
median of 20 after 3 warm-ups), how many of the four outputs' elements are NaN or infinite, whether the transposed
outputs equal the row-major ones transposed, and the share of elements that differ from the formula's (e5m2 keeps 2
mantissa bits, so one step of rounding is up to 25%). Then the one-function MLP, eager and compiled, against the bf16
MLP at M = 8192: relative errors of the output and of every gradient, and whether all are finite. The fastest
choice without a NaN, with equal transposes and less than 1% of elements unequal, is written to ``best.json``
(``BLUEBERRY_SWIGLU_TILE`` takes it for a run), if the MLP's checks were finite.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import fp8_swiglu as s
import torch
import torch.nn.functional as F

from trainer import fp8


def timed(fn, reps: int = 20) -> float:
    """Median microseconds a call of ``fn`` over ``reps`` after 3 warm-ups."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) * 1000)
    return statistics.median(times)


def compare(got, want) -> dict:
    """NaN/inf counts, transposes' equality and the share of elements unequal to the formula's."""
    bad = sum(int((~torch.isfinite(t.float())).sum()) for t in got)
    transposed = bool(torch.equal(got[2].float(), got[0].float().t()) and torch.equal(got[3].float(), got[1].float().t()))
    differ = sum(int((a.float() != b.float()).sum()) for a, b in zip(got, want)) / sum(t.numel() for t in got)
    return {"not_finite": bad, "transposes_equal": transposed, "share_unequal": round(differ, 6)}


def kernel_table(M: int, H: int) -> list[dict]:
    torch.manual_seed(0)
    g, u = (torch.randn(M, H, device="cuda") * 2).bfloat16(), torch.randn(M, H, device="cuda").bfloat16()
    dh = (torch.randn(M, H, device="cuda") * 1e-6).bfloat16()  # of the order of a gradient of a mean over M rows
    times = torch.tensor(M * fp8.GRAD_BIAS, device="cuda")
    want = s.swiglu_grads_formula(g, u, dh, times, fp8.E5M2)
    rows = []
    compiled = torch.compile(s.swiglu_grads_formula)
    rows.append({"kernel": "inductor (the formula compiled)", "us": round(timed(lambda: compiled(g, u, dh, times, fp8.E5M2)), 1),
                 **compare(compiled(g, u, dh, times, fp8.E5M2), want)})
    print(rows[-1], flush=True)
    for bm, bh, warps, trans32 in itertools.product((64, 128, 256), (64, 128), (4, 8), (False, True)):
        s.TILE.update(bm=bm, bh=bh, warps=warps, trans32=trans32)
        row = {"kernel": "fp8_swiglu", "bm": bm, "bh": bh, "warps": warps, "trans32": trans32}
        try:
            row["us"] = round(timed(lambda: s.swiglu_grads(g, u, dh, times, fp8.E5M2)), 1)
            row.update(compare(s.swiglu_grads(g, u, dh, times, fp8.E5M2), want))
        except Exception as e:  # a tile that does not compile (shared memory, registers) is recorded and skipped
            row["error"] = f"{type(e).__name__}: {str(e)[:200]}"
        print(row, flush=True)
        rows.append(row)
    gb = (3 * 2 + 4 * 1) * M * H / 1e9
    for row in rows:
        if "us" in row:
            row["tb_per_s"] = round(gb / row["us"] * 1e6 / 1e3, 2)
    return rows


def mlp_check(M: int = 8192, d: int = 512, H: int = 2048) -> list[dict]:
    torch.manual_seed(0)
    x = torch.randn(M, d, device="cuda")
    ws = [torch.randn(H, d, device="cuda") / d ** 0.5, torch.randn(H, d, device="cuda") / d ** 0.5,
          torch.randn(d, H, device="cuda") / H ** 0.5]
    dy = torch.randn(M, d, device="cuda") * 0.05 / M

    def run(fn):
        xs = x.bfloat16().requires_grad_()
        wl = [w.bfloat16().requires_grad_() for w in ws]
        y = fn(xs, *wl)
        y.backward(dy.bfloat16())
        return [y.detach(), xs.grad, *(w.grad for w in wl)]

    ref = run(lambda x, a, b, c: F.linear(F.silu(F.linear(x, a)) * F.linear(x, b), c))
    out = []
    for name, fn in (("eager", s.swiglu), ("compiled", torch.compile(s.swiglu))):
        got = run(fn)
        out.append({"mlp": name, "finite": all(bool(torch.isfinite(t.float()).all()) for t in got),
                    "rel_err": {k: round(((a.float() - b.float()).norm() / b.float().norm()).item(), 4)
                                for k, a, b in zip(("y", "dx", "dwg", "dwu", "dwd"), got, ref)}})
        print(out[-1], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tokens", type=int, default=131072)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("error: bench/fp8_swiglu_tune.py needs a GPU")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"mlp": mlp_check(), "kernels": kernel_table(args.tokens, 2048), "gpu": torch.cuda.get_device_name()}
    (args.out / "tune.json").write_text(json.dumps(result, indent=1))
    good = [r for r in result["kernels"] if r["kernel"] == "fp8_swiglu" and "us" in r and r["not_finite"] == 0
            and r["transposes_equal"] and r["share_unequal"] < 0.01]
    if good and all(m["finite"] for m in result["mlp"]):
        best = min(good, key=lambda r: r["us"])
        tile = {k: best[k] for k in ("bm", "bh", "warps", "trans32")}
        (args.out / "best.json").write_text(json.dumps(tile))
        print(f"best tile {tile}: {best['us']} us")


if __name__ == "__main__":
    main()
