import pytest

from rlkit.algorithms import ALGORITHMS, PPOConfig
from rlkit.config import apply_overrides, field_docs
from rlkit.errors import ConfigError, RegistryError
from rlkit.trainer import make_config


def test_every_field_has_a_docstring_line():
    docs = field_docs(PPOConfig)
    import dataclasses

    missing = [f.name for f in dataclasses.fields(PPOConfig) if not docs.get(f.name)]
    assert missing == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("total_steps", "1e6", 1_000_000),
        ("total-steps", "2_048", 2048),
        ("lr", "1e-4", 1e-4),
        ("norm_obs", "true", True),
        ("norm_obs", "0", False),
        ("hidden", "256,256", (256, 256)),
        ("hidden", [32], (32,)),
        ("vector", "async", "async"),
    ],
)
def test_overrides_convert_by_annotation(key, value, expected):
    cfg = PPOConfig()
    apply_overrides(cfg, {key: value})
    assert getattr(cfg, key.replace("-", "_")) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lr": "fast"}, "--lr: expected a number"),
        ({"total_steps": "1.5"}, "--total-steps: expected an integer"),
        ({"norm_obs": "maybe"}, "--norm-obs: expected true or false"),
        ({"vector": "threads"}, "--vector: 'threads' is not one of sync, async"),
        ({"lrr": "1"}, "unknown option --lrr for PPOConfig; did you mean --lr?"),
    ],
)
def test_bad_overrides_name_the_field(values, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        apply_overrides(PPOConfig(), values)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("total_steps", 0),
        ("total_steps", -5),
        ("gamma", 1.5),
        ("num_envs", 0),
        ("clip_coef", 0.0),
        ("lr", -1.0),
    ],
)
def test_validate_rejects_out_of_range(field, value):
    cfg = PPOConfig()
    setattr(cfg, field, value)
    with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')}"):
        cfg.validate()


def test_preset_then_overrides():
    ppo = ALGORITHMS.get("PPO")  # case-insensitive
    cfg = make_config(ppo, "cartpole", None, {"lr": "5e-4"})
    assert cfg.num_envs == 8 and cfg.num_steps == 32  # from the CartPole preset
    assert cfg.lr == 5e-4  # the override wins
    plain = make_config(ppo, "CartPole", "none", {})
    assert plain.num_envs == PPOConfig().num_envs


def test_unknown_preset_is_an_error():
    with pytest.raises(ConfigError, match="no preset 'Nope'"):
        make_config(ALGORITHMS.get("ppo"), "CartPole", "Nope", {})


def test_registry_suggests_close_names():
    with pytest.raises(RegistryError, match="did you mean 'ppo'"):
        ALGORITHMS.get("ppoo")


def test_config_roundtrips_through_dict():
    cfg = PPOConfig(hidden=(32, 16), lr=1e-3)
    again = PPOConfig.from_dict(
        {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.to_dict().items()}
    )
    assert again == cfg
