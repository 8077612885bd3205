"""dp-learner on a real Ray: PPO with two learner replicas (gloo all-reduce) runs through
the trainer and the replicas stay identical; DQN and SAC with two learners, each with a
replay shard in its process. (tests/algorithms/test_data_parallel.py proves the numbers: two learners
equal one learner on the whole batch.)"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("ray")

import rlkit.dataflow.ray_executor  # noqa: E402,F401  (registers executor "ray")
from rlkit.algorithms import DQN, PPO, SAC  # noqa: E402
from rlkit.errors import ConfigError  # noqa: E402
from rlkit.roles import Buffer, Learner  # noqa: E402
from rlkit.trainer import Trainer, build, make_config  # noqa: E402


def test_ppo_with_two_data_parallel_learners(ray_local, tmp_path: Path):
    cfg = make_config(
        PPO,
        "CartPole",
        None,
        {
            "total_steps": 1024,
            "actors": 1,
            "learners": 2,
            "executor": "ray",
            "out": str(tmp_path),
            "name": "dp",
        },
    )
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

    cfg = make_config(
        PPO,
        "CartPole",
        None,
        {
            "total_steps": 512,
            "learners": 2,
            "executor": "ray",
            "out": str(tmp_path),
            "name": "same",
        },
    )
    built = build(PPO, cfg)
    runtime: Runtime = built.executor.start(built.placement)
    try:
        built.algorithm.begin(runtime)
        for _ in range(2):
            built.algorithm.train_step()
        first, second = runtime.group("learner", Learner).call(Learner.get_weights)
        torch.testing.assert_close(first["flat"], second["flat"], rtol=0, atol=0)
    finally:
        runtime.shutdown()


def test_dqn_with_two_learners_on_replay_shards(ray_local, tmp_path: Path):
    """Off-policy dp-learner: each learner has a replay shard beside it (in its process)
    holding half the env streams and samples half the batch; the gradients are averaged,
    so the learners stay identical."""
    cfg = make_config(
        DQN,
        "CartPole",
        None,
        {
            "total_steps": 1024,
            "learners": 2,
            "num_envs": 4,
            "train_freq": 16,
            "learning_starts": 256,
            "gradient_steps": 4,
            "executor": "ray",
            "out": str(tmp_path),
            "name": "dqn-dp",
        },
    )
    built = build(DQN, cfg)
    plan = built.placement.plan
    assert plan.policy == "dp-learner"
    assert [(w.name, w.members) for w in plan.workers] == [
        ("actor", [("actor", 0)]),
        ("learner-0", [("replay", 0), ("learner", 0)]),
        ("learner-1", [("replay", 1), ("learner", 1)]),
    ]
    assert plan.transport("batch") == "reference" and plan.transport("gradients") == "collective"
    runtime = built.executor.start(built.placement)
    algo = built.algorithm
    try:
        algo.begin(runtime)
        metrics = [algo.train_step().metrics for _ in range(12)]
        assert any("loss" in m for m in metrics)
        assert runtime.group("replay", Buffer).call(Buffer.__len__) == [algo.env_steps // 2] * 2
        first, second = runtime.group("learner", Learner).call(Learner.get_weights)
        for k in first:
            torch.testing.assert_close(first[k], second[k], rtol=0, atol=0)
    finally:
        runtime.shutdown()


def test_sac_runs_with_two_learners(ray_local, tmp_path: Path):
    cfg = make_config(
        SAC,
        "Pendulum",
        None,
        {
            "total_steps": 400,
            "learners": 2,
            "learning_starts": 200,
            "log_every": 100,
            "executor": "ray",
            "out": str(tmp_path),
            "name": "sac-dp",
        },
    )
    with pytest.raises(
        ConfigError, match="num_envs x actors \\(1\\) and batch_size .* multiples of --learners"
    ):
        build(SAC, cfg)
    cfg.num_envs = 2
    assert Trainer(SAC, cfg).run() == 0
    with open(tmp_path / "sac-dp" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["critic_loss"]) for r in rows if r["critic_loss"]]
    assert losses and all(math.isfinite(x) for x in losses)
