import pickle

import optuna
import pytest

from spaces import SPACES, describe, get_space
from trainer.config import SCHEDULES, ConfigError, Hyper, make_config


def _study_with(space, base, n=30, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    study.enqueue_trial(space.record_point(base))
    out = []
    for _ in range(n):
        t = study.ask()
        overrides = space.sample(t, base)
        out.append((t.params, overrides))
        study.tell(t, 1.0)
    return out


@pytest.mark.parametrize("name", list(SPACES))
def test_first_trial_is_the_record(name):
    space = get_space(name)
    for track in ("speedrun-4.5", "tiny-speedrun"):
        base = make_config(track).hp
        params, overrides = _study_with(space, base, n=1)[0]
        for key, value in overrides.items():
            if hasattr(base, key):
                assert getattr(base, key) == value, (track, key)


@pytest.mark.parametrize("name", list(SPACES))
def test_samples_are_valid_configs(name):
    space = get_space(name)
    for _params, overrides in _study_with(space, Hyper(), n=40):
        cfg = make_config("speedrun-4.5", overrides=overrides)  # validates
        assert cfg.hp.micro_batch_size * cfg.hp.grad_accum_steps >= 1


def test_lr_sched_conditionals():
    seen = set()
    for params, overrides in _study_with(get_space("lr_sched"), Hyper(), n=60):
        seen.add(overrides["schedule"])
        assert ("min_lr_ratio" in params) == (overrides["schedule"] != "constant")
        assert ("decay_ratio" in params) == (overrides["schedule"] == "wsd")
        assert 0.002 <= overrides["muon_lr"] <= 0.08
    assert seen == set(SCHEDULES)


def test_grad_accum_keeps_effective_batch():
    for params, o in _study_with(get_space("grad_accum"), Hyper(), n=30):
        assert o["micro_batch_size"] * o["grad_accum_steps"] == params["effective_batch"]
    for _params, o in _study_with(get_space("grad_accum:16"), Hyper(), n=20):
        assert o["micro_batch_size"] * o["grad_accum_steps"] == 16


def test_unknown_space_lists_valid_ones():
    with pytest.raises(ConfigError, match="lr_sched, grad_accum, batch, full"):
        get_space("lr")
    with pytest.raises(ConfigError, match="positive integer"):
        get_space("grad_accum:x")


def test_spaces_pickle_and_describe():
    for name in [*SPACES, "grad_accum:8"]:
        pickle.loads(pickle.dumps(get_space(name)))
    assert len(describe().splitlines()) == len(SPACES)
