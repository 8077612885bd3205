"""PPO for LLMs (algorithms/rlhf/ppo_llm.py): with the reward model of an `rm` run it
raises the gold score while the KL penalty holds; with a weak KL it over-optimizes the
learned reward (proxy up, gold down); the critic's values sit where GAE reads them; the
adaptive controller moves its coefficient; and a resumed run is the run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlkit import checkpoint
from rlkit.algorithms.rlhf.ppo_llm import PPOLLM, PPOLLMConfig, ppo_advantages
from rlkit.cli import main
from rlkit.envs.text import tasks as sort

GOLD = "rlkit.envs.text.tasks:sorted_exact"


def rl_run(out: Path, name: str, prompts: Path, *flags: str) -> Path:
    args = ["run", "rlhf-ppo", "--prompts", str(prompts), "--device", "cpu", "--out", str(out)]
    assert main([*args, "--name", name, *flags]) == 0
    return out / name


def column(run: Path, key: str) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(r[key]) for r in csv.DictReader(f) if r[key]]


def windows(values: list[float], size: int = 5) -> list[float]:
    return [sum(values[i : i + size]) / size for i in range(len(values) - size + 1)]


@pytest.mark.slow
def test_ppo_raises_the_gold_score_and_a_weak_kl_overoptimizes(tmp_path, llm_run, biased_sort_sft):
    """Sort 4 digits. SFT on a teacher right 30% of the time; a reward model from the rm
    stage on 4,000 preference pairs (the sorted answer over a swap, a shuffle or a changed
    digit; held-out accuracy >= 0.85). PPO from the SFT model, 64 prompts a step, 40 steps,
    seed 0: with kl_coef 0.1 (lr 1e-4) the gold exact match of the samples gains >= 0.15
    in its best 5-step window over the first step, with KL per sequence <= 2 there; with
    kl_coef 0 (lr 5e-4) the learned reward rises by >= 2 while the gold ends >= 0.1 below
    the KL-held run's and >= 0.1 below its own best window (the reward model is
    over-optimized). (The SFT run is the session's, shared with the GRPO test: the
    biased_sort_sft fixture.)"""
    pairs = sort.preferences(4200, seed=4)
    prefs = sort.write_jsonl(tmp_path / "prefs.jsonl", pairs[:4000])
    held = sort.write_jsonl(tmp_path / "prefs_held.jsonl", pairs[4000:])
    fast = ["--lr", "3e-3", "--micro-batch", "32", "--samples-per-step", "32"]
    sft = biased_sort_sft
    rm_flags = ["--model", str(sft), "--eval-data", str(held), "--epochs", "2"]
    rm = llm_run("rm", "rm", prefs, *rm_flags, *fast[2:], "--lr", "1e-3", "--eval-every", "8000")
    assert column(rm, "eval_accuracy")[-1] >= 0.85

    train = sort.write_jsonl(tmp_path / "prompts.jsonl", sort.prompts(2000, seed=2))
    flags = ["--model", str(sft), "--reward-model", str(rm), "--gold-reward", GOLD]
    flags += ["--prompts-per-step", "64", "--max-new-tokens", "8", "--micro-batch", "64"]
    flags += ["--total-steps", "2560", "--critic-lr", "1e-3", "--lr-schedule", "constant"]
    out = tmp_path / "runs"
    held_kl = rl_run(out, "ppo", train, *flags, "--kl-coef", "0.1", "--lr", "1e-4")
    gold, kl = column(held_kl, "gold_reward"), column(held_kl, "kl_sequence")
    best = max(range(len(windows(gold))), key=lambda i: windows(gold)[i])
    print(
        f"gold {gold[0]:.3f} -> best window {windows(gold)[best]:.3f}, KL/seq {windows(kl)[best]:.2f}"
    )
    assert windows(gold)[best] >= gold[0] + 0.15
    assert windows(kl)[best] <= 2.0

    weak = rl_run(out, "weak", train, *flags, "--kl-coef", "0", "--lr", "5e-4")
    proxy, gold = windows(column(weak, "reward")), column(weak, "gold_reward")
    print(
        f"weak KL: reward {proxy[0]:.2f} -> {proxy[-1]:.2f}, gold {gold[0]:.3f} -> {windows(gold)[-1]:.3f}"
    )
    assert proxy[-1] >= proxy[0] + 2.0
    # the over-optimized run ends below the KL-held one and below its own best window
    # (its end against its own first step depends on the CPU's float kernels: with the
    # same seed it ended 0.03 above it on an AMD EPYC, where these margins were 0.2 and 0.13)
    assert windows(gold)[-1] <= windows(column(held_kl, "gold_reward"))[-1] - 0.1
    assert windows(gold)[-1] <= max(windows(gold)) - 0.1


def test_the_penalty_and_the_reward_reach_gae_at_their_tokens():
    """KL penalty on every response token, the reward on the last one, values from the
    critic: the advantages are GAE's over those (gamma 1, lambda 1: returns are the
    reward-to-go), zero outside the responses."""
    cfg = PPOLLMConfig(gamma=1.0, gae_lambda=1.0, norm_adv=False, kl_estimator="k1")
    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 1, 0]], dtype=torch.bool)
    batch = {
        "loss_mask": mask,
        "logps": torch.tensor([[0.0, -1.0, -2.0, -1.0, 0.0], [0.0, 0.0, -1.0, -1.0, 0.0]]),
        "ref_logps": torch.tensor([[0.0, -1.5, -1.0, -1.0, 0.0], [0.0, 0.0, -2.0, -1.0, 0.0]]),
        "values": torch.tensor([[0.0, 0.3, 0.2, 0.1, 0.0], [0.0, 0.0, 0.5, 0.4, 0.0]]),
        "reward": torch.tensor([2.0, -1.0]),
        "response_length": torch.tensor([3, 2]),
    }
    out = ppo_advantages(cfg, batch, kl_coef=0.5)
    token_rewards = [[0.5 * -0.5, 0.5 * 1.0, 2.0], [0.5 * -1.0, -1.0]]
    for i, r in enumerate(token_rewards):
        to_go = [sum(r[t:]) for t in range(len(r))]
        torch.testing.assert_close(out["returns"][i][mask[i]], torch.tensor(to_go))
        torch.testing.assert_close(
            out["advantages"][i][mask[i]], torch.tensor(to_go) - batch["values"][i][mask[i]]
        )
    assert float(out["advantages"][~mask].abs().max()) == 0.0


def test_the_adaptive_controller_moves_towards_its_target(tmp_path):
    data = sort.write_jsonl(tmp_path / "p.jsonl", sort.prompts(16, seed=0))
    cfg = PPOLLMConfig(prompts=str(data), reward=(GOLD,), kl_control="adaptive", kl_target=2.0)
    cfg.kl_horizon, cfg.prompts_per_step = 100, 10  # 10 samples a step: at most 2% a step
    stage = PPOLLM.create(cfg)
    stage.after_step({"kl_sequence": 8.0})  # far above the target: +20% x 10 / 100
    assert stage.kl_coef == pytest.approx(0.05 * 1.02)
    stage.after_step({"kl_sequence": 1.8})  # 10% below: -0.1 x 10 / 100
    assert stage.kl_coef == pytest.approx(0.05 * 1.02 * 0.99)


def test_ctrl_c_and_resume_continue_exactly_with_the_critic_and_the_controller(
    tmp_path, ctrl_c_in_step
):
    """12 prompts, 2 a step, 2 samples each, 6 steps; adaptive KL; Ctrl-C in step 3.
    Resumed: every metrics row (the critic's and kl_coef's too) and the final weights are
    those of the run that was never interrupted; the controller's state was saved."""
    from rlkit.trainer import Trainer, make_config

    data = sort.write_jsonl(tmp_path / "p.jsonl", sort.prompts(12, seed=0))
    fn = tmp_path / "shorter.py"
    fn.write_text(
        "def shorter(prompts, completions, **c):\n    return [-len(x) / 10 for x in completions]\n"
    )
    fields = {
        "prompts": str(data),
        "reward": f"{fn}:shorter",
        "prompts_per_step": 2,
        "group_size": 2,
        "max_new_tokens": 6,
        "micro_batch": 4,
        "lr": 1e-3,
        "critic_lr": 1e-3,
        "kl_control": "adaptive",
        "kl_horizon": 40,
        "kl_target": 0.5,
        "epochs": 1,
        "checkpoint_every": 1000,
        "device": "cpu",
        "out": str(tmp_path),
    }
    whole = make_config(PPOLLM, "", None, {**fields, "name": "whole"})
    assert Trainer(PPOLLM, whole).run() == 0
    cut = make_config(PPOLLM, "", None, {**fields, "name": "cut"})
    assert Trainer(ctrl_c_in_step(PPOLLM, 3), cut).run() == 130
    driver = checkpoint.load(tmp_path / "cut" / "checkpoint.pt", "rlhf-ppo")["state"]["driver"]
    assert driver["kl_coef"] != 0.05 and driver["sampler"]["position"] == 6
    assert Trainer(PPOLLM, cut, tmp_path / "cut").run(resume=True) == 0
    for key in ("reward", "kl_sequence", "kl_coef", "critic_value_loss", "objective", "lr"):
        assert column(tmp_path / "cut", key) == column(tmp_path / "whole", key), key
    assert len(column(tmp_path / "whole", "reward")) == 6
    a, b = (load_file(tmp_path / run / "model" / "model.safetensors") for run in ("whole", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)
