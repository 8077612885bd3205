"""The Generator role (rlkit/llm/generator.py) on the tiny model: its per-token
log-probs are the learner's, stops end responses where they should, every sample carries
its weights' version, and sampling is reproducible from the role's state."""

from __future__ import annotations

import torch

from rlkit.algorithms.rlhf.grpo import GRPOConfig
from rlkit.algorithms.rlhf.rl_roles import placed, policy_logps
from rlkit.envs.text import tasks as sort
from rlkit.envs.text.data import Format
from rlkit.envs.text.prompts import collate_prompts, prompts
from rlkit.llm.generator import HFGenerator
from rlkit.llm.models import load_model, load_tokenizer

REWARD = "rlkit.envs.text.tasks:sorted_exact"


def config(**fields) -> GRPOConfig:
    base = {"reward": (REWARD,), "device": "cpu", "group_size": 4, "max_new_tokens": 12}
    return GRPOConfig(**{**base, **fields})


def prompt_batch(n: int = 6, ragged: bool = True):
    tok = load_tokenizer("tiny")
    rows = sort.prompts(n, seed=0)
    if ragged:  # prompts of different lengths: the generator left-pads, the layout right-pads
        rows[0]["prompt"] = "98765"
    data = prompts(rows, Format(tok), "prompt")
    return collate_prompts(data, torch.arange(n), tok.pad_token_id)


def test_samples_carry_the_learners_log_probs_and_a_right_padded_layout():
    """generate's per-token log-probs (with the KV cache, left padded, temperature 0.7)
    equal those of a plain forward pass over the right-padded layout, as the learner
    computes them: the importance ratio starts at 1."""
    cfg = config(temperature=0.7)
    gen = HFGenerator(cfg)
    batch = gen.generate(prompt_batch())
    n = 6 * cfg.group_size
    assert batch["input_ids"].shape[0] == n and len(batch["completion"]) == n
    lengths = batch["mask"].sum(1) - prompt_batch()["prompt_mask"].sum(1).repeat_interleave(4)
    assert torch.equal(lengths, batch["response_length"])
    assert torch.equal(batch["loss_mask"].sum(1), batch["response_length"])
    model = load_model("tiny", "causal", cfg.seed, gen.pad())
    logps, _ = policy_logps(model, batch, cfg.temperature)
    torch.testing.assert_close(placed(logps, batch), batch["logps"], atol=2e-5, rtol=1e-5)
    tok = gen.tokenizer
    for row, mask, text in zip(
        batch["input_ids"], batch["loss_mask"], batch["completion"], strict=True
    ):
        assert tok.decode(row[mask].tolist(), skip_special_tokens=True) == text


def test_stop_token_ids_and_stop_strings_end_responses():
    tok = load_tokenizer("tiny")
    stop = tok.convert_tokens_to_ids("7")  # in no special token's text ("<pad>" has an "a")
    by_id = HFGenerator(config(stop_token_ids=(stop,), max_new_tokens=24)).generate(prompt_batch())
    by_string = HFGenerator(config(stop_strings=("7",), max_new_tokens=24)).generate(prompt_batch())
    for batch in (by_id, by_string):
        ended = [i for i, t in enumerate(batch["completion"]) if "7" in t]
        assert ended, "the untrained model should write a 7 somewhere in 24 tokens"
        for i, text in enumerate(batch["completion"]):
            assert "7" not in text[:-1]  # nothing after the first 7
            last = int(batch["input_ids"][i][batch["loss_mask"][i]][-1])
            stopped = i in ended or last == tok.eos_token_id
            assert bool(batch["truncated"][i]) == (not stopped)
            assert stopped or int(batch["response_length"][i]) == 24
    assert by_id["completion"] == by_string["completion"]  # one stop, two ways to say it


def test_every_sample_carries_the_version_of_the_weights_that_made_it():
    gen = HFGenerator(config())
    learner_model = load_model("tiny", "causal", 1, gen.pad())  # other weights
    before = gen.generate(prompt_batch())
    gen.set_weights({k: v.clone() for k, v in learner_model.state_dict().items()}, 7)
    after = gen.generate(prompt_batch())
    assert before["version"].unique().tolist() == [0] and after["version"].unique().tolist() == [7]
    logps, _ = policy_logps(learner_model, after, 1.0)
    torch.testing.assert_close(placed(logps, after), after["logps"], atol=2e-5, rtol=1e-5)


def test_sampling_is_reproducible_from_the_roles_state():
    a, b = HFGenerator(config()), HFGenerator(config())
    assert a.generate(prompt_batch())["completion"] == b.generate(prompt_batch())["completion"]
    state = a.state_dict()
    first = a.generate(prompt_batch())["completion"]
    a.load_state_dict(state)
    assert a.generate(prompt_batch())["completion"] == first
    other = HFGenerator(config(), replica=1).generate(prompt_batch())["completion"]
    assert other != first  # replicas draw their own streams
    greedy = HFGenerator(config()).greedy(prompt_batch())
    top1 = HFGenerator(config(top_k=1, group_size=1)).generate(prompt_batch())
    assert greedy["completion"] == top1["completion"]
