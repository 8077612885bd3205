"""Soft Actor-Critic (Haarnoja et al. 2018): twin critics evaluated as one batched
ensemble, Polyak-averaged targets, a tanh-squashed Gaussian policy with the exact
change-of-variables log-probability, and automatic entropy tuning."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlkit.algorithms.base import ALGORITHMS
from rlkit.algorithms.learner import seeded
from rlkit.algorithms.networks import HALF_LOG_2PI, full_precision, mlp
from rlkit.algorithms.off_policy import OffPolicy, OffPolicyConfig
from rlkit.algorithms.off_policy_roles import OffPolicyLearnerBase
from rlkit.batch import Batch
from rlkit.config import BaseConfig, check
from rlkit.envs.vector import SpaceSpec
from rlkit.roles import Learner, Weights

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclass
class SACConfig(OffPolicyConfig):
    """SAC: the off-policy fields plus entropy tuning and the actor's update rate."""

    q_lr: float = 1e-3
    """Adam learning rate of the critics (`lr` is the actor's)."""
    alpha: float = 0.2
    """Entropy coefficient (the initial one when `autotune` is on)."""
    autotune: bool = True
    """Tune alpha so the policy's entropy tracks `target_entropy`."""
    target_entropy: float = 0.0
    """Entropy target when autotuning; 0 means -action_dim."""
    policy_frequency: int = 1
    """Gradient steps between actor (and alpha) updates (TD3-style delay when > 1)."""
    critics: int = 2
    """Critics in the ensemble; the target takes their minimum."""

    def validate(self) -> None:
        super().validate()
        check(self.q_lr > 0, "q_lr", "must be positive")
        check(self.alpha >= 0, "alpha", "must be >= 0")
        check(self.policy_frequency >= 1, "policy_frequency", "must be at least 1")
        check(self.critics >= 1, "critics", "must be at least 1")


class EnsembleLinear(nn.Module):
    """`members` independent linear layers applied as one batched matmul:
    ``[E, B, in] -> [E, B, out]``."""

    def __init__(self, members: int, fan_in: int, fan_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.empty(members, fan_in, fan_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, fan_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleQ(nn.Module):
    """Q(s, a) for every ensemble member at once: ``[B, obs], [B, act] -> [E, B]``."""

    def __init__(self, spec: SpaceSpec, hidden: tuple[int, ...], members: int) -> None:
        super().__init__()
        sizes = [int(np.prod(spec.obs_shape)) + spec.action_dim, *hidden, 1]
        self.members = members
        self.layers = nn.ModuleList(
            EnsembleLinear(members, a, b) for a, b in zip(sizes, sizes[1:], strict=False)
        )

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs.flatten(1), action], -1).expand(self.members, -1, -1)
        *hidden, head = self.layers
        for layer in hidden:
            x = F.relu(layer(x))
        return full_precision(head, x).squeeze(-1)


class SquashedGaussian(nn.Module):
    """``a = center + scale * tanh(u)``, ``u ~ N(mu(s), sigma(s))``."""

    center: torch.Tensor
    scale: torch.Tensor

    def __init__(self, spec: SpaceSpec, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.trunk = mlp([int(np.prod(spec.obs_shape)), *hidden], "relu", math.sqrt(2))
        self.trunk.append(nn.ReLU())
        self.mean = nn.Linear(hidden[-1], spec.action_dim)
        self.log_std = nn.Linear(hidden[-1], spec.action_dim)
        low, high = torch.tensor(spec.action_low), torch.tensor(spec.action_high)
        self.register_buffer("center", (high + low) / 2)
        self.register_buffer("scale", (high - low) / 2)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs.flatten(1))
        log_std = torch.tanh(full_precision(self.log_std, h))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        return full_precision(self.mean, h), log_std

    def sample(
        self, obs: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized action ``[B, A]`` and its log-probability ``[B]``."""
        mean, log_std = self(obs)
        std = log_std.exp()
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + std * noise
        # log N(u) - sum log |da/du|, with log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))
        log_prob = (-0.5 * noise.pow(2) - log_std - HALF_LOG_2PI).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u)) + self.scale.log()).sum(
            -1
        )
        return self.center + self.scale * torch.tanh(u), log_prob

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return self.center + self.scale * torch.tanh(self(obs)[0])


class SACLearner(OffPolicyLearnerBase):
    def __init__(
        self,
        spec: SpaceSpec,
        config: SACConfig,
        device: torch.device | None = None,
        replica: int = 0,
    ) -> None:
        super().__init__(spec, config, device, replica)
        self.cfg = config
        with seeded(config.seed):
            self.actor = SquashedGaussian(spec, config.hidden).to(self.device)
            self.critic = EnsembleQ(spec, config.hidden, config.critics).to(self.device)
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = self.make_optimizer(self.actor.parameters(), config.lr, "actor_opt")
        self.critic_opt = self.make_optimizer(self.critic.parameters(), config.q_lr, "critic_opt")
        self.target_entropy = config.target_entropy or -float(spec.action_dim)
        self.log_alpha = torch.tensor(
            math.log(max(config.alpha, 1e-8)), device=self.device, requires_grad=True
        )
        # torch's default Adam kernel (not the fused one) for the one scalar
        alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.q_lr)
        self.alpha_opt = self.add_optimizer("alpha_opt", alpha_opt)

    def losses(self, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Critic loss and TD targets for one batch (exposed for tests)."""
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_action, next_logp = self.actor.sample(b["next_obs"], self.generator)
            next_q = self.target(b["next_obs"], next_action).min(0).values - alpha * next_logp
            y = b["rewards"] + b["discounts"] * (~b["terminated"]).to(next_q.dtype) * next_q
        q = self.critic(b["obs"], b["actions"])
        per_critic = (q - y).pow(2)
        if "weights" in b:
            per_critic = per_critic * b["weights"]
        return 0.5 * per_critic.mean(1).sum(), y

    def update(self, batch: Batch) -> dict[str, Any]:
        b = self.to_device(batch)
        with self.autocast():
            critic_loss, y = self.losses(b)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.average_grads(self.critic.parameters())
        self.critic_opt.step()
        out: dict[str, Any] = {"critic_loss": critic_loss.detach(), "q": y.mean()}
        if self.updates % self.cfg.policy_frequency == 0:
            self.critic.requires_grad_(False)  # the actor loss needs no critic weight gradients
            alpha = self.log_alpha.detach().exp()
            with self.autocast():
                action, logp = self.actor.sample(b["obs"], self.generator)
                q_pi = self.critic(b["obs"], action).min(0).values
                actor_loss = (alpha * logp - q_pi).mean()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.average_grads(self.actor.parameters())
            self.actor_opt.step()
            self.critic.requires_grad_(True)
            out.update(actor_loss=actor_loss.detach(), entropy=-logp.detach().mean(), alpha=alpha)
            if self.cfg.autotune:
                alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
                self.alpha_opt.zero_grad(set_to_none=True)
                alpha_loss.backward()
                self.average_grads([self.log_alpha])
                self.alpha_opt.step()
        self.polyak(self.target, self.critic, self.cfg.tau)
        self.updates += 1
        if self.cfg.prioritized:
            with torch.no_grad(), self.autocast():
                td = self.critic(b["obs"], b["actions"]).min(0).values - y
            out["priorities"] = td.abs() + 1e-6
        return out

    def get_weights(self) -> Weights:
        return self.cpu_weights(self.actor)

    def own_state(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "target": self.target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
        }

    def load_own_state(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.target.load_state_dict(state["target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])


@ALGORITHMS.register("sac")
class SAC(OffPolicy):
    config_cls: ClassVar[type[BaseConfig]] = SACConfig
    learner_cls: ClassVar[type[Learner]] = SACLearner
    discrete = False
    instead = "dqn"
    config: SACConfig

    @staticmethod
    def make_actor_policy(config: Any, spec: SpaceSpec) -> nn.Module:
        return SquashedGaussian(spec, config.hidden)

    @staticmethod
    def explore(
        policy: nn.Module,
        obs: torch.Tensor,
        generator: torch.Generator,
        epsilon: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        assert isinstance(policy, SquashedGaussian)
        return policy.sample(obs, generator)[0].numpy()

    @staticmethod
    def greedy(policy: nn.Module, obs: torch.Tensor) -> np.ndarray:
        assert isinstance(policy, SquashedGaussian)
        return policy.deterministic(obs).numpy()
