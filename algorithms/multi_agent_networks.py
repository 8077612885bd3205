"""Policy and value networks for the agents of a multi-agent env, one pair per group.

Agents whose spaces are identical share one actor and one critic (parameter sharing),
each seeing its agent's id as a one-hot appended to its input; groups whose spaces
differ (speaker, listener) have networks of their own (`MultiAgentSpec.groups`; with
``share_params`` off every agent is a group). The critic sees the global state (MAPPO's
centralized value function) or the agent's own observation (IPPO's decentralized one).
With `layer_norm` (the default) the networks are the on-policy repository's MLP: a
LayerNorm on the input ("feature normalization") and after every hidden layer. Every tensor is agent-major inside a sample: ``[B, A, ...]`` in
`MultiAgentSpec.agents` order; actors' parameters come before the critics' (so the two
can be clipped apart in the one flat gradient).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from rlkit.algorithms.networks import ACTIVATIONS, HALF_LOG_2PI, full_precision, mlp
from rlkit.envs.multi_agent_spec import MultiAgentSpec
from rlkit.envs.vector import SpaceSpec

FUNCTIONAL: dict[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]] = {
    nn.Tanh: torch.tanh,
    nn.ReLU: torch.relu,
    nn.ELU: F.elu,
}
MASKED = -1e9
"""The logit of an action that the env's action mask forbids (probability 0)."""


class NormedMLP(nn.Module):
    """``[B, n, in] -> [B, n, out]``: with `layer_norm`, a LayerNorm on the input and after
    every hidden layer (the on-policy repository's MLP: Linear, activation, LayerNorm);
    orthogonal init, gain sqrt 2 inside and `out_gain` at the output."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: tuple[int, ...],
        activation: str,
        layer_norm: bool,
        out_gain: float,
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim) if layer_norm else None
        layers: list[nn.Module] = []
        for a, b in zip((in_dim, *hidden), hidden, strict=False):
            layers += [mlp([a, b], activation, math.sqrt(2))[0], ACTIVATIONS[activation]()]
            if layer_norm:
                layers.append(nn.LayerNorm(b))
        self.body = nn.Sequential(*layers)
        head = mlp([hidden[-1] if hidden else in_dim, out_dim], activation, out_gain)[0]
        assert isinstance(head, nn.Linear)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x) if self.norm is not None else x
        return full_precision(self.head, self.body(x))

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` for acting: layers called functionally (no module hooks)."""
        for layer in (self.norm, *self.body, self.head):
            if isinstance(layer, nn.Linear):
                x = F.linear(x, layer.weight, layer.bias)
            elif isinstance(layer, nn.LayerNorm):
                x = F.layer_norm(x, layer.normalized_shape, layer.weight, layer.bias, layer.eps)
            elif layer is not None:
                x = FUNCTIONAL[type(layer)](x)
        return x


class GroupActor(NormedMLP):
    """One group's policy: logits ``[B, n, actions]`` or Gaussian means ``[B, n, d]``
    (with a state-independent log std per action dimension)."""

    def __init__(
        self,
        in_dim: int,
        spec: SpaceSpec,
        hidden: tuple[int, ...],
        activation: str,
        layer_norm: bool,
        log_std_init: float,
    ) -> None:
        super().__init__(in_dim, spec.action_dim, hidden, activation, layer_norm, 0.01)
        self.spec = spec
        if not spec.discrete:
            self.log_std = nn.Parameter(torch.full((spec.action_dim,), log_std_init))


class GroupCritic(NormedMLP):
    """One group's value function: ``[B, n, in] -> [B, n, 1]``."""

    def __init__(
        self, in_dim: int, hidden: tuple[int, ...], activation: str, layer_norm: bool
    ) -> None:
        super().__init__(in_dim, 1, hidden, activation, layer_norm, 1.0)


class MultiAgentPolicy(nn.Module):
    """Actors and critics of every agent group, over agent-major batches."""

    def __init__(
        self,
        spec: MultiAgentSpec,
        hidden: tuple[int, ...] = (64, 64),
        activation: str = "tanh",
        log_std_init: float = 0.0,
        layer_norm: bool = True,
        central_critic: bool = True,
        share_params: bool = True,
    ) -> None:
        super().__init__()
        self.spec, self.central = spec, central_critic
        if share_params:
            groups = [(list(g.agents), g.spec) for g in spec.groups]
        else:
            groups = sorted(([i], g.spec) for g in spec.groups for i in g.agents)
        self.members = [m for m, _ in groups]
        self.specs = [s for _, s in groups]
        self.group_index = [0] * len(spec.agents)
        """The group of each agent (value normalization keeps statistics per group)."""
        for g, members in enumerate(self.members):
            for i in members:
                self.group_index[i] = g
        order = [i for m in self.members for i in m]
        self.inverse = None if order == sorted(order) else torch.tensor(order).argsort()
        for g, members in enumerate(self.members):
            self.register_buffer(f"ids{g}", torch.eye(len(members)), persistent=False)
        self.actors = nn.ModuleList(
            GroupActor(
                math.prod(s.obs_shape) + len(m), s, hidden, activation, layer_norm, log_std_init
            )
            for m, s in groups
        )
        critic_in = [
            (spec.state_dim if central_critic else math.prod(s.obs_shape)) + len(m)
            for m, s in groups
        ]
        self.critics = nn.ModuleList(
            GroupCritic(n, hidden, activation, layer_norm) for n in critic_in
        )
        self.actor_numel = sum(p.numel() for p in self.actors.parameters())
        """Parameters of the actors: the first `actor_numel` of the flat parameters."""

    # -- inputs ---------------------------------------------------------------------------
    def _rows(self, x: torch.Tensor, g: int) -> torch.Tensor:
        """The group's agents of an agent-major ``[B, A, ...]`` tensor."""
        members = self.members[g]
        if members == list(range(members[0], members[-1] + 1)):
            return x[:, members[0] : members[-1] + 1]
        return x[:, members]

    def _with_ids(self, x: torch.Tensor, g: int) -> torch.Tensor:
        ids: torch.Tensor = getattr(self, f"ids{g}")
        return torch.cat([x, ids.expand(x.shape[0], -1, -1).to(x.dtype)], -1)

    def actor_input(self, obs: torch.Tensor, g: int) -> torch.Tensor:
        """``[B, n_g, obs_dim_g + n_g]``: the members' observations and ids."""
        width = math.prod(self.specs[g].obs_shape)
        return self._with_ids(self._rows(obs, g)[..., :width], g)

    def critic_input(self, obs: torch.Tensor, state: torch.Tensor, g: int) -> torch.Tensor:
        if not self.central:
            return self.actor_input(obs, g)
        n = len(self.members[g])
        return self._with_ids(state.flatten(1)[:, None].expand(-1, n, -1), g)

    def _join(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Per-group ``[B, n_g, ...]`` results -> ``[B, A, ...]`` in agent order."""
        out = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        return out if self.inverse is None else out[:, self.inverse.to(out.device)]

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous actions ``[B, n, d_g]`` zero-padded to the widest ``[B, n, d]``."""
        return F.pad(x, (0, self.spec.action_dim - x.shape[-1]))

    def _masked(self, logits: torch.Tensor, masks: torch.Tensor | None, g: int) -> torch.Tensor:
        if masks is None:
            return logits
        allowed = self._rows(masks, g)[..., : logits.shape[-1]]
        return logits.masked_fill(~allowed, MASKED)

    # -- acting ---------------------------------------------------------------------------
    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        state: torch.Tensor,
        masks: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample every agent's action. `obs` ``[B, A, obs_dim]``, `state` ``[B, *state]``,
        `masks` ``[B, A, action_dim]`` (True: allowed). Returns actions ``[B, A]`` (int64)
        or ``[B, A, action_dim]``, their log-probabilities ``[B, A]`` and values ``[B, A]``."""
        actions, log_probs = [], []
        for g, actor in enumerate(self.actors):
            assert isinstance(actor, GroupActor)
            out = self._masked(actor.infer(self.actor_input(obs, g)), masks, g)
            if actor.spec.discrete:
                logp = torch.log_softmax(out, -1)
                if deterministic:
                    action = out.argmax(-1)
                else:
                    flat = logp.exp().reshape(-1, out.shape[-1])
                    action = torch.multinomial(flat, 1, generator=generator).view(out.shape[:-1])
                log_probs.append(logp.gather(-1, action[..., None]).squeeze(-1))
                actions.append(action)
            else:
                noise = torch.zeros_like(out)
                if not deterministic:
                    noise = torch.randn(out.shape, generator=generator, dtype=out.dtype)
                action = out + actor.log_std.exp() * noise
                log_probs.append((-0.5 * noise.square() - actor.log_std - HALF_LOG_2PI).sum(-1))
                actions.append(self._pad(action))
        return self._join(actions), self._join(log_probs), self.value(obs, state, infer=True)

    def value(self, obs: torch.Tensor, state: torch.Tensor, infer: bool = False) -> torch.Tensor:
        """``[B, A]`` values (in the critic's normalized scale under value normalization)."""
        parts = []
        for g, critic in enumerate(self.critics):
            assert isinstance(critic, GroupCritic)
            x = self.critic_input(obs, state, g)
            parts.append((critic.infer(x) if infer else critic(x)).squeeze(-1))
        return self._join(parts)

    # -- training -------------------------------------------------------------------------
    def evaluate(
        self,
        obs: torch.Tensor,
        state: torch.Tensor,
        actions: torch.Tensor,
        masks: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probabilities of `actions`, entropies and values, each ``[B, A]``, with
        gradients (the loss's forward pass)."""
        log_probs, entropies = [], []
        for g, actor in enumerate(self.actors):
            assert isinstance(actor, GroupActor)
            out = self._masked(actor(self.actor_input(obs, g)), masks, g)
            taken = self._rows(actions, g)
            if actor.spec.discrete:
                logp = torch.log_softmax(out, -1)
                log_probs.append(logp.gather(-1, taken[..., None]).squeeze(-1))
                entropies.append(-(logp.exp() * logp).sum(-1))
            else:
                z = (taken[..., : out.shape[-1]] - out) / actor.log_std.exp()
                log_probs.append((-0.5 * z.square() - actor.log_std - HALF_LOG_2PI).sum(-1))
                per_dim = 0.5 + HALF_LOG_2PI + actor.log_std
                entropies.append(per_dim.sum().expand(out.shape[:-1]))
        return self._join(log_probs), self._join(entropies), self.value(obs, state)

    def critic_heads(self) -> list[nn.Linear]:
        """Each group's value output layer, in group order."""
        heads = []
        for critic in self.critics:
            assert isinstance(critic, GroupCritic)
            heads.append(critic.head)  # PopArt rescales it
        return heads
