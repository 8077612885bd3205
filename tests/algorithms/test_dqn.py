"""DQN: TD targets (double and n-step) against a plain reference, the dueling head,
bad input, and a learning test."""

from __future__ import annotations

import pytest
import torch

from rlkit.algorithms import ALGORITHMS, DQN
from rlkit.algorithms.dqn import QNetwork, td_targets
from rlkit.envs import SpaceSpec, probe_spec
from rlkit.errors import EnvError


def reference_targets(next_q_online, next_q_target, reward, discount, terminated, double):
    out = []
    for i in range(len(reward)):
        online, target = next_q_online[i].tolist(), next_q_target[i].tolist()
        if double:
            best = max(range(len(online)), key=lambda a: online[a])
            value = target[best]
        else:
            value = max(target)
        out.append(float(reward[i]) + (0.0 if terminated[i] else float(discount[i]) * value))
    return torch.tensor(out)


@pytest.mark.parametrize("double", [True, False])
def test_td_targets_match_reference(double):
    g = torch.Generator().manual_seed(0)
    n = 64
    online, target = torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g)
    # n-step: the buffer returns the discounted reward sum and gamma ** steps actually taken
    steps = torch.randint(1, 4, (n,), generator=g)
    reward = torch.randn(n, generator=g)
    discount = 0.9 ** steps.float()
    terminated = torch.rand(n, generator=g) < 0.2
    got = td_targets(online, target, reward, discount, terminated, double)
    torch.testing.assert_close(
        got, reference_targets(online, target, reward, discount, terminated, double)
    )


def test_double_and_vanilla_differ_when_the_networks_disagree():
    online = torch.tensor([[1.0, 0.0]])
    target = torch.tensor([[0.0, 5.0]])
    args = (torch.zeros(1), torch.ones(1), torch.zeros(1, dtype=torch.bool))
    assert td_targets(online, target, *args, double=True).item() == 0.0  # online picks a=0
    assert td_targets(online, target, *args, double=False).item() == 5.0


def test_dueling_head_centers_advantages():
    spec = SpaceSpec((4,), True, 3)
    net = QNetwork(spec, (16,), dueling=True)
    obs = torch.randn(5, 4)
    q = net(obs)
    h = net.trunk(obs)
    assert net.value is not None
    torch.testing.assert_close(q.mean(-1), net.value(h).squeeze(-1))


def test_dqn_refuses_continuous_actions_and_suggests_sac():
    env_id, spec = probe_spec("Pendulum")
    with pytest.raises(
        EnvError, match=r"DQN needs discrete actions .* use SAC \(rlkit run sac --env Pendulum-v1\)"
    ):
        DQN.check_env(env_id, spec)


def test_dqn_learns_cartpole(tmp_path):
    """Learning bar: a greedy evaluation (10 episodes, every 2,500 steps) reaches a mean
    return >= 475 within 50k env steps; seed 0, the CartPole preset. DQN on CartPole
    oscillates after solving it (SB3's does too), so the bar is "reaches", as SB3's
    StopTrainingOnRewardThreshold would judge it."""
    import csv

    from rlkit.trainer import Trainer, make_config

    dqn = ALGORITHMS.get("dqn")
    overrides = {
        "seed": 0,
        "out": str(tmp_path),
        "name": "r",
        "eval_every": 2500,
        "target_return": 475,
    }
    cfg = make_config(dqn, "CartPole", None, overrides)
    assert cfg.total_steps == 50_000
    trainer = Trainer(dqn, cfg)
    assert trainer.run() == 0
    with open(tmp_path / "r" / "metrics.csv") as f:
        evals = [
            (int(r["step"]), float(r["eval_return"])) for r in csv.DictReader(f) if r["eval_return"]
        ]
    assert trainer.reached_target, f"evaluations: {evals}"
    assert evals[-1][0] <= 50_000 and evals[-1][1] >= 475
