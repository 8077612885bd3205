"""Log-probs of the distribution the sampler drew from (rlkit/llm/logprobs.py, the HF
engine's `decode`, the learner's `policy_logps`): under top-k / top-p they are those of
the truncated, renormalized distribution, written out here as a loop; the engine's and
the learner's agree, so the importance weights are 1; and the masked importance
sampling of `rl_roles.importance_weights` rejects what leaves its band."""

from __future__ import annotations

import math

import pytest
import torch

from rlkit.algorithms.rlhf.grpo import GRPO, GRPOConfig
from rlkit.algorithms.rlhf.rl_roles import PolicyLearner, importance_weights, placed
from rlkit.llm.generator import HFGenerator
from rlkit.llm.logprobs import sampled_logps, target_logits

REWARD = "rlkit.envs.text.tasks:sorted_exact"


def nucleus(logits: list[float], temperature: float, k: int, p: float) -> tuple[list, list]:
    """softmax(logits / T); the k likeliest kept and renormalized; then the likeliest kept
    until their mass reaches p: the probabilities and the kept tokens, likeliest first."""
    scaled = [x / temperature for x in logits]
    top = max(scaled)
    probs = [math.exp(x - top) for x in scaled]
    total = sum(probs)
    probs = [q / total for q in probs]
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept = order[:k] if k else order
    mass = sum(probs[i] for i in kept)
    out, running = [], 0.0
    for i in kept:
        out.append(i)
        running += probs[i] / mass
        if running >= p:
            break
    return probs, out


def naive(logits: list[float], target: int, temperature: float, k: int, p: float) -> float:
    """log p(target) in the truncated distribution, renormalized."""
    probs, kept = nucleus(logits, temperature, k, p)
    assert target in kept, "the target must be drawable"
    return math.log(probs[target] / sum(probs[i] for i in kept))


@pytest.mark.parametrize(("temperature", "k", "p"), [(0.7, 5, 1.0), (1.0, 0, 0.8), (1.3, 8, 0.6)])
def test_log_probs_are_those_of_the_truncated_distribution(temperature, k, p):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 40, generator=g) * 2
    scores = logits / temperature
    targets = scores.argmax(-1)  # always in the nucleus; every other row its least likely
    for i, row in enumerate(logits.tolist()[::2]):
        targets[2 * i] = nucleus(row, temperature, k, p)[1][-1]
    got, processed = sampled_logps(logits, targets, temperature, k, p)
    want = [
        naive(row, int(t), temperature, k, p)
        for row, t in zip(logits.tolist(), targets, strict=True)
    ]
    torch.testing.assert_close(got, torch.tensor(want), atol=1e-5, rtol=1e-5)
    full = torch.log_softmax(scores, -1).gather(-1, targets[:, None])[:, 0]
    assert (got - full).abs().max() > 1e-3  # truncation changed them: the test can tell
    assert torch.isinf(processed).any() and not torch.isinf(got).any()


def config(**fields) -> GRPOConfig:
    base = {"reward": (REWARD,), "device": "cpu", "group_size": 4, "max_new_tokens": 12}
    return GRPOConfig(**{**base, **fields})


def test_engine_and_learner_agree_under_top_k_and_top_p_so_the_weights_are_1():
    """The HF engine's log-probs with temperature 0.7, top-k 6, top-p 0.8 and 3 min new
    tokens are the naive truncated ones of the model's logits (eos banned from a
    response's first 3 tokens); the learner recomputing them (same weights) finds the
    same, so every importance weight is 1 and nothing is rejected."""
    from rlkit.envs.text import tasks as sort
    from rlkit.envs.text.data import Format
    from rlkit.envs.text.prompts import collate_prompts, prompts
    from rlkit.llm.models import load_tokenizer

    tok = load_tokenizer("tiny")
    data = prompts(sort.prompts(4, seed=0), Format(tok), "prompt")
    prompt_batch = collate_prompts(data, torch.arange(4), tok.pad_token_id)
    cfg = config(temperature=0.7, top_k=6, top_p=0.8, recompute_logps="on", is_mask="sequence")
    cfg.min_new_tokens = 3
    gen = HFGenerator(cfg)
    batch = gen.generate(prompt_batch)
    mask = batch["loss_mask"]
    with torch.no_grad():
        logits, targets, _ = target_logits(gen.model, batch)
    place = (mask.long().cumsum(1) - 1)[:, 1:][mask[:, 1:]]  # each target's place in its response
    logits[place < 3, gen.tokenizer.eos_token_id] = -math.inf
    want = [
        naive(row, int(t), 0.7, 6, 0.8) for row, t in zip(logits.tolist(), targets, strict=True)
    ]
    torch.testing.assert_close(
        batch["logps"][:, 1:][mask[:, 1:]], torch.tensor(want), atol=2e-5, rtol=1e-5
    )
    full = torch.log_softmax(logits / 0.7, -1).gather(-1, targets[:, None])[:, 0]
    assert (placed(full, batch) - batch["logps"])[mask].abs().max() > 1e-2  # the old bug shows
    learner = PolicyLearner(GRPO, cfg, gen.pad(), 10)
    learner.model.load_state_dict(gen.model.state_dict())
    out, metrics = learner.recompute(batch)
    torch.testing.assert_close(
        out["tis_weight"][mask], torch.ones(int(mask.sum())), atol=1e-4, rtol=0
    )
    assert metrics["is_rejected_fraction"] == 0.0 and metrics["tis_weight"] == pytest.approx(
        1.0, abs=1e-4
    )


def test_masked_importance_sampling_rejects_what_leaves_the_band():
    """Per-token log-ratios log pi_old - log pi_engine: token masking zeroes the tokens whose
    ratio leaves [0.5, 2]; sequence masking zeroes every token of a sample whose geometric
    mean ratio does; truncation caps what is kept at --tis-cap; the fraction is logged."""
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    log_ratio = torch.tensor([[0.0, 1.0, 0.0, 0.0], [-1.0, -1.0, 0.0, 0.0], [0.2, 0.2, 0, 0]])
    token, m = importance_weights(config(is_mask="token", tis_cap=1.5), log_ratio, mask)
    e = math.exp
    want = torch.tensor([[1, 0, 1, 0], [0, 0, 1, 1], [e(0.2), e(0.2), 0, 0]])
    torch.testing.assert_close(token, want.float())
    assert m["is_rejected_fraction"] == pytest.approx(3 / 9)
    sequence, m = importance_weights(config(is_mask="sequence", tis_cap=1.5), log_ratio, mask)
    # sample means of log r: 1/3 (ratio 1.40, kept), -1/2 (0.61, kept), 0.2 (kept) ...
    assert m["is_rejected_fraction"] == 0.0
    narrow = config(is_mask="sequence", is_low=0.7, is_high=1.3, tis=False)
    sequence, m = importance_weights(narrow, log_ratio, mask)
    want = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]])  # 1.40 and 0.61 rejected
    torch.testing.assert_close(sequence, want.float())
    assert m["is_rejected_fraction"] == pytest.approx(2 / 3)
