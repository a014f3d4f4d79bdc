import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from trainer.config import make_config
from trainer.train import train


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def _cfg(cache_dir, **over):
    base = {"cache_dir": cache_dir, "max_tokens": 10 * 8 * 64, "seq_len": 64, "micro_batch_size": 8,
            "stop_rule": "never", "eval_every_tokens": 10**9, "dtype": "fp32"}
    return make_config("tiny-speedrun", overrides={**base, **over})


def _small(cache_dir, **over):
    """``_cfg`` with 1,024 validation tokens instead of the track's 8,192, for the tests that check no validation
    loss: an evaluation of the full set costs about as much as ten of these training steps on 2 CPU cores."""
    config = _cfg(cache_dir, **over)
    return replace(config, track=replace(config.track, val_tokens=1024))


def test_fast_path_matches_reference_step(cache_dir):
    """fp32 on CPU: SDPA + batched Newton-Schulz vs plain attention + per-matrix Muon, first 10 losses."""
    fast = train(_small(cache_dir))
    ref = train(_small(cache_dir, reference=True))
    a = [h["train_loss"] for h in fast.history]
    b = [h["train_loss"] for h in ref.history]
    assert len(a) == len(b) == 10
    for x, y in zip(a, b):
        assert abs(x - y) <= 1e-4 * abs(y), (a, b)
    assert a[-1] < a[0] - 0.2  # and it learns


def test_grad_accum_counts_tokens_and_averages(cache_dir):
    r = train(_small(cache_dir, micro_batch_size=4, grad_accum_steps=2))
    assert r.steps == 10 and r.tokens == 10 * 8 * 64
    one = train(_small(cache_dir))
    # same windows in the same order, same effective batch: the same first loss
    assert r.history[0]["train_loss"] == pytest.approx(one.history[0]["train_loss"], rel=1e-5)


def test_result_has_crossings_and_reports(cache_dir):
    seen = []

    class Rec:
        def report(self, m):
            seen.append(m)

    cfg = _small(cache_dir, max_tokens=30 * 8 * 64, report_every_tokens=5 * 8 * 64, eval_every_tokens=10 * 8 * 64,
                 stop_rule="first_step")
    cfg = replace(cfg, track=replace(cfg.track, target=9.5))
    r = train(cfg, Rec())
    assert r.status == "reached"
    c = r.crossings["first_step"]
    assert c is not None and c["loss"] <= 9.5 and c["tokens"] == c["step"] * 512
    assert r.steps >= c["step"]
    assert seen[-1]["final"] and seen[-1]["status"] == "reached"
    assert all(m["tokens"] % 2560 == 0 for m in seen[:-1])
    assert [v["tokens"] for v in r.val_history][0] == 0
    # the result names what it trained on: the shipped sample here, with its token counts
    assert "sample" in r.data["source"] and r.data["fingerprint"]
    assert r.data["train_tokens"] > r.tokens and r.data["val_tokens"] > 0 and r.data["train_docs"] > 0
    # MFU names what it used: FLOPs per token with attention, the 6·N part, and the peak (none on a CPU)
    from trainer.flops import flops_per_token

    f = flops_per_token(cfg.model, cfg.hp.seq_len)
    assert (r.flops_per_token, r.flops_per_token_6n) == (f["total"], f["six_n"])
    assert r.mfu is None and r.peak_flops is None and r.peak_name == ""


def test_divergence_stops_at_once(cache_dir):
    r = train(_small(cache_dir, muon_lr=1e6, adamw_lr=1e6, grad_clip=0.0, max_tokens=40 * 8 * 64))
    assert r.status == "diverged"
    assert not math.isfinite(r.history[-1]["train_loss"])
    assert r.steps < 40


def test_validation_set_is_fixed_whatever_the_budget(cache_dir):
    a = train(_cfg(cache_dir, max_tokens=2 * 512))
    b = train(_cfg(cache_dir, max_tokens=4 * 512))
    assert a.val_history[0]["val_loss"] == b.val_history[0]["val_loss"]


@pytest.mark.slow
def test_cli_reaches_tiny_target_in_under_a_minute(tmp_path, cache_dir):
    out = tmp_path / "run"
    # as a user runs it: glibc's own allocator settings, not the ones tests/conftest.py gives the test processes
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}, "BLUEBERRY_CACHE": cache_dir}
    p = subprocess.run([sys.executable, "-m", "trainer", "--quiet", "--out", str(out)], capture_output=True,
                       text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "reached"
    assert result["crossings"]["first_step"]["time_s"] < 60


BAD_INPUT = [
    (["--track", "nope"], "unknown track 'nope'"),
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--set", "schedule=exp"], "schedule must be one of"),
    (["--set", "grad_accum_steps=0"], "grad_accum_steps must be an integer >= 1"),
    (["--set", "warp=9"], "unknown setting 'warp'"),
    (["--data", "/nonexistent/file.jsonl"], "/nonexistent/file.jsonl"),
    (["--record", "/nonexistent.json"], "does not exist"),
]


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory):
    """The command of every BAD_INPUT case, two at a time: each is a Python start-up that imports torch and
    exits, and the cases share nothing (each has its own directory), so they run side by side."""
    dirs = [tmp_path_factory.mktemp("bad-input") for _ in BAD_INPUT]
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield [pool.submit(subprocess.run, [sys.executable, "-m", "trainer", "--quiet", "--out", str(where / "o"),
                                            *args], capture_output=True, text=True, timeout=120)
               for where, (args, _) in zip(dirs, BAD_INPUT)]


@pytest.mark.parametrize("args,needle", BAD_INPUT)
def test_cli_bad_input_is_one_line_exit_2(bad_input_runs, args, needle):
    p = bad_input_runs[BAD_INPUT.index((args, needle))].result()
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_chunked_loss_trains_like_the_plain_loss(cache_dir):
    """fp32 on CPU: the chunked output-head loss (chunks that do not divide the batch) gives the same run."""
    plain = train(_small(cache_dir, loss_chunk=0))
    chunked = train(_small(cache_dir, loss_chunk=100))
    a = [h["train_loss"] for h in plain.history]
    b = [h["train_loss"] for h in chunked.history]
    assert len(a) == len(b) == 10
    for x, y in zip(a, b):
        assert abs(x - y) <= 1e-4 * abs(x), (a, b)


def test_working_copies_train_as_autocast_did(cache_dir):
    """bf16 autocast on CPU, clipping on: the blocks reading bf16 working copies that Muon rewrites train as the
    fp32 weights cast at each matmul did (several micro-batches a step: tests/trainer/test_optim.py)."""
    # 6 steps of 4 x 64 tokens: bf16 matmuls on a CPU without bf16 units take ~10x fp32's time
    over = dict(dtype="bf16", grad_clip=0.05, micro_batch_size=4, max_tokens=6 * 4 * 64)
    cast = train(_small(cache_dir, working_copies=False, **over))
    working = train(_small(cache_dir, working_copies=True, **over))
    a = [h["train_loss"] for h in cast.history]
    b = [h["train_loss"] for h in working.history]
    assert len(a) == len(b) == 6
    for x, y in zip(a, b):  # the masters' update rounds differently (no FMA): bf16 roundings of the weights flip
        assert abs(x - y) <= 1e-4 * abs(x), (a, b)
    assert a[-1] < a[0] - 0.1


@pytest.mark.parametrize("over,expected", [
    ({"dtype": "bf16"}, "bfloat16"),                     # the fast path in bf16: the residual stream in bf16
    ({"dtype": "bf16", "reference": True}, "float32"),  # the reference path keeps it in fp32
    ({"dtype": "fp32"}, "float32"),
])
@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")  # eager rms_norm, bf16 on fp32
def test_residual_stream_dtype(cache_dir, over, expected):
    """What every block reads and adds to: bf16 on the bf16 fast path, fp32 on the reference path and in fp32."""
    import torch

    from trainer.model import Block
    from trainer.train import Workbench

    config = _small(cache_dir, **over)
    bench = Workbench()
    data = bench.tokens(config, False)
    shape = bench.shape(config, torch.device("cpu"), data.val)
    seen = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.append(args[0].dtype))
             for m in shape.model.modules() if isinstance(m, Block)]
    with shape.autocast:
        loss = shape.loss_fn(torch.from_numpy(data.train[: 2 * 65].astype("int64")).view(2, 65))
    for h in hooks:
        h.remove()
    assert len(seen) == config.model.n_layers and {str(d).removeprefix("torch.") for d in seen} == {expected}
    assert torch.isfinite(loss)


def test_runs_sharing_a_device_lock_never_clock_at_the_same_time(cache_dir, tmp_path):
    """Two processes with one device_lock: the second waits before its warm-up, and the clocked wall spans of
    the two runs do not overlap (what a search does for trials that share a GPU)."""
    lock = tmp_path / "locks" / "gpu-0.lock"
    procs = []
    for i in range(2):
        cmd = [sys.executable, "-m", "trainer", "--quiet", "--out", str(tmp_path / f"r{i}"), "--set",
               "max_tokens=4096", "--set", "stop_rule=never", "--set", f"device_lock={lock}",
               "--set", f"cache_dir={cache_dir}"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    runs = [json.loads((tmp_path / f"r{i}" / "result.json").read_text()) for i in range(2)]
    first, second = sorted(runs, key=lambda r: r["clock_started_at"])
    assert first["clock_ended_at"] <= second["clock_started_at"]
    assert max(r["startup_phases"]["device_wait"] for r in runs) > 0.5


def test_compile_cache_counters_report_only_what_moved():
    import torch._dynamo.utils

    from trainer.train import compile_cache_counters, counters_since

    before = compile_cache_counters()
    assert set(before) == {f"{g}{w}" for g in ("fxgraph_", "aot_") for w in ("hit", "miss", "bypass")}
    torch._dynamo.utils.counters["inductor"]["fxgraph_cache_hit"] += 3
    torch._dynamo.utils.counters["aot_autograd"]["autograd_cache_miss"] += 1
    assert counters_since(before) == {"fxgraph_hit": 3, "aot_miss": 1}


def test_train_step_gives_muon_fp32_sums_of_the_micro_batches(monkeypatch):
    """With working copies and two micro-batches a step, the step function moves each micro-batch's bf16
    gradients into Muon's fp32 sums, and Muon's step reads the sums of both."""
    import torch

    from trainer.model import GPT, next_token_loss
    from trainer.optim import Muon, WorkingCopies, build_optimizers
    from trainer.train import make_train_step

    config = make_config("tiny-speedrun", overrides={"micro_batch_size": 2, "grad_accum_steps": 2, "seq_len": 16})
    torch.manual_seed(0)
    model = GPT(config.model)
    model.working_copies = WorkingCopies(model)
    optimizers = list(build_optimizers(model, muon_lr=0.02, adamw_lr=0.01, muon_momentum=0.95, weight_decay=0.1,
                                       fast=True, ns_dtype=torch.float32))
    seen = []
    original = Muon.step

    def spy(self, *args, **kwargs):
        seen.append((self._summed, [g.dtype for g in self.gradients()]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Muon, "step", spy)
    step = make_train_step(model, optimizers, config.hp, 10**6, autocast=torch.autocast("cpu", dtype=torch.bfloat16),
                           cudagraphs=False, loss_fn=lambda w: next_token_loss(model, w))
    windows = iter(torch.randint(0, config.model.vocab_size, (4, 2, 16)))
    step(lambda: next(windows), 64)
    assert len(seen) == 1 and seen[0][0] == 2 and set(seen[0][1]) == {torch.float32}
    assert optimizers[0]._summed == 0
