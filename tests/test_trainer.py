"""Trainer behaviour that the CLI tests do not reach: a NaN loss stops training with a
clear error and leaves the last checkpoint intact."""

from __future__ import annotations

import pytest
import torch

from rlkit import checkpoint
from rlkit.algorithms import ALGORITHMS, PPO
from rlkit.errors import TrainingError
from rlkit.trainer import Trainer, load_run, make_config


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


# -- divergence, for every registered algorithm -------------------------------------------
def rate_fields(config) -> list[str]:
    from rlkit.config import offered_fields

    names = offered_fields(type(config))
    return [n for n in names if n == "lr" or n.endswith("_lr")]


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_a_non_finite_metric_stops_any_algorithm_and_keeps_the_checkpoint(algo, tiny_run, capsys):
    """The trainer's own check, whatever the algorithm: one line naming the metric and the
    learning rate to lower; the checkpoint it resumed from is byte for byte intact."""
    from rlkit.cli import main

    run_dir = tiny_run(algo)
    before = (run_dir / "checkpoint.pt").read_bytes()
    algo_cls, cfg = load_run(run_dir)

    class Diverging(algo_cls):  # type: ignore[misc, valid-type]
        name = algo_cls.name  # resumes the run its algorithm wrote

        def train_step(self):
            result = super().train_step()
            result.metrics["q_values"] = float("inf")
            return result

    cfg.total_steps *= 4
    with pytest.raises(TrainingError, match="metric 'q_values' is inf .* lower --lr") as info:
        Trainer(Diverging, cfg, run_dir).run(resume=True)
    assert "\n" not in str(info.value)
    assert (run_dir / "checkpoint.pt").read_bytes() == before
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "1"]) == 0  # still loadable


@pytest.mark.parametrize("algo", ["dqn", "sac"])
def test_a_nan_loss_is_one_line_naming_the_metric(algo, tmp_path, capsys, run_args):
    """Through the CLI: warm-up writes a checkpoint, then learning diverges."""
    from rlkit.cli import main

    out = tmp_path / "runs"
    args = run_args(algo, total_steps=1024, checkpoint_every=64)
    args += ["--learning-starts", "256", "--train-freq", "32", "--gradient-steps", "4"]
    args += ["--out", str(out), "--name", "nan"]
    lr = [f"--{n.replace('_', '-')}" for n in rate_fields(ALGORITHMS.get(algo).config_cls())]
    code = main([*args, *[x for flag in lr for x in (flag, "1e30")]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "training diverged: metric '" in err[0] and "lower --lr" in err[0], err[0]
    saved = checkpoint.load(out / "nan" / "checkpoint.pt", algo)
    assert 64 <= saved["trainer"]["step"] <= 256


# -- checkpoints and resume ------------------------------------------------------------------
@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_periodic_checkpoints_record_a_later_next_checkpoint(algo, tiny_run):
    run_dir = tiny_run(algo)
    state = checkpoint.load(run_dir / "checkpoint.pt", algo)["trainer"]
    assert state["next_checkpoint"] > state["step"]


def test_resume_total_steps_applies_to_that_invocation_only(tiny_run, capsys):
    from rlkit.cli import main

    run_dir = tiny_run("ppo")
    config = (run_dir / "config.yaml").read_bytes()
    assert main(["resume", str(run_dir), "--total-steps", "512"]) == 0
    assert (run_dir / "config.yaml").read_bytes() == config
    assert checkpoint.load(run_dir / "checkpoint.pt", "ppo")["trainer"]["step"] == 512
    capsys.readouterr()
    assert main(["resume", str(run_dir)]) == 0  # the original budget: already complete
    assert "already finished its budget of 256 steps" in capsys.readouterr().out


def test_resume_of_a_finished_run_is_one_line_and_changes_nothing(tiny_run, capsys, dir_snapshot):
    from rlkit.cli import main

    run_dir = tiny_run("ppo", total_steps=256)
    step = checkpoint.load(run_dir / "checkpoint.pt", "ppo")["trainer"]["step"]  # 256 or past
    before = dir_snapshot(run_dir)
    capsys.readouterr()
    assert main(["resume", str(run_dir)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"rlkit: {run_dir} already finished its budget of 256 steps; "
        f"raise it with rlkit resume {run_dir} --total-steps {2 * step}"
    ]
    assert err == ""
    assert dir_snapshot(run_dir) == before


def test_temp_files_of_killed_writers_are_gone_after_resume(tiny_run):
    import subprocess
    import sys

    from rlkit.cli import main

    run_dir = tiny_run("ppo")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    stale = run_dir / f".checkpoint.pt.tmp-{child.pid}"
    stale.write_bytes(b"half a checkpoint")
    assert main(["resume", str(run_dir), "--total-steps", "512"]) == 0
    assert not stale.exists()
