"""Deep Q-Networks (Mnih et al. 2015) with double Q-learning (van Hasselt et al. 2016),
an optional dueling head (Wang et al. 2016), n-step returns and prioritized replay
(both done by the replay buffer), Huber loss and a linear epsilon schedule."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlkit.algorithms.base import ALGORITHMS
from rlkit.algorithms.flat_params import FlatParameters
from rlkit.algorithms.learner import seeded
from rlkit.algorithms.networks import full_precision, mlp
from rlkit.algorithms.off_policy import OffPolicy, OffPolicyConfig
from rlkit.algorithms.off_policy_roles import OffPolicyLearnerBase
from rlkit.batch import Batch
from rlkit.config import BaseConfig, check
from rlkit.envs.vector import SpaceSpec
from rlkit.roles import Learner, Weights


@dataclass
class DQNConfig(OffPolicyConfig):
    """DQN: the off-policy fields plus exploration, target sync and the Q head."""

    lr: float = 1e-4
    """Adam learning rate."""
    batch_size: int = 32
    """Transitions per gradient step."""
    train_freq: int = 4
    """Environment steps per env between update rounds."""
    tau: float = 1.0
    """Target update rate at each sync (1 = hard copy)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the Q network."""
    target_update_interval: int = 10_000
    """Environment steps between target network syncs."""
    exploration_fraction: float = 0.1
    """Fraction of the run over which epsilon decays linearly."""
    eps_start: float = 1.0
    """Initial exploration rate."""
    eps_end: float = 0.05
    """Final exploration rate."""
    double: bool = True
    """Double DQN: the online network picks the next action, the target network rates it."""
    dueling: bool = False
    """Dueling head: Q = V + A - mean(A)."""
    max_grad_norm: float = 10.0
    """Gradient clipping by global norm (0 disables)."""

    def validate(self) -> None:
        super().validate()
        check(self.target_update_interval >= 1, "target_update_interval", "must be at least 1")
        check(0.0 < self.exploration_fraction <= 1.0, "exploration_fraction", "must be in (0, 1]")
        check(
            0.0 <= self.eps_end <= self.eps_start <= 1.0,
            "eps_start",
            "needs 0 <= eps_end <= eps_start <= 1",
        )
        check(self.max_grad_norm >= 0, "max_grad_norm", "must be >= 0")


class QNetwork(nn.Module):
    """``obs [B, ...] -> Q [B, actions]``; optionally a dueling head."""

    def __init__(self, spec: SpaceSpec, hidden: tuple[int, ...], dueling: bool = False) -> None:
        super().__init__()
        obs_dim = int(np.prod(spec.obs_shape))
        self.dueling = dueling
        self.trunk = mlp([obs_dim, *hidden], "relu", np.sqrt(2))
        self.trunk.append(nn.ReLU())
        self.advantage = nn.Linear(hidden[-1], spec.action_dim)
        self.value = nn.Linear(hidden[-1], 1) if dueling else None
        # called functionally in forward: nn.Module.__call__ costs ~10 us a layer, which
        # is most of the time of a small MLP on a CPU
        self.hidden_layers = tuple(m for m in self.trunk if isinstance(m, nn.Linear))

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        h = obs.flatten(1)
        for layer in self.hidden_layers:
            h = torch.relu(F.linear(h, layer.weight, layer.bias))
        return h

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.features(obs)
        a = full_precision(self.advantage_head, h)
        if self.value is None:
            return a
        return full_precision(self.value_head, h) + a - a.mean(-1, keepdim=True)

    def advantage_head(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.advantage.weight, self.advantage.bias)

    def value_head(self, h: torch.Tensor) -> torch.Tensor:
        assert self.value is not None
        return F.linear(h, self.value.weight, self.value.bias)


def td_targets(
    next_q_online: torch.Tensor,
    next_q_target: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor,
    terminated: torch.Tensor,
    double: bool,
) -> torch.Tensor:
    """``r + discount * (1 - terminated) * Q_target(s', a*)`` with ``a*`` chosen by the
    online network (double) or the target network (vanilla). `reward` is the n-step return
    and `discount` is ``gamma ** n`` as the replay buffer returns them. All ``[B]`` but the
    Q values ``[B, actions]``."""
    if double:
        best = next_q_online.argmax(-1, keepdim=True)
        next_v = next_q_target.gather(-1, best).squeeze(-1)
    else:
        next_v = next_q_target.max(-1).values
    return reward + discount * (~terminated).to(reward.dtype) * next_v


class DQNLearner(OffPolicyLearnerBase):
    def __init__(
        self,
        spec: SpaceSpec,
        config: DQNConfig,
        device: torch.device | None = None,
        replica: int = 0,
    ) -> None:
        super().__init__(spec, config, device, replica)
        self.cfg = config
        with seeded(config.seed):
            self.q = QNetwork(spec, config.hidden, config.dueling).to(self.device)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.flat, self.target_flat = FlatParameters(self.q), FlatParameters(self.target)
        self.optimizer = self.make_optimizer([self.flat.param], config.lr)

    def update(self, batch: Batch) -> dict[str, Any]:
        b = self.to_device(batch)
        n = b["obs"].shape[0]
        with self.autocast():
            with torch.no_grad():
                next_q_target = self.target(b["next_obs"])
            if self.cfg.double:  # one pass of the online network over obs and next_obs together
                both = self.q(torch.cat([b["obs"], b["next_obs"]]))
                q_all, next_q_online = both[:n], both[n:].detach()
            else:
                q_all, next_q_online = self.q(b["obs"]), next_q_target
        target = td_targets(
            next_q_online,
            next_q_target,
            b["rewards"],
            b["discounts"],
            b["terminated"],
            self.cfg.double,
        )
        q = q_all.gather(-1, b["actions"].long()[:, None]).squeeze(-1)
        elementwise = F.smooth_l1_loss(q, target, reduction="none")
        loss = (elementwise * b["weights"]).mean() if "weights" in b else elementwise.mean()
        self.flat.zero_grad()
        loss.backward()
        self.average_grads([self.flat.param])
        if self.cfg.max_grad_norm > 0:
            self.flat.clip_grad_norm_(self.cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        out: dict[str, Any] = {"loss": loss.detach(), "q": q.detach().mean()}
        if self.cfg.prioritized:
            out["priorities"] = (q - target).detach().abs() + 1e-6
        return out

    @torch.no_grad()
    def sync_target(self) -> None:
        self.target_flat.param.lerp_(self.flat.param, self.cfg.tau)

    def get_weights(self) -> Weights:
        return self.cpu_weights(self.q)

    def own_state(self) -> dict[str, Any]:
        return {"q": self.q.state_dict(), "target": self.target.state_dict()}

    def load_own_state(self, state: dict[str, Any]) -> None:
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])


@ALGORITHMS.register("dqn")
class DQN(OffPolicy):
    config_cls: ClassVar[type[BaseConfig]] = DQNConfig
    learner_cls: ClassVar[type[Learner]] = DQNLearner
    discrete = True
    instead = "sac"
    config: DQNConfig

    @staticmethod
    def make_actor_policy(config: Any, spec: SpaceSpec) -> nn.Module:
        return QNetwork(spec, config.hidden, config.dueling)

    @staticmethod
    def explore(
        policy: nn.Module,
        obs: torch.Tensor,
        generator: torch.Generator,
        epsilon: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        q = policy(obs)
        actions = q.argmax(-1).numpy()
        random = rng.random(len(actions)) < epsilon
        if random.any():
            actions[random] = rng.integers(0, q.shape[-1], int(random.sum()))
        return actions

    @staticmethod
    def greedy(policy: nn.Module, obs: torch.Tensor) -> np.ndarray:
        return policy(obs).argmax(-1).numpy()

    def epsilon(self) -> float:
        cfg = self.config
        frac = min(1.0, self.env_steps / (cfg.exploration_fraction * cfg.total_steps))
        return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)

    def after_round(self) -> None:
        interval = self.config.target_update_interval
        steps_per_round = self.config.train_freq * self.config.num_envs * self.config.actors
        if self.env_steps // interval > (self.env_steps - steps_per_round) // interval:
            self.runtime.group("learner", DQNLearner).call(DQNLearner.sync_target)
