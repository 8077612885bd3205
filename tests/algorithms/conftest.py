"""Fixtures shared by the algorithm tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from rlkit.batch import Batch

RolloutFactory = Callable[..., Batch]


def random_rollout(envs: int, steps: int, obs_dim: int, act_dim: int, seed: int = 0) -> Batch:
    """A synthetic on-policy rollout, every field ``[envs, steps, ...]`` as an actor returns
    it: random observations, actions in [-1, 1], returns, values and some episode ends."""
    g = torch.Generator().manual_seed(seed)
    shape = (envs, steps)
    return {
        "obs": torch.randn(*shape, obs_dim, generator=g),
        "actions": torch.rand(*shape, act_dim, generator=g) * 2 - 1,
        "log_probs": torch.randn(*shape, generator=g) - 2,
        "values": torch.randn(*shape, generator=g),
        "next_values": torch.randn(*shape, generator=g),
        "rewards": torch.randn(*shape, generator=g),
        "dones": torch.rand(*shape, generator=g) < 0.1,
        "terminated": torch.zeros(*shape, dtype=torch.bool),
    }


@pytest.fixture
def make_rollout() -> RolloutFactory:
    """`random_rollout(envs, steps, obs_dim, act_dim, seed=0)`."""
    return random_rollout
