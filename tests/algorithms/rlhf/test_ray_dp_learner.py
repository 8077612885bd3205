"""The LLM stages under `--executor ray --policy dp-learner --learners 2` (gloo): the
trainer runs them in worker processes, each reference beside its learner, and two
learners (replicated, or sharded with --fsdp) train the model one learner trains."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

pytest.importorskip("ray")

import rlkit.dataflow.ray_executor  # noqa: E402,F401  (registers executor "ray")
from rlkit.algorithms.rlhf import DPO, SFT  # noqa: E402
from rlkit.trainer import Trainer, make_config  # noqa: E402


def losses(run_dir: Path, column: str = "loss") -> list[float]:
    with open(run_dir / "metrics.csv") as f:
        return [float(r[column]) for r in csv.DictReader(f) if r[column]]


@pytest.mark.slow
def test_two_learners_on_ray_train_what_one_local_learner_trains(ray_local, tmp_path, tasks):
    ws = tasks.words()[:48]
    data = tasks.write_jsonl(tmp_path / "d.jsonl", tasks.reversal_rows(ws))
    common = {
        "data": str(data),
        "eval_fraction": 0.25,
        "eval_every": 32,
        "total_steps": 64,
        "samples_per_step": 16,
        "micro_batch": 4,
        "lr": 1e-3,
        "device": "cpu",
        "out": str(tmp_path),
    }
    assert Trainer(SFT, make_config(SFT, "", None, {**common, "name": "one"})).run() == 0
    two = {**common, "name": "two", "executor": "ray", "learners": 2}
    trainer = Trainer(SFT, make_config(SFT, "", None, two))
    plan = trainer.built.placement.plan
    assert plan.policy == "dp-learner" and [w.name for w in plan.workers] == [
        "learner-0",
        "learner-1",
    ]
    assert trainer.run() == 0
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-4)
    assert losses(tmp_path / "two", "eval_loss") == pytest.approx(
        losses(tmp_path / "one", "eval_loss"), rel=1e-4
    )
    assert (tmp_path / "two" / "model" / "model.safetensors").is_file()
    # FSDP2: the two learners shard the model; the same training, checkpointed as shards
    sharded = Trainer(SFT, make_config(SFT, "", None, {**two, "name": "fsdp", "fsdp": True}))
    assert sharded.run() == 0
    assert losses(tmp_path / "fsdp") == pytest.approx(losses(tmp_path / "one"), rel=1e-4)
    shards = sorted((tmp_path / "fsdp" / "checkpoint-files").glob("*/learner-*/shards.pt"))
    assert len(shards) == 2
    from rlkit.cli import main

    assert main(["eval", str(tmp_path / "fsdp")]) == 0  # the shards joined in one process


@pytest.mark.slow
def test_dpo_references_sit_beside_their_learners(ray_local, tmp_path, tasks):
    ws = tasks.words()[:32]
    rows = [{"prompt": w, "chosen": w[::-1], "rejected": w} for w in ws]
    data = tasks.write_jsonl(tmp_path / "p.jsonl", rows)
    overrides = {
        "data": str(data),
        "total_steps": 32,
        "samples_per_step": 8,
        "micro_batch": 4,
        "lr": 1e-3,
        "device": "cpu",
        "out": str(tmp_path),
        "name": "dpo",
        "executor": "ray",
        "learners": 2,
    }
    trainer = Trainer(DPO, make_config(DPO, "", None, overrides))
    plan = trainer.built.placement.plan
    assert [(w.name, w.members) for w in plan.workers] == [
        ("learner-0", [("reference", 0), ("learner", 0)]),
        ("learner-1", [("reference", 1), ("learner", 1)]),
    ]
    assert trainer.run() == 0
    assert losses(tmp_path / "dpo")[-1] < losses(tmp_path / "dpo")[0]
