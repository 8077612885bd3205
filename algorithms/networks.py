"""Policy and value networks for vector observations."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Normal

from rlkit.envs.vector import SpaceSpec

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def mlp(sizes: list[int], activation: str, out_gain: float) -> nn.Sequential:
    """Linear layers with orthogonal init (gain sqrt 2 inside, `out_gain` at the output)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        last = i == len(sizes) - 2
        linear = nn.Linear(a, b)
        nn.init.orthogonal_(linear.weight, out_gain if last else math.sqrt(2))
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Separate policy and value MLPs; Gaussian (state-independent std) or categorical head."""

    def __init__(
        self,
        spec: SpaceSpec,
        hidden: tuple[int, ...] = (64, 64),
        activation: str = "tanh",
        log_std_init: float = 0.0,
    ) -> None:
        super().__init__()
        obs_dim = math.prod(spec.obs_shape)
        self.discrete = spec.discrete
        self.pi = mlp([obs_dim, *hidden, spec.action_dim], activation, 0.01)
        self.v = mlp([obs_dim, *hidden, 1], activation, 1.0)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((spec.action_dim,), log_std_init))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, *obs_shape] -> [B]``."""
        return self.v(obs.flatten(1)).squeeze(-1)

    def dist(self, obs: torch.Tensor) -> Distribution:
        out = self.pi(obs.flatten(1))
        if self.discrete:
            return Categorical(logits=out, validate_args=False)
        return Normal(out, self.log_std.exp().expand_as(out), validate_args=False)

    def log_prob(self, dist: Distribution, action: torch.Tensor) -> torch.Tensor:
        """``[B]`` log-probabilities (summed over action dims when continuous)."""
        lp = dist.log_prob(action)
        return lp if self.discrete else lp.sum(-1)

    def entropy(self, dist: Distribution) -> torch.Tensor:
        ent = dist.entropy()
        return ent if self.discrete else ent.sum(-1)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions with `generator`; returns (action, log_prob, value), each ``[B, ...]``."""
        out = self.pi(obs.flatten(1))
        if self.discrete:
            if deterministic:
                action = out.argmax(-1)
            else:
                action = torch.multinomial(out.softmax(-1), 1, generator=generator).squeeze(-1)
            log_prob = torch.log_softmax(out, -1).gather(-1, action[:, None]).squeeze(-1)
        else:
            std = self.log_std.exp().expand_as(out)
            action = out if deterministic else torch.normal(out, std, generator=generator)
            log_prob = Normal(out, std, validate_args=False).log_prob(action).sum(-1)
        return action, log_prob, self.value(obs)
