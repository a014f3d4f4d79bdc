"""Ray reuses a trial worker for trial after trial (reuse_actors with TrialWorker.reset_config); a trial that
raises gets its worker replaced, and the trials after it train as a fresh process would."""

from dataclasses import replace

import pytest

from trainer.config import make_config
from trainer.train import Workbench, train


def _small_val(config):
    """1,024 validation tokens, not the track's 8,192 (the test compares train losses; each trial evaluates twice,
    and an evaluation of the full set costs as much as ten of its steps)."""
    return replace(config, track=replace(config.track, val_tokens=1024))


@pytest.mark.slow
def test_trials_reuse_a_worker_and_a_fault_replaces_it(tmp_path):
    import ray
    from ray import tune

    from search.tuner import TrialWorker

    cache = str(tmp_path / "cache")
    base = _small_val(make_config("tiny-speedrun", overrides={"cache_dir": cache, "max_tokens": 6 * 256,
                                                              "stop_rule": "never", "report_every_tokens": 4 * 256}))
    rates = {1: 0.02, 2: 0.01, 3: 0.02, 4: 0.005, 5: 0.03}
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        worker = tune.with_parameters(TrialWorker, base=base.to_dict(), rule="smoothed", cpu_threads=1)
        grid = tune.Tuner(
            tune.with_resources(worker, {"cpu": 1}),
            param_space={"seed": tune.grid_search(list(rates)),
                         "muon_lr": tune.sample_from(lambda config: rates[config["seed"]]),
                         "fault": tune.sample_from(lambda config: "raise@2" if config["seed"] == 3 else "")},
            tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0,
                                      checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)),
        )
        results = grid.fit()
    finally:
        ray.shutdown()
    by_seed = {}
    for r in results:
        by_seed[r.config["seed"]] = r
    assert by_seed[3].error is not None and "injected fault" in str(by_seed[3].error)
    ok = [by_seed[s].metrics for s in (1, 2, 4, 5)]
    assert all(m["final"] and m["status"] == "budget_exhausted" for m in ok)
    pid = {s: by_seed[s].metrics["worker_pid"] for s in (1, 2, 4, 5)}
    assert pid[1] == pid[2] and by_seed[2].metrics["worker_runs"] == 1  # reused
    assert pid[4] != pid[1] and by_seed[4].metrics["worker_runs"] == 0  # replaced after the fault
    assert pid[5] == pid[4] and by_seed[5].metrics["worker_runs"] == 1
    # the trial after the fault trains as a fresh process would
    fresh = train(_small_val(make_config("tiny-speedrun", overrides={
        "cache_dir": cache, "max_tokens": 6 * 256, "stop_rule": "never", "seed": 4, "muon_lr": 0.005})),
                  bench=Workbench())
    assert by_seed[4].metrics["train_loss"] == pytest.approx(fresh.final_train_loss, rel=1e-5)


def test_trials_in_flight_at_the_end_keep_their_clocked_time(tmp_path):
    """A trial still training when the time budget ends is recorded ``interrupted`` with what it reported: its
    clocked span counts in the busy shares (its GPU was not idle), its objective stays empty, and a trial that
    never reported is left for mark_interrupted."""
    from types import SimpleNamespace

    from search.store import TrialStore
    from search.summary import record_share
    from search.tuner import ResultsCallback

    store = TrialStore(tmp_path)
    cb = ResultsCallback(store, first_number=1)
    done, busy, silent = (SimpleNamespace(trial_id=t, config={"muon_lr": 0.01, "_number": n})
                          for n, t in enumerate(("aaa", "bbb", "ccc"), start=1))
    for trial in (done, busy, silent):
        cb.on_trial_start(0, [], trial)
    report = {"tokens": 4096, "step": 2, "clock_s": 40.0, "objective": 30.0, "clock_started_at": 100.0,
              "reported_at": 140.0, "cuda_visible_devices": "1", "final": False, "status": ""}
    cb.on_trial_result(0, [], busy, report)
    cb.on_trial_result(0, [], done, {**report, "cuda_visible_devices": "0", "final": True, "status": "completed"})
    cb.on_trial_complete(0, [], done)
    assert cb.record_in_flight() == 1
    assert store.mark_interrupted() == [3]  # the one that never reported
    recs = {r["trial_id"]: r for r in store.all_records()}
    assert recs["bbb"]["status"] == "interrupted" and recs["bbb"]["objective"] is None
    assert (recs["bbb"]["clock_started_at"], recs["bbb"]["clock_ended_at"], recs["bbb"]["tokens"]) == (100.0, 140.0, 4096)
    share = record_share(tmp_path, store.write_tables(), "session-1", 100.0, 140.0)
    assert share["per_gpu"] == {"0": 1.0, "1": 1.0} and share["trials"] == 1
