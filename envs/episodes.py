"""The gymnasium family's evaluation loop: whole episodes with a deterministic policy.

Used by `rlkit eval` and by periodic evaluation during training (`--eval-every`).
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np


def run_episodes(
    env: gym.Env,
    act: Callable[[np.ndarray], np.ndarray],
    episodes: int,
    seed: int,
    on_episode: Callable[[int, float, int], None] | None = None,
) -> tuple[list[float], list[int]]:
    """Play `episodes` episodes (reset seeds seed, seed+1, ...); their returns and lengths.
    `on_episode(index, return, length)` is called as each one ends."""
    returns, lengths = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, term, trunc, _ = env.step(act(np.asarray(obs)[None])[0])
            total += float(reward)
            length += 1
            done = bool(term or trunc)
        returns.append(total)
        lengths.append(length)
        if on_episode is not None:
            on_episode(i, total, length)
    return returns, lengths
