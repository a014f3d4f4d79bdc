import math

import pytest

from trainer.config import ConfigError, Hyper
from trainer.schedule import lr_multiplier, multiplier_for


def test_constant_is_one_after_warmup():
    assert lr_multiplier(0.5, "constant") == 1.0
    assert lr_multiplier(0.05, "constant", warmup_ratio=0.1) == pytest.approx(0.5)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_decays_to_floor(schedule):
    assert lr_multiplier(0.1, schedule, warmup_ratio=0.1) == pytest.approx(1.0)
    assert lr_multiplier(1.0, schedule, warmup_ratio=0.1, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_multiplier(2.0, schedule, min_lr_ratio=0.1) == pytest.approx(0.1)  # holds past the horizon
    values = [lr_multiplier(p / 100, schedule, warmup_ratio=0.1) for p in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_cosine_midpoint_and_linear_midpoint():
    assert lr_multiplier(0.5, "cosine", min_lr_ratio=0.0) == pytest.approx(0.5)
    assert lr_multiplier(0.5, "linear", min_lr_ratio=0.2) == pytest.approx(0.6)
    assert lr_multiplier(0.25, "cosine", min_lr_ratio=0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_wsd_stable_then_linear_decay():
    kw = dict(warmup_ratio=0.1, decay_ratio=0.2, min_lr_ratio=0.0)
    assert lr_multiplier(0.05, "wsd", **kw) == pytest.approx(0.5)
    assert lr_multiplier(0.5, "wsd", **kw) == 1.0
    assert lr_multiplier(0.8, "wsd", **kw) == 1.0
    assert lr_multiplier(0.9, "wsd", **kw) == pytest.approx(0.5)
    assert lr_multiplier(1.0, "wsd", **kw) == pytest.approx(0.0)


def test_first_step_of_warmup_is_not_zero():
    hp = Hyper(warmup_ratio=0.5, seq_len=16, micro_batch_size=1)
    assert multiplier_for(hp, 16, 1600) == pytest.approx(0.02)


def test_unknown_schedule():
    with pytest.raises(ConfigError, match="constant, cosine, linear, wsd"):
        lr_multiplier(0.5, "exp")
