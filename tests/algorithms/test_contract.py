"""The template contract a new author relies on: hooks, names given once, inherited
presets, dropped fields, a `start()` that needs no super(), evaluation that sees every
fragment, loss state, and clear errors for what a subclass forgot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from rlkit import checkpoint
from rlkit.algorithms import ALGORITHMS, PPO, OffPolicy, OffPolicyConfig, OnPolicyConfig, PPOConfig
from rlkit.algorithms.on_policy import WEIGHTS, EpochFields
from rlkit.algorithms.ppo import PPOFields
from rlkit.config import BaseConfig, apply_overrides
from rlkit.errors import ConfigError, RegistryError
from rlkit.registry import Registry
from rlkit.trainer import Trainer, build, make_config

TINY = {
    "total_steps": 256,
    "num_steps": 64,
    "num_envs": 1,
    "minibatch_size": 32,
    "epochs": 1,
    "device": "cpu",
}


@dataclass
class LeanConfig(PPOFields, EpochFields, OnPolicyConfig):
    """PPO composed without the group it does not use (overlap)."""


class LeanPPO(PPO):
    config_cls: ClassVar[type[BaseConfig]] = LeanConfig


def test_a_subclass_is_named_once_and_inherits_its_parents_presets():
    assert LeanPPO.name == "leanppo"  # not PPO's: checkpoints would name the wrong algorithm
    registry: Registry[type[PPO]] = Registry("algorithm")

    @registry.register("lean2")
    class Lean2(PPO):
        pass

    assert Lean2.name == "lean2" and registry.get("lean2") is Lean2
    assert LeanPPO.presets()["CartPole"] == PPO.presets()["CartPole"]


def test_a_group_not_composed_is_not_offered_and_is_refused():
    from rlkit.cli import config_parser

    flags = {
        o for a in config_parser("rlkit run leanppo", LeanConfig)._actions for o in a.option_strings
    }
    assert "--overlap" not in flags and "--target-kl" in flags and "--clip-coef" in flags
    with pytest.raises(
        ConfigError,
        match=r"--overlap does not apply to this algorithm \(LeanConfig composes no OverlapFields\)",
    ):
        apply_overrides(LeanConfig(), {"overlap": True})
    assert "overlap" not in LeanConfig().to_dict() and LeanConfig().overlaps() is False
    # a parent's preset that sets a field the config lacks still applies (the field is skipped)
    cfg = make_config(LeanPPO, "CartPole", None, {})
    assert cfg.num_envs == make_config(PPO, "CartPole", None, {}).num_envs


class NoSuperStart(PPO):
    """Overrides start() and calls no super(): the template's setup ran already."""

    def start(self) -> None:
        self.started = True


def test_start_needs_no_super_call():
    built = build(NoSuperStart, make_config(NoSuperStart, "CartPole", None, TINY))
    runtime = built.executor.start(built.placement)
    try:
        built.algorithm.begin(runtime)
        algo = built.algorithm
        assert algo.started and algo.version == 0
        actor, learner = runtime["actor"].instances[0], runtime["learner"].instances[0]  # type: ignore[attr-defined]
        assert torch.equal(actor.flat.get(), learner.flat.get())  # the initial weights were pushed
        assert algo.train_step().steps == 64
        runtime.carry(WEIGHTS.bind(5))
        assert actor.version == 5
    finally:
        runtime.shutdown()


class LearnerPolicyPPO(PPO):
    """Evaluates with the learner's network (a policy that lives in the learner's state)."""

    @classmethod
    def eval_policy(cls, state: dict[str, Any], config: BaseConfig, spec: Any):
        assert isinstance(config, OnPolicyConfig)
        policy = cls.make_policy(config, spec)
        policy.load_state_dict(state["fragments"]["learner"][0]["policy"])
        assert "driver" in state

        def act(obs: np.ndarray) -> np.ndarray:
            action, _, _ = policy.act(torch.as_tensor(obs, dtype=torch.float32), deterministic=True)
            return action.numpy()

        return act


def test_periodic_evaluation_sees_every_fragment(tmp_path):
    overrides = {**TINY, "eval_every": 128, "eval_episodes": 1, "out": str(tmp_path), "name": "e"}
    trainer = Trainer(LearnerPolicyPPO, make_config(LearnerPolicyPPO, "CartPole", None, overrides))
    assert trainer.run() == 0
    assert "eval_return" in (tmp_path / "e" / "metrics.csv").read_text().splitlines()[0]


class RMSpropPPO(PPO):
    @staticmethod
    def make_optimizer(config: Any, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(params, lr=config.lr)


@dataclass
class AdaptiveConfig(PPOConfig):
    kl_target: float = 1e-6
    """Target KL of the adaptive penalty (tiny, so the coefficient must grow)."""


class AdaptiveKL(PPO):
    """PPO with an adaptive KL penalty whose coefficient is state the loss sees."""

    config_cls: ClassVar[type[BaseConfig]] = AdaptiveConfig

    @staticmethod
    def initial_loss_state(config: Any) -> dict[str, Any]:
        return {"kl_coef": 1.0}

    @staticmethod
    def loss(config: Any, policy: Any, batch: Any, state: dict[str, Any]):
        loss, stats = PPO.loss(config, policy, batch)
        return loss + state["kl_coef"] * stats["approx_kl"], stats

    @staticmethod
    def after_update(config: Any, state: dict[str, Any], metrics: dict[str, float]) -> None:
        if metrics["approx_kl"] > 1.5 * config.kl_target:
            state["kl_coef"] *= 2.0
        metrics["kl_coef"] = state["kl_coef"]


def test_optimizer_hook_and_loss_state(tmp_path):
    built = build(RMSpropPPO, make_config(RMSpropPPO, "CartPole", None, TINY))
    runtime = built.executor.start(built.placement)
    try:
        assert isinstance(runtime["learner"].instances[0].optimizer, torch.optim.RMSprop)  # type: ignore[attr-defined]
    finally:
        runtime.shutdown()
    overrides = {**TINY, "out": str(tmp_path), "name": "kl"}
    trainer = Trainer(AdaptiveKL, make_config(AdaptiveKL, "CartPole", None, overrides))
    assert trainer.run() == 0
    saved = checkpoint.load(tmp_path / "kl" / "checkpoint.pt")
    coef = saved["state"]["fragments"]["learner"][0]["loss_state"]["kl_coef"]
    assert coef >= 4.0  # it grew (the KL of 4 updates beats the tiny target) and was saved
    import csv

    with open(tmp_path / "kl" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["kl_coef"]) == coef


class Forgetful(OffPolicy):
    """An off-policy algorithm that forgot its learner role."""

    config_cls: ClassVar[type[BaseConfig]] = OffPolicyConfig

    @staticmethod
    def make_actor_policy(config: Any, spec: Any) -> torch.nn.Module:
        return torch.nn.Linear(4, 2)

    @staticmethod
    def explore(policy, obs, generator, epsilon, rng):  # type: ignore[no-untyped-def]
        return np.zeros(len(obs), dtype=np.int64)

    @staticmethod
    def greedy(policy, obs):  # type: ignore[no-untyped-def]
        return np.zeros(len(obs), dtype=np.int64)


def test_what_a_subclass_forgot_is_one_clear_error():
    with pytest.raises(ConfigError, match="Forgetful sets no learner_cls"):
        build(Forgetful, make_config(Forgetful, "CartPole", None, {"device": "cpu"}))
    with pytest.raises(RegistryError, match="register one with an entry point"):
        from rlkit.plugins import resolve

        resolve("a2c-that-is-not-there")
    assert "ppo" in ALGORITHMS and not math.isnan(PPOConfig().lr)
