"""What a multi-agent algorithm needs to know about a PettingZoo parallel env's spaces.

Agents are listed in the env's ``possible_agents`` order; every per-agent array rlkit
builds is indexed that way (``[..., A, ...]``). Agents whose observation and action
spaces are identical form a group: a group shares one network (parameter sharing, with
the agent's id appended to its observation); groups whose spaces differ (a speaker and a
listener) get one network each. The global state is ``env.state()`` where the env has
one, else the agents' observations concatenated in agent order (mpe2's `state()` is that
concatenation, so there it is taken from the observations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from rlkit.envs.vector import SpaceSpec, space_spec
from rlkit.errors import EnvError

Observation = dict[str, np.ndarray]
"""What a multi-agent policy acts on, a batch of B envs: ``obs`` ``[B, A, obs_dim]``
(each agent's observation flattened, zero-padded to the widest; zeros for agents not in
the env), ``state`` ``[B, *state_shape]``, ``alive`` ``[B, A]`` bool and, when the env
gives action masks, ``action_masks`` ``[B, A, action_dim]`` bool (True: allowed)."""


@dataclass(frozen=True)
class AgentGroup:
    """Agents with identical spaces: one network serves them all."""

    name: str
    agents: tuple[int, ...]
    """Indices into `MultiAgentSpec.agents`."""
    spec: SpaceSpec
    """The members' spaces (the observation flattened when it has several dimensions)."""

    @property
    def obs_dim(self) -> int:
        return math.prod(self.spec.obs_shape)


@dataclass(frozen=True)
class MultiAgentSpec:
    """The spaces of a parallel env's agents, grouped, and of its global state."""

    agents: tuple[str, ...]
    groups: tuple[AgentGroup, ...]
    state_shape: tuple[int, ...]
    state_from_env: bool
    """True: the state is ``env.state()``; False: the observations concatenated."""
    action_masks: bool
    """The env gives action masks (a Dict observation's "action_mask", or the infos')."""

    @property
    def discrete(self) -> bool:
        """Every agent's actions are discrete."""
        return all(g.spec.discrete for g in self.groups)

    @property
    def continuous(self) -> bool:
        return not any(g.spec.discrete for g in self.groups)

    @property
    def obs_dim(self) -> int:
        """Width of the padded observation array (the widest agent's)."""
        return max(g.obs_dim for g in self.groups)

    @property
    def action_dim(self) -> int:
        """Most actions (discrete) or widest action vector (continuous) of any agent."""
        return max(g.spec.action_dim for g in self.groups)

    @property
    def state_dim(self) -> int:
        return math.prod(self.state_shape)

    def group_of(self) -> list[int]:
        """The group index of each agent, in agent order."""
        out = [0] * len(self.agents)
        for g, group in enumerate(self.groups):
            for i in group.agents:
                out[i] = g
        return out

    def obs_dims(self) -> list[int]:
        """Each agent's own (unpadded) observation width, in agent order."""
        group = self.group_of()
        return [self.groups[group[i]].obs_dim for i in range(len(self.agents))]


def observation_box(space: spaces.Space, env_id: str, agent: str) -> tuple[spaces.Box, bool]:
    """The Box an agent observes and whether its observation carries an action mask
    (PettingZoo's ``Dict(observation=..., action_mask=...)`` convention)."""
    if isinstance(space, spaces.Dict) and "observation" in space.spaces:
        inner = space.spaces["observation"]
        if isinstance(inner, spaces.Box):
            return inner, "action_mask" in space.spaces
    if isinstance(space, spaces.Box):
        return space, False
    raise EnvError(
        f"{env_id}: agent {agent!r} observes {space}; rlkit needs a Box observation "
        "(or a Dict of an 'observation' Box and an 'action_mask')"
    )


def group_name(names: list[str], taken: set[str]) -> str:
    """``["adversary_0", "adversary_1"]`` -> "adversary"; mixed prefixes are joined by "+"."""
    prefixes = list(dict.fromkeys(n.rstrip("0123456789").rstrip("_") or n for n in names))
    name = "+".join(prefixes)
    base, k = name, 2
    while name in taken:
        name, k = f"{base}{k}", k + 1
    return name


def spec_of(env: Any, env_id: str, infos: dict[str, Any]) -> MultiAgentSpec:
    """The spec of a parallel env that has just been reset (`infos` from that reset)."""
    agents = tuple(env.possible_agents)
    if not agents:
        raise EnvError(f"{env_id}: the env has no agents (possible_agents is empty)")
    specs: list[SpaceSpec] = []
    masked = False
    for agent in agents:
        box, has_mask = observation_box(env.observation_space(agent), env_id, agent)
        flat = spaces.Box(-np.inf, np.inf, (math.prod(box.shape),), np.float32)
        specs.append(space_spec(flat, env.action_space(agent), f"{env_id} agent {agent!r}"))
        masked = masked or has_mask or "action_mask" in (infos.get(agent) or {})
    members: dict[SpaceSpec, list[int]] = {}
    for i, s in enumerate(specs):
        members.setdefault(s, []).append(i)
    groups: list[AgentGroup] = []
    for s, idx in members.items():
        name = group_name([agents[i] for i in idx], {g.name for g in groups})
        groups.append(AgentGroup(name, tuple(idx), s))
    concatenated = (sum(math.prod(s.obs_shape) for s in specs),)
    if state_is_observations(env):
        return MultiAgentSpec(agents, tuple(groups), concatenated, False, masked)
    try:
        state_shape = tuple(np.asarray(env.state()).shape)
    except (NotImplementedError, AttributeError):
        return MultiAgentSpec(agents, tuple(groups), concatenated, False, masked)
    return MultiAgentSpec(agents, tuple(groups), state_shape, True, masked)


def state_is_observations(env: Any) -> bool:
    """mpe2's `SimpleEnv.state()` is, by its definition, every agent's observation
    concatenated in `possible_agents` order: the runner then takes it from the
    observations it already has instead of observing every agent again (a tenth of an
    mpe2 step; a test checks that both agree on every mpe2 task)."""
    state = getattr(type(getattr(env, "unwrapped", env)), "state", None)
    return getattr(state, "__qualname__", "") == "SimpleEnv.state" and (
        getattr(state, "__module__", "") or ""
    ).startswith("mpe2.")
