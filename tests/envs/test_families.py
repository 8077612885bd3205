"""Env families: the registry picks the family that owns an env name, refuses one of a
family the algorithm does not take, and passes --env-kwargs to the env's constructor."""

from __future__ import annotations

import pytest

from rlkit.cli import main
from rlkit.envs.families import parse_env_kwargs, select
from rlkit.envs.vector import make_vector_env
from rlkit.errors import ConfigError, EnvError


def test_gymnasium_owns_short_names_and_ids_and_resolves_them():
    family = select("ppo", ("gymnasium",), "humanoid")
    assert family.name == "gymnasium" and family.resolve("humanoid") == "Humanoid-v5"
    assert family.short_name("Humanoid-v5") == "Humanoid"
    assert family.owns("CartPole-v1") and not family.owns("simple_spreadd")
    assert "CartPole" in family.names()


def test_an_unknown_env_names_the_closest_ones():
    with pytest.raises(EnvError, match="unknown env 'Humanoidd'; did you mean 'Humanoid'"):
        select("ppo", ("gymnasium",), "Humanoidd")


def test_an_env_of_a_family_the_algorithm_does_not_take_is_refused_naming_it():
    with pytest.raises(EnvError, match=r"x does not train gymnasium envs \('CartPole'\)"):
        select("x", ("nonesuch",), "CartPole")
    with pytest.raises(EnvError, match="needs the nonesuch env family, which is not installed"):
        select("x", ("nonesuch",), "zzz")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("N=5,local_ratio=0.5", {"N": 5, "local_ratio": 0.5}),
        ("continuous_actions=true, render=None", {"continuous_actions": True, "render": None}),
        ("mode=hard,shape=(2, 3)", {"mode": "hard", "shape": (2, 3)}),
    ],
)
def test_env_kwargs_parse_as_literals(text, expected):
    assert parse_env_kwargs(text) == expected


def test_env_kwargs_reach_the_constructor_of_every_env():
    envs = make_vector_env("Pendulum-v1", 2, kwargs={"g": 3.5})
    try:
        assert [e.unwrapped.g for e in envs.envs] == [3.5, 3.5]
    finally:
        envs.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [("g", "is not KEY=VALUE"), ("gravity_of_mars=3.7", "Pendulum-v1 refuses them")],
)
def test_bad_env_kwargs_are_one_line_and_exit_2(kwargs, message, tmp_path, capsys):
    code = main(["plan", "ppo", "--env", "Pendulum", "--env-kwargs", kwargs])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    with pytest.raises(ConfigError):
        parse_env_kwargs("1x=2")
