import dataclasses

import pytest

from trainer.config import (
    TRACKS,
    ConfigError,
    Hyper,
    ModelConfig,
    RunConfig,
    apply_overrides,
    make_config,
    override_keys,
    parse_set,
)


def test_defaults_are_the_record_settings():
    hp = Hyper()
    assert (hp.muon_lr, hp.adamw_lr, hp.warmup_ratio, hp.schedule, hp.grad_accum_steps) == (
        0.015, 0.001, 0.0, "constant", 1)
    assert hp.tokens_per_step == 8192


def test_config_is_frozen():
    cfg = make_config("tiny-speedrun")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hp.muon_lr = 1.0  # type: ignore[misc]


def test_overrides_by_leaf_and_dotted_name_with_types():
    cfg = make_config("tiny-speedrun", overrides={"muon_lr": "0.03", "hp.grad_accum_steps": "2",
                                                   "schedule": "cosine", "compile": "false"})
    assert cfg.hp.muon_lr == 0.03 and cfg.hp.grad_accum_steps == 2 and cfg.hp.schedule == "cosine"
    assert cfg.runtime.compile is False
    assert cfg.hp.batch_sequences == cfg.hp.micro_batch_size * 2


@pytest.mark.parametrize("key,value,match", [
    ("muon_lr", "-1", "muon_lr must be a finite number > 0"),
    ("grad_accum_steps", "0", "grad_accum_steps must be an integer >= 1"),
    ("schedule", "exp", "schedule must be one of constant, cosine, linear, wsd"),
    ("muon_lr", "fast", "muon_lr must be a float"),
    ("bogus", "1", "unknown setting 'bogus'; allowed: "),
    ("hp.bogus", "1", "unknown setting 'hp.bogus'"),
    ("warmup_ratio", "1.5", r"warmup_ratio must be in \[0, 1\)"),
    ("device", "tpu", "device must be one of auto, cpu, cuda"),
    ("blocks_per_region", "0", "blocks_per_region must be an integer >= 1"),
    ("working_copies", "maybe", "working_copies must be"),
    ("deterministic", "maybe", "deterministic must be a bool"),
])
def test_bad_overrides_name_the_setting(key, value, match):
    with pytest.raises(ConfigError, match=match):
        make_config("tiny-speedrun", overrides={key: value})


def test_unknown_track_and_preset_list_choices():
    with pytest.raises(ConfigError, match="speedrun-4.5"):
        make_config("speedrun-9")
    with pytest.raises(ConfigError, match="blueberry-151m, tiny"):
        make_config("tiny-speedrun", preset_name="huge")


def test_eligibility_is_checked():
    cfg = make_config("speedrun-4.5")
    with pytest.raises(ConfigError, match="leaderboard-eligible"):
        dataclasses.replace(cfg, model=ModelConfig(n_layers=4))


def test_parse_set():
    assert parse_set(["a=1", "b = x"]) == {"a": "1", "b": "x"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["novalue"])


def test_round_trip_dict():
    cfg = make_config("speedrun-4.5", overrides={"muon_lr": 0.02})
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_every_search_knob_is_settable():
    knobs = {"muon_lr", "adamw_lr", "muon_momentum", "weight_decay", "warmup_ratio", "schedule", "min_lr_ratio",
             "decay_ratio", "micro_batch_size", "grad_accum_steps", "seq_len", "grad_clip", "seed"}
    assert knobs <= set(override_keys())


def test_tracks_have_rules_and_literal_targets():
    assert TRACKS["speedrun-4.5"].target == 4.5 and TRACKS["speedrun-3.5"].target == 3.5
    assert TRACKS["marathon"].target is None
    for t in TRACKS.values():
        assert t.record_rule == "first_step" and t.search_rule == "smoothed"


def test_apply_overrides_keeps_other_sections():
    cfg = make_config("tiny-speedrun")
    new = apply_overrides(cfg, {"max_tokens": 1000})
    assert new.runtime.max_tokens == 1000 and new.hp == cfg.hp and new.max_tokens == 1000


def test_stream_tokens_of_configs_saved_before_it_existed() -> None:
    # make_config caps a streamed dataset at the track's max_tokens; a config saved without the field reads the
    # same, with today's track caps, so records do not grow a spurious data.stream_tokens change
    for name in ("speedrun-4.5", "marathon", "tiny-speedrun"):
        config = make_config(name)
        assert config.data.stream_tokens == config.track.max_tokens
        d = config.to_dict()
        del d["data"]["stream_tokens"]
        d["track"]["max_tokens"] = d["track"]["budget_tokens"] = 1_000  # an older definition of the track
        assert RunConfig.from_dict(d).data == config.data
        assert RunConfig.from_dict(config.to_dict()) == config


def test_working_copies_need_bf16():
    with pytest.raises(ConfigError, match="working_copies=true needs dtype bf16 or auto"):
        make_config("tiny-speedrun", overrides={"working_copies": "true", "dtype": "fp32"})
    assert make_config("tiny-speedrun", overrides={"working_copies": "true"}).runtime.working_copies is True


def test_deterministic_is_a_bool_from_a_file_too():
    from trainer.config import Runtime

    assert make_config("tiny-speedrun", overrides={"deterministic": "on"}).runtime.deterministic is True
    with pytest.raises(ConfigError, match="deterministic must be true or false, got 'yes'"):
        Runtime(deterministic="yes")
