"""The evaluation service: one path for periodic evaluation (`--eval-every`, during a run)
and for `rlkit eval` (a run's checkpoint, outside the run).

What is evaluated is a policy in its environment: whole deterministic episodes in an env
family's evaluation loop (`EnvFamily.evaluate`), or, for an algorithm on data, its
evaluation split, the text environment's held-out rows. An algorithm supplies only what
is its own: its deterministic policy for an env (`eval_policy` from a checkpoint's state,
`current_policy()` during a run), or, on data (`OnData`), its splits as batches and what
turns a batch into ``eval_*`` metrics (a data stage's held-out sums, an RL stage's greedy
generator and scorer), by the running plan or by roles restored from a checkpoint. The
rest (the env made from the config, the split chosen, the metrics named) is here, once.

A framework service, it sits in the floor (ARCHITECTURE.md): it imports no env library
and no algorithm. An algorithm in an env hands it its `Env` (the env family's record:
id, spaces, family, kwargs), whose family plays the episodes; the trainer and `rlkit eval`
(the top) call it with an algorithm. The types an evaluation plays with (`Playback`,
`Episodes`, `EpisodeDone`, `Policy`) are here too, and every env family takes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rlkit.batch import Batch

Policy = Callable[[Any], Any]
"""A deterministic batched policy, as `Algorithm.eval_policy` returns it."""

EpisodeDone = Callable[[int, float, int], None]
"""Told of each evaluation episode once it ended: its index, return and length (progress
for `rlkit eval`, whose episodes, rendered for a video, may take minutes)."""


@dataclass
class Episodes:
    """What an evaluation played: one entry per episode, plus the family's own means
    (e.g. per-agent returns of a multi-agent env), logged as ``eval_<key>``."""

    returns: list[float]
    lengths: list[int]
    extra: dict[str, float] = field(default_factory=dict)
    video: Path | None = None


@dataclass(frozen=True)
class Playback:
    """How an evaluation plays: `episodes` whole episodes (reset seeds `seed`, seed+1,
    ...), the first recorded (up to `video_length` frames) into `video_dir` when given,
    `on_episode` told of each one as it ends."""

    episodes: int
    seed: int
    video_dir: Path | None = None
    video_length: int = 500
    on_episode: EpisodeDone | None = None


Judge = Callable[[Batch], dict[str, float]]
"""The ``eval_*`` metrics of a batch of evaluation data."""


class Family(Protocol):
    """An env family's evaluation loop (`rlkit.envs.families.EnvFamily.evaluate`)."""

    def evaluate(
        self, env_id: str, kwargs: dict[str, Any], policy: Any, play: Playback
    ) -> Episodes: ...


class EnvRecord(Protocol):
    """What an env family gives an algorithm (`rlkit.envs.families.Env`)."""

    @property
    def id(self) -> str: ...
    @property
    def spec(self) -> Any: ...
    @property
    def family(self) -> Family: ...
    @property
    def kwargs(self) -> dict[str, Any]: ...


@runtime_checkable
class InEnv(Protocol):
    """An algorithm in an env during its run (`rlkit.algorithms.base.EnvAlgorithm`)."""

    env: Any

    def current_policy(self) -> Policy: ...


@runtime_checkable
class OnData(Protocol):
    """What an algorithm that trains on data supplies to be evaluated (the LLM stages)."""

    def eval_batch(self, split: str) -> Batch | None:
        """The whole ``held_out`` or ``train`` split as one batch (None: no such split)."""
        ...

    def judge(self, state: dict[str, Any] | None) -> Judge:
        """What makes the ``eval_*`` metrics of a batch: the running plan's roles (`state`
        None), or roles restored from a checkpoint's `state` (outside a run)."""
        ...


def during_run(algorithm: object, episodes: int, seed: int) -> dict[str, float]:
    """Periodic evaluation: whole episodes of the current deterministic policy as
    ``eval_return``, ``eval_return_min`` and the family's own ``eval_*`` means; on data,
    the metrics of the held-out split (nothing when the run holds nothing out)."""
    if isinstance(algorithm, OnData):
        return on_data(algorithm, None)
    if not isinstance(algorithm, InEnv):
        return {}
    env: EnvRecord = algorithm.env
    played = env.family.evaluate(
        env.id, env.kwargs, algorithm.current_policy(), Playback(episodes, seed)
    )
    return {
        "eval_return": float(np.mean(played.returns)),
        "eval_return_min": float(np.min(played.returns)),
        **{f"eval_{k}": v for k, v in played.extra.items()},
    }


def of_checkpoint(
    algo_cls: Any,
    state: dict[str, Any],
    config: Any,
    play: Playback,
) -> Episodes:
    """`rlkit eval`: deterministic episodes of a checkpoint's policy (`state`, as
    `Algorithm.state_dict` laid it out) in the env of the run's `config`, as `play` says. An
    algorithm on data plays none: its metrics are in `Episodes.extra`, of the held-out
    split (``eval_*``), or of the training split (``train_*``) when the run holds nothing
    out. `algo_cls` is the run's algorithm class (`rlkit.algorithms.base.Algorithm`)."""
    if issubclass(algo_cls, OnData):
        return Episodes([], [], on_data(algo_cls.create(config), state))
    env: EnvRecord = algo_cls.env_of(config)  # `EnvAlgorithm.env_of`: the family's Env
    policy = algo_cls.eval_policy(state, config, env.spec)
    return env.family.evaluate(env.id, env.kwargs, policy, play)


def on_data(algorithm: OnData, state: dict[str, Any] | None) -> dict[str, float]:
    """The metrics of the held-out split; outside a run (`state` given) those of the
    training split, named ``train_*``, when there is none."""
    judge = algorithm.judge(state)
    batch, prefix = algorithm.eval_batch("held_out"), "eval_"
    if batch is None and state is not None:
        batch, prefix = algorithm.eval_batch("train"), "train_"
    if batch is None:
        return {}
    return {prefix + k.removeprefix("eval_"): v for k, v in judge(batch).items()}
