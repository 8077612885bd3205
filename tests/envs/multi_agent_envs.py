"""Small PettingZoo envs for the tests, named by file path as ``this_file.py:factory``.

`early_exit`: two agents; "quitter" terminates after `quit_at` steps while "stayer" goes
on until `length` (so quitter is absent for the steps in between). `masked`: one agent
whose observation is PettingZoo's Dict of "observation" and "action_mask"; the mask
allows only the actions in `allowed`. `turn_based`: an AEC env that is not
parallelizable (agents take turns).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv

HERE = Path(__file__).resolve()


def spec(factory: str) -> str:
    """The env id of a factory of this file."""
    return f"{HERE}:{factory}"


class EarlyExit(ParallelEnv):
    metadata = {"name": "early_exit"}

    def __init__(self, quit_at: int = 3, length: int = 8) -> None:
        self.possible_agents = ["stayer", "quitter"]
        self.quit_at, self.length = quit_at, length
        self.rng = np.random.default_rng(0)
        self.t = 0

    def observation_space(self, agent: str) -> spaces.Space:
        return spaces.Box(-10, 10, (4,), np.float32)

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(3)

    def _obs(self, agent: str) -> np.ndarray:
        noise = self.rng.normal(size=3).astype(np.float32)
        return np.concatenate([[self.t / self.length], noise]).astype(np.float32)

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        self.t += 1
        rewards = {a: float(actions[a] == 1) for a in self.agents}
        terms = {a: a == "quitter" and self.t >= self.quit_at for a in self.agents}
        truncs = {a: self.t >= self.length for a in self.agents}
        obs = {a: self._obs(a) for a in self.agents}
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        return obs, rewards, terms, truncs, {a: {} for a in obs}


class Masked(ParallelEnv):
    metadata = {"name": "masked"}

    def __init__(self, allowed: tuple[int, ...] = (1, 3), length: int = 10) -> None:
        self.possible_agents = ["solo"]
        self.allowed, self.length = allowed, length
        self.t = 0

    def observation_space(self, agent: str) -> spaces.Space:
        return spaces.Dict(
            {
                "observation": spaces.Box(-1, 1, (2,), np.float32),
                "action_mask": spaces.MultiBinary(5),
            }
        )

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(5)

    def _obs(self) -> dict[str, np.ndarray]:
        mask = np.zeros(5, np.int8)
        mask[list(self.allowed)] = 1
        return {
            "observation": np.array([self.t / self.length, 0.5], np.float32),
            "action_mask": mask,
        }

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict, dict]:
        self.agents = ["solo"]
        self.t = 0
        return {"solo": self._obs()}, {"solo": {}}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if int(actions["solo"]) not in self.allowed:
            raise AssertionError(f"masked action {actions['solo']} taken")
        self.t += 1
        over = self.t >= self.length
        obs = {"solo": self._obs()}
        self.agents = [] if over else ["solo"]
        return obs, {"solo": 1.0}, {"solo": False}, {"solo": over}, {"solo": {}}


class TurnBased(AECEnv):
    metadata = {"name": "turn_based", "is_parallelizable": False}

    def __init__(self) -> None:
        super().__init__()
        self.possible_agents = ["first", "second"]

    def observation_space(self, agent: str) -> spaces.Space:
        return spaces.Box(0, 1, (1,), np.float32)

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(2)


def early_exit(**kwargs: Any) -> EarlyExit:
    return EarlyExit(**kwargs)


def masked(**kwargs: Any) -> Masked:
    return Masked(**kwargs)


def turn_based() -> TurnBased:
    return TurnBased()


class Hostile(ParallelEnv):
    """Two agents that misbehave as `mode` says: "partial_reset" (reset observes only the
    first), "new_agent" (a third agent appears at step 2), "shape" (observations grow at
    step 2), "nan" (a nan observation at step 2), "raises" (the factory raises), "hangs"
    (the factory waits on something that never comes)."""

    metadata = {"name": "hostile"}

    def __init__(self, mode: str = "") -> None:
        if mode == "raises":
            raise RuntimeError("no license server")
        if mode == "hangs":
            threading.Event().wait()
        self.possible_agents = ["a", "b"]
        self.mode, self.t = mode, 0

    def observation_space(self, agent: str) -> spaces.Space:
        return spaces.Box(-10, 10, (3,), np.float32)

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(2)

    def _obs(self) -> dict[str, np.ndarray]:
        size = 5 if self.mode == "shape" and self.t >= 2 else 3
        value = np.nan if self.mode == "nan" and self.t >= 2 else 0.0
        obs = {a: np.full(size, value, np.float32) for a in self.agents}
        if self.mode == "new_agent" and self.t >= 2:
            obs["c"] = np.zeros(3, np.float32)
        return obs

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict, dict]:
        self.agents, self.t = list(self.possible_agents), 0
        obs = self._obs()
        if self.mode == "partial_reset":
            obs.pop("b")
        return obs, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        self.t += 1
        done = {a: self.t >= 8 for a in self.agents}
        obs = self._obs()
        rewards = {a: 0.0 for a in self.agents}
        self.agents = [a for a in self.agents if not done[a]]
        return obs, rewards, done, dict(done), {a: {} for a in obs}


def hostile(mode: str = "") -> Hostile:
    return Hostile(mode)
