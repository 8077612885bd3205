"""EnvRunner: the environment side of every actor role.

It owns a vector env, the current (optionally normalized) observations, episode
bookkeeping, and the exact state needed to resume. On-policy and off-policy actors hold
one and differ only in what they do with each step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlkit.envs.normalize import ObsNormalizer
from rlkit.envs.vector import SpaceSpec, get_states, make_vector_env, set_states
from rlkit.envs.workers import WorkerVectorEnv


@dataclass
class EnvStep:
    """One step of all envs. `next_obs` starts the next episode where one ended; the
    last observation of an ended episode is in `final_obs` (rows of `done` only)."""

    next_obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray | None

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated

    def next_obs_with_final(self) -> np.ndarray:
        """`next_obs` with each ended episode's own last observation put back (replay)."""
        if self.final_obs is None:
            return self.next_obs
        out = self.next_obs.copy()
        out[self.done] = self.final_obs
        return out


class EnvRunner:
    def __init__(
        self,
        env_id: str,
        spec: SpaceSpec,
        num_envs: int,
        mode: str,
        seed: int,
        norm_obs: bool = False,
        workers: int = 0,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.spec, self.num_envs = spec, num_envs
        self.envs = make_vector_env(env_id, num_envs, mode, workers, kwargs)
        self.obs_norm = ObsNormalizer(spec.obs_shape) if norm_obs else None
        obs, _ = self.envs.reset(seed=seed)
        self.obs = self.normalize(obs)
        self._pending = np.empty(0)
        self.ep_return = np.zeros(num_envs)
        self.ep_length = np.zeros(num_envs, np.int64)
        self.episodes: dict[str, list[float]] = {"return": [], "length": []}
        if not spec.discrete:
            self.low = np.array(spec.action_low, np.float32)
            self.high = np.array(spec.action_high, np.float32)

    def normalize(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        if self.obs_norm is None:
            return np.asarray(obs, np.float32)
        return self.obs_norm(obs, update)

    @property
    def groups(self) -> list[slice]:
        """Env slices that step independently: one per worker process under
        ``--vector workers`` (so inference for one slice overlaps stepping of another),
        otherwise one slice of all envs."""
        return list(getattr(self.envs, "groups", [slice(0, self.num_envs)]))

    def step_async(self, group: int, actions: np.ndarray) -> None:
        """Start a step of the envs of `group` (continuous actions are clipped to bounds)."""
        if not self.spec.discrete:
            actions = np.clip(actions, self.low, self.high)
        if isinstance(self.envs, WorkerVectorEnv):
            self.envs.step_async(group, actions)
        else:
            self._pending = actions

    def step_wait(self, group: int) -> EnvStep:
        """Finish the step of `group`; the returned arrays cover its envs only."""
        if isinstance(self.envs, WorkerVectorEnv):
            next_obs, reward, term, trunc, info = self.envs.step_wait(group)
        else:
            next_obs, reward, term, trunc, info = self.envs.step(self._pending)
        sl = self.groups[group]
        done = term | trunc
        self.ep_return[sl] += reward
        self.ep_length[sl] += 1
        final = None
        if done.any():
            rows = np.flatnonzero(done)
            for i in rows + (sl.start or 0):
                self.episodes["return"].append(float(self.ep_return[i]))
                self.episodes["length"].append(float(self.ep_length[i]))
                self.ep_return[i] = 0.0
                self.ep_length[i] = 0
            final = self.normalize(np.stack([info["final_obs"][i] for i in rows]), update=False)
        obs = self.normalize(next_obs)
        # a new array, never an in-place update: callers hold zero-copy views of the old one
        self.obs = (
            obs
            if len(self.groups) == 1
            else np.concatenate([self.obs[: sl.start], obs, self.obs[sl.stop :]])
        )
        return EnvStep(obs, np.asarray(reward, np.float32), term, trunc, final)

    def step(self, actions: np.ndarray) -> EnvStep:
        """Step every env with `actions` (all groups, in order)."""
        if len(self.groups) == 1:
            self.step_async(0, actions)
            return self.step_wait(0)
        for g, sl in enumerate(self.groups):
            self.step_async(g, actions[sl])
        parts = [self.step_wait(g) for g in range(len(self.groups))]
        finals = [p.final_obs for p in parts if p.final_obs is not None]
        return EnvStep(
            self.obs.copy(),
            np.concatenate([p.reward for p in parts]),
            np.concatenate([p.terminated for p in parts]),
            np.concatenate([p.truncated for p in parts]),
            np.concatenate(finals) if finals else None,
        )

    def pop_episodes(self) -> dict[str, list[float]]:
        """Returns and lengths of the episodes that ended since the last call."""
        out, self.episodes = self.episodes, {"return": [], "length": []}
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "envs": get_states(self.envs),
            "obs": self.obs.copy(),
            "obs_norm": self.obs_norm.rms.state_dict() if self.obs_norm else None,
            "ep_return": self.ep_return.copy(),
            "ep_length": self.ep_length.copy(),
            "episodes": {k: list(v) for k, v in self.episodes.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_states(self.envs, state["envs"])
        self.obs = state["obs"].copy()
        if self.obs_norm is not None:
            self.obs_norm.rms.load_state_dict(state["obs_norm"])
        self.ep_return, self.ep_length = state["ep_return"].copy(), state["ep_length"].copy()
        self.episodes = {k: list(v) for k, v in state["episodes"].items()}

    def close(self) -> None:
        self.envs.close()
