"""SAC: the squashed-Gaussian log-probability, the ensemble critic, the critic target
against a straightforward reference, bad input, and a learning test."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import AffineTransform, TanhTransform

from rlkit.algorithms import ALGORITHMS, SAC, SACConfig
from rlkit.algorithms.sac import EnsembleQ, SACLearner, SquashedGaussian
from rlkit.envs import SpaceSpec, probe_spec
from rlkit.errors import EnvError

SPEC = SpaceSpec((3,), False, 2, (-2.0, 0.0), (2.0, 1.0))


def test_squashed_log_prob_matches_change_of_variables():
    torch.manual_seed(0)
    policy = SquashedGaussian(SPEC, (16,))
    obs = torch.randn(64, 3)
    g = torch.Generator().manual_seed(1)
    action, log_prob = policy.sample(obs, g)
    mean, log_std = policy(obs)
    dist = TransformedDistribution(
        Normal(mean, log_std.exp()), [TanhTransform(), AffineTransform(policy.center, policy.scale)]
    )
    torch.testing.assert_close(log_prob, dist.log_prob(action).sum(-1), rtol=1e-4, atol=1e-3)
    low, high = torch.tensor(SPEC.action_low), torch.tensor(SPEC.action_high)
    assert ((action >= low) & (action <= high)).all()


def test_ensemble_members_are_independent_mlps():
    torch.manual_seed(0)
    q = EnsembleQ(SPEC, (8, 8), members=3)
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    out = q(obs, act)
    assert out.shape == (3, 5)
    for m in range(3):
        x = torch.cat([obs, act], -1)
        for i, layer in enumerate(q.layers):
            x = x @ layer.weight[m] + layer.bias[m]
            x = torch.relu(x) if i < len(q.layers) - 1 else x
        torch.testing.assert_close(out[m], x.squeeze(-1))


def test_critic_target_matches_reference():
    cfg = SACConfig(hidden=(16, 16), alpha=0.3, autotune=False)
    learner = SACLearner(SPEC, cfg)
    g = torch.Generator().manual_seed(2)
    n = 32
    batch = {
        "obs": torch.randn(n, 3, generator=g),
        "actions": torch.rand(n, 2, generator=g),
        "rewards": torch.randn(n, generator=g),
        "next_obs": torch.randn(n, 3, generator=g),
        "terminated": torch.rand(n, generator=g) < 0.3,
        "discounts": torch.full((n,), 0.99),
    }
    state = learner.generator.get_state()
    loss, y = learner.losses(batch)
    learner.generator.set_state(state)  # replay the same next-action noise
    next_action, next_logp = learner.actor.sample(batch["next_obs"], learner.generator)
    q1, q2 = learner.target(batch["next_obs"], next_action)
    soft = torch.minimum(q1, q2) - 0.3 * next_logp
    expected = batch["rewards"] + 0.99 * (1 - batch["terminated"].float()) * soft
    torch.testing.assert_close(y, expected.detach())
    c1, c2 = learner.critic(batch["obs"], batch["actions"])
    expected_loss = 0.5 * (((c1 - expected) ** 2).mean() + ((c2 - expected) ** 2).mean())
    torch.testing.assert_close(loss, expected_loss.detach())


def test_update_moves_alpha_toward_the_entropy_target_and_targets_slowly():
    cfg = SACConfig(hidden=(16, 16), tau=0.5, target_entropy=100.0)  # unreachable: alpha must grow
    learner = SACLearner(SPEC, cfg)
    n = 16
    batch = {
        "obs": torch.randn(n, 3),
        "actions": torch.rand(n, 2),
        "rewards": torch.randn(n),
        "next_obs": torch.randn(n, 3),
        "terminated": torch.zeros(n, dtype=torch.bool),
        "discounts": torch.full((n,), 0.99),
    }
    before = learner.log_alpha.item()
    target_before = [p.clone() for p in learner.target.parameters()]
    out = learner.update(batch)
    assert learner.log_alpha.item() > before
    assert math.isfinite(float(out["critic_loss"])) and math.isfinite(float(out["actor_loss"]))
    for old, new, src in zip(
        target_before, learner.target.parameters(), learner.critic.parameters(), strict=True
    ):
        torch.testing.assert_close(new, old + 0.5 * (src - old))


def test_sac_refuses_discrete_actions_and_suggests_dqn():
    env_id, spec = probe_spec("CartPole")
    with pytest.raises(EnvError, match=r"SAC needs continuous actions .* use DQN"):
        SAC.check_env(env_id, spec)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_sac_learns_pendulum(tmp_path, precision):
    """Learning bar: a deterministic evaluation (10 episodes, every 2,500 steps) reaches a
    mean return >= -200 within 15k env steps; seed 0, the Pendulum preset, in fp32 and with
    bf16 hidden layers (--precision bf16)."""
    import csv

    from rlkit.trainer import Trainer, make_config

    sac = ALGORITHMS.get("sac")
    overrides = {
        "seed": 0,
        "total_steps": 15_000,
        "out": str(tmp_path),
        "name": "r",
        "eval_every": 2500,
        "target_return": -200,
        "precision": precision,
    }
    trainer = Trainer(sac, make_config(sac, "Pendulum", None, overrides))
    assert trainer.run() == 0
    with open(tmp_path / "r" / "metrics.csv") as f:
        evals = [
            (int(r["step"]), float(r["eval_return"])) for r in csv.DictReader(f) if r["eval_return"]
        ]
    assert trainer.reached_target, f"evaluations: {evals}"
    assert evals[-1][0] <= 15_000 and evals[-1][1] >= -200
