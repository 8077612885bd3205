"""Advantage and KL estimators (algorithms/rlhf/estimators.py) against naive loops and
exact values."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from rlkit.algorithms.rlhf.estimators import (
    EPS,
    KL_ESTIMATORS,
    OUTCOME_ADVANTAGES,
    token_gae,
    zero_variance_fraction,
)

G = 4
REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 2.0, -1.0, 0.0, 3.0])


def naive_grpo(r: list[float], g: int, scale: bool) -> list[float]:
    out = []
    for start in range(0, len(r), g):
        group = r[start : start + g]
        mean, std = statistics.mean(group), statistics.stdev(group)
        out += [(x - mean) / (std + EPS) if scale else x - mean for x in group]
    return out


def naive_rloo(r: list[float], g: int) -> list[float]:
    out = []
    for start in range(0, len(r), g):
        group = r[start : start + g]
        out += [x - (sum(group) - x) / (g - 1) for x in group]
    return out


def naive_reinforce_pp(r: list[float]) -> list[float]:
    mean, std = statistics.mean(r), statistics.stdev(r)
    return [(x - mean) / (std + EPS) for x in r]


@pytest.mark.parametrize("scale", [True, False])
def test_outcome_advantages_match_naive_loops(scale):
    r = REWARDS.tolist()
    got = OUTCOME_ADVANTAGES.get("grpo")(REWARDS, G, scale)
    torch.testing.assert_close(got, torch.tensor(naive_grpo(r, G, scale)))
    torch.testing.assert_close(
        OUTCOME_ADVANTAGES.get("rloo")(REWARDS, G, scale), torch.tensor(naive_rloo(r, G))
    )
    pp = OUTCOME_ADVANTAGES.get("reinforce++")(REWARDS, G, True)
    torch.testing.assert_close(pp, torch.tensor(naive_reinforce_pp(r)))
    assert float(OUTCOME_ADVANTAGES.get("grpo")(REWARDS, G, scale)[4:8].abs().max()) == 0.0


def test_the_zero_variance_fraction_counts_groups_without_signal():
    assert zero_variance_fraction(REWARDS, G) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no whole number of groups"):
        OUTCOME_ADVANTAGES.get("grpo")(REWARDS[:10], G, True)


def naive_gae(rewards: list[float], values: list[float], gamma: float, lam: float):
    adv, running = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(values) else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
    return adv, [a + v for a, v in zip(adv, values, strict=True)]


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 1.0), (0.99, 0.0)])
def test_token_gae_matches_a_loop_over_each_response(gamma, lam):
    """Responses of different lengths at different offsets (prompts before them, pads
    after): GAE over the response tokens only, the value after the last one 0."""
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(3, 9, generator=g), torch.randn(3, 9, generator=g)
    mask = torch.zeros(3, 9, dtype=torch.bool)
    spans = [(2, 8), (4, 9), (1, 3)]
    for i, (a, b) in enumerate(spans):
        mask[i, a:b] = True
    adv, ret = token_gae(rewards, values, mask, gamma, lam)
    for i, (a, b) in enumerate(spans):
        want_adv, want_ret = naive_gae(
            rewards[i, a:b].tolist(), values[i, a:b].tolist(), gamma, lam
        )
        torch.testing.assert_close(adv[i, a:b], torch.tensor(want_adv))
        torch.testing.assert_close(ret[i, a:b], torch.tensor(want_ret))
    assert float(adv[~mask].abs().max()) == 0.0 and float(ret[~mask].abs().max()) == 0.0


def test_kl_estimators_match_their_formulas_and_the_exact_kl():
    """Per token against the formulas; in expectation over tokens sampled from pi, k1 and
    k3 give KL(pi || ref) of two categorical distributions (k3 is never negative)."""
    logp, ref = torch.tensor([-0.5, -2.0, -1.0]), torch.tensor([-1.5, -1.0, -1.0])
    for name, formula in {
        "k1": lambda a, b: a - b,
        "k2": lambda a, b: 0.5 * (a - b) ** 2,
        "k3": lambda a, b: math.exp(b - a) - (b - a) - 1,
    }.items():
        want = torch.tensor(
            [formula(a, b) for a, b in zip(logp.tolist(), ref.tolist(), strict=True)]
        )
        torch.testing.assert_close(KL_ESTIMATORS.get(name)(logp, ref), want)
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    q = torch.tensor([0.25, 0.25, 0.25, 0.25])
    exact = float((p * (p / q).log()).sum())
    draws = torch.multinomial(
        p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0)
    )
    a, b = p.log()[draws], q.log()[draws]
    for name in ("k1", "k3"):
        estimate = float(KL_ESTIMATORS.get(name)(a, b).mean())
        assert estimate == pytest.approx(exact, rel=0.03), name
    assert float(KL_ESTIMATORS.get("k3")(a, b).min()) >= 0.0
