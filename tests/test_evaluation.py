"""The evaluation service (rlkit/evaluation.py): periodic evaluation and `rlkit eval` are
one path, so the last periodic evaluation of a run and `rlkit eval` of its final
checkpoint give the same numbers; a run that holds nothing out is measured on its
training split, named ``train_*``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rlkit.cli import main
from rlkit.envs.text import tasks

SORT = "rlkit.envs.text.tasks:sorted_exact"


def run_and_eval(tmp_path: Path, name: str, *argv: str) -> tuple[dict[str, str], dict]:
    """The last metrics row of a finished run, and what `rlkit eval` wrote of it."""
    out = tmp_path / "runs"
    assert main([*argv, "--device", "cpu", "--out", str(out), "--name", name]) == 0
    with open(out / name / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    assert main(["eval", str(out / name)]) == 0
    return last, json.loads((out / name / "eval.json").read_text())


def test_an_rl_stage_is_judged_the_same_in_its_run_and_from_its_checkpoint(tmp_path):
    """GRPO, 2 steps of 4 prompts x 4 samples, evaluated at the end on 8 held-out prompts:
    greedy answers by the running generators, and by a generator given the checkpoint's
    policy, score the same reward, gold reward and length."""
    prompts = tasks.write_jsonl(tmp_path / "prompts.jsonl", tasks.prompts(32, seed=2))
    flags = ["--prompts", str(prompts), "--reward", SORT, "--gold-reward", SORT]
    flags += ["--total-steps", "32", "--prompts-per-step", "4", "--group-size", "4"]
    flags += ["--max-new-tokens", "6", "--eval-fraction", "0.25", "--eval-every", "32"]
    last, evaluated = run_and_eval(tmp_path, "grpo", "run", "grpo", *flags)
    for key in ("eval_reward", "eval_gold_reward", "eval_response_length"):
        assert evaluated[key] == pytest.approx(float(last[key]), rel=1e-6, abs=1e-9), key


def test_a_data_stage_is_judged_the_same_and_on_its_training_split_without_held_out(tmp_path):
    demos = tasks.write_jsonl(tmp_path / "sft.jsonl", tasks.biased_demos(120, seed=1))
    flags = ["--data", str(demos), "--total-steps", "64", "--lr", "3e-3"]
    last, evaluated = run_and_eval(
        tmp_path, "held", "run", "sft", *flags, "--eval-fraction", "0.2", "--eval-every", "64"
    )
    for key in ("eval_loss", "eval_token_accuracy"):
        assert evaluated[key] == pytest.approx(float(last[key]), rel=1e-5), key
    _, whole = run_and_eval(tmp_path, "whole", "run", "sft", *flags)
    assert {"train_loss", "train_perplexity", "train_token_accuracy"} <= set(whole)
    assert not any(k.startswith("eval_") for k in whole)
