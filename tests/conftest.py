"""Shared fixtures. Tests run on CPU with one torch thread, headless, offline."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)


def rlkit_command() -> list[str]:
    """The installed `rlkit` console script beside this interpreter (the real CLI)."""
    script = Path(sys.executable).parent / "rlkit"
    if script.exists():
        return [str(script)]
    found = shutil.which("rlkit")
    return [found] if found else [sys.executable, "-m", "rlkit.cli"]


@pytest.fixture(scope="session")
def rlkit_cmd() -> list[str]:
    return rlkit_command()


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for CLI subprocesses: offline wandb under tmp, headless MuJoCo."""
    env = dict(os.environ)
    env.update(
        MUJOCO_GL="egl",
        WANDB_MODE="offline",
        WANDB_DIR=str(tmp_path / "wandb"),
        WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"),
        PYTHONUNBUFFERED="1",
    )
    return env


TEST_ENVS = ("CartPole", "Pendulum")


def env_for(algo: str) -> str:
    """The first of TEST_ENVS whose action space the algorithm accepts."""
    from rlkit.algorithms import ALGORITHMS
    from rlkit.envs.vector import probe_spec
    from rlkit.errors import EnvError

    algo_cls = ALGORITHMS.get(algo)
    for env in TEST_ENVS:
        env_id, spec = probe_spec(env)
        try:
            algo_cls.check_env(env_id, spec)
            return env
        except EnvError:
            continue
    pytest.skip(f"{algo} accepts none of {TEST_ENVS}")


def tiny_args(algo: str, total_steps: int = 256, checkpoint_every: int = 128) -> list[str]:
    """`rlkit run` arguments for a run of seconds, built from the fields the config has, so
    any registered algorithm gets one."""
    from rlkit.algorithms import ALGORITHMS
    from rlkit.config import offered_fields

    names = set(offered_fields(ALGORITHMS.get(algo).config_cls))
    args = ["run", algo, "--env", env_for(algo), "--total-steps", str(total_steps)]
    args += ["--checkpoint-every", str(checkpoint_every)]
    optional = {
        "num_steps": "64",
        "minibatch_size": "32",
        "learning_starts": "64",
        "batch_size": "32",
        "hidden": "16,16",
        "log_every": "32",
    }
    for name, value in optional.items():
        if name in names:
            args += [f"--{name.replace('_', '-')}", value]
    return args


@pytest.fixture
def tiny_run(tmp_path: Path):
    """Make a finished tiny run of `algo` in tmp_path/runs/NAME (in-process CLI)."""
    from rlkit.cli import main

    def make(algo: str, name: str = "r", *extra: str, total_steps: int = 256) -> Path:
        out = tmp_path / "runs"
        code = main([*tiny_args(algo, total_steps), "--out", str(out), "--name", name, *extra])
        assert code == 0
        return out / name

    return make


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (relative path -> bytes), to show nothing changed."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def dir_snapshot():
    return snapshot


@pytest.fixture
def run_args():
    return tiny_args
