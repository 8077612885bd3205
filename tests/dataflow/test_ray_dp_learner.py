"""dp-learner on a real Ray: PPO with two learner replicas (gloo all-reduce) runs through
the trainer, the replicas stay identical, and algorithms without a data-parallel learner
are refused. (tests/algorithms/test_data_parallel.py proves the numbers: two learners
equal one learner on the whole batch.)"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("ray")

import rlkit.dataflow.ray_executor  # noqa: E402,F401  (registers executor "ray")
from rlkit.algorithms import PPO, SAC  # noqa: E402
from rlkit.errors import ConfigError  # noqa: E402
from rlkit.trainer import Trainer, build, make_config  # noqa: E402


def test_ppo_with_two_data_parallel_learners(ray_local, tmp_path: Path):
    cfg = make_config(PPO, "CartPole", None, {"total_steps": 1024, "actors": 1, "learners": 2,
                                               "executor": "ray", "out": str(tmp_path), "name": "dp"})
    trainer = Trainer(PPO, cfg)
    plan = trainer.built.placement.plan
    assert plan.policy == "dp-learner"  # what --policy auto picks for --learners 2 on ray
    assert [w.name for w in plan.workers] == ["actor", "learner-0", "learner-1"]
    assert "gradients" in {e.name for e in plan.graph.edges}

    assert trainer.run() == 0
    with open(tmp_path / "dp" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(math.isfinite(float(r["loss"])) for r in rows)


def test_learners_stay_identical(ray_local, tmp_path: Path):
    from rlkit.dataflow.executor import Runtime

    cfg = make_config(PPO, "CartPole", None, {"total_steps": 512, "learners": 2, "executor": "ray",
                                               "out": str(tmp_path), "name": "same"})
    built = build(PPO, cfg)
    runtime: Runtime = built.executor.start(built.placement)
    try:
        built.algorithm.start(runtime)
        for _ in range(2):
            built.algorithm.train_step()
        first, second = runtime["learner"].call("get_weights")
        torch.testing.assert_close(first["flat"], second["flat"], rtol=0, atol=0)
    finally:
        runtime.shutdown()


def test_algorithms_without_a_data_parallel_learner_are_refused(ray_local, tmp_path: Path):
    cfg = make_config(SAC, "Pendulum", None, {"learners": 2, "executor": "ray", "out": str(tmp_path)})
    with pytest.raises(ConfigError, match="no data-parallel learner"):
        build(SAC, cfg)
