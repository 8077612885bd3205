"""The learner base: every learner kind derives from it; the LR schedule's values; the
one seed formula; the common checkpoint state."""

from __future__ import annotations

import math

import pytest
import torch

from rlkit.algorithms import PPO, PPOConfig
from rlkit.algorithms.dqn import DQNConfig, DQNLearner
from rlkit.algorithms.learner import LearnerBase, replica_seed, scheduled_lr
from rlkit.algorithms.multi_agent_roles import MultiAgentLearner
from rlkit.algorithms.off_policy_roles import OffPolicyLearnerBase
from rlkit.algorithms.on_policy_roles import OnPolicyLearner
from rlkit.algorithms.rlhf.ppo_llm import CriticLearner
from rlkit.algorithms.rlhf.rl_roles import PolicyLearner
from rlkit.algorithms.rlhf.roles import LLMLearner
from rlkit.algorithms.sac import SACLearner
from rlkit.envs import SpaceSpec


@pytest.mark.parametrize(
    "learner",
    [
        OnPolicyLearner,
        MultiAgentLearner,
        OffPolicyLearnerBase,
        DQNLearner,
        SACLearner,
        LLMLearner,
        PolicyLearner,
        CriticLearner,
    ],
)
def test_every_learner_kind_derives_from_the_one_base(learner: type) -> None:
    assert issubclass(learner, LearnerBase)


def test_the_lr_schedules() -> None:
    assert scheduled_lr(1.0, "constant", 7, 10) == 1.0
    assert [scheduled_lr(2.0, "linear", u, 4) for u in range(5)] == [2.0, 1.5, 1.0, 0.5, 0.0]
    assert scheduled_lr(1.0, "linear", 12, 10) == 0.0  # past the end: no negative rate
    assert scheduled_lr(1.0, "cosine", 0, 10) == 1.0
    assert scheduled_lr(1.0, "cosine", 5, 10) == pytest.approx(0.5)
    assert scheduled_lr(1.0, "cosine", 10, 10) == pytest.approx(0.0, abs=1e-12)
    # warm-up: (u + 1) / warmup of the decayed rate
    assert [scheduled_lr(1.0, "constant", u, 100, 4) for u in range(5)] == [
        0.25,
        0.5,
        0.75,
        1.0,
        1.0,
    ]
    assert scheduled_lr(1.0, "cosine", 1, 4, 2) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_ppo_anneal_is_the_linear_schedule() -> None:
    cfg = PPOConfig(num_envs=2, num_steps=4, total_steps=32, lr=1e-3, hidden=(8,))
    learner = OnPolicyLearner(PPO, SpaceSpec((3,), True, 2, (), ()), cfg)
    assert learner.total_updates == 4
    learner.updates = 3
    assert learner.set_lr(cfg.lr, "linear") == cfg.lr * (1.0 - 3 / 4)
    assert learner.optimizer.param_groups[0]["lr"] == cfg.lr * (1.0 - 3 / 4)


def test_replica_seeds_and_checkpoint_state() -> None:
    assert replica_seed(5, 0) == 6 and replica_seed(5, 1) == 5 + 1 + 7919
    spec = SpaceSpec((4,), True, 3, (), ())
    learner = DQNLearner(spec, DQNConfig(hidden=(8,), seed=5))
    expected = torch.Generator().manual_seed(6).get_state()
    assert torch.equal(learner.generator.get_state(), expected)
    state = learner.state_dict()
    assert {"q", "target", "optimizer", "updates", "generator"} <= set(state)
    learner.generator.manual_seed(123)
    learner.updates = 9
    learner.load_state_dict(state)
    assert learner.updates == 0
    assert torch.equal(learner.generator.get_state(), expected)
