"""DPO (algorithms/rlhf/dpo.py): from an SFT start that answers half the time with a
copy instead of the reversal, DPO on (reversal > copy) pairs raises the held-out
preference accuracy and the chosen-minus-rejected log-ratio margin; the reference is a
fragment fed by the runtime's edges, or log-probs precomputed once, with equal numbers."""

from __future__ import annotations

import csv

import pytest
import torch

from rlkit.algorithms.rlhf import DPO
from rlkit.trainer import Trainer, make_config


def pairs_of(ws: list[str]) -> list[dict[str, str]]:
    return [{"prompt": w, "chosen": w[::-1], "rejected": w} for w in ws]


@pytest.mark.slow
def test_dpo_prefers_the_chosen_responses_over_the_sft_start(tmp_path, tasks, llm_run):
    """SFT: 800 demonstrations, every other one a copy (5 epochs: the start answers about
    a third of held-out prompts each way). DPO: 400 pairs, 2 epochs, lr 3e-4, beta 0.1,
    seed 0. Judged with plain transformers on 100 held-out pairs: the policy's preference
    accuracy (log p(chosen) > log p(rejected)) rises to >= 0.9 and by >= 0.2 over the
    start, the chosen-minus-rejected log-ratio margin against the start reaches >= 3
    nats, and greedy answers are right reversals >= 0.25 more often."""
    ws = tasks.words(1)
    demos = tasks.write_jsonl(tmp_path / "demos.jsonl", tasks.reversal_rows(ws[:800], copy_every=2))
    prefs = tasks.write_jsonl(tmp_path / "prefs.jsonl", pairs_of(ws[800:1200]))
    held = pairs_of(ws[-100:])
    fast = ["--lr", "3e-3", "--micro-batch", "32", "--samples-per-step", "32"]
    sft = llm_run("sft", "sft", demos, "--epochs", "5", *fast)
    dpo = llm_run(
        "dpo", "dpo", prefs, "--model", str(sft), "--epochs", "2", *fast[2:], "--lr", "3e-4"
    )

    before = tasks.response_logps(sft / "model", held)
    after = tasks.response_logps(dpo / "model", held)
    accuracy = [float((lp[:, 0] > lp[:, 1]).float().mean()) for lp in (before, after)]
    margin = float(((after - before)[:, 0] - (after - before)[:, 1]).mean())
    assert accuracy[1] >= 0.9 and accuracy[1] > accuracy[0] + 0.2, accuracy
    assert margin >= 3.0, margin
    prompts, answers = [r["prompt"] for r in held], [r["chosen"] for r in held]
    reversed_before = tasks.greedy_accuracy(sft / "model", prompts, answers)
    reversed_after = tasks.greedy_accuracy(dpo / "model", prompts, answers)
    assert reversed_after >= reversed_before + 0.25


def metrics(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("time", "sps")} for r in csv.DictReader(f)]


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_precomputed_reference_log_probs_give_the_same_run(tmp_path, tasks, loss_type):
    """The reference fragment scoring each step on the way to the learner, or its
    log-probs precomputed once at the start (and its model freed): the same metrics."""
    data = tasks.write_jsonl(tmp_path / "p.jsonl", pairs_of(tasks.words()[:48]))
    runs = {}
    for precompute in (False, True):
        overrides = {
            "data": str(data),
            "eval_fraction": 0.25,
            "eval_every": 32,
            "total_steps": 96,
            "samples_per_step": 16,
            "lr": 1e-3,
            "loss_type": loss_type,
            "device": "cpu",
            "precompute_ref": precompute,
            "out": str(tmp_path),
            "name": f"p{precompute}",
        }
        assert Trainer(DPO, make_config(DPO, "", None, overrides)).run() == 0
        runs[precompute] = metrics(tmp_path / f"p{precompute}")
    assert len(runs[True]) == 6 and runs[True][-1]["eval_loss"]
    for a, b in zip(runs[False], runs[True], strict=True):
        for k in a:
            if a[k]:
                torch.testing.assert_close(float(a[k]), float(b[k]), rtol=1e-4, atol=1e-5)
    assert float(runs[True][-1]["reward_margin"]) > 0  # it learned something
