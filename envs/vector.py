"""Vector environments (gymnasium sync or async with shared memory) and their spaces.

Vector envs use gymnasium's SAME_STEP autoreset: when an episode ends, the returned
observation is already the next episode's first, and the last one is in
``info["final_obs"]``, which is what bootstrapping on truncation needs.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from rlkit.envs.checkpointable import Checkpointable
from rlkit.envs.registry import resolve_env_id
from rlkit.envs.workers import WorkerVectorEnv
from rlkit.errors import EnvError

VectorEnv = SyncVectorEnv | AsyncVectorEnv | WorkerVectorEnv


@dataclass(frozen=True)
class SpaceSpec:
    """What networks need to know about an env's spaces."""

    obs_shape: tuple[int, ...]
    discrete: bool
    action_dim: int
    """Number of actions (discrete) or action vector size (continuous)."""
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()


def space_spec(obs_space: gym.Space, action_space: gym.Space, env_id: str = "") -> SpaceSpec:
    if not isinstance(obs_space, gym.spaces.Box):
        raise EnvError(
            f"{env_id}: observation space {obs_space} is not a Box; rlkit needs array observations"
        )
    if isinstance(action_space, gym.spaces.Discrete):
        return SpaceSpec(tuple(obs_space.shape), True, int(action_space.n))
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return SpaceSpec(
            tuple(obs_space.shape),
            False,
            int(action_space.shape[0]),
            tuple(float(x) for x in action_space.low),
            tuple(float(x) for x in action_space.high),
        )
    raise EnvError(f"{env_id}: action space {action_space} is neither Discrete nor a 1-d Box")


def make_env(env_id: str, index: int = 0, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """One environment, wrapped so its exact state can be checkpointed."""
    try:
        env = gym.make(env_id, render_mode=render_mode, **kwargs)
    except gym.error.DependencyNotInstalled as e:
        raise EnvError(f"{env_id} needs an extra package: {e}") from None
    except gym.error.Error as e:
        raise EnvError(f"cannot make {env_id}: {e}") from None
    except TypeError as e:  # a keyword argument the env's constructor does not take
        if not kwargs:
            raise
        given = ",".join(f"{k}={v}" for k, v in kwargs.items())
        raise EnvError(f"--env-kwargs {given}: {env_id} refuses them ({e})") from None
    except ModuleNotFoundError as e:  # e.g. phys2d/* and tabular/* ids import jax
        package = (e.name or str(e)).split(".")[0]
        raise EnvError(
            f"{env_id} needs the package {package!r}, which is not installed: "
            f"pip install {package} (or choose another env)"
        ) from None
    except ImportError as e:  # ids gymnasium keeps registered but cannot make (mujoco-py, shimmy)
        raise EnvError(f"{env_id} is not supported here: {' '.join(str(e).split())}") from None
    return Checkpointable(env, index)


def probe_spec(env: str) -> tuple[str, SpaceSpec]:
    """Resolve a short name and read the env's spaces (makes and closes one env)."""
    env_id = resolve_env_id(env)
    probe = make_env(env_id)
    try:
        return env_id, space_spec(probe.observation_space, probe.action_space, env_id)
    finally:
        probe.close()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Env worker processes inherit SIG_IGN: Ctrl-C reaches the trainer only, which saves
    a checkpoint and then closes the workers itself."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class LeanSyncVectorEnv(SyncVectorEnv):
    """gymnasium's SyncVectorEnv (SAME_STEP autoreset) with a leaner `step`: the per-env
    info dicts are not merged into batched arrays (a Humanoid step has a dozen info keys,
    which gymnasium merges one env at a time: PPO's Humanoid collection went from 0.57 to
    0.51 CPU s per 2,048 steps without it).
    `info` holds only what rlkit reads: ``final_obs`` (an object array, entries for the
    envs that ended), as gymnasium gives it."""

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        n = self.num_envs
        obs: list[Any] = []
        reward = np.zeros(n)
        terminated, truncated = np.zeros(n, np.bool_), np.zeros(n, np.bool_)
        final: np.ndarray | None = None
        for i, env in enumerate(self.envs):
            o, reward[i], terminated[i], truncated[i], _ = env.step(actions[i])
            if terminated[i] or truncated[i]:
                if final is None:
                    final = np.full(n, None, dtype=object)
                final[i] = o
                o, _ = env.reset()
            obs.append(o)
        info = {} if final is None else {"final_obs": final}
        batch = np.stack(obs).astype(self.single_observation_space.dtype, copy=False)
        return batch, reward, terminated, truncated, info


def make_vector_env(
    env_id: str,
    num_envs: int,
    mode: str = "sync",
    workers: int = 0,
    kwargs: dict[str, Any] | None = None,
) -> VectorEnv:
    """`num_envs` copies of `env_id` (made with `kwargs`). Modes: "sync" (gymnasium, this
    process), "async" (gymnasium, one subprocess per env), "workers" (rlkit: `workers`
    processes, default one per core, each stepping a slice of the envs in shared memory)."""
    fns = [partial(make_env, env_id, i, **(kwargs or {})) for i in range(num_envs)]
    if mode == "workers":
        return WorkerVectorEnv(fns, workers or os.cpu_count() or 1)
    if mode == "sync":
        return LeanSyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    if mode == "async":
        with _sigint_ignored():
            return AsyncVectorEnv(
                fns, shared_memory=True, autoreset_mode=AutoresetMode.SAME_STEP, context="fork"
            )
    raise EnvError(f"vector mode {mode!r} is not sync, async or workers")


def get_states(vec: VectorEnv) -> list[dict[str, Any]]:
    return list(vec.call("get_state"))


def set_states(vec: VectorEnv, states: list[dict[str, Any]]) -> None:
    if len(states) != vec.num_envs:
        raise EnvError(
            f"checkpoint holds {len(states)} env states; this run has {vec.num_envs} envs"
        )
    vec.call("set_state", states)
