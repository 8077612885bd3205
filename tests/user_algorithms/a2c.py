"""Advantage Actor-Critic (Mnih et al. 2016, synchronous), written as a user outside
rlkit would: on the on-policy template, with RMSprop (as Stable-Baselines3's A2C).

    rlkit run tests/user_algorithms/a2c.py:A2C --env CartPole

One gradient step per rollout of a few steps in several envs, on the whole rollout;
n-step returns (GAE with lambda 1) and no advantage normalization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from rlkit.algorithms import OnPolicy, OnPolicyConfig
from rlkit.algorithms.networks import ActorCritic
from rlkit.batch import Batch
from rlkit.config import BaseConfig, check


@dataclass
class A2CConfig(OnPolicyConfig):
    """A2C: the on-policy fields with A2C's defaults; one gradient step per rollout (it
    composes no `EpochFields` or `OverlapFields`: --epochs, --target-kl, --overlap are
    PPO's)."""

    num_steps: int = 5
    """Steps per environment per rollout."""
    num_envs: int = 8
    """Parallel environments per actor."""
    gae_lambda: float = 1.0
    """GAE lambda; 1 gives A2C's n-step returns."""
    lr: float = 7e-4
    """RMSprop learning rate."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the run."""
    norm_adv: bool = False
    """Standardize advantages per rollout."""
    rms_alpha: float = 0.99
    """RMSprop smoothing constant."""
    rms_eps: float = 1e-5
    """RMSprop epsilon (added to the root of the squared-gradient average)."""
    minibatch_size: int = 0
    """Samples per gradient step; 0 (A2C's) means the whole rollout."""

    def validate(self) -> None:
        super().validate()
        check(0.0 <= self.rms_alpha < 1.0, "rms_alpha", "must be in [0, 1)")
        check(self.rms_eps > 0, "rms_eps", "must be positive")


class A2C(OnPolicy):
    name = "a2c"
    config_cls: ClassVar[type[BaseConfig]] = A2CConfig

    @staticmethod
    def make_optimizer(config: A2CConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(params, lr=config.lr, alpha=config.rms_alpha, eps=config.rms_eps)

    @staticmethod
    def loss(
        config: A2CConfig, policy: ActorCritic, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        dist = policy.dist(batch["obs"])
        log_prob = policy.log_prob(dist, batch["actions"])
        policy_loss = -(batch["advantages"] * log_prob).mean()
        value_loss = (policy.value(batch["obs"]) - batch["returns"]).pow(2).mean()
        entropy = policy.entropy(dist).mean()
        loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
        with torch.no_grad():
            stats = {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}
        return loss, stats
