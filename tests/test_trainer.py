"""Trainer behaviour that the CLI tests do not reach: a NaN loss stops training with a
clear error and leaves the last checkpoint intact."""

from __future__ import annotations

import pytest
import torch

from rlkit import checkpoint
from rlkit.algorithms import ALGORITHMS, PPO
from rlkit.errors import TrainingError
from rlkit.trainer import Trainer, make_config


class NaNPPO(PPO):
    """PPO whose loss turns to NaN: stands for a diverging run (of the run PPO wrote, so
    it keeps PPO's name; a subclass is otherwise named after its class)."""

    name = "ppo"

    @staticmethod
    def loss(config, policy, batch):
        loss, stats = PPO.loss(config, policy, batch)
        return loss * torch.nan, stats


def test_nan_loss_stops_with_a_message_and_keeps_the_checkpoint(tmp_path):
    ppo = ALGORITHMS.get("ppo")
    overrides = {"total_steps": 512, "checkpoint_every": 256, "out": str(tmp_path), "name": "r"}
    cfg = make_config(ppo, "CartPole", None, overrides)
    assert Trainer(ppo, cfg).run() == 0
    run_dir = tmp_path / "r"
    before = (run_dir / "checkpoint.pt").read_bytes()

    cfg.total_steps = 1024
    with pytest.raises(TrainingError, match="the loss became nan .* the last checkpoint is intact"):
        Trainer(NaNPPO, cfg, run_dir).run(resume=True)
    assert (run_dir / "checkpoint.pt").read_bytes() == before
    assert checkpoint.load(run_dir / "checkpoint.pt", "ppo")["trainer"]["step"] == 512


def test_periodic_evaluation_writes_eval_columns(tmp_path):
    ppo = ALGORITHMS.get("ppo")
    overrides = {
        "total_steps": 1024,
        "eval_every": 512,
        "eval_episodes": 2,
        "out": str(tmp_path),
        "name": "e",
    }
    cfg = make_config(ppo, "cartpole", "CARTPOLE", overrides)  # presets are case-insensitive too
    assert Trainer(ppo, cfg).run() == 0
    import csv

    with open(tmp_path / "e" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    evaluated = [int(r["step"]) for r in rows if r["eval_return"]]
    assert evaluated == [512, 1024]
    assert all(
        float(r["eval_return"]) >= 8 for r in rows if r["eval_return"]
    )  # CartPole lasts >= 8 steps


def test_a_run_of_an_unregistered_algorithm_says_so(tmp_path):
    from rlkit.errors import CheckpointError
    from rlkit.trainer import load_run

    (tmp_path / "config.yaml").write_text("algorithm: my_algo\nconfig: {}\n")
    with pytest.raises(CheckpointError, match="algorithm 'my_algo', which is not registered here"):
        load_run(tmp_path)
