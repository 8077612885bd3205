"""The vLLM engine placed separately on Ray (``--executor ray --policy multi-actor``): the
generator is a Ray actor of its own with the engine in its process, the weights reach it
as one flat buffer over gloo, and a generator worker that dies is restarted and samples
with the current weights, not its initial ones."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import rlkit.dataflow.ray_executor  # noqa: F401  (registers executor "ray")
from rlkit.algorithms import ALGORITHMS
from rlkit.envs.text import tasks
from rlkit.llm.generator import HFGenerator
from rlkit.roles import Learner
from rlkit.trainer import build, make_config

REWARD = "rlkit.envs.text.tasks:sorted_exact"


@pytest.fixture(scope="module")
def ray_up(tmp_path_factory) -> Iterator[None]:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        logging_level="WARNING",
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
    )
    yield
    ray.shutdown()


@pytest.mark.slow
def test_a_restarted_engine_worker_samples_with_the_current_weights(ray_up, tmp_path: Path):
    """grpo, 4 prompts x 2 samples, lr 1e-2 (each step moves the greedy answers); two steps,
    then the generator's process is killed: the next step's samples carry the current
    version, and the restarted engine's greedy answers are HF generate's with the
    learner's current weights."""
    data = tasks.write_jsonl(tmp_path / "p.jsonl", tasks.prompts(16, seed=0))
    fields = {"prompts": str(data), "reward": (REWARD,), "prompts_per_step": 4, "group_size": 2}
    fields |= {"max_new_tokens": 6, "lr": 1e-2, "device": "cpu", "out": str(tmp_path)}
    fields |= {"name": "separate", "executor": "ray", "policy": "multi-actor"}
    algo = ALGORITHMS.get("grpo")
    config = make_config(algo, "", None, {**fields, "generator": "vllm"})
    built = build(algo, config)
    assert built.placement.plan.transport("weights") == "collective"  # one flat buffer, gloo
    runtime = built.executor.start(built.placement)
    stage = built.algorithm
    try:
        stage.begin(runtime)
        for _ in range(2):
            step = stage.train_step()
            assert step.metrics["logp_diff_max"] <= 1e-4
        generator = runtime["generator"]
        before = generator.pids()
        os.kill(before[0], signal.SIGKILL)
        step = stage.train_step()
        assert runtime.restarts() == 1 and generator.pids() != before
        assert step.metrics["policy_lag"] == 0.0  # sampled by the weights of version 2
        assert step.metrics["logp_diff_max"] <= 1e-4  # ... which are the learner's
        prompts = stage.collate(stage.train, torch.arange(8))
        ours = runtime.group("generator", HFGenerator).one(HFGenerator.greedy, prompts)
        hf = HFGenerator(make_config(algo, "", None, {**fields, "executor": "local"}))
        hf.set_weights(runtime.group("learner", Learner).one(Learner.get_weights), stage.version)
        theirs = hf.greedy(prompts)
        assert ours["completion"] == theirs["completion"]
        assert torch.equal(ours["input_ids"], theirs["input_ids"])
        assert int(ours["version"][0]) == stage.version == 3
    finally:
        runtime.shutdown()
