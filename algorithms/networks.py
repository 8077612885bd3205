"""Policy and value networks for vector observations."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Distribution, Normal

from rlkit.envs.vector import SpaceSpec

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
_FUNCTIONAL: dict[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]] = {
    nn.Tanh: torch.tanh,
    nn.ReLU: torch.relu,
    nn.ELU: F.elu,
}
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


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


def full_precision(head: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``head(x)`` in fp32 even under bf16 autocast (`--precision bf16`): output layers
    (Q-values, action means, logits) keep full precision; hidden layers carry the cost."""
    if not torch.is_autocast_enabled(x.device.type):
        return head(x)
    with torch.autocast(x.device.type, enabled=False):
        return head(x.float())


def mlp_fp32_head(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """`net` (an `mlp`) with its output layer in fp32 under autocast (`full_precision`)."""
    if not torch.is_autocast_enabled(x.device.type):
        return net(x)
    *body, head = net
    for layer in body:
        x = layer(x)
    return full_precision(head, x)


def mlp_inference(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """`net` (an `mlp`) applied layer by layer without nn.Module.__call__ (a few us a
    layer, most of a small MLP's time on a CPU); for inference, where no hooks are wanted."""
    for layer in net:
        if isinstance(layer, nn.Linear):
            x = F.linear(x, layer.weight, layer.bias)
        else:
            x = _FUNCTIONAL[type(layer)](x)
    return x


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
        return mlp_fp32_head(self.v, obs.flatten(1)).squeeze(-1)

    def dist(self, obs: torch.Tensor) -> Distribution:
        out = mlp_fp32_head(self.pi, obs.flatten(1))
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
        """Sample actions with `generator`; returns (action, log_prob, value), each ``[B, ...]``.
        The actors' hot loop: layers are called functionally and the Gaussian's
        log-probability is written out (no Distribution object), about half the cost."""
        x = obs.flatten(1)
        out = mlp_inference(self.pi, x)
        if self.discrete:
            if deterministic:
                action = out.argmax(-1)
            else:
                action = torch.multinomial(out.softmax(-1), 1, generator=generator).squeeze(-1)
            log_prob = torch.log_softmax(out, -1).gather(-1, action[:, None]).squeeze(-1)
        else:
            if deterministic:
                action, z2 = out, torch.zeros_like(out)
            else:
                noise = torch.randn(out.shape, generator=generator, dtype=out.dtype)
                action = out + self.log_std.exp() * noise
                z2 = noise.square()
            log_prob = (-0.5 * z2 - self.log_std - HALF_LOG_2PI).sum(-1)
        return action, log_prob, mlp_inference(self.v, x).squeeze(-1)
