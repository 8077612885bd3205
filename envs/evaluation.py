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

It sits in the envs layer, below the algorithms, so that it imports none of them: the
trainer and `rlkit eval` (the top) call it with an algorithm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rlkit.batch import Batch
from rlkit.envs.families import EnvFamily, Episodes, Playback, parse_env_kwargs, select

Policy = Callable[[np.ndarray], np.ndarray]
"""A deterministic batched policy ``obs [B, ...] -> actions [B, ...]``."""
Judge = Callable[[Batch], dict[str, float]]
"""The ``eval_*`` metrics of a batch of evaluation data."""


@runtime_checkable
class InEnv(Protocol):
    """An algorithm in an env during its run (`rlkit.algorithms.base.EnvAlgorithm`)."""

    config: Any
    env_id: str
    family: EnvFamily

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
    kwargs = parse_env_kwargs(algorithm.config.env_kwargs)
    played = algorithm.family.evaluate(
        algorithm.env_id, kwargs, algorithm.current_policy(), Playback(episodes, seed)
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
    family = select(algo_cls.name, algo_cls.families, config.env)
    env_id = family.resolve(config.env)
    kwargs = parse_env_kwargs(config.env_kwargs)
    policy = algo_cls.eval_policy(state, config, family.probe(env_id, kwargs))
    return family.evaluate(env_id, kwargs, policy, play)


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
