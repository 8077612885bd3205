"""Advantage estimators, registered by name (``--advantage gae``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlkit.registry import Registry

Estimator = Callable[..., tuple[torch.Tensor, torch.Tensor]]
ADVANTAGES: Registry[Estimator] = Registry("advantage estimator")


@ADVANTAGES.register("gae")
def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over ``[envs, steps]`` tensors.

    `next_values[:, t]` is the value of the state after step t: V(s_{t+1}) while the
    episode goes on, V(final observation) when it was truncated, 0 when it terminated.
    `dones[:, t]` (terminated or truncated) stops the recursion at an episode boundary.
    Returns (advantages, returns), both ``[envs, steps]``.
    """
    deltas = rewards + gamma * next_values - values
    keep = gamma * lam * (~dones.bool()).to(deltas.dtype)
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[:, 0])
    for t in range(deltas.shape[1] - 1, -1, -1):
        running = deltas[:, t] + keep[:, t] * running
        advantages[:, t] = running
    return advantages, advantages + values
