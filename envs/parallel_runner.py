"""The env side of a multi-agent actor: N copies of a PettingZoo parallel env as arrays.

Per-agent arrays are indexed by `MultiAgentSpec.agents` (``[..., A, ...]``). Agents may
end at different times: an agent that terminated or was truncated leaves the env's
``agents`` and is not alive on the following steps (`alive` False: it takes no action,
gets no reward, and its row of `obs` is zeros) until every agent is done, when the env is
reset and the episode counted. Episodes are counted with their team return (the sum over
agents of their returns, the env's native reward), length, each agent's return
(``return_<agent>``) and, where it follows, the on-policy repository's convention
(``return_onpolicy``, see `parallel_envs.derived_return`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlkit.envs.mpe_native import NativeMPE, native_core
from rlkit.envs.multi_agent_spec import MultiAgentSpec
from rlkit.envs.parallel_envs import derived_return, make_parallel_env
from rlkit.envs.parallel_state import restore, snapshot
from rlkit.errors import EnvError


@dataclass
class AgentsStep:
    """One step of every env copy (``[E, A]`` unless said otherwise)."""

    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    acted: np.ndarray
    """The agent was alive and acted this step."""
    final_obs: np.ndarray | None
    """``[E, A, obs_dim]``: the last observation of agents that ended this step (rows of
    ``terminated | truncated``; None when none ended)."""
    final_state: np.ndarray | None
    """``[E, *state_shape]``: the state right after this step, before a reset."""

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class AgentEnv:
    """One parallel env, its agents' observations written into the given array rows.

    An mpe2 env is stepped natively (`mpe_native`: its world once per step for all agents,
    bit-identical to its parallel wrapper) unless `native` is off; every other env, and
    every reset, goes through PettingZoo's parallel API."""

    def __init__(
        self,
        env: Any,
        spec: MultiAgentSpec,
        obs: np.ndarray,
        state: np.ndarray,
        alive: np.ndarray,
        masks: np.ndarray | None,
        native: bool = True,
    ) -> None:
        self.env, self.spec = env, spec
        self.name = str((getattr(env, "metadata", None) or {}).get("name", type(env).__name__))
        self.obs, self.state, self.alive, self.masks = obs, state, alive, masks
        self.index = {a: i for i, a in enumerate(spec.agents)}
        self.widths = spec.obs_dims()
        groups = spec.group_of()
        self.action_specs = [spec.groups[groups[i]].spec for i in range(len(spec.agents))]
        raw = native_core(env) if native and masks is None else None
        self.native = NativeMPE(raw, spec.agents) if raw is not None else None
        self.action_counts = np.array([s.action_dim for s in self.action_specs])

    def reset(self, seed: int | None = None) -> None:
        obs, infos = self.env.reset(seed=seed)
        missing = [a for a in self.env.agents if a not in obs]
        if missing:
            raise EnvError(
                f"{self.name}: reset returned observations for {len(obs)} of its "
                f"{len(self.env.agents)} agents (none for {', '.join(map(str, missing[:3]))}); "
                "a parallel env's reset must observe every agent in env.agents"
            )
        self.obs[:] = 0
        if self.masks is not None:
            self.masks[:] = True
        self._read(obs, infos)
        self.alive[:] = False
        self.alive[[self.index[a] for a in self.env.agents]] = True
        self._read_state()

    def _read(self, obs: dict[str, Any], infos: dict[str, Any]) -> None:
        for agent, o in obs.items():
            i = self._agent(agent)
            if isinstance(o, dict):
                if self.masks is not None and "action_mask" in o:
                    self.masks[i, : len(o["action_mask"])] = np.asarray(o["action_mask"], bool)
                o = o["observation"]
            self.obs[i, : self.widths[i]] = self._observation(agent, o, self.widths[i])
            mask = (infos.get(agent) or {}).get("action_mask")
            if self.masks is not None and mask is not None:
                self.masks[i, : len(mask)] = np.asarray(mask, bool)

    def _agent(self, agent: str) -> int:
        """The row of `agent`; EnvError for one the env did not declare up front."""
        if agent not in self.index:
            raise EnvError(
                f"{self.name}: agent {agent!r} appeared mid-episode, not among the "
                f"possible_agents {list(self.index)}; declare every agent in possible_agents"
            )
        return self.index[agent]

    def _observation(self, agent: str, o: Any, width: int) -> np.ndarray:
        """`agent`'s observation as a flat float32 row; EnvError for one of another size
        than its observation space, or not finite (a nan would reach the policy)."""
        row = np.asarray(o, np.float32).reshape(-1)
        if row.size != width:
            raise EnvError(
                f"{self.name}: agent {agent!r} observed {row.size} values, its "
                f"observation space has {width}; observations must keep their space's shape"
            )
        if not np.isfinite(row).all():
            raise EnvError(
                f"{self.name}: agent {agent!r} observed a non-finite value "
                f"({row[~np.isfinite(row)][0]}); fix the env, nan and inf cannot be learned from"
            )
        return row

    def _read_state(self) -> None:
        if self.spec.state_from_env:
            self.state[:] = np.asarray(self.env.state(), np.float32).reshape(self.state.shape)
        else:
            self.state[:] = np.concatenate([self.obs[i, :w] for i, w in enumerate(self.widths)])

    def _env_action(self, i: int, action: np.ndarray) -> Any:
        spec = self.action_specs[i]
        if spec.discrete:
            return int(action)
        return np.clip(action[: spec.action_dim], spec.action_low, spec.action_high)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
        """Step with `actions` ``[A, ...]`` (those of live agents are used). Returns the
        rewards, terminated, truncated, acted ``[A]`` and whether the episode is over."""
        if self.native is not None:
            return self._step_native(actions)
        a_count = len(self.spec.agents)
        acted = self.alive.copy()
        live = list(self.env.agents)
        obs, rewards, terms, truncs, infos = self.env.step(
            {a: self._env_action(self.index[a], actions[self.index[a]]) for a in live}
        )
        reward = np.zeros(a_count, np.float32)
        terminated = np.zeros(a_count, bool)
        truncated = np.zeros(a_count, bool)
        for agent in live:
            i = self.index[agent]
            reward[i] = rewards.get(agent, 0.0)
            if not np.isfinite(reward[i]):
                raise EnvError(
                    f"{self.name}: agent {agent!r} got a reward of {reward[i]}; fix the env, "
                    "nan and inf cannot be learned from"
                )
            terminated[i] = bool(terms.get(agent, False))
            truncated[i] = bool(truncs.get(agent, False))
        self._read(obs, infos)
        self._read_state()
        self.alive[:] = False
        self.alive[[self.index[a] for a in self.env.agents]] = True
        return reward, terminated, truncated, acted, not self.env.agents

    def _step_native(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
        """`step` for an mpe2 env, whose agents are all alive until they all end."""
        assert self.native is not None
        if self.spec.discrete:
            if ((actions < 0) | (actions >= self.action_counts)).any():  # as mpe2's wrapper
                raise EnvError(
                    f"actions {actions.tolist()} outside the agents' action counts "
                    f"{self.action_counts.tolist()}"
                )
            env_actions = actions.tolist()
        else:
            env_actions = [self._env_action(i, a) for i, a in enumerate(actions)]
        rewards, terminated, truncated = self.native.step(env_actions)
        for i, o in enumerate(self.native.observations()):
            self.obs[i, : self.widths[i]] = o.reshape(-1)
        self._read_state()
        acted = self.alive.copy()
        over = terminated or truncated
        if over:
            self.alive[:] = False
        a_count = len(acted)
        return (
            np.array(rewards, np.float32),
            np.full(a_count, terminated),
            np.full(a_count, truncated),
            acted,
            over,
        )

    def clear_dead(self) -> None:
        """Zero the observations of agents that are not in the env (after a step's
        final observations were taken), and the state made of them."""
        if not self.alive.all():
            self.obs[~self.alive] = 0
            if not self.spec.state_from_env:
                self._read_state()


class ParallelEnvRunner:
    """`num_envs` copies of a parallel env, stepped in turn in this process."""

    def __init__(
        self,
        env_id: str,
        spec: MultiAgentSpec,
        num_envs: int,
        seed: int,
        kwargs: dict[str, Any] | None = None,
        native: bool = True,
    ) -> None:
        kwargs = kwargs or {}
        self.spec, self.num_envs = spec, num_envs
        agents = len(spec.agents)
        self.obs = np.zeros((num_envs, agents, spec.obs_dim), np.float32)
        self.state = np.zeros((num_envs, *spec.state_shape), np.float32)
        self.alive = np.zeros((num_envs, agents), bool)
        self.masks = (
            np.ones((num_envs, agents, spec.action_dim), bool) if spec.action_masks else None
        )
        self.envs = [
            AgentEnv(
                make_parallel_env(env_id, kwargs),
                spec,
                self.obs[e],
                self.state[e],
                self.alive[e],
                self.masks[e] if self.masks is not None else None,
                native,
            )
            for e in range(num_envs)
        ]
        for e, env in enumerate(self.envs):
            env.reset(seed=seed + e)
        self.ep_return = np.zeros((num_envs, agents))
        self.ep_length = np.zeros(num_envs, np.int64)
        self.derived = derived_return(env_id, kwargs)
        self.episodes: dict[str, list[float]] = self._no_episodes()

    def _no_episodes(self) -> dict[str, list[float]]:
        keys = ["return", "length", *(f"return_{a}" for a in self.spec.agents)]
        return {k: [] for k in keys + (["return_onpolicy"] if self.derived else [])}

    def step(self, actions: np.ndarray) -> AgentsStep:
        """Step every env with `actions` ``[E, A]`` (discrete) or ``[E, A, action_dim]``;
        an env whose agents are all done is reset (its next observations are the new
        episode's, its last ones in `final_obs`)."""
        n, agents = self.num_envs, len(self.spec.agents)
        reward = np.empty((n, agents), np.float32)
        terminated = np.empty((n, agents), bool)
        truncated = np.empty((n, agents), bool)
        acted = np.empty((n, agents), bool)
        over = np.empty(n, bool)
        for e, env in enumerate(self.envs):
            reward[e], terminated[e], truncated[e], acted[e], over[e] = env.step(actions[e])
        self.ep_return += reward
        self.ep_length += 1
        ended = (terminated | truncated).any(1)
        final_obs: np.ndarray | None = None
        final_state: np.ndarray | None = None
        if ended.any():
            final_obs = np.zeros_like(self.obs)
            final_state = np.zeros_like(self.state)
            final_obs[ended] = self.obs[ended]
            final_state[ended] = self.state[ended]
        for e in np.flatnonzero(~self.alive.all(1)).tolist():
            self.envs[e].clear_dead()
        for e in np.flatnonzero(over).tolist():
            self._count_episode(e)
            self.envs[e].reset()
        return AgentsStep(reward, terminated, truncated, acted, final_obs, final_state)

    def _count_episode(self, e: int) -> None:
        team, length = float(self.ep_return[e].sum()), int(self.ep_length[e])
        self.episodes["return"].append(team)
        self.episodes["length"].append(float(length))
        for i, agent in enumerate(self.spec.agents):
            self.episodes[f"return_{agent}"].append(float(self.ep_return[e, i]))
        if self.derived is not None:
            self.episodes["return_onpolicy"].append(
                self.derived(team, length, len(self.spec.agents))
            )
        self.ep_return[e] = 0.0
        self.ep_length[e] = 0

    def pop_episodes(self) -> dict[str, list[float]]:
        """The episodes that ended since the last call (team "return", "length", ...)."""
        out, self.episodes = self.episodes, self._no_episodes()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "envs": [snapshot(env.env) for env in self.envs],
            "obs": self.obs.copy(),
            "state": self.state.copy(),
            "alive": self.alive.copy(),
            "masks": None if self.masks is None else self.masks.copy(),
            "ep_return": self.ep_return.copy(),
            "ep_length": self.ep_length.copy(),
            "episodes": {k: list(v) for k, v in self.episodes.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["envs"]) != self.num_envs:
            raise EnvError(
                f"checkpoint holds {len(state['envs'])} env states; this run has {self.num_envs} envs"
            )
        for env, blob in zip(self.envs, state["envs"], strict=True):
            restore(env.env, blob)
        # in place: every AgentEnv writes into rows of these arrays
        np.copyto(self.obs, state["obs"])
        np.copyto(self.state, state["state"])
        np.copyto(self.alive, state["alive"])
        if self.masks is not None:
            np.copyto(self.masks, state["masks"])
        self.ep_return, self.ep_length = state["ep_return"].copy(), state["ep_length"].copy()
        self.episodes = {k: list(v) for k, v in state["episodes"].items()}

    def close(self) -> None:
        for env in self.envs:
            env.env.close()
