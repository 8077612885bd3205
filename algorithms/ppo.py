"""Proximal Policy Optimization (Schulman et al. 2017), clipped surrogate objective.

Everything but the loss comes from the on-policy template: rollouts, GAE, epochs,
minibatches, observation/reward normalization, gradient clipping, LR annealing.
To change the objective, subclass `PPO` and override `loss` (see examples/custom_ppo.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from rlkit.algorithms.base import ALGORITHMS
from rlkit.algorithms.networks import ActorCritic
from rlkit.algorithms.on_policy import EpochFields, OnPolicy, OnPolicyConfig, OverlapFields
from rlkit.batch import Batch
from rlkit.config import BaseConfig, Group, check


@dataclass
class PPOFields(Group):
    """PPO's clipping of the policy and value updates."""

    clip_coef: float = 0.2
    """Clip the probability ratio to [1 - clip_coef, 1 + clip_coef]."""
    clip_vloss: bool = False
    """Also clip the value update around the rollout's values (by clip_coef)."""

    def validate(self) -> None:
        super().validate()
        check(self.clip_coef > 0, "clip_coef", "must be positive")


@dataclass
class PPOConfig(PPOFields, OverlapFields, EpochFields, OnPolicyConfig):
    """PPO: the on-policy fields, several clipped passes over each rollout, overlap."""


@ALGORITHMS.register("ppo")
class PPO(OnPolicy):
    config_cls: ClassVar[type[BaseConfig]] = PPOConfig

    @staticmethod
    def loss(
        config: PPOConfig, policy: ActorCritic, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        dist = policy.dist(batch["obs"])
        log_ratio = policy.log_prob(dist, batch["actions"]) - batch["log_probs"]
        ratio = log_ratio.exp()
        adv = batch["advantages"]
        clipped = ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
        policy_loss = torch.max(-adv * ratio, -adv * clipped).mean()

        value = policy.value(batch["obs"])
        value_loss = (value - batch["returns"]).pow(2)
        if config.clip_vloss:
            old = batch["values"]
            value_clipped = old + (value - old).clamp(-config.clip_coef, config.clip_coef)
            value_loss = torch.max(value_loss, (value_clipped - batch["returns"]).pow(2))
        value_loss = 0.5 * value_loss.mean()

        entropy = policy.entropy(dist).mean()
        loss = policy_loss - config.ent_coef * entropy + config.vf_coef * value_loss
        with torch.no_grad():
            stats = {
                "policy_loss": policy_loss,
                "value_loss": value_loss,
                "entropy": entropy,
                "approx_kl": ((ratio - 1) - log_ratio).mean(),
                "clip_fraction": ((ratio - 1).abs() > config.clip_coef).float().mean(),
            }
        return loss, stats
