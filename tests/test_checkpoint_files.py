"""Roles that write their own checkpoint files (`save_checkpoint` / `load_checkpoint`):
the manifest names the files directory, written last; a killed write leaves the previous
checkpoint loadable; resume through the files is exact."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch

from rlkit import checkpoint
from rlkit.algorithms import PPO
from rlkit.algorithms.on_policy_roles import OnPolicyLearner
from rlkit.errors import CheckpointError
from rlkit.trainer import Trainer, make_config


class FileLearner(OnPolicyLearner):
    """PPO's learner, keeping its parameters and optimizer in files of its own."""

    fail_on_save: int | None = None  # the save (1-based) that dies half-way
    saves = 0

    def save_checkpoint(self, directory: Path) -> dict[str, Any]:
        FileLearner.saves += 1
        state = self.state_dict()
        torch.save({"policy": state.pop("policy")}, directory / "policy.pt")
        if FileLearner.saves == FileLearner.fail_on_save:
            raise OSError("killed while writing")
        torch.save({"optimizer": state.pop("optimizer")}, directory / "optimizer.pt")
        return state  # the small rest: RNG, counters

    def load_checkpoint(self, directory: Path, state: dict[str, Any]) -> None:
        big = torch.load(directory / "policy.pt") | torch.load(directory / "optimizer.pt")
        self.load_state_dict({**state, **big})


class FilePPO(PPO):
    name = "file-ppo"
    learner_cls = FileLearner


def trainer(out: Path, total: int) -> Trainer:
    overrides = {"total_steps": total, "num_steps": 64, "num_envs": 1, "hidden": (16,)}
    overrides |= {"minibatch_size": 32, "anneal_lr": False}  # one schedule for 192 and 384
    config = make_config(FilePPO, "CartPole", None, {**overrides, "checkpoint_every": 128})
    return Trainer(FilePPO, config, out)


def rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("time", "sps")} for r in csv.DictReader(f)]


def test_the_manifest_names_the_files_and_only_the_current_ones_stay(tmp_path: Path):
    FileLearner.fail_on_save = None
    run = tmp_path / "run"
    run.mkdir()
    assert trainer(run, 384).run() == 0
    saved = checkpoint.load(run / checkpoint.CHECKPOINT, "file-ppo")
    (entry,) = saved["state"]["fragments"]["learner"]
    files = Path(entry[checkpoint.FILES])
    assert sorted(p.name for p in files.iterdir()) == ["optimizer.pt", "policy.pt"]
    assert "policy" not in entry["state"] and "updates" in entry["state"]  # small part inline
    assert [p.name for p in (run / checkpoint.FILES_DIR).iterdir()] == [saved["files"]]
    # the actor has no save_checkpoint: its state stays inline in the manifest
    assert "policy" in saved["state"]["fragments"]["actor"][0]


def test_resume_through_files_is_exact(tmp_path: Path):
    FileLearner.fail_on_save = None
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir()
    parts.mkdir()
    assert trainer(whole, 384).run() == 0
    assert trainer(parts, 192).run() == 0
    resumed = trainer(parts, 384)
    assert resumed.run(resume=True) == 0
    assert rows(parts) == rows(whole)


def test_a_write_killed_half_way_leaves_the_previous_checkpoint(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    FileLearner.saves, FileLearner.fail_on_save = 0, 2  # the second checkpoint dies
    with pytest.raises(OSError, match="killed while writing"):
        trainer(run, 384).run()
    FileLearner.fail_on_save = None
    saved = checkpoint.load(run / checkpoint.CHECKPOINT, "file-ppo")
    assert saved["trainer"]["step"] == 128  # the first checkpoint, whole
    assert len(list((run / checkpoint.FILES_DIR).iterdir())) == 2  # and the half-written one
    assert trainer(run, 384).run(resume=True) == 0
    assert len(list((run / checkpoint.FILES_DIR).iterdir())) == 1  # the killed write is gone


def test_a_missing_files_directory_is_one_clear_error(tmp_path: Path):
    FileLearner.fail_on_save = None
    run = tmp_path / "run"
    run.mkdir()
    assert trainer(run, 128).run() == 0
    for d in (run / checkpoint.FILES_DIR).iterdir():
        for f in d.rglob("*"):
            if f.is_file():
                f.unlink()
        for sub in sorted(d.rglob("*"), reverse=True):
            sub.rmdir()
        d.rmdir()
    with pytest.raises(CheckpointError, match="saved as files in .* which is missing"):
        checkpoint.load(run / checkpoint.CHECKPOINT, "file-ppo")
