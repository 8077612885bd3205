"""The LLM stage template (algorithms/rlhf/template.py): exact resume after Ctrl-C (the
data order and the position in the epoch included), the exported model/ that plain
transformers loads with the same logits, the next stage taking a run as --model, and
the batch-size arithmetic of `rlkit plan`."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from rlkit import checkpoint
from rlkit.algorithms.rlhf import SFT, LLMStage, RewardModel
from rlkit.algorithms.rlhf.roles import LLMLearner
from rlkit.algorithms.rlhf.template import restore
from rlkit.cli import main
from rlkit.trainer import Trainer, make_config


def interrupted_at(stage: type[LLMStage], step: int) -> type[LLMStage]:
    """`stage` that receives a real SIGINT (Ctrl-C) during its `step`-th iteration."""

    class Interrupted(stage):  # type: ignore[misc, valid-type]
        name = stage.name  # the run resumes with the stage itself
        done = 0

        def train_step(self) -> Any:
            result = super().train_step()
            self.done += 1
            if self.done == step:
                os.kill(os.getpid(), signal.SIGINT)
            return result

    return Interrupted


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("time", "sps")} for r in csv.DictReader(f)]


STAGES = {
    "sft": (SFT, ("prompt", "response")),
    "rm": (RewardModel, ("prompt", "chosen", "rejected")),
}


def stage_data(tasks, directory: Path, columns: tuple[str, ...]) -> Path:
    ws = tasks.words()[:40]
    return tasks.write_jsonl(
        directory / "d.jsonl", [dict(zip(columns, (w, w[::-1], w), strict=False)) for w in ws]
    )


@pytest.mark.slow
@pytest.mark.parametrize("algo", list(STAGES))
def test_ctrl_c_and_resume_give_the_uninterrupted_run(algo, tmp_path, tasks):
    """32 training examples, 8 per step in micro-batches of 4, 3 epochs (12 steps), held-out
    evaluation every 24 samples; Ctrl-C in step 5 (in the second epoch, 8 examples into
    its shuffled order). Resumed, every metrics row and the final weights are those of
    the run that was never interrupted."""
    stage, columns = STAGES[algo]
    data = stage_data(tasks, tmp_path, columns)
    overrides = {
        "data": str(data),
        "eval_fraction": 0.2,
        "epochs": 3,
        "samples_per_step": 8,
        "micro_batch": 4,
        "eval_every": 24,
        "lr": 1e-3,
        "checkpoint_every": 10**6,
        "device": "cpu",
        "out": str(tmp_path),
    }
    assert Trainer(stage, make_config(stage, "", None, {**overrides, "name": "full"})).run() == 0
    cut = make_config(stage, "", None, {**overrides, "name": "cut"})
    assert Trainer(interrupted_at(stage, 5), cut).run() == 130
    saved = checkpoint.load(tmp_path / "cut" / checkpoint.CHECKPOINT, algo)
    assert saved["trainer"]["step"] == 40
    assert saved["state"]["driver"]["sampler"] == {"epoch": 1, "position": 8}
    assert (tmp_path / "cut" / "model" / "config.json").is_file()  # exported at Ctrl-C too
    assert Trainer(stage, cut, tmp_path / "cut").run(resume=True) == 0
    assert rows(tmp_path / "cut") == rows(tmp_path / "full")
    assert len(rows(tmp_path / "full")) == 12
    from safetensors.torch import load_file

    full = load_file(tmp_path / "full" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    assert all(torch.equal(full[k], resumed[k]) for k in full)


@pytest.mark.parametrize("algo", list(STAGES))
def test_the_exported_model_loads_in_plain_transformers_with_the_same_logits(
    algo, tmp_path, tasks, llm_run
):
    import transformers

    stage, columns = STAGES[algo]
    run = llm_run(
        algo, "r", stage_data(tasks, tmp_path, columns), "--total-steps", "64", "--lr", "1e-3"
    )
    algo_cls, config = stage, make_config(stage, "", None, {"data": str(tmp_path / "d.jsonl")})
    state = checkpoint.load(run / checkpoint.CHECKPOINT, algo)["state"]
    learner = LLMLearner(algo_cls, config, 0, 1)
    before = learner.get_weights()
    restore(learner, state["fragments"]["learner"])
    assert learner.updates == 2 and not all(
        torch.equal(before[k], v) for k, v in learner.get_weights().items()
    )
    auto = (
        transformers.AutoModelForCausalLM
        if algo == "sft"
        else transformers.AutoModelForSequenceClassification
    )
    plain = auto.from_pretrained(run / "model").eval()
    tok = transformers.AutoTokenizer.from_pretrained(run / "model")
    ids = torch.tensor([tok("<|user|>abcd<|end|><|assistant|>dcba")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, learner.model.eval()(ids).logits)
    assert tok.chat_template and tok.pad_token == "<pad>"


def test_a_run_is_the_next_stages_model(tmp_path, tasks, llm_run):
    """SFT, then a reward model and DPO starting from its model/ (--model RUN_DIR)."""
    sft = llm_run(
        "sft", "sft", stage_data(tasks, tmp_path / "s", STAGES["sft"][1]), "--total-steps", "32"
    )
    prefs = stage_data(tasks, tmp_path / "p", STAGES["rm"][1])
    for stage in ("rm", "dpo"):
        run = llm_run(stage, stage, prefs, "--model", str(sft), "--total-steps", "32")
        assert (run / "model" / "model.safetensors").is_file()
    dpo_config = (tmp_path / "runs" / "dpo" / "config.yaml").read_text()
    assert f"model: {sft}" in dpo_config


def test_plan_prints_the_batch_arithmetic(tmp_path, tasks, capsys):
    data = stage_data(tasks, tmp_path, STAGES["sft"][1])
    args = ["plan", "sft", "--data", str(data), "--samples-per-step", "32", "--micro-batch", "4"]
    assert main([*args, "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "samples_per_step 32 = micro_batch 4 x accumulation 8 x learners 1" in out
    assert "budget: 80 samples (epochs 2 x 40) = 3 optimizer steps" in out
    assert "driver --scatter--> learner" in out and "learner --allreduce--> learner" in out
    assert main([*args[:-2], "--micro-batch", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--samples-per-step: 32 is not a multiple of --micro-batch 5" in err[0]
