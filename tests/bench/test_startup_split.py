import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_startup_split_times_the_trainers_own_path_on_the_cpu(tmp_path):
    out = tmp_path / "s.json"
    proc = subprocess.run([sys.executable, "bench/startup_split.py", "--out", str(out), "--track", "tiny-speedrun",
                           "--set", "device=cpu", "--set", "max_tokens=8192"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    spans = data["span_totals_s"]
    # no compile on the CPU by default: no compile-stack thread, no CUDA graphs, nothing in the compile cache
    assert {"load tokens", "build shape (model, val windows, compile wrappers)", "evaluate",
            "train step 1", "train step 2", "train step 3"} <= set(spans)
    assert all(v >= 0 for v in spans.values()) and data["compile_cache"] == {}
    assert data["startup_s"] > 0 and set(data["startup_phases"]) >= {"before_train", "data", "warmup"}


@pytest.mark.parametrize(("script", "folder", "saved", "figures"), [
    ("scaling_summary.py", "bench/results/scaling-nov30d", "bench/results/scaling-nov30d/summary.txt",
     ["2.00x", "0.543x"]),
    ("nov30e_summary.py", "bench/results", "bench/results/nov30e-summary.txt",
     ["index: 9.91, 9.57, 10.40 s (median 9.91)", "0.591x"]),
    ("nov30f_summary.py", "bench/results", "bench/results/nov30f-summary.txt",
     ["old: 11.99, 9.36, 8.90 s (median 9.36)", "97.3% after the first clock", "{'fxgraph_hit': 10, 'aot_hit': 8}"]),
    ("nov30g_summary.py", "bench/results", "bench/results/nov30g-summary.txt",
     ["trainer 4.665 ms", "new / old: 1.033x", "b32-cold 301,902", "'1': 0.9741"]),
    ("nov30h_summary.py", "bench/results", "bench/results/nov30h-summary.txt",
     ["triton-r16w2 231.9", "b4 median 225,449", "b32-cold 316,902", "(median 11.2)"]),
    ("dec01_summary.py", "bench/results", "bench/results/dec01-summary.txt",
     ["trainer 4.127 ms", "(median 230,323)", "(median 233,309)", "b4  kernels           2.339 ms"]),
    ("dec01b_summary.py", "bench/results", "bench/results/dec01b-summary.txt",
     ["(median 241,392)", "(median 247,911)", "in 24.65 s on the clock", "_foreach_copy_ calls in 5 steps 0",
      "(median 248,920)"]),
    ("dec01c_summary.py", "bench/results", "bench/results/dec01c-summary.txt",
     ["(median 250,931)", "(median 247,399)", "in 24.30 s on the clock", "66/8", "(median 254,458)",
      "qk_bwd 18.0 us"]),
    ("dec01d_summary.py", "bench/results", "bench/results/dec01d-summary.txt",
     ["(median 258,950)", "(median 250,750)", "in 23.61 s on the clock", "new b32: steady tokens/s 335,747",
      "fused by inductor (Triton) 28.204", "first process 13.0 s", "287 per GPU-hour", "118 per GPU-hour",
      "GPU busy 192.90 ms a step"]),
    ("dec01e_summary.py", "bench/results", "bench/results/dec01e-summary.txt",
     ["3 trials in 190 s, 57 per GPU-hour", "13 trials in 182 s, 258 per GPU-hour", "47.0, 30.6, 27.1 s",
      "4.5x the trials per GPU-hour", "with one old trial more, 3.4x",
      "default: steady tokens/s 336,124", "autotune: steady tokens/s 335,474",
      "cuDNN (the default): steady tokens/s 338,897", "cuDNN off: steady tokens/s 305,150",
      "then 11.4, 8.4, 8.0, 9.0, 8.7, 9.9 s", "then 8.3, 9.2, 8.5, 7.9, 8.9, 8.8 s",
      "differs by up to 0.0321 (mean 0.0048)", "two fresh processes: up to 0.0383", "9.30 GiB (+0.0%)"]),
    ("dec01f_summary.py", "bench/results", "bench/results/dec01f-summary.txt",
     ["(median 257,734)", "(median 257,552)", "val 4.9695 against the saved 4.9785", "in 23.67 s on the clock",
      "in bf16 179.6 ms, in FP8 121.9 ms (1.47x)", "every cast free 321.4 ms = 407,879 tokens/s",
      "compiled here 417.3 ms = 314,103 tokens/s", "differs by up to 0.0214 (mean 0.0024)",
      "12 trials in 151 s, 286 per GPU-hour", "89% of the wall (98% after the first clock)",
      "6,000,000: -0.0050 (25-step mean +0.0139): PASS", "val 4.9844 against 4.9670 (+0.0174)",
      "no attribute 'E4M3'", "FP8: 338,244 tokens/s, peak memory 63.8 GiB", "bf16: 352,350 tokens/s"]),
    ("dec01g_summary.py", "bench/results", "bench/results/dec01g-summary.txt",
     ["deterministic: PASS", "199,469 tokens/s", "the 200 step losses the same bit for bit",
      "differs by up to 0.0000 (mean 0.0000)", "two fresh processes: up to 0.0000",
      "default: FAIL", "differs by up to 0.0307 (mean 0.0053)", "two fresh processes: up to 0.0412",
      "(median 260,648)", "(median 259,228)", "val 4.9646 against the saved 4.9785", "in 23.37 s on the clock",
      "plain-2: 8.90 s", "plain-1: 8.48 s", "its first 9.08 s, to the first clocked step",
      "dynamo tracing Python code 2.28 s", "threading.py:join 1.79 s",
      "FP8 fwd-dgrad: 328,091 tokens/s", "bf16: 352,627 tokens/s"]),
    ("dec01h_summary.py", "bench/results", "bench/results/dec01h-summary.txt",
     ["fa4: not run: ValueError: too many values to unpack (expected 2)", "fa4-b32: b32-cold failed",
      "b32: forward 0.349 ms (394.0 TFLOP/s), forward + backward 1.430 ms (336.5 TFLOP/s, the backward 317.9)",
      "b32: forward 0.345 ms (398.6 TFLOP/s), forward + backward 1.583 ms (303.9 TFLOP/s, the backward 277.6)",
      "fa4-b64: steady 352,263 tokens/s", "cudnn-b64: steady 345,439 tokens/s",
      "(median 258,576)", "(median 258,370)", "val 4.9744 against the saved 4.9785",
      "val 4.9730 against the saved 4.9785 (-0.0055); 6,086,656 tokens in 23.23 s on the clock, 261,964 tokens/s",
      "sdpa-b32: steady 338,412", "fa4-b32: steady 345,703", "sdpa-b64: steady 344,972", "fa4-b64: steady 353,706",
      "(median 259,748)", "(median 261,749)", "val 4.9687 against the saved 4.9785", "(median 271,765)",
      "processes on a warm cache 11.8, 13.1, 10.5 s", "(median 259,609)", "(median 259,277)"]),
    ("dec01i_summary.py", "bench/results", "bench/results/dec01i-summary.txt",
     ["b64-fixed: 371,340 tokens/s", "b64-fixed-head: 377,284 tokens/s", "b4-fixed: 256,215 tokens/s",
      "bf16-b64: steady 343,782", "fp8-b64: steady 369,332", "bf16-b32: steady 337,258", "fp8-b32: steady 362,187",
      "val 4.9774 against the saved 4.9785", "val 5.4399 against 5.4316 (+0.0083)",
      "fa4-fp8-b64: steady 383,418", "call 4 (9c71eab)", "fused by inductor (Triton) 103.9", "(median 261,811)", "(median 261,861)",
      "val 4.9718 against the saved 4.9785", "fa4-fp8-b64: steady 392,039", "fa4-fp8-b96: steady 397,163",
      "fp8-b64: steady 383,157", "val 5.4448 against 5.4316 (+0.0132)", "fa4-fp8-b128: steady 398,243"]),
    ("dec01j_summary.py", "bench/results", "bench/results/dec01j-summary.txt",
     ["b64-fp8: 387,935 tokens/s", "b64-swiglu: diverged after 2 steps", "64 x 128, 8 warps: 907.1 us, 201 not finite",
      "32 x 128, 8 warps: 868.7 us, 1,049,081 not finite", "new-fa4-fp8-b64: steady 398,805",
      "old-fa4-fp8-b64: steady 387,872", "new-fa4-fp8-b96: steady 404,304", "old-b4: steady 263,115",
      "b64 to 12,189,696 tokens with fp8=true (SDPA): diverged after 2 steps"]),
    ("dec02a_summary.py", "bench/results", "bench/results/dec02a-summary.txt",
     ["choices passing on both inputs: 48 of 48", "checked calls: 256, of which 256 with every output equal",
      "b64-traced: 397,336 tokens/s", "b64-fp8: 385,856 tokens/s", "new-fa4-fp8-b64: steady 398,391",
      "old-fa4-fp8-b64: steady 383,749", "new-fa4-fp8-b96: steady 400,634", "new-fa4-fp8-b128: steady 402,252",
      "val 5.4339 against 5.4316 (+0.0022)", "b64-mlp-1: diverged after 2 steps"]),
    ("dec02b_summary.py", "bench/results", "bench/results/dec02b-summary.txt",
     ["new (febee52, the FP8 MLP in the trainer): steady tokens/s 263,744, 263,601, 263,277, 263,183 (median 263,439)",
      "old (288944e, before it): steady tokens/s 263,498, 263,587, 263,202, 263,404 (median 263,451)",
      "6,086,656 tokens in 23.22 s on the clock", "val 4.9783 against the saved 4.9785 (-0.0002)",
      "ours b128, fp8=true, attention=fa4: steady 420,026 tokens/s", "upstream-eager-b4: 26,724 tokens/s",
      "upstream-compiled-b16: 102,981 tokens/s", "ours 9.9x upstream eager", "ours b128 4.1x upstream compiled b16",
      "start-up 11.71, 12.21, 11.99, 11.89 s (median 11.94)", "before_train 3.31, 3.58, 3.29, 2.61",
      "val 4.9746 against the saved 4.9785", "ours b128: steady 409,514", "ours b96: steady 408,324",
      "val 4.9736 against the saved 4.9785", "ours b64 (SDPA): steady 398,395"]),
    ("dec02c_summary.py", "bench/results", "bench/results/dec02c-summary.txt",
     ["every run failed: torch._dynamo.exc.UncapturedHigherOrderOpError", "medians: new 9.83 s, mid 10.10 s (-0.27 s)",
      "medians: without 9.83 s, with 10.46 s (-0.63 s)", "medians: new 10.66 s, old 9.93 s (+0.73 s)",
      "new: samples with the 16 workers and their sidecar alive: 0 of 222",
      "the new machine's first process: start-up 13.17 s", "median 10.23 s, 8.77-11.74 s; at most 10 s: 10",
      "nested: cold warm-up 40.5 s"]),
    ("goal_arithmetic.py", "bench/results/dec01d/call6-tables/profile-new-b32/phases-b32.json",
     "bench/results/goal-arithmetic.txt", ["= 632 TFLOP/s, 80% of the H200's 790", "leaving 19.4 ms for the rest"]),
])
def test_summary_scripts_reproduce_the_saved_figures(script, folder, saved, figures):
    proc = subprocess.run([sys.executable, f"bench/{script}", folder],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (ROOT / saved).read_text()
    assert all(f in proc.stdout for f in figures)
