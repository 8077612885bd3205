"""The async-actor policy on a real single-node Ray (CPU): off-policy actors stream chunks
into the replay buffer while the learner updates, the queue stays bounded, the policy lag
is measured, and a killed actor is restarted without losing a transition already stored."""

from __future__ import annotations

import csv
import logging
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

import rlkit.dataflow.ray_executor  # noqa: E402,F401  (registers executor "ray")
from rlkit.algorithms import DQN  # noqa: E402
from rlkit.roles import Actor, Buffer  # noqa: E402
from rlkit.trainer import Trainer, build, make_config  # noqa: E402


def dqn_config(tmp_path: Path, name: str, **overrides: Any):
    values = {
        "total_steps": 4096,
        "actors": 2,
        "num_envs": 4,
        "train_freq": 16,
        "learning_starts": 512,
        "log_every": 0,
        "executor": "ray",
        "policy": "async-actor",
        "out": str(tmp_path),
        "name": name,
    }
    return make_config(DQN, "CartPole", None, {**values, **overrides})


def test_actors_stream_into_the_buffer_with_bounded_queue_and_measured_lag(
    ray_local, tmp_path: Path
):
    trainer = Trainer(DQN, dqn_config(tmp_path, "stream"))
    plan = trainer.built.placement.plan
    assert plan.policy == "async-actor" and plan.transport("transitions") == "queue"
    assert trainer.run() == 0
    with open(tmp_path / "stream" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert int(rows[-1]["step"]) >= 4096
    chunk = 16 * 4  # train_freq x num_envs: one collect call of one actor
    assert all(int(r["step"]) % chunk == 0 for r in rows)
    queued = [float(r["queued_chunks"]) for r in rows]
    assert max(queued) <= 4  # two actors, each at most two chunks ahead (the edge's bound)
    lags = [float(r["policy_lag"]) for r in rows]
    assert all(math.isfinite(x) and x >= 0 for x in lags)
    assert max(lags) > 0  # chunks acted with weights older than the learner's latest
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert losses and all(math.isfinite(x) for x in losses)


def test_a_killed_actor_is_restarted_and_no_stored_transition_is_lost(
    ray_local, tmp_path: Path, caplog
):
    built = build(DQN, dqn_config(tmp_path, "fault"))
    runtime = built.executor.start(built.placement)
    algo = built.algorithm
    try:
        algo.begin(runtime)
        for _ in range(4):
            algo.train_step()
        replay, actors = runtime.group("replay", Buffer), runtime["actor"]
        stored = replay.one(Buffer.__len__)
        assert stored == algo.env_steps > 0
        first = actors.pids()
        os.kill(first[1], signal.SIGKILL)  # while its next chunks are in flight
        steps = []
        deadline = time.monotonic() + 120
        with caplog.at_level(logging.WARNING, logger="rlkit.dataflow.ray"):
            # actor 0 keeps streaming while Ray notices the death and restarts actor 1
            while runtime.restarts() == 0 and time.monotonic() < deadline:
                steps.append(algo.train_step())
        assert runtime.restarts() == 1
        assert "worker actor-1 was restarted (restart 1 of the run)" in caplog.text
        assert actors.pids()[1] != first[1]
        # everything stored before the kill is still there, and every chunk taken since
        assert replay.one(Buffer.__len__) == algo.env_steps > stored
        assert all(math.isfinite(s.metrics.get("loss", 0.0)) for s in steps)
        # the restarted actor came back with its initial weights and was sent the latest
        for _ in range(4):
            algo.train_step()
        assert runtime.group("actor", Actor).call(Actor.state_dict)[1]["version"] > 0
    finally:
        runtime.shutdown()


def test_dqn_learns_cartpole_with_streaming_actors(ray_local, tmp_path: Path):
    """Learning bar under async-actor on Ray (actors two chunks ahead, so acting with
    weights up to two rounds old): a greedy evaluation (10 episodes every 2,500 steps)
    reaches a mean return >= 475 within the CartPole preset's 50k steps; seed 0."""
    overrides = {"seed": 0, "eval_every": 2500, "target_return": 475, "log_every": 512}
    cfg = make_config(
        DQN,
        "CartPole",
        None,
        {
            "executor": "ray",
            "policy": "async-actor",
            "out": str(tmp_path),
            "name": "learn",
            **overrides,
        },
    )
    trainer = Trainer(DQN, cfg)
    assert trainer.run() == 0
    with open(tmp_path / "learn" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    evals = [(int(r["step"]), float(r["eval_return"])) for r in rows if r["eval_return"]]
    assert trainer.reached_target, f"evaluations: {evals}"
    assert evals[-1][0] <= 50_000 and evals[-1][1] >= 475
    assert max(float(r["policy_lag"]) for r in rows) > 0  # it did act with stale weights
