"""Short environment names -> current gymnasium ids (Humanoid -> Humanoid-v5)."""

from __future__ import annotations

import difflib

import gymnasium as gym

from rlkit.errors import EnvError

SHORT_NAMES: dict[str, str] = {
    # MuJoCo
    "Humanoid": "Humanoid-v5",
    "HumanoidStandup": "HumanoidStandup-v5",
    "HalfCheetah": "HalfCheetah-v5",
    "Hopper": "Hopper-v5",
    "Walker2d": "Walker2d-v5",
    "Ant": "Ant-v5",
    "Swimmer": "Swimmer-v5",
    "Reacher": "Reacher-v5",
    "Pusher": "Pusher-v5",
    "InvertedPendulum": "InvertedPendulum-v5",
    "InvertedDoublePendulum": "InvertedDoublePendulum-v5",
    # classic control
    "CartPole": "CartPole-v1",
    "Acrobot": "Acrobot-v1",
    "MountainCar": "MountainCar-v0",
    "MountainCarContinuous": "MountainCarContinuous-v0",
    "Pendulum": "Pendulum-v1",
    # Box2D (needs gymnasium[box2d])
    "LunarLander": "LunarLander-v3",
    "LunarLanderContinuous": "LunarLanderContinuous-v3",
    "BipedalWalker": "BipedalWalker-v3",
}
_BY_LOWER = {k.lower(): v for k, v in SHORT_NAMES.items()}


def short_name(env_id: str) -> str:
    """The short name of a gymnasium id, or the id itself (for presets and run names)."""
    for short, full in SHORT_NAMES.items():
        if full == env_id:
            return short
    return env_id


def resolve_env_id(name: str) -> str:
    """A gymnasium id for a short name (any case) or a registered gymnasium id."""
    if name.lower() in _BY_LOWER:
        return _BY_LOWER[name.lower()]
    if name in gym.registry:
        return name
    candidates = list(SHORT_NAMES) + list(gym.registry)
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    close += [c for c in candidates if name.lower() in c.lower() and c not in close][:3]
    hint = "; did you mean " + " or ".join(repr(c) for c in close[:3]) + "?" if close else ""
    raise EnvError(f"unknown env {name!r}{hint} (rlkit list shows the short names)")
