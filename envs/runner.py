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
    ) -> None:
        self.spec, self.num_envs = spec, num_envs
        self.envs = make_vector_env(env_id, num_envs, mode, workers)
        self.obs_norm = ObsNormalizer(spec.obs_shape) if norm_obs else None
        obs, _ = self.envs.reset(seed=seed)
        self.obs = self.normalize(obs)
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

    def step(self, actions: np.ndarray) -> EnvStep:
        """Step with `actions` (continuous ones are clipped to the action bounds)."""
        if not self.spec.discrete:
            actions = np.clip(actions, self.low, self.high)
        next_obs, reward, term, trunc, info = self.envs.step(actions)
        done = term | trunc
        self.ep_return += reward
        self.ep_length += 1
        final = None
        if done.any():
            for i in np.flatnonzero(done):
                self.episodes["return"].append(float(self.ep_return[i]))
                self.episodes["length"].append(float(self.ep_length[i]))
            self.ep_return[done] = 0.0
            self.ep_length[done] = 0
            final = self.normalize(
                np.stack([info["final_obs"][i] for i in np.flatnonzero(done)]), update=False
            )
        self.obs = self.normalize(next_obs)
        return EnvStep(self.obs, np.asarray(reward, np.float32), term, trunc, final)

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
