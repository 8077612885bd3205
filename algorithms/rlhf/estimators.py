"""Advantage and KL estimators of the RL stages, registered by name.

Outcome advantages (``--advantage``; one reward per sample, samples of one prompt
contiguous: N = groups x G):

    grpo        (r - mean of its group) / (std of its group + eps); without
                ``--scale-rewards`` (Dr. GRPO) only the mean is taken off
    rloo        r minus the mean of the other G - 1 samples of its group
                (leave-one-out: G / (G - 1) x (r - group mean))
    reinforce++ (r - batch mean) / batch std: a global baseline and scale, no groups

Each returns one advantage per sample ``[N]``, which the loss gives every response token.
`token_gae` is PPO's: per-token advantages from per-token rewards and values.

KL estimators (``--kl-estimator``) of KL(pi || ref) per sampled token, from the log-probs
of the policy and of the reference at that token (Schulman, "Approximating KL
divergence", 2020): ``k1 = log pi - log ref`` (unbiased, can be negative), ``k2 = (k1)^2
/ 2``, ``k3 = exp(-k1) + k1 - 1`` (unbiased, never negative, low variance).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlkit.registry import Registry

EPS = 1e-4
Outcome = Callable[[torch.Tensor, int, bool], torch.Tensor]
"""(rewards [N], group size G, scale) -> advantages [N]."""
OUTCOME_ADVANTAGES: Registry[Outcome] = Registry("advantage estimator")


def groups(rewards: torch.Tensor, g: int) -> torch.Tensor:
    """`rewards` ``[N]`` as ``[N / g, g]`` (refused unless g divides N)."""
    if rewards.numel() % g:
        raise ValueError(f"{rewards.numel()} samples are no whole number of groups of {g}")
    return rewards.view(-1, g)


@OUTCOME_ADVANTAGES.register("grpo")
def grpo(rewards: torch.Tensor, g: int, scale: bool = True) -> torch.Tensor:
    r = groups(rewards, g)
    centred = r - r.mean(1, keepdim=True)
    if scale and g > 1:
        centred = centred / (r.std(1, keepdim=True) + EPS)
    return centred.reshape(-1)


@OUTCOME_ADVANTAGES.register("rloo")
def rloo(rewards: torch.Tensor, g: int, scale: bool = True) -> torch.Tensor:
    if g < 2:
        raise ValueError("rloo needs at least 2 samples per prompt (--group-size)")
    r = groups(rewards, g)
    others = (r.sum(1, keepdim=True) - r) / (g - 1)
    return (r - others).reshape(-1)


@OUTCOME_ADVANTAGES.register("reinforce++")
def reinforce_pp(rewards: torch.Tensor, g: int, scale: bool = True) -> torch.Tensor:
    centred = rewards - rewards.mean()
    if scale and rewards.numel() > 1:
        centred = centred / (rewards.std() + EPS)
    return centred


def zero_variance_fraction(rewards: torch.Tensor, g: int) -> float:
    """The fraction of groups whose samples all got the same reward (no signal in them)."""
    r = groups(rewards, g)
    return float((r.max(1).values == r.min(1).values).float().mean())


def token_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level GAE over responses: `rewards`, `values` ``[N, T]`` at the positions where
    `mask` ``[N, T]`` is True (the response tokens, contiguous), 0 elsewhere. The value
    after the last response token is 0 (the episode ends there). Returns (advantages,
    returns) ``[N, T]``, 0 outside the mask."""
    m = mask.to(values.dtype)
    values, rewards = values * m, rewards * m
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    next_value = torch.zeros_like(values[:, 0])
    for t in range(values.shape[1] - 1, -1, -1):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * m[:, t]
        advantages[:, t] = running
        next_value = torch.where(mask[:, t], values[:, t], next_value)
    return advantages, (advantages + values) * m


KL = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(log pi [n], log ref [n]) -> per-token KL estimate [n]."""
KL_ESTIMATORS: Registry[KL] = Registry("KL estimator")


@KL_ESTIMATORS.register("k1")
def k1(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    return logps - ref_logps


@KL_ESTIMATORS.register("k2")
def k2(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    return 0.5 * (logps - ref_logps).pow(2)


@KL_ESTIMATORS.register("k3")
def k3(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    log_ratio = ref_logps - logps
    return log_ratio.exp() - log_ratio - 1
