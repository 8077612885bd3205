"""GAE against a naive per-episode reference, with truncations and terminations."""

import pytest
import torch

from rlkit.algorithms.advantages import ADVANTAGES, gae


def naive_gae(rewards, values, terminated, truncated, bootstrap, last_value, gamma, lam):
    """Split each env's trajectory into episode pieces and sum discounted TD errors in each.

    `bootstrap[i, t]` is V(final obs) for a truncated step; `last_value[i]` the value of the
    observation after the rollout.
    """
    envs, steps = rewards.shape
    adv = torch.zeros(envs, steps, dtype=torch.float64)
    for i in range(envs):
        start = 0
        for t in range(steps):
            if terminated[i, t] or truncated[i, t] or t == steps - 1:
                piece = range(start, t + 1)
                deltas = []
                for k in piece:
                    if k < t:
                        v_next = values[i, k + 1]
                    elif terminated[i, k]:
                        v_next = 0.0
                    elif truncated[i, k]:
                        v_next = bootstrap[i, k]
                    else:
                        v_next = last_value[i]
                    deltas.append(rewards[i, k] + gamma * v_next - values[i, k])
                for j, k in enumerate(piece):
                    adv[i, k] = sum((gamma * lam) ** n * d for n, d in enumerate(deltas[j:]))
                start = t + 1
    return adv


@pytest.mark.parametrize("seed", range(5))
def test_gae_matches_naive_reference(seed):
    g = torch.Generator().manual_seed(seed)
    envs, steps, gamma, lam = 3, 17, 0.97, 0.9
    rewards = torch.randn(envs, steps, generator=g, dtype=torch.float64)
    values = torch.randn(envs, steps, generator=g, dtype=torch.float64)
    u = torch.rand(envs, steps, generator=g)
    terminated, truncated = u < 0.12, (u >= 0.12) & (u < 0.24)
    bootstrap = torch.randn(envs, steps, generator=g, dtype=torch.float64)
    last_value = torch.randn(envs, generator=g, dtype=torch.float64)
    dones = terminated | truncated
    # next_values as the on-policy actor builds them
    next_values = torch.cat([values[:, 1:], last_value[:, None]], 1)
    next_values = torch.where(dones, torch.where(truncated, bootstrap, 0.0), next_values)

    adv, returns = gae(rewards, values, next_values, dones, gamma, lam)
    expected = naive_gae(rewards, values, terminated, truncated, bootstrap, last_value, gamma, lam)
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(returns, expected + values)
    assert terminated.any() and truncated.any()


def test_lambda_one_gives_discounted_returns_minus_values():
    rewards = torch.ones(1, 4, dtype=torch.float64)
    values = torch.zeros(1, 4, dtype=torch.float64)
    dones = torch.tensor([[False, False, False, True]])
    adv, _ = gae(rewards, values, torch.zeros(1, 4, dtype=torch.float64), dones, 0.5, 1.0)
    torch.testing.assert_close(adv, torch.tensor([[1.875, 1.75, 1.5, 1.0]], dtype=torch.float64))


def test_registry_holds_gae():
    assert ADVANTAGES.get("GAE") is gae
