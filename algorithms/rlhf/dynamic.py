"""What the RL stage's driver hands its learners, and DAPO's dynamic sampling (Yu et al.
2025): a driver-side policy on the edges into the learner, not a different algorithm.

A group whose samples all got the same reward (all right, all wrong) has zero advantage
everywhere: it teaches the policy nothing and only dilutes the step. With
``--dynamic-sampling`` the driver drops such groups from what it joins into the learner
and samples more prompts, round after round (at most ``--sampling-rounds``), until the
step holds ``--prompts-per-step`` informative groups; what it drew is logged
(``groups_drawn``, ``sampling_rounds``, ``drawn_zero_variance_groups``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from rlkit import batch as B
from rlkit.batch import Batch
from rlkit.dataflow.carry import Delivery, merge, unpack
from rlkit.dataflow.graph import Edge


class Score(NamedTuple):
    """A scorer's delivery of a step's responses, and the edge that joins it into the
    learner's update (`RLStage.score` returns them by the scorer's name)."""

    into: Edge[Any, Any]
    delivery: Delivery[Any]


class Drawn(NamedTuple):
    """A step's samples as the learners will take them: the responses, each scorer's
    deliveries by name, how many groups they hold, and what drawing them logs."""

    responses: Delivery[Any]
    scored: dict[str, Score]
    groups: int
    metrics: dict[str, float]


Round = Callable[[], tuple[Delivery[Any], dict[str, Score]]]
"""One round of prompts, sampled and scored (`RLStage.sample_round`)."""


def varied(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[groups]`` whether each group's rewards differ."""
    r = rewards.view(-1, group_size)
    return r.max(1).values > r.min(1).values


def data(delivery: Delivery[Any]) -> Batch:
    """What the consumers of `delivery` returned, merged over replicas."""
    return merge(unpack(delivery.results)[0])


def dynamic_sampling(sample_round: Round, config: Any, multiple: int) -> Drawn:
    """Rounds of `sample_round` until ``prompts_per_step`` informative groups are in (or
    ``sampling_rounds`` are spent), trimmed to a multiple of `multiple` groups (each
    learner takes whole groups). A step with none hands back its last round and 0 groups:
    the driver then trains on nothing."""
    g, want = config.group_size, config.prompts_per_step
    kept: dict[str, list[Batch]] = {}
    have = drawn = zero = rounds = 0
    while rounds < config.sampling_rounds and have < want:
        responses, scored = sample_round()
        rounds += 1
        keep = varied(data(scored["reward"].delivery)["reward"], g)
        drawn, zero, have = drawn + len(keep), zero + int((~keep).sum()), have + int(keep.sum())
        rows = torch.arange(len(keep) * g).view(-1, g)[keep].reshape(-1)
        parts = {"responses": responses, **{k: s.delivery for k, s in scored.items()}}
        for name, delivery in parts.items():
            kept.setdefault(name, []).append(B.index(data(delivery), rows))
    groups = min(have, want) // multiple * multiple
    metrics = {
        "groups_drawn": float(drawn),
        "sampling_rounds": float(rounds),
        "drawn_zero_variance_groups": zero / max(drawn, 1),
    }
    if not groups:
        return Drawn(responses, scored, 0, metrics)

    def first(name: str, delivery: Delivery[Any]) -> Delivery[Any]:
        whole = B.cat(kept[name]) if len(kept[name]) > 1 else kept[name][0]
        return Delivery(delivery.edge, None, [], [B.index(whole, slice(0, groups * g))])

    return Drawn(
        first("responses", responses),
        {k: Score(s.into, first(k, s.delivery)) for k, s in scored.items()},
        groups,
        metrics,
    )
