"""Twin Delayed DDPG (Fujimoto et al. 2018), written as a user outside rlkit would: on the
off-policy template, with a learner role of its own.

    rlkit run tests/user_algorithms/td3.py:TD3 --env Pendulum

The three fixes over DDPG: twin critics (the target takes their minimum), target policy
smoothing (clipped Gaussian noise on the target action), and delayed updates of the
actor and the targets (every `policy_frequency` critic steps).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from rlkit.algorithms import OffPolicy, OffPolicyConfig
from rlkit.algorithms.networks import mlp
from rlkit.algorithms.off_policy_roles import OffPolicyLearnerBase
from rlkit.batch import Batch
from rlkit.config import BaseConfig, check
from rlkit.envs.vector import SpaceSpec
from rlkit.roles import Learner, Weights


@dataclass
class TD3Config(OffPolicyConfig):
    """TD3: the off-policy fields plus exploration and target-smoothing noise and the
    actor's delay (uniform replay: it composes no `PrioritizedFields`)."""

    lr: float = 1e-3
    """Adam learning rate of the actor and the critics."""
    learning_starts: int = 1000
    """Environment steps of uniformly random actions before learning starts."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to the actor's actions, in units of half the
    action range."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise, in units of half the action range."""
    noise_clip: float = 0.5
    """Clip of the target smoothing noise, in units of half the action range."""
    policy_frequency: int = 2
    """Critic steps per actor (and target) update."""

    def validate(self) -> None:
        super().validate()
        check(self.exploration_noise >= 0, "exploration_noise", "must be >= 0")
        check(self.policy_noise >= 0, "policy_noise", "must be >= 0")
        check(self.noise_clip >= 0, "noise_clip", "must be >= 0")
        check(self.policy_frequency >= 1, "policy_frequency", "must be at least 1")


class DeterministicActor(nn.Module):
    """``a = center + scale * tanh(mlp(s))``: ``[B, obs] -> [B, A]``."""

    center: torch.Tensor
    scale: torch.Tensor

    def __init__(self, spec: SpaceSpec, hidden: tuple[int, ...], noise: float = 0.0) -> None:
        super().__init__()
        self.net = mlp([int(np.prod(spec.obs_shape)), *hidden, spec.action_dim], "relu", 1.0)
        low, high = torch.tensor(spec.action_low), torch.tensor(spec.action_high)
        self.register_buffer("center", (high + low) / 2)
        self.register_buffer("scale", (high - low) / 2)
        self.noise = noise
        """Exploration noise std (a plain attribute: `explore` gets no config)."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.center + self.scale * torch.tanh(self.net(obs.flatten(1)))


class TwinQ(nn.Module):
    """Two independent critics: ``[B, obs], [B, A] -> ([B], [B])``."""

    def __init__(self, spec: SpaceSpec, hidden: tuple[int, ...]) -> None:
        super().__init__()
        sizes = [int(np.prod(spec.obs_shape)) + spec.action_dim, *hidden, 1]
        self.q1 = mlp(sizes, "relu", 1.0)
        self.q2 = mlp(sizes, "relu", 1.0)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs.flatten(1), action], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class TD3Learner(OffPolicyLearnerBase):
    def __init__(
        self,
        spec: SpaceSpec,
        config: TD3Config,
        device: torch.device | None = None,
        replica: int = 0,
    ) -> None:
        super().__init__(spec, config, device, replica)
        self.cfg = config
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            self.actor = DeterministicActor(spec, config.hidden).to(self.device)
            self.critic = TwinQ(spec, config.hidden).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = self.make_optimizer(self.actor.parameters(), config.lr)
        self.critic_opt = self.make_optimizer(self.critic.parameters(), config.lr)

    def update(self, batch: Batch) -> dict[str, Any]:
        cfg, b = self.cfg, self.to_device(batch)
        scale = self.actor.scale
        with torch.no_grad():
            next_action = self.actor_target(b["next_obs"])
            noise = torch.randn(next_action.shape, generator=self.generator, device=self.device) * (
                cfg.policy_noise * scale
            )
            noise = torch.maximum(
                torch.minimum(noise, cfg.noise_clip * scale), -cfg.noise_clip * scale
            )
            low, high = self.actor.center - scale, self.actor.center + scale
            next_action = torch.maximum(torch.minimum(next_action + noise, high), low)
            q1_next, q2_next = self.critic_target(b["next_obs"], next_action)
            alive = (~b["terminated"]).to(q1_next.dtype)
            y = b["rewards"] + b["discounts"] * alive * torch.minimum(q1_next, q2_next)
        q1, q2 = self.critic(b["obs"], b["actions"])
        critic_loss = (q1 - y).pow(2).mean() + (q2 - y).pow(2).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.average_grads(self.critic.parameters())
        self.critic_opt.step()
        out: dict[str, Any] = {"critic_loss": critic_loss.detach(), "q": q1.detach().mean()}
        if self.updates % cfg.policy_frequency == 0:
            self.critic.requires_grad_(False)
            actor_loss = -self.critic(b["obs"], self.actor(b["obs"]))[0].mean()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.average_grads(self.actor.parameters())
            self.actor_opt.step()
            self.critic.requires_grad_(True)
            self.polyak(self.actor_target, self.actor, cfg.tau)
            self.polyak(self.critic_target, self.critic, cfg.tau)
            out["actor_loss"] = actor_loss.detach()
        self.updates += 1
        return out

    def get_weights(self) -> Weights:
        return self.cpu_weights(self.actor)

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.generator.set_state(state["generator"])
        self.updates = state["updates"]


class TD3(OffPolicy):
    name = "td3"
    config_cls: ClassVar[type[BaseConfig]] = TD3Config
    learner_cls: ClassVar[type[Learner]] = TD3Learner
    discrete = False
    config: TD3Config

    @staticmethod
    def make_actor_policy(config: Any, spec: SpaceSpec) -> nn.Module:
        return DeterministicActor(spec, config.hidden, config.exploration_noise)

    @staticmethod
    def explore(
        policy: nn.Module,
        obs: torch.Tensor,
        generator: torch.Generator,
        epsilon: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        assert isinstance(policy, DeterministicActor)
        action = policy(obs)
        noise = torch.randn(action.shape, generator=generator) * (policy.noise * policy.scale)
        low, high = policy.center - policy.scale, policy.center + policy.scale
        return torch.maximum(torch.minimum(action + noise, high), low).numpy()

    @staticmethod
    def greedy(policy: nn.Module, obs: torch.Tensor) -> np.ndarray:
        assert isinstance(policy, DeterministicActor)
        return policy(obs).numpy()
