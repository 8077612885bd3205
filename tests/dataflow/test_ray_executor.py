"""The Ray executor on a real single-node Ray (CPU): the same PPO code gives the same
numbers as under `local`, infeasible plans are refused before anything starts, and a
killed worker process is restarted while the run goes on."""

from __future__ import annotations

import csv
import logging
import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

import rlkit.dataflow.ray_executor  # noqa: E402,F401  (registers executor "ray")
from rlkit.algorithms import PPO  # noqa: E402
from rlkit.dataflow import EXECUTORS, POLICIES  # noqa: E402
from rlkit.errors import PlacementError  # noqa: E402
from rlkit.roles import Actor, Learner  # noqa: E402
from rlkit.trainer import Trainer, build, make_config  # noqa: E402

UNTIMED = {"time", "sps"}


def ppo_config(tmp_path: Path, name: str, **overrides: Any):
    values = {"total_steps": 2048, "actors": 2, "out": str(tmp_path), "name": name}
    return make_config(PPO, "CartPole", None, {**values, **overrides})


def metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in UNTIMED} for row in csv.DictReader(f)]


def test_ray_is_registered():
    assert "ray" in EXECUTORS and "multi-actor" in POLICIES


def test_ppo_gives_the_same_metrics_under_local_and_ray(ray_local, tmp_path: Path):
    local = ppo_config(tmp_path, "local")
    assert Trainer(PPO, local).run() == 0
    distributed = ppo_config(tmp_path, "ray", executor="ray", policy="multi-actor")
    trainer = Trainer(PPO, distributed)
    assert [s.worker.name for s in trainer.built.placement.slots] == [
        "actor-0",
        "actor-1",
        "learner",
    ]
    assert trainer.run() == 0
    expected, got = metrics(tmp_path / "local"), metrics(tmp_path / "ray")
    assert len(expected) == 4  # 2048 steps / (2 actors x 8 envs x 32 steps)
    assert got == expected


def test_overlapped_collection_gives_the_same_metrics_under_local_and_ray(
    ray_local, tmp_path: Path
):
    """--overlap: actors collect rollout k+1 while the learner updates on rollout k. Under
    Ray that runs in parallel; under local it runs in turn; the numbers are the same."""
    local = ppo_config(tmp_path, "ov-local", overlap=True)
    assert Trainer(PPO, local).run() == 0
    distributed = ppo_config(tmp_path, "ov-ray", overlap=True, executor="ray")
    assert Trainer(PPO, distributed).run() == 0
    expected, got = metrics(tmp_path / "ov-local"), metrics(tmp_path / "ov-ray")
    assert got == expected
    assert [r["policy_lag"] for r in got] == ["0.0", "1.0", "1.0", "1.0"]


def test_infeasible_plans_are_refused_before_anything_starts(ray_local, tmp_path: Path):
    import ray

    before = len(ray.util.placement_group_table())
    gpu = ppo_config(tmp_path, "gpu", executor="ray", policy="multi-actor", device="cuda")
    with pytest.raises(
        PlacementError,
        match="learner needs 1 GPU; the cluster has 0 free: use --device cpu or add a GPU node",
    ):
        build(PPO, gpu)
    many = ppo_config(tmp_path, "many", executor="ray", policy="multi-actor", actors=8)
    with pytest.raises(PlacementError, match="needs 1 CPUs on one node; .*use fewer --actors"):
        build(PPO, many)
    assert len(ray.util.placement_group_table()) == before  # nothing was reserved


def test_a_killed_actor_is_restarted_and_the_run_goes_on(ray_local, tmp_path: Path, caplog):
    config = ppo_config(tmp_path, "fault", executor="ray", policy="multi-actor", total_steps=4096)
    built = build(PPO, config)
    runtime = built.executor.start(built.placement)
    algo = built.algorithm
    try:
        algo.begin(runtime)
        algo.train_step()
        actors = runtime["actor"]
        first = actors.pids()
        os.kill(first[1], signal.SIGKILL)  # between steps: found by the next call
        with caplog.at_level(logging.WARNING, logger="rlkit.dataflow.ray"):
            steps = [algo.train_step() for _ in range(3)]
        assert runtime.restarts() == 1
        assert "worker actor-1 was restarted (restart 1 of the run)" in caplog.text
        second = actors.pids()
        assert second[0] == first[0] and second[1] != first[1]
        assert all(math.isfinite(s.metrics["loss"]) for s in steps)
        # the rollouts after the restart carry the current policy version again
        rollout, _ = runtime.group("actor", Actor).call(Actor.collect, 4)[1]
        assert int(rollout["version"][0]) == algo.version
    finally:
        runtime.shutdown()


def test_a_killed_learner_comes_back_with_its_checkpointed_state(ray_local, tmp_path: Path, caplog):
    """A restarted learner is given its state from the run's last checkpoint (the trainer
    hands the runtime the checkpoint), not left with freshly initialized weights."""
    config = ppo_config(tmp_path, "learner-fault", executor="ray", policy="multi-actor")
    trainer = Trainer(PPO, config)
    trainer.run_dir = tmp_path / "learner-fault"
    trainer.run_dir.mkdir()
    runtime = trainer.built.executor.start(trainer.built.placement)
    trainer.runtime = runtime
    runtime.saved_state = trainer._checkpointed_fragments
    algo = trainer.built.algorithm
    try:
        algo.begin(runtime)
        assert runtime.saved_state() is None  # no checkpoint yet
        for _ in range(2):
            algo.train_step()
        trainer.save_checkpoint()
        algo.train_step()  # the learner moves on past the checkpoint: 3 updates
        learner = runtime["learner"]
        os.kill(learner.pids()[0], signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="rlkit.dataflow.ray"):
            step = algo.train_step()  # the update is retried on the restored learner
        assert runtime.restarts() == 1
        assert "worker learner was restarted (restart 1 of the run)" in caplog.text
        assert "came back with their state from the last checkpoint" in caplog.text
        assert (
            runtime.group("learner", Learner).one(Learner.state_dict)["updates"] == 3
        )  # 2 from the checkpoint + the retry
        assert math.isfinite(step.metrics["loss"])
    finally:
        runtime.shutdown()
