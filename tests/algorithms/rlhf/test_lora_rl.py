"""LoRA in the RL stages (algorithms/rlhf/rl_roles.py, roles.py) and one load of a model
per process (rlkit/llm/models.py): the reference is the learner's base weights (the same
memory, adapters off) and scores as the base model does; the generators take the merged
weights; LoRA GRPO fixes the biased SFT start as full fine-tuning does; LoRA rlhf-ppo
runs; a run reads its model once and its run directory holds the weights once."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from rlkit.algorithms.rlhf.grpo import GRPO, GRPOConfig
from rlkit.algorithms.rlhf.rl_roles import PolicyLearner, TokenReference, placed, policy_logps
from rlkit.cli import main
from rlkit.envs.text import tasks as sort
from rlkit.envs.text.rewards import RewardScorer
from rlkit.llm import models
from rlkit.llm.generator import HFGenerator

REWARD = "rlkit.envs.text.tasks:sorted_exact"


def rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def prompt_batch():
    from rlkit.envs.text.data import Format
    from rlkit.envs.text.prompts import collate_prompts, prompts

    tok = models.load_tokenizer("tiny")
    data = prompts(sort.prompts(4, seed=0), Format(tok), "prompt")
    return collate_prompts(data, torch.arange(4), tok.pad_token_id)


@pytest.mark.parametrize("quantize", ["off", "nf4"], ids=["lora", "qlora"])
def test_lora_reference_is_the_base_weights_and_generators_get_the_merged_policy(
    prompt_batch, quantize
):
    """One GRPO step with LoRA adapters (rank 4, random rewards; QLoRA: on a 4-bit NF4
    base): only adapters train; the reference holds no weights of its own (its tensors
    are the learner's base ones) and its log-probs after the step are the base's, the
    learner's with its adapters off (without quantization: a freshly loaded model's); the
    merged weights pushed to a generator give the policy's log-probs."""
    cfg = GRPOConfig(reward=(REWARD,), device="cpu", group_size=4, max_new_tokens=8, lr=1e-2)
    cfg.lora_rank, cfg.lora_quantize = 4, quantize
    gen = HFGenerator(cfg)
    learner = PolicyLearner(GRPO, cfg, gen.pad(), total_updates=1)
    reference = TokenReference(cfg, gen.pad())
    assert models.shares_weights(learner.model, reference.model)
    trained = [n for n, p in learner.model.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n for n in trained)
    gen.set_weights(learner.get_weights(), 0)
    batch = gen.generate(prompt_batch)
    scored = RewardScorer(cfg).score(batch)
    scored["reward"] = torch.rand(len(scored["reward"]), generator=torch.Generator().manual_seed(1))
    assert learner.learn({**batch, **reference.score(batch), **scored})["grad_norm"] > 0

    with torch.no_grad(), learner.model.disable_adapter():
        base, _ = policy_logps(learner.model.eval(), batch, cfg.temperature)
    assert torch.equal(reference.score(batch)["ref_logps"], placed(base, batch))
    if quantize == "off":
        fresh = models.load_model("tiny", "causal", cfg.seed, gen.pad()).eval()
        assert torch.equal(policy_logps(fresh, batch, cfg.temperature)[0], base)
    gen.set_weights(learner.get_weights(), 1)
    with torch.no_grad():
        policy, _ = policy_logps(learner.model, batch, cfg.temperature)
        pushed, _ = policy_logps(gen.model, batch, cfg.temperature)
    assert (policy - base).abs().max() > 1e-3  # the adapters moved the policy off the base
    torch.testing.assert_close(pushed, policy, atol=1e-3, rtol=1e-3)


def test_a_run_reads_its_model_once_and_shares_the_exported_weights(tmp_path):
    """A GRPO run on the tiny model (generator, reference, learner in one process): one
    read of the model; the exported weights are the final checkpoint's file (a hard
    link), not a second copy."""
    import gc

    data = sort.write_jsonl(tmp_path / "p.jsonl", sort.prompts(8, seed=0))
    gc.collect()  # an earlier test's models, unreachable, would still serve this run
    before = models.LOADS.get("tiny", 0)
    args = ["run", "grpo", "--prompts", str(data), "--reward", REWARD, "--device", "cpu"]
    args += ["--prompts-per-step", "4", "--group-size", "2", "--max-new-tokens", "4"]
    assert main([*args, "--total-steps", "8", "--out", str(tmp_path), "--name", "r"]) == 0
    # at most one read: none when a model an earlier test of this process still holds
    # (a session fixture's) serves the run, as it may
    assert models.LOADS["tiny"] - before <= 1
    exported = (tmp_path / "r" / "model" / "model.safetensors").stat()
    saved = next((tmp_path / "r" / "checkpoint-files").rglob("model.safetensors")).stat()
    assert exported.st_ino == saved.st_ino and exported.st_nlink == 2


def test_lora_rlhf_ppo_runs_and_exports_a_plain_model(tmp_path):
    """rlhf-ppo with LoRA on the policy (and the critic, which shares the flags): two
    steps, a plain (merged) exported model, adapters in the checkpoint."""
    import transformers

    data = sort.write_jsonl(tmp_path / "p.jsonl", sort.prompts(8, seed=0))
    args = ["run", "rlhf-ppo", "--prompts", str(data), "--reward", REWARD, "--device", "cpu"]
    args += ["--prompts-per-step", "4", "--group-size", "2", "--max-new-tokens", "4"]
    args += ["--lora-rank", "4", "--lr", "1e-2", "--total-steps", "16"]
    assert main([*args, "--out", str(tmp_path), "--name", "r"]) == 0
    logged = rows(tmp_path / "r")
    assert len(logged) == 2 and float(logged[-1]["grad_norm"]) > 0
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "r" / "model")
    assert not any("lora" in n for n, _ in model.named_parameters())
    files = tmp_path / "r" / "checkpoint-files"
    assert next(files.rglob("adapter_model.safetensors")).stat().st_size < 2**20


@pytest.mark.slow
def test_lora_grpo_fixes_a_biased_sft_start(tmp_path, tasks, biased_sort_sft, stop_at_bar):
    """The bar of the full fine-tuning test (test_grpo.py): greedy exact match on 200
    held-out prompts from <= 0.45 to >= 0.8, GRPO with rank-8 LoRA adapters on every
    linear layer (16 prompts x 8 samples, k3 KL 0.02, seed 0), within the same budget of
    12,800 samples, with the mean per-token KL to the SFT model <= 0.5 over the last 10
    steps. LoRA's adapters start at zero and move a rank-8 slice: they take a learning
    rate 10x the full one (3e-3 over the tiny preset's 3e-4). The run stops once the
    samples' gold reward reaches 0.8 (stop_at_bar; measured: step 55 of 100; run whole,
    greedy exact match 0.225 -> 0.81); the greedy bar is judged on the model exported then."""
    train = sort.write_jsonl(tmp_path / "prompts.jsonl", sort.prompts(2000, seed=2))
    held = sort.prompts(200, seed=3)
    prompts, answers = [r["prompt"] for r in held], [r["answer"] for r in held]
    start = tasks.greedy_accuracy(biased_sort_sft / "model", prompts, answers)
    assert start <= 0.45
    flags = ["--model", str(biased_sort_sft), "--reward", REWARD, "--gold-reward", REWARD]
    flags += ["--max-new-tokens", "8", "--micro-batch", "64", "--total-steps", "12800"]
    flags += ["--lora-rank", "8", "--lr", "3e-3"]
    args = ["run", "grpo", "--prompts", str(train), "--device", "cpu", "--out", str(tmp_path)]
    watch = stop_at_bar("gold_reward", 0.8)
    assert main([*args, "--name", "lora", *flags]) == watch.exit_code()
    run = tmp_path / "lora"
    assert watch.reached_at is not None
    end = tasks.greedy_accuracy(run / "model", prompts, answers)
    print(f"LoRA GRPO greedy exact match {start:.3f} -> {end:.3f}")
    assert end >= 0.8, (start, end)
    kl = [float(r["kl"]) for r in rows(run)[-10:]]
    assert sum(kl) / len(kl) <= 0.5, kl


def test_a_quantized_base_without_adapters_is_one_line(tmp_path, capsys):
    """--lora-quantize nf4 quantizes the frozen base under LoRA: without --lora-rank there
    is nothing to train, and the run is refused before anything is written."""
    data = sort.write_jsonl(tmp_path / "p.jsonl", sort.prompts(8, seed=0))
    out = tmp_path / "o"
    args = ["run", "grpo", "--prompts", str(data), "--reward", REWARD, "--out", str(out)]
    assert main([*args, "--lora-quantize", "nf4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lora-quantize" in err[0] and "--lora-rank" in err[0], err
    assert not out.exists()
