"""The policy learner and the reference (algorithms/rlhf/rl_roles.py) with GRPO's loss:
the aggregations are the formulas they claim, the step does not depend on how the
minibatch is cut into micro-batches, and the reference's log-probs are the model's."""

from __future__ import annotations

import pytest
import torch

from rlkit.algorithms.rlhf.estimators import KL_ESTIMATORS
from rlkit.algorithms.rlhf.grpo import GRPO, GRPOConfig
from rlkit.algorithms.rlhf.rl_roles import PolicyLearner, TokenReference, placed, policy_logps
from rlkit.envs.text.rewards import RewardScorer
from rlkit.llm.generator import HFGenerator
from rlkit.llm.models import load_model

REWARD = "rlkit.envs.text.tasks:sorted_exact"


def config(**fields) -> GRPOConfig:
    base = {"reward": (REWARD,), "device": "cpu", "group_size": 4, "max_new_tokens": 10}
    return GRPOConfig(**{**base, "lr": 1e-3, **fields})


def joined(cfg: GRPOConfig, prompt_batch) -> dict:
    """A step's samples as the learner gets them: responses, reference log-probs, rewards
    (random ones, so the groups have something to learn)."""
    gen = HFGenerator(cfg)
    batch = gen.generate(prompt_batch)
    ref = TokenReference(cfg, gen.pad()).score(batch)
    scored = RewardScorer(cfg).score(batch)
    scored["reward"] = torch.rand(len(scored["reward"]), generator=torch.Generator().manual_seed(1))
    return {**batch, **ref, **scored}


@pytest.fixture
def prompt_batch():
    from rlkit.envs.text import tasks as sort
    from rlkit.envs.text.data import Format
    from rlkit.envs.text.prompts import collate_prompts, prompts
    from rlkit.llm.models import load_tokenizer

    tok = load_tokenizer("tiny")
    data = prompts(sort.prompts(4, seed=0), Format(tok), "prompt")
    return collate_prompts(data, torch.arange(4), tok.pad_token_id)


def test_the_reference_scores_with_the_starting_model(prompt_batch):
    cfg = config()
    batch = joined(cfg, prompt_batch)
    model = load_model("tiny", "causal", cfg.seed, 0)
    logps, _ = policy_logps(model, batch, cfg.temperature)
    torch.testing.assert_close(batch["ref_logps"], placed(logps, batch), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("aggregation", ["token-mean", "sequence-mean", "dr-grpo"])
def test_loss_aggregations_are_their_formulas(prompt_batch, aggregation):
    """GRPO's loss (summed, then divided by the step's units as the learner does) against
    a per-sample loop over each response's token losses."""
    cfg = config(loss_aggregation=aggregation, kl_coef=0.1)
    batch = GRPO.advantages(cfg, joined(cfg, prompt_batch), 0.0)
    model = load_model("tiny", "causal", cfg.seed + 5, 0)  # not the sampler: ratios != 1
    loss, _ = GRPO.loss(cfg, model, batch)
    got = loss / GRPO.units(batch)
    per_sample = []
    logps, _ = policy_logps(model, batch, cfg.temperature)
    full = placed(logps, batch)
    for i in range(len(batch["reward"])):
        m = batch["loss_mask"][i]
        lp, old, ref = full[i][m], batch["logps"][i][m], batch["ref_logps"][i][m]
        adv = batch["advantages"][i][m]
        ratio = (lp - old).exp()
        clipped = ratio.clamp(0.8, 1.2)
        token = torch.max(-adv * ratio, -adv * clipped) + 0.1 * KL_ESTIMATORS.get("k3")(lp, ref)
        per_sample.append(token)
    if aggregation == "token-mean":
        want = torch.cat(per_sample).mean()
    elif aggregation == "sequence-mean":
        want = torch.stack([t.mean() for t in per_sample]).mean()
    else:
        want = torch.cat(per_sample).sum() / (len(per_sample) * cfg.max_new_tokens)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def first_moments(learner: PolicyLearner) -> list[torch.Tensor]:
    """Adam's first moments: linear in the gradients (the weights are not: Adam divides
    rounding noise by tiny second moments)."""
    return [learner.optimizer.state[p]["exp_avg"] for p in learner.params]


def test_the_step_does_not_depend_on_the_micro_batch(prompt_batch):
    """The same step with micro-batches of 16 (no accumulation), 4 and 2 samples gives the
    same gradients; so does a step in 2 minibatches of 8 whichever their micro-batch."""
    cfg = config(micro_batch=16)
    batch = joined(cfg, prompt_batch)
    moments = []
    for fields in ({"micro_batch": 16}, {"micro_batch": 4}, {"micro_batch": 2}):
        learner = PolicyLearner(GRPO, config(**fields), 0, 10)
        metrics = GRPO.learner_metrics(learner.learn(dict(batch)))
        moments.append(first_moments(learner))
        assert metrics["ratio"] == pytest.approx(1.0, abs=1e-5)  # on-policy: the first ratio is 1
    for other in moments[1:]:
        for a, b in zip(other, moments[0], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-8)
    split = [PolicyLearner(GRPO, config(micro_batch=m, minibatch_size=8), 0, 10) for m in (8, 2)]
    for learner in split:
        learner.learn(dict(batch))
        assert learner.updates == 2
    for a, b in zip(*(first_moments(s) for s in split), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-7)


def test_recomputed_log_probs_give_truncated_importance_weights(prompt_batch):
    """With --recompute-logps the learner's own log-probs become pi_old and the engine's
    are kept aside; tokens the engine found 1 nat less likely than the learner get the
    capped weight (e^1 > --tis-cap 2), tokens it found 0.3 nat likelier get e^-0.3; the
    policy term of the loss is weighed by them, token by token."""
    cfg = config(recompute_logps="on", tis_cap=2.0, kl_coef=0.0)
    batch = joined(cfg, prompt_batch)
    mask = batch["loss_mask"]
    up = torch.zeros_like(mask)
    up[:, ::2] = True  # every other position
    up &= mask
    engine = batch["logps"] - 1.0 * up + 0.3 * (mask & ~up)
    learner = PolicyLearner(GRPO, cfg, 0, 10)
    out, metrics = learner.recompute({**batch, "logps": engine})
    torch.testing.assert_close(out["logps"], batch["logps"], atol=2e-5, rtol=0)
    assert torch.equal(out["engine_logps"], engine)
    expected = torch.where(up, 2.0, torch.exp(torch.tensor(-0.3))) * mask
    torch.testing.assert_close(out["tis_weight"], expected, atol=1e-4, rtol=0)
    assert metrics["logp_diff_max"] == pytest.approx(1.0, abs=1e-4)
    assert metrics["tis_clipped_fraction"] == pytest.approx(float(up.sum() / mask.sum()))
    adv = GRPO.advantages(cfg, out, 0.0)
    _, stats = GRPO.loss(cfg, learner.model, adv)  # ratio 1: the policy term is -A w
    naive = -(adv["advantages"] * out["tis_weight"])[mask].sum()
    assert float(stats["policy_loss"]) == pytest.approx(float(naive), abs=1e-4)
    off = config(recompute_logps="on", tis=False)
    out, metrics = PolicyLearner(GRPO, off, 0, 10).recompute({**batch, "logps": engine})
    assert "tis_weight" not in out and "tis_weight" not in metrics
    assert metrics["logp_diff_max"] == pytest.approx(1.0, abs=1e-4)


def test_only_the_vllm_engine_recomputes_by_default():
    assert not config().recomputes()
    assert config(recompute_logps="on").recomputes()
    assert not config(generator="hf", recompute_logps="off").recomputes()


@pytest.mark.parametrize("loss_type", ["dapo", "gspo", "cispo"])
def test_each_loss_type_through_grpo_is_its_formula_with_its_aggregation(prompt_batch, loss_type):
    """GRPO's loss with --loss-type (clip range [1 - 0.2, 1 + 0.28]) against a per-sample
    loop: DAPO's clipped ratio as a token mean, GSPO's one ratio per sample as a mean of
    sample means, CISPO's -clip(r) A log pi as a token mean."""
    cfg = config(loss_type=loss_type, clip_high=0.28, kl_coef=0.0)
    batch = GRPO.advantages(cfg, joined(cfg, prompt_batch), 0.0)
    model = load_model("tiny", "causal", cfg.seed + 5, 0)  # not the sampler: ratios != 1
    loss, _ = GRPO.loss(cfg, model, batch)
    got = loss / GRPO.units(batch)
    logps, _ = policy_logps(model, batch, cfg.temperature)
    full = placed(logps, batch)
    per_sample = []
    for i in range(len(batch["reward"])):
        m = batch["loss_mask"][i]
        lp, old, adv = full[i][m], batch["logps"][i][m], batch["advantages"][i][m]
        if loss_type == "gspo":
            s = (lp - old).mean().exp()
            per_sample.append(torch.max(-adv[0] * s, -adv[0] * s.clamp(0.8, 1.28)).expand(len(lp)))
        elif loss_type == "cispo":
            per_sample.append(-(lp - old).exp().clamp(0.8, 1.28) * adv * lp)
        else:
            ratio = (lp - old).exp()
            per_sample.append(torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.28)))
    if loss_type == "gspo":
        want = torch.stack([t.mean() for t in per_sample]).mean()
    else:
        want = torch.cat(per_sample).mean()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_overlong_shaping_and_filtering_enter_the_advantages(prompt_batch):
    """DAPO's soft overlong penalty lowers the rewards of responses within --overlong-buffer
    tokens of --max-new-tokens before the group advantages; --overlong-filter takes the
    truncated responses out of the loss and its token count."""
    cfg = config(overlong_buffer=4, overlong_penalty=1.0, overlong_filter=True)
    batch = joined(cfg, prompt_batch)
    batch["response_length"] = torch.tensor([10, 8, 6, 2] * 4)  # penalties 1, 0.5, 0, 0
    batch["truncated"] = torch.tensor([True, False, False, False] * 4)
    out = GRPO.advantages(cfg, batch, 0.0)
    shaped = batch["reward"] - torch.tensor([1.0, 0.5, 0.0, 0.0] * 4)
    from rlkit.algorithms.rlhf.estimators import grpo

    want = grpo(shaped, 4)[:, None] * batch["loss_mask"] * ~batch["truncated"][:, None]
    torch.testing.assert_close(out["advantages"], want)
    assert out["units"][::4].eq(0).all() and out["units"][1::4].gt(0).all()
    assert not out["token_weight"][::4].any()


def test_token_budget_micro_batches_give_the_padded_loss(prompt_batch):
    """--max-tokens-per-micro-batch packs samples end to end in rows of at most that many
    tokens, positions restarting at each: the learner's step (loss and gradients) equals
    the padded one's, and the packed log-probs are the padded ones (no attention leaks
    across samples)."""
    from rlkit.algorithms.rlhf.packing import token_micro_batches

    cfg = config(micro_batch=16)
    batch = GRPO.advantages(cfg, joined(cfg, prompt_batch), 0.0)
    lengths = batch["mask"].sum(1)
    packed = token_micro_batches(batch, 40)
    assert len(packed) > 1 and all(p["input_ids"].shape[1] <= 40 for p in packed)
    assert sum(int(p["mask"].sum()) for p in packed) == int(lengths.sum())
    assert sum(p["input_ids"].shape[1] for p in packed) == int(lengths.sum())  # no pads
    model = load_model("tiny", "causal", cfg.seed, 0)
    padded, _ = policy_logps(model, batch, 1.0)
    joined_logps = torch.cat([policy_logps(model, p, 1.0)[0] for p in packed])
    torch.testing.assert_close(joined_logps, padded, atol=1e-5, rtol=1e-5)
    results = []
    for fields in ({"micro_batch": 16}, {"max_tokens_per_micro_batch": 40}):
        learner = PolicyLearner(GRPO, config(**fields), 0, 10)
        metrics = GRPO.learner_metrics(learner.learn(joined(cfg, prompt_batch)))
        results.append((metrics["objective"], first_moments(learner)))
    assert results[0][0] == pytest.approx(results[1][0], abs=1e-6)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-8)
