"""A wrapper that lets an environment's exact state be saved and restored.

Resume must continue an episode exactly where it stopped. MuJoCo envs pickle as their
constructor arguments only, so their whole `MjData` is copied (the integration state
alone is not enough: rewards read derived quantities, such as body positions, that lag
one step behind qpos), together with the env's RNG and each wrapper's own counters
(TimeLimit's elapsed steps, ...). Other envs pickle whole.
"""

from __future__ import annotations

import pickle
from typing import Any

import gymnasium as gym
import numpy as np

_SCALARS = (int, float, bool, str, type(None), np.ndarray, np.generic)


def _layers(env: gym.Env) -> list[gym.Env]:
    out: list[gym.Env] = []
    while isinstance(env, gym.Wrapper):
        out.append(env)
        env = env.env
    return out


class Checkpointable(gym.Wrapper):
    """Outermost wrapper; `index` is this env's position in its vector env."""

    def __init__(self, env: gym.Env, index: int = 0) -> None:
        super().__init__(env)
        self.index = index

    def get_state(self) -> dict[str, Any]:
        inner: Any = self.env.unwrapped
        if _is_mujoco(inner):
            wrappers = [
                {k: v for k, v in vars(w).items() if k != "env" and isinstance(v, _SCALARS)}
                for w in _layers(self.env)
            ]
            return {
                "kind": "mujoco",
                "data": pickle.dumps(inner.data),
                "rng": inner.np_random.bit_generator.state,
                "wrappers": wrappers,
            }
        return {"kind": "pickle", "env": pickle.dumps(self.env)}

    def set_state(self, states: list[dict[str, Any]]) -> None:
        """Restore `states[self.index]` (a vector env broadcasts the whole list)."""
        state = states[self.index]
        if state["kind"] == "pickle":
            self.env = pickle.loads(state["env"])
            return
        import mujoco

        inner: Any = self.env.unwrapped
        mujoco.mj_copyData(inner.data, inner.model, pickle.loads(state["data"]))
        inner.np_random.bit_generator.state = state["rng"]
        for layer, saved in zip(_layers(self.env), state["wrappers"], strict=True):
            vars(layer).update(saved)


def _is_mujoco(env: Any) -> bool:
    return hasattr(env, "model") and hasattr(env, "data") and hasattr(env, "frame_skip")
