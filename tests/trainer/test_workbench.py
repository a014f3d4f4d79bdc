"""Warm workers: runs that share a Workbench (one process, trial after trial) give the losses a fresh process
gives, and a failed run does not poison the next."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from trainer.config import make_config
from trainer.data import load_tokens
from trainer.train import Workbench, train

# three different trials: seeds, rates, schedules and warm-up differ; the third has another micro-batch (a
# second shape in the same worker)
TRIALS = [
    {"seed": 0, "muon_lr": 0.02, "adamw_lr": 0.01},
    {"seed": 3, "muon_lr": 0.005, "adamw_lr": 0.003, "schedule": "cosine", "warmup_ratio": 0.1,
     "horizon_tokens": 3072},
    {"seed": 7, "muon_lr": 0.03, "adamw_lr": 0.002, "schedule": "wsd", "micro_batch_size": 2,
     "weight_decay": 0.05},
]
COMMON = {"max_tokens": 12 * 4 * 64, "stop_rule": "never", "eval_every_tokens": 6 * 4 * 64}
SMALL_VAL = 1024  # validation tokens of the tests that compare train losses only (the track has 8,192)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def _config(cache_dir, trial, **extra):
    return make_config("tiny-speedrun", overrides={"cache_dir": cache_dir, **COMMON, **trial, **extra})


def _small(cache_dir, trial, **extra):
    """``_config`` with a small validation set, for the tests that compare runs in this process only: each
    evaluation of the track's 8,192 validation tokens costs about as much as ten training steps on 2 CPU cores."""
    config = _config(cache_dir, trial, **extra)
    return replace(config, track=replace(config.track, val_tokens=SMALL_VAL))


def _start_fresh_process(cache_dir, trial, out) -> subprocess.Popen:
    """``python -m trainer`` on one trial, started in the background (one thread: it runs beside others)."""
    sets = [w for k, v in {"cache_dir": cache_dir, **COMMON, **trial}.items() for w in ("--set", f"{k}={v}")]
    return subprocess.Popen([sys.executable, "-m", "trainer", "--quiet", "--out", str(out), *sets],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _fresh_result(proc: subprocess.Popen, out) -> dict:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return json.loads((out / "result.json").read_text())


def _losses(history) -> list[float]:
    return [h["train_loss"] for h in history]


def _same(a: list[float], b: list[float], rel: float = 1e-5) -> None:
    assert len(a) == len(b) and a, (len(a), len(b))
    for i, (x, y) in enumerate(zip(a, b)):
        assert abs(x - y) <= rel * abs(y), f"step {i + 1}: {x} vs {y}"


@pytest.mark.slow
def test_three_trials_in_one_worker_match_fresh_processes(cache_dir, tmp_path):
    import torch

    load_tokens(_config(cache_dir, TRIALS[0]).data, progress=False)  # fill the token cache the processes share
    # the fresh processes run while this one trains its warm worker: four single-threaded runs on the CPU cores
    outs = [tmp_path / f"fresh-{i}" for i in range(len(TRIALS))]
    procs = [_start_fresh_process(cache_dir, trial, out) for trial, out in zip(TRIALS, outs)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the fresh processes (OMP_NUM_THREADS=1): the same summation order
    try:
        bench = Workbench()
        warm = [train(_config(cache_dir, t), bench=bench) for t in TRIALS]
    except BaseException:
        for proc in procs:
            proc.kill()
        raise
    finally:
        torch.set_num_threads(threads)
    fresh_runs = [_fresh_result(proc, out) for proc, out in zip(procs, outs)]
    assert [r.worker_runs for r in warm] == [0, 1, 2]
    assert [r.warm_start for r in warm] == [False, True, False]  # the third is a new shape
    for result, fresh in zip(warm, fresh_runs):
        _same(_losses(result.history), _losses(fresh["history"]))
        _same([v["val_loss"] for v in result.val_history], [v["val_loss"] for v in fresh["val_history"]])
    # and the trials did differ
    assert len({round(r.history[-1]["train_loss"], 4) for r in warm}) == 3


def test_a_shape_seen_before_is_reused_and_the_bench_is_bounded(cache_dir):
    bench = Workbench(max_shapes=2)
    first = train(_small(cache_dir, TRIALS[0], max_tokens=2 * 256), bench=bench)
    again = train(_small(cache_dir, TRIALS[1], max_tokens=2 * 256), bench=bench)
    assert not first.warm_start and again.warm_start and len(bench.shapes) == 1
    model = next(iter(bench.shapes.values())).model
    for mb in (2, 1):  # two more shapes: the third drops everything and starts over
        train(_small(cache_dir, TRIALS[0], micro_batch_size=mb, max_tokens=2 * 256), bench=bench)
    assert len(bench.shapes) <= 2
    back = train(_small(cache_dir, TRIALS[0], max_tokens=2 * 256), bench=bench)
    assert not back.warm_start and next(reversed(bench.shapes.values())).model is not model


def test_the_step_0_evaluation_is_kept_per_seed(cache_dir):
    """A warm worker evaluates a seed's initial weights once; the value is what a new bench computes."""
    bench = Workbench()
    first = train(_small(cache_dir, TRIALS[0], max_tokens=2 * 256), bench=bench)
    other = train(_small(cache_dir, TRIALS[0], seed=5, max_tokens=2 * 256), bench=bench)
    again = train(_small(cache_dir, {**TRIALS[0], "muon_lr": 0.001}, max_tokens=2 * 256), bench=bench)
    shape = next(iter(bench.shapes.values()))
    assert sorted(shape.initial_val) == [0, 5]
    assert again.val_history[0]["val_loss"] == first.val_history[0]["val_loss"]
    assert other.val_history[0]["val_loss"] != first.val_history[0]["val_loss"]
    fresh = train(_small(cache_dir, TRIALS[0], seed=5, max_tokens=2 * 256), bench=Workbench())
    assert fresh.val_history[0]["val_loss"] == pytest.approx(other.val_history[0]["val_loss"], rel=1e-6)


@pytest.fixture(scope="module")
def clean(cache_dir):
    """Each trial trained on a bench of its own."""
    return {i: train(_small(cache_dir, TRIALS[i]), bench=Workbench()) for i in (0, 1)}


@pytest.mark.parametrize("fault", ["nan@3", "raise@3", "oom@3"])
def test_a_failed_run_does_not_poison_the_next(cache_dir, clean, fault):
    """A run that diverges (NaN weights), raises, or runs out of memory; the next run on the same bench gives
    the losses of a run on a new bench."""
    bench = Workbench()
    train(_small(cache_dir, TRIALS[1]), bench=bench)  # warm the bench first
    bad = _small(cache_dir, TRIALS[0], fault=fault)
    if fault.startswith("raise"):
        with pytest.raises(RuntimeError, match="injected fault"):
            train(bad, bench=bench)
        assert bench.dirty
    else:
        result = train(bad, bench=bench)
        assert result.status == ("diverged" if fault.startswith("nan") else "failed")
        if fault.startswith("oom"):
            assert bench.dirty and "out of memory" in result.error
    after = train(_small(cache_dir, TRIALS[1]), bench=bench)
    assert not bench.dirty
    _same(_losses(after.history), _losses(clean[1].history), rel=1e-6)


def test_stopping_a_run_at_a_report_leaves_the_bench_clean(cache_dir, clean):
    """What ASHA does: the consumer stops iterating mid-run. The next run matches a new bench's."""
    from trainer.train import TrainingRun

    bench = Workbench()
    reports = iter(TrainingRun(_small(cache_dir, TRIALS[1], report_every_tokens=4 * 4 * 64), bench))
    first = next(reports)
    assert not first["final"] and first["tokens"] == 4 * 4 * 64
    reports.close()
    assert not bench.dirty and bench.runs == 1
    after = train(_small(cache_dir, TRIALS[0]), bench=bench)
    _same(_losses(after.history), _losses(clean[0].history), rel=1e-6)


def test_horizon_tokens_moves_the_schedule_and_zero_keeps_the_track_budget():
    from trainer.schedule import multiplier_for

    record = make_config("speedrun-4.5")
    assert record.horizon_tokens == 20_000_000  # the record's behaviour: the track's budget
    short = make_config("speedrun-4.5", overrides={"horizon_tokens": 8_000_000, "schedule": "linear",
                                                    "min_lr_ratio": 0.0})
    assert short.horizon_tokens == 8_000_000
    assert multiplier_for(short.hp, 4_000_000, short.horizon_tokens) == pytest.approx(0.5)
    assert multiplier_for(short.hp, 8_000_000, short.horizon_tokens) == pytest.approx(0.0)
    assert multiplier_for(short.hp, 9_000_000, short.horizon_tokens) == pytest.approx(0.0)  # holds past it
    capped = make_config("speedrun-4.5", overrides={"horizon_tokens": 10**9})
    assert capped.horizon_tokens == capped.max_tokens


def test_deterministic_holds_for_the_run_only_and_gets_a_shape_of_its_own(cache_dir, clean):
    """``runtime.deterministic``: torch's deterministic algorithms while the run trains (seen from its reports),
    off again after it, even when the consumer stops it at a report; a worker keeps such a run's compiled shape
    apart from the default one's, and its losses are the default path's on a CPU."""
    import torch

    from trainer.train import TrainingRun

    assert not torch.are_deterministic_algorithms_enabled()
    bench = Workbench()
    config = _small(cache_dir, TRIALS[0], deterministic=True, report_every_tokens=4 * 4 * 64)
    seen = [torch.are_deterministic_algorithms_enabled() for _ in TrainingRun(config, bench)]
    assert seen and all(seen)
    assert not torch.are_deterministic_algorithms_enabled()
    reports = iter(TrainingRun(config, bench))
    next(reports)
    assert torch.are_deterministic_algorithms_enabled()
    reports.close()  # ASHA's stop
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(RuntimeError, match="injected fault"):
        train(_small(cache_dir, TRIALS[0], deterministic=True, fault="raise@2"), bench=Workbench())
    assert not torch.are_deterministic_algorithms_enabled()
    default = train(_small(cache_dir, TRIALS[0], report_every_tokens=4 * 4 * 64), bench=bench)
    assert not default.warm_start and len(bench.shapes) == 2
    _same(_losses(default.history), _losses(clean[0].history), rel=1e-6)
    again = train(config, bench=bench)
    assert again.warm_start
    _same(_losses(again.history), _losses(clean[0].history), rel=1e-5)
