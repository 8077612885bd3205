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
