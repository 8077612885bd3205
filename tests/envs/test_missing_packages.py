"""Registered gymnasium ids that need a package this machine lacks: one line that says
which package, or that the id is not supported."""

from __future__ import annotations

import importlib.util

import pytest

from rlkit.cli import main

CASES = [
    ("phys2d/CartPole-v1", "jax", "needs the package 'jax'"),
    ("tabular/Blackjack-v0", "jax", "needs the package 'jax'"),
    ("GymV26Environment-v0", "shimmy", "shimmy"),
    ("Hopper-v3", "mujoco_py", "not supported here"),
]


@pytest.mark.parametrize(("env", "package", "fragment"), CASES)
def test_an_env_needing_a_missing_package_says_which(env, package, fragment, capsys):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    assert main(["plan", "ppo", "--env", env]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], captured.err
    assert "Traceback" not in captured.err
