"""Model-family presets of the LLM stages (algorithms/presets/STAGE.yaml): the embedded
tiny model, randomly initialized, starts from learning rates that train it; a pretrained
model keeps the fine-tuning defaults; flags win over both; `rlkit plan` names the one in
force."""

from __future__ import annotations

import json

import pytest
import yaml

from rlkit.algorithms.rlhf import DPO, SFT, RewardModel
from rlkit.cli import main
from rlkit.llm.models import model_preset
from rlkit.trainer import make_config


def fake_run(directory, model: str):
    """A run directory as `rlkit run` leaves it: config.yaml naming its --model."""
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(
        yaml.safe_dump({"algorithm": "sft", "config": {"model": model}})
    )
    (directory / "model").mkdir()
    (directory / "model" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return directory


def test_the_family_of_a_model_follows_runs_back_to_where_they_started(tmp_path):
    sft = fake_run(tmp_path / "sft", "tiny")
    dpo = fake_run(tmp_path / "dpo", str(sft))
    hub = fake_run(tmp_path / "hub-sft", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert model_preset("tiny") == "tiny"
    assert model_preset(str(sft)) == "tiny" and model_preset(str(dpo)) == "tiny"
    assert model_preset(str(dpo / "model")) == "tiny"  # the exported model/ of a tiny run
    assert model_preset(str(hub)) == "pretrained"
    assert model_preset("HuggingFaceTB/SmolLM2-135M-Instruct") == "pretrained"


@pytest.mark.parametrize(
    ("stage", "tiny_lr", "default_lr"),
    [(SFT, 3e-3, 2e-5), (RewardModel, 1e-3, 1e-5), (DPO, 3e-4, 1e-6)],
)
def test_the_tiny_model_gets_its_learning_rate_and_flags_win(stage, tiny_lr, default_lr):
    assert make_config(stage, "", None, {}).lr == tiny_lr
    assert make_config(stage, "", None, {"model": "some/hub-model"}).lr == default_lr
    assert make_config(stage, "", None, {"lr": 0.5}).lr == 0.5
    assert make_config(stage, "", "none", {}).lr == default_lr
    assert stage.config_cls().lr == default_lr  # the dataclass keeps fine-tuning defaults


def test_plan_names_the_preset_in_force(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": "ab", "response": "ba"}) + "\n" for _ in range(8))
    )
    assert main(["plan", "sft", "--data", str(data)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "preset: tiny (lr=0.003)"
    assert main(["plan", "sft", "--data", str(data), "--preset", "pretrained"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "preset: pretrained (the defaults)"
