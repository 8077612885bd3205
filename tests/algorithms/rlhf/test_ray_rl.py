"""GRPO and PPO for LLMs under `--executor ray`: colocated (generator, reference, reward
and learners in one worker, time-sharing its device) and placed separately (a worker per
fragment, the weights broadcast as one flat buffer over gloo), with the numbers of the
one-process run; an infeasible placement is refused before anything starts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

pytest.importorskip("ray")

import rlkit.dataflow.ray_executor  # noqa: E402,F401  (registers executor "ray")
from rlkit.algorithms import ALGORITHMS  # noqa: E402
from rlkit.cli import main  # noqa: E402
from rlkit.envs.text import tasks  # noqa: E402
from rlkit.trainer import Trainer, make_config  # noqa: E402

SHORTER = (
    "def shorter(prompts, completions, **c):\n    return [-len(x) / 10 for x in completions]\n"
)


def table(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("time", "sps")} for r in csv.DictReader(f)]


@pytest.mark.slow
def test_local_colocated_and_separate_runs_give_the_same_numbers(ray_local, tmp_path):
    """rlhf-ppo (its graph is grpo's and a critic's): 3 steps of 4 prompts x 2 samples and
    evaluations, seed 0; every metrics row is the same under local, colocate and separate
    placement."""
    stage = "rlhf-ppo"
    fn = tmp_path / "shorter.py"
    fn.write_text(SHORTER)
    data = tasks.write_jsonl(tmp_path / "p.jsonl", tasks.prompts(16, seed=0))
    common = {
        "prompts": str(data),
        "reward": f"{fn}:shorter",
        "prompts_per_step": 4,
        "group_size": 2,
        "micro_batch": 4,
        "max_new_tokens": 6,
        "lr": 1e-3,
        "total_steps": 24,
        "eval_fraction": 0.25,
        "eval_every": 16,
        "device": "cpu",
        "out": str(tmp_path),
    }
    algo = ALGORITHMS.get(stage)
    assert Trainer(algo, make_config(algo, "", None, {**common, "name": "local"})).run() == 0
    members = {"generator", "reference", "reward", "learner"} | (
        {"critic"} if stage != "grpo" else set()
    )
    for policy in ("colocate", "multi-actor"):
        config = make_config(
            algo, "", None, {**common, "name": policy, "executor": "ray", "policy": policy}
        )
        trainer = Trainer(algo, config)
        plan = trainer.built.placement.plan
        if policy == "colocate":
            assert [w.name for w in plan.workers] == ["hybrid"]
            assert {m for m, _ in plan.workers[0].members} == members
        else:
            assert sorted(w.name for w in plan.workers) == sorted(members)
            assert plan.transport("weights") == "collective"  # one flat buffer over gloo
        assert trainer.run() == 0
        assert table(tmp_path / policy) == table(tmp_path / "local"), policy
    assert len(table(tmp_path / "local")) == 3


@pytest.mark.slow
def test_two_data_parallel_learners_train_what_one_trains(ray_local, tmp_path):
    """grpo with --learners 2 (dp-learner: each learner half of the prompt groups,
    gradients all-reduced) logs the rows of one local learner, to float rounding, and
    ends with its weights."""
    import torch
    from safetensors.torch import load_file

    fn = tmp_path / "shorter.py"
    fn.write_text(SHORTER)
    data = tasks.write_jsonl(tmp_path / "p.jsonl", tasks.prompts(16, seed=0))
    common = {
        "prompts": str(data),
        "reward": f"{fn}:shorter",
        "prompts_per_step": 4,
        "group_size": 2,
        "micro_batch": 2,
        "max_new_tokens": 6,
        "lr": 1e-3,
        "total_steps": 24,
        "device": "cpu",
        "out": str(tmp_path),
    }
    algo = ALGORITHMS.get("grpo")
    assert Trainer(algo, make_config(algo, "", None, {**common, "name": "one"})).run() == 0
    two = make_config(algo, "", None, {**common, "name": "two", "executor": "ray", "learners": 2})
    trainer = Trainer(algo, two)
    assert trainer.built.placement.plan.policy == "dp-learner"
    assert trainer.run() == 0
    one_rows, two_rows = table(tmp_path / "one"), table(tmp_path / "two")
    assert len(one_rows) == len(two_rows) == 3
    for a, b in zip(one_rows, two_rows, strict=True):
        for k in a:
            if k not in ("restarts",):
                assert float(b[k]) == pytest.approx(float(a[k]), rel=1e-4, abs=1e-6), k
    wa, wb = (load_file(tmp_path / r / "model" / "model.safetensors") for r in ("one", "two"))
    assert all(torch.allclose(wa[k], wb[k], rtol=1e-4, atol=1e-5) for k in wa)


def test_plan_prints_the_ray_placement_and_refuses_an_infeasible_one(ray_local, tmp_path, capsys):
    data = tasks.write_jsonl(tmp_path / "p.jsonl", tasks.prompts(16, seed=0))
    base = [
        "plan",
        "grpo",
        "--prompts",
        str(data),
        "--reward",
        "rlkit.envs.text.tasks:sorted_exact",
    ]
    base += ["--executor", "ray", "--device", "cpu", "--prompts-per-step", "8"]
    assert main([*base, "--policy", "colocate"]) == 0
    out = capsys.readouterr().out
    assert "hybrid" in out and "generator[0], reference[0], reward[0], learner[0]" in out
    assert main([*base, "--policy", "multi-actor", "--generators", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "generator" in err[0], err


@pytest.mark.slow
def test_async_on_ray_samples_while_learning_and_trains_every_prompt_once(ray_local, tmp_path):
    """grpo --policy async --max-staleness 1 on Ray: a generator worker and a learner worker
    (reference, reward and learner), sampling while learning (a driver thread); 16
    prompts, 4 steps of 4: no sample more than 1 version behind, some tokens sampled by
    older weights, every prompt trained exactly once. (Resume is tested in one process,
    test_in_flight.py: the checkpoint is the same.)"""
    from rlkit import checkpoint

    data = tasks.write_jsonl(tmp_path / "p.jsonl", tasks.prompts(16, seed=0))
    fields = {
        "prompts": str(data),
        "reward": ("rlkit.envs.text.tasks:sorted_exact",),
        "prompts_per_step": 4,
        "group_size": 4,
        "max_new_tokens": 6,
        "lr": 1e-3,
        "epochs": 1,
        "device": "cpu",
        "out": str(tmp_path),
        "name": "async",
        "executor": "ray",
        "policy": "async",
        "max_staleness": 1,
        "decode_chunk": 2,
    }
    algo = ALGORITHMS.get("grpo")
    trainer = Trainer(algo, make_config(algo, "", None, fields))
    placement = trainer.built.placement.table()
    assert "generator[0]" in placement and "reference[0], reward[0], learner[0]" in placement
    assert trainer.run() == 0
    rows = table(tmp_path / "async")
    assert len(rows) == 4 and all(float(r["staleness_max"]) <= 1 for r in rows)
    assert any(float(r["off_policy_tokens"]) > 0 for r in rows)
    state = checkpoint.load(tmp_path / "async" / checkpoint.CHECKPOINT, "grpo")["state"]
    assert state["driver"]["in_flight"]["trained"].tolist() == [1] * 16
