"""Weights between workers: one flat buffer per dtype over a gloo group of the edge's own,
the same numbers as through the object store and as under `local`."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from ray import cloudpickle

from rlkit.algorithms import PPO
from rlkit.dataflow import POLICIES, broadcast
from rlkit.dataflow.policies import PolicyOptions
from rlkit.trainer import Trainer, make_config

# The Ray workers cannot import this test module (pytest imports it by path): send its
# roles by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_pack_and_unpack_keep_every_tensor_and_dtype():
    value = {
        "flat": torch.randn(10),
        "counts": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "bias": torch.randn(3, 1),
    }
    packed = broadcast.pack(value)
    assert packed is not None
    header, flats = packed
    assert [f.dtype for f in flats] == [torch.float32, torch.int64]  # one buffer per dtype
    assert header.nbytes == 13 * 4 + 6 * 8
    out = broadcast.unpack(header, [f.clone() for f in flats])
    assert out.keys() == value.keys()
    assert all(torch.equal(out[k], value[k]) for k in value)
    assert broadcast.pack({"x": 1.0}) is None and broadcast.pack([torch.ones(1)]) is None


def test_plans_choose_a_collective_between_workers_and_references_within_one():
    from rlkit.algorithms.on_policy import OnPolicyConfig

    cfg = make_config(PPO, "CartPole", None, {"actors": 2})
    assert isinstance(cfg, OnPolicyConfig)
    graph = PPO.create(cfg).graph()
    plan = POLICIES.get("multi-actor")().compile(graph, PolicyOptions(actors=2))
    assert plan.transport("weights") == "collective"
    assert plan.transport("rollout") == "object-store"
    local = POLICIES.get("local")().compile(graph, PolicyOptions(actors=2))
    assert local.transport("weights") == "reference"


def metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("time", "sps")} for r in csv.DictReader(f)]


def run(tmp_path: Path, name: str, min_bytes: int | None = None, **overrides: Any) -> Trainer:
    values = {"total_steps": 1024, "actors": 2, "out": str(tmp_path), "name": name}
    trainer = Trainer(PPO, make_config(PPO, "CartPole", None, {**values, **overrides}))
    if min_bytes is not None:
        trainer.built.executor.collective_min_bytes = min_bytes  # type: ignore[attr-defined]
    assert trainer.run() == 0
    return trainer


@pytest.mark.parametrize("policy", ["multi-actor", "dp-learner"])
def test_weights_over_the_collective_give_the_numbers_of_local(ray_local, tmp_path, policy):
    """Every weight push (the first and one per update) goes over the gloo group, also
    beside the data-parallel learners' own process group, and changes no number."""
    learners = 2 if policy == "dp-learner" else 1
    ray = run(tmp_path, "ray", 0, executor="ray", policy=policy, learners=learners)
    runtime: Any = ray.runtime
    pushes = 1 + len(metrics(tmp_path / "ray"))
    policy_net = PPO.make_policy(ray.config, ray.built.algorithm.spec)
    assert runtime.collective_bytes == pushes * 4 * sum(p.numel() for p in policy_net.parameters())
    if learners == 1:  # dp-learner's numbers are compared with one learner elsewhere
        run(tmp_path, "local")
        assert metrics(tmp_path / "ray") == metrics(tmp_path / "local")


def test_small_weights_take_the_object_store_by_default(ray_local, tmp_path):
    ray = run(tmp_path, "ray", None, executor="ray", policy="multi-actor")
    assert ray.runtime.collective_bytes == 0  # type: ignore[union-attr]


class Sender:
    def __init__(self) -> None:
        self.weights = {"flat": torch.arange(4.0)}

    def get_weights(self) -> dict[str, torch.Tensor]:
        return self.weights

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Receiver(Sender):
    def set_weights(self, weights: dict[str, torch.Tensor], version: int) -> None:
        self.weights, self.version = weights, version

    def shares_memory_with_sender(self, sender_ptr: int) -> bool:
        return self.weights["flat"].data_ptr() == sender_ptr


def test_a_broadcast_within_one_colocated_worker_passes_the_tensors_themselves(ray_local):
    """A learner and a generator time-sharing one worker (the hybrid engine): the
    consumer gets the producer's tensors, with no copy and nothing through the driver."""
    from rlkit.dataflow.graph import Fragment, LogicalGraph, Pattern, Resources
    from rlkit.dataflow.ray_executor import RayExecutor
    from rlkit.dataflow.scheduler import place

    g = LogicalGraph("hybrid")
    g.add(Fragment("policy", Sender, resources=Resources("cpu", cpus=0.5), colocate="hybrid"))
    g.add(Fragment("generator", Receiver, resources=Resources("cpu", cpus=0.5), colocate="hybrid"))
    g.connect("weights", "policy", "generator", Pattern.BROADCAST, "get_weights", "set_weights")
    plan = POLICIES.get("colocate")().compile(g, PolicyOptions())
    assert plan.transport("weights") == "reference"
    executor = RayExecutor()
    runtime = executor.start(place(plan, executor.cluster()))
    try:
        delivery = runtime.carry(g.edge("weights").bind(7))
        assert delivery.data is None  # it never reached the driver
        ptr = runtime.groups["policy"].one(lambda roles: roles["policy"].weights["flat"].data_ptr())
        assert runtime.groups["generator"].one(
            lambda roles: (
                roles["generator"].shares_memory_with_sender(ptr)
                and roles["generator"].version == 7
            )
        )
    finally:
        runtime.shutdown()
