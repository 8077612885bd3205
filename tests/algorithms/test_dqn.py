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
    discount = 0.9**steps.float()
    terminated = torch.rand(n, generator=g) < 0.2
    got = td_targets(online, target, reward, discount, terminated, double)
    torch.testing.assert_close(got, reference_targets(online, target, reward, discount, terminated, double))


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
    with pytest.raises(EnvError, match=r"DQN needs discrete actions .* use SAC \(rlkit run sac --env Pendulum-v1\)"):
        DQN.check_env(env_id, spec)


def test_dqn_learns_cartpole(tmp_path):
    """Learning bar: greedy evaluation (10 episodes) >= 475 after 50k env steps, seed 0,
    the CartPole preset (stated in algorithms/presets/dqn.yaml)."""
    from rlkit.evaluate import evaluate
    from rlkit.trainer import Trainer, make_config

    dqn = ALGORITHMS.get("dqn")
    cfg = make_config(dqn, "CartPole", None, {"seed": 0, "out": str(tmp_path), "name": "r"})
    assert cfg.total_steps == 50_000
    assert Trainer(dqn, cfg).run() == 0
    result = evaluate(tmp_path / "r", episodes=10)
    assert result.mean >= 475, f"greedy return {result.mean}"
