"""PPO for language models (Ziegler et al. 2019; Ouyang et al. 2022): a learned critic,
token-level GAE, and the KL to the reference as a penalty in the reward.

Per response token t (the reward model's score, or the rule rewards, at the last one):

    r_t = -kl_coef KL_t(pi_old || ref) + [t is the last token] reward

(``--kl-estimator``: k1 by default, or k3), advantages and returns by GAE over the
response (``--gamma``, ``--gae-lambda``; the critic's values V_t, 0 after the end),
whitened over the step; the policy takes the clipped surrogate (as GRPO, no KL term:
it is in the reward), the critic a clipped squared error to the returns, each with its
own optimizer. ``--kl-control adaptive`` moves kl_coef towards ``--kl-target`` (KL per
sequence) by at most 20% per ``--kl-horizon`` samples (Ziegler et al.'s controller).

The critic is a fragment of its own (`CriticLearner`): the policy's model with a value
head (seeded), or ``--critic-model`` (an `rm` run makes a good start). It scores the
responses (``values``) beside the reference and the rewards, and after the policy's
update it learns from the same joined samples. Logged besides GRPO's signals:
``kl_sequence`` (the penalty's KL per sequence), ``kl_coef``, ``value_loss``,
``critic_explained_variance``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, cast

import torch

from rlkit.algorithms.base import ALGORITHMS
from rlkit.algorithms.rlhf.estimators import KL_ESTIMATORS, token_gae
from rlkit.algorithms.rlhf.grpo import surrogate, token_means
from rlkit.algorithms.rlhf.rl_config import RLConfig
from rlkit.algorithms.rlhf.rl_roles import (
    PolicyLearner,
    TokenReference,
    placed,
    targets_of,
    tokens,
)
from rlkit.algorithms.rlhf.rl_template import RLStage, Score
from rlkit.batch import Batch
from rlkit.config import BaseConfig, check
from rlkit.dataflow.carry import Delivery
from rlkit.dataflow.graph import LogicalGraph, Pattern, edge
from rlkit.envs.families import Env
from rlkit.envs.text.rewards import RewardScorer
from rlkit.limits import NON_NEGATIVE, POSITIVE, UNIT, Range
from rlkit.llm.generator import HFGenerator


@dataclass
class PPOLLMConfig(RLConfig):
    """PPO for LLMs: a critic, token-level GAE, the KL penalty in the reward."""

    group_size: int = field(default=1, metadata={"range": Range(low=1, high=65_536)})
    """Samples per prompt."""
    kl_coef: float = field(default=0.05, metadata={"range": NON_NEGATIVE})
    """Weight of the KL penalty in the reward (the start of the adaptive controller)."""
    kl_estimator: str = "k1"
    """Per-token KL estimator in the penalty: k1, k2 or k3."""
    kl_control: Literal["fixed", "adaptive"] = "fixed"
    """fixed: kl_coef throughout; adaptive: moved towards --kl-target."""
    kl_target: float = field(default=6.0, metadata={"range": POSITIVE})
    """KL per sequence the adaptive controller aims at."""
    kl_horizon: int = field(default=10_000, metadata={"range": Range(low=1, high=2**53)})
    """Samples over which the adaptive controller may move kl_coef by 20%."""
    gamma: float = field(default=1.0, metadata={"range": UNIT})
    """Discount over response tokens."""
    gae_lambda: float = field(default=0.95, metadata={"range": UNIT})
    """GAE lambda over response tokens."""
    norm_adv: bool = True
    """Whiten the advantages over each learner's share of the step's tokens."""
    critic_model: str = ""
    """The critic's start (a value head is added, seeded): an rm run, a model spec; empty: --model."""
    critic_lr: float = field(default=1e-5, metadata={"range": POSITIVE})
    """The critic's AdamW learning rate."""
    value_clip: float = field(default=0.2, metadata={"range": NON_NEGATIVE})
    """Clip the critic's update around the sampled values (0: no clipping)."""

    def validate(self) -> None:
        super().validate()
        check(self.kl_estimator in ("k1", "k2", "k3"), "kl_estimator", "must be one of k1, k2, k3")

    def critic(self) -> PPOLLMConfig:
        """The critic's config: its model and learning rate, one replica."""
        return dataclasses.replace(
            self,
            model=self.critic_model or self.model,
            lr=self.critic_lr,
            learners=1,
            recompute_logps="off",  # the policy's log-probs: the policy learner's business
        )


def token_values(model: Any, batch: Batch) -> torch.Tensor:
    """V of the state before each target token ``[n]``: the value head on the hidden state
    that predicts it (a sequence-classification model's ``score`` layer)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = getattr(base, "score", None)
    if head is None:
        raise ValueError(f"{type(base).__name__} has no value head (score layer)")
    ids = batch["input_ids"]
    out = base.base_model(input_ids=ids, attention_mask=batch["mask"].long(), use_cache=False)
    hidden = out.last_hidden_state[:, :-1][targets_of(batch)]
    return head(hidden)[:, 0].float()


def ppo_advantages(config: Any, batch: Batch, kl_coef: float) -> Batch:
    """Per-token rewards (KL penalty, the reward at the end), GAE advantages and returns."""
    mask = batch["loss_mask"]
    kl = KL_ESTIMATORS.get(config.kl_estimator)(batch["logps"], batch["ref_logps"]) * mask
    rewards = -kl_coef * kl
    last = mask & (mask.cumsum(1) == batch["response_length"][:, None])
    rewards = rewards + last * batch["reward"][:, None]
    adv, returns = token_gae(rewards, batch["values"], mask, config.gamma, config.gae_lambda)
    if config.norm_adv and mask.sum() > 1:
        real = adv[mask]
        adv = (adv - real.mean()) / (real.std() + 1e-8) * mask
    units = batch["response_length"].float()
    return {
        **batch,
        "advantages": adv,
        "returns": returns,
        "token_weight": mask.float(),
        "units": units,
        "kl_tokens": kl,
    }


class ValueObjective:
    """What `LLMLearner` needs of an algorithm, for the critic: its head and its loss."""

    head: ClassVar[str] = "reward"
    advantages = staticmethod(ppo_advantages)

    @staticmethod
    def loss(config: Any, model: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        values, returns, old = (
            token_values(model, batch),
            tokens(batch, "returns"),
            tokens(batch, "values"),
        )
        loss = (values - returns).pow(2)
        if config.value_clip:
            clipped = old + (values - old).clamp(-config.value_clip, config.value_clip)
            loss = torch.max(loss, (clipped - returns).pow(2))
        with torch.no_grad():
            stats = {
                "value_loss": 0.5 * loss.sum(),
                "value": values.sum(),
                "targets": torch.tensor(float(len(values)), device=values.device),
            }
        return 0.5 * loss.sum(), stats

    @staticmethod
    def units(batch: Batch) -> torch.Tensor:
        return batch["units"].sum()

    @staticmethod
    def learner_metrics(metrics: dict[str, float]) -> dict[str, float]:
        out = dict(metrics)
        targets = max(out.pop("targets"), 1e-12)
        out["value_loss"], out["value"] = out["value_loss"] / targets, out["value"] / targets
        out.pop("loss")
        return out

    @staticmethod
    def batch_metrics(config: Any, batch: Batch) -> dict[str, float]:
        mask = batch["loss_mask"]
        returns, values = batch["returns"][mask], batch["values"][mask]
        var = returns.var()
        explained = float(1 - (returns - values).var() / var) if var > 0 else 0.0
        return {"explained_variance": explained}


class CriticLearner(PolicyLearner):
    """The critic: scores responses with per-token values, learns from their returns."""

    def __init__(
        self,
        algorithm: type[RLStage],
        config: PPOLLMConfig,
        pad_token_id: int | None,
        total_updates: int,
        device: torch.device | None = None,
    ) -> None:
        objective = cast(Any, ValueObjective)  # an LLMLearner algorithm: head, loss, units
        super().__init__(objective, config.critic(), pad_token_id, total_updates, device, 0)

    @torch.no_grad()
    def score(self, batch: Batch) -> Batch:
        """``values`` ``[N, T]`` of a generated batch (0 outside the responses)."""
        self.model.eval()
        try:
            with self.on_device():
                on_device = {
                    k: batch[k].to(self.device) for k in ("input_ids", "mask", "loss_mask")
                }
                values = placed(token_values(self.model, on_device), on_device)
        finally:
            self.model.train()
        return {"values": values.cpu()}


GENERATE, SCORE, LEARN = HFGenerator.generate, CriticLearner.score, CriticLearner.learn
TO_CRITIC = edge("to_critic", "generator", "critic", Pattern.GATHER, GENERATE, SCORE)
FROM_CRITIC = edge("from_critic", "critic", "learner", Pattern.GATHER, SCORE, PolicyLearner.learn)
"""The responses' values, on to the policy learner (its advantages need them)."""
CRITIC_RESPONSES = edge("critic_responses", "generator", "critic", Pattern.GATHER, GENERATE, LEARN)
CRITIC_REFERENCE = edge(
    "critic_reference", "reference", "critic", Pattern.GATHER, TokenReference.score, LEARN
)
CRITIC_REWARD = edge("critic_reward", "reward", "critic", Pattern.GATHER, RewardScorer.score, LEARN)
CRITIC_VALUES = edge("critic_values", "critic", "critic", Pattern.GATHER, SCORE, LEARN)
"""The same samples, scores and values joined into the critic's own update."""


@ALGORITHMS.register("rlhf-ppo")
class PPOLLM(RLStage):
    config_cls: ClassVar[type[BaseConfig]] = PPOLLMConfig
    config: PPOLLMConfig

    def __init__(self, config: BaseConfig, env: Env) -> None:
        super().__init__(config, env)
        self.kl_coef = self.config.kl_coef

    advantages = staticmethod(ppo_advantages)

    @staticmethod
    def loss(config: Any, model: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return surrogate(config, model, batch, 0.0)  # the KL is in the reward

    @staticmethod
    def learner_metrics(metrics: dict[str, float]) -> dict[str, float]:
        return token_means(metrics)

    @staticmethod
    def batch_metrics(config: Any, batch: Batch) -> dict[str, float]:
        per_sequence = batch["kl_tokens"].sum(1)
        return {"kl_sequence": float(per_sequence.mean())}

    # -- the graph and the driver ----------------------------------------------------------
    def graph(self) -> LogicalGraph:
        g = super().graph()
        cfg = self.config
        kwargs = {"algorithm": type(self), "config": cfg, "pad_token_id": self.pad_id()}
        g.add(
            self.fragment("critic", CriticLearner, {**kwargs, "total_updates": self.updates()}, 1.0)
        )
        g.add_edge(TO_CRITIC)
        g.add_edge(FROM_CRITIC)
        g.add_edge(CRITIC_RESPONSES)
        g.add_edge(CRITIC_REFERENCE)
        g.add_edge(CRITIC_REWARD)
        g.add_edge(CRITIC_VALUES)
        return g

    def score(self, responses: Delivery[Any]) -> dict[str, Score]:
        values = Score(FROM_CRITIC, self.runtime.pass_on(TO_CRITIC, responses))
        return {**super().score(responses), "values": values}

    def learn(self, responses: Delivery[Any], scored: dict[str, Score]) -> dict[str, float]:
        metrics = super().learn(responses, scored)
        joined: list[Score] = [
            Score(CRITIC_RESPONSES.bind(self.kl_coef), responses),
            Score(CRITIC_REFERENCE, scored["reference"].delivery),
            Score(CRITIC_VALUES, scored["values"].delivery),
            Score(CRITIC_REWARD, scored["reward"].delivery),
        ]
        critic = self.runtime.join([s.into for s in joined], [s.delivery for s in joined]).mean()
        named = {f"critic_{k}": v for k, v in ValueObjective.learner_metrics(critic).items()}
        return {**metrics, **named, "kl_coef": self.kl_coef}

    def kl_coefficient(self) -> float:
        return self.kl_coef

    def after_step(self, metrics: dict[str, float]) -> None:
        """The adaptive controller: kl_coef x (1 + clip(KL / target - 1, +-0.2) x n / horizon)."""
        cfg = self.config
        if cfg.kl_control == "adaptive":
            error = max(-0.2, min(0.2, metrics["kl_sequence"] / cfg.kl_target - 1))
            self.kl_coef *= 1 + error * cfg.samples() / cfg.kl_horizon

    def driver_state(self) -> dict[str, Any]:
        return {**super().driver_state(), "kl_coef": self.kl_coef}

    def load_driver_state(self, state: dict[str, Any]) -> None:
        super().load_driver_state(state)
        self.kl_coef = float(state["kl_coef"])
