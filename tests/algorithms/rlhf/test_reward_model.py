"""Reward model (algorithms/rlhf/reward_model.py): Bradley-Terry on pairs whose gold
reward is known; the reward is read at the last real token, whatever the padding."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from rlkit.algorithms.rlhf.batches import collate_pairs
from rlkit.algorithms.rlhf.reward_model import rewards
from rlkit.envs.text.data import Format, pairs
from rlkit.llm.models import load_model, load_tokenizer


@pytest.mark.slow
def test_reward_model_learns_the_gold_preference(tmp_path, tasks, llm_run):
    """1,000 training pairs, 200 held out (more letters "a" is better): held-out pairwise
    accuracy >= 0.85 after 2 epochs of the tiny model, seed 0; `rlkit eval` agrees."""
    rows = tasks.count_pairs(1200)
    train = tasks.write_jsonl(tmp_path / "train.jsonl", rows[:1000])
    held = tasks.write_jsonl(tmp_path / "held.jsonl", rows[1000:])
    flags = ["--eval-data", str(held), "--epochs", "2", "--lr", "1e-3", "--eval-every", "2000"]
    run = llm_run("rm", "rm", train, *flags, "--micro-batch", "32", "--samples-per-step", "32")
    with open(run / "metrics.csv") as f:
        evaluated = [r for r in csv.DictReader(f) if r["eval_accuracy"]]
    assert float(evaluated[0]["eval_accuracy"]) >= 0.85
    from rlkit.cli import main

    assert main(["eval", str(run)]) == 0
    assert json.loads((run / "eval.json").read_text())["eval_accuracy"] >= 0.85


def test_the_reward_is_read_at_the_last_real_token(tasks):
    tok = load_tokenizer("tiny")
    data = pairs(tasks.count_pairs(6), Format(tok), "prompt", "chosen", "rejected")
    model = load_model("tiny", "reward", 0, tok.pad_token_id).eval()
    batch = collate_pairs(data, torch.arange(6), tok.pad_token_id)
    padded = {
        "input_ids": torch.nn.functional.pad(batch["input_ids"], (0, 5), value=tok.pad_token_id),
        "mask": torch.nn.functional.pad(batch["mask"], (0, 5)),
    }
    with torch.no_grad():
        torch.testing.assert_close(rewards(model, batch), rewards(model, padded))
        assert rewards(model, batch).shape == (6, 2)
        # one token shorter: another last token, another reward
        last = int(batch["mask"][0, 0].sum()) - 1
        shorter = {k: v.clone() for k, v in batch.items()}
        shorter["input_ids"][0, 0, last], shorter["mask"][0, 0, last] = tok.pad_token_id, False
        changed = rewards(model, shorter) != rewards(model, batch)
        assert changed[0, 0] and changed.sum() == 1
