"""--precision bf16: hidden layers in bfloat16 under autocast, output layers and losses in
fp32, and an update that stays close to the fp32 one for every learner."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from rlkit.algorithms import DQN, PPO, SAC, DQNConfig, PPOConfig, SACConfig
from rlkit.algorithms.networks import full_precision
from rlkit.algorithms.on_policy_roles import OnPolicyLearner
from rlkit.batch import Batch
from rlkit.envs import SpaceSpec
from rlkit.errors import ConfigError
from rlkit.trainer import make_config

CONTINUOUS = SpaceSpec((5,), False, 2, (-1.0, -1.0), (1.0, 1.0))
DISCRETE = SpaceSpec((5,), True, 3)


def test_output_layers_stay_fp32_under_autocast():
    torch.manual_seed(0)
    hidden, head = torch.nn.Linear(5, 32), torch.nn.Linear(32, 1)
    x = torch.randn(8, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = hidden(x)
        out = full_precision(head, h)
    assert h.dtype == torch.bfloat16 and out.dtype == torch.float32
    torch.testing.assert_close(out, head(h.float()))  # the bf16 activations, an fp32 head
    assert full_precision(head, x @ torch.ones(5, 32)).dtype == torch.float32  # no autocast


def off_policy_batch(spec: SpaceSpec, n: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    action = (
        torch.randint(0, spec.action_dim, (n,), generator=g)
        if spec.discrete
        else torch.rand(n, spec.action_dim, generator=g) * 2 - 1
    )
    return {
        "obs": torch.randn(n, 5, generator=g),
        "next_obs": torch.randn(n, 5, generator=g),
        "actions": action,
        "rewards": torch.randn(n, generator=g),
        "terminated": torch.rand(n, generator=g) < 0.1,
        "discounts": torch.full((n,), 0.99),
    }


def one_update(kind: str, precision: str, rollout: Batch) -> tuple[float, torch.Tensor]:
    """(the update's loss, how far it moved the parameters) for one learner in `precision`."""
    common: dict[str, Any] = dict(hidden=(64, 64), precision=precision, torch_threads=1, seed=3)
    if kind == "ppo":
        ppo = OnPolicyLearner(
            PPO, CONTINUOUS, PPOConfig(num_envs=2, num_steps=32, minibatch_size=32, **common)
        )
        before = ppo.flat.get().clone()
        metrics = ppo.update(rollout)
        return float(metrics["loss"]), ppo.flat.get() - before
    if kind == "dqn":
        dqn = DQN.learner_cls(DISCRETE, DQNConfig(batch_size=64, **common))
        before = dqn.flat.get().clone()
        out = dqn.update(off_policy_batch(DISCRETE))
        return float(out["loss"]), dqn.flat.get() - before
    sac = SAC.learner_cls(CONTINUOUS, SACConfig(batch_size=64, **common))
    params = [*sac.critic.parameters(), *sac.actor.parameters(), sac.log_alpha]
    before = torch.cat([p.detach().reshape(-1) for p in params])
    out = sac.update(off_policy_batch(CONTINUOUS))
    return float(out["critic_loss"]), torch.cat([p.detach().reshape(-1) for p in params]) - before


@pytest.mark.parametrize("kind", ["ppo", "dqn", "sac"])
def test_a_bf16_update_stays_close_to_the_fp32_update(kind, make_rollout):
    rollout = make_rollout(2, 32, obs_dim=5, act_dim=2, seed=2)
    loss32, step32 = one_update(kind, "fp32", rollout)
    loss16, step16 = one_update(kind, "bf16", rollout)
    assert math.isfinite(loss16)
    assert loss16 == pytest.approx(loss32, rel=0.03)
    assert not torch.equal(step16, step32)  # the arithmetic did change, the step hardly
    assert (step16 - step32).norm() < 0.2 * step32.norm()


def test_an_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="precision"):
        make_config(SAC, "Pendulum", None, {"precision": "fp16"})
