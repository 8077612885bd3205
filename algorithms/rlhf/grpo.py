"""Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath), with RLOO and
REINFORCE++ advantages and Dr. GRPO's aggregation (Liu et al. 2025) as options.

Each prompt is answered ``--group-size`` times; a sample's advantage is its reward
against its group's (`estimators.py`, ``--advantage``), the same for every response
token. Per token, with ratio = pi / pi_old:

    loss_t = max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps)) + kl_coef KL_t(pi || ref)

(``--kl-estimator``, k3 by default; pi_old is the learner's own recomputation when the
engine is vLLM, and then the policy term is weighed by the truncated importance weight
min(pi_old / pi_engine, ``--tis-cap``), `PolicyLearner.recompute`), aggregated over the step (``--loss-aggregation``):
``token-mean`` (every response token of the step counts once), ``sequence-mean`` (the
mean over each response's tokens, then over responses) or ``dr-grpo`` (token sums over
samples x max_new_tokens: no length bias). The loss is near 0 by construction (the
advantages of a group sum to 0): progress shows in ``reward``, ``gold_reward``, ``kl``,
``entropy``, ``response_length``, ``clip_fraction`` and ``zero_variance_groups`` (the
groups with nothing to learn from), not in ``objective``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

from rlkit.algorithms.base import ALGORITHMS
from rlkit.algorithms.rlhf.estimators import KL_ESTIMATORS, OUTCOME_ADVANTAGES
from rlkit.algorithms.rlhf.losses import POLICY_LOSSES, PolicyInputs, PolicyLoss
from rlkit.algorithms.rlhf.rl_config import RLConfig
from rlkit.algorithms.rlhf.rl_roles import entropy, sampler_logps, samples_of, tokens
from rlkit.algorithms.rlhf.rl_template import RLStage
from rlkit.batch import Batch
from rlkit.config import BaseConfig, check
from rlkit.limits import NON_NEGATIVE, Range

TOKEN_STATS = ("policy_loss", "kl", "entropy", "clip_fraction", "ratio")
"""Per-token sums of the loss, divided by the token count when logged."""


@dataclass
class GRPOConfig(RLConfig):
    """GRPO: group-relative advantages, clipped ratio, KL to the reference in the loss."""

    advantage: str = "grpo"
    """Advantage estimator: grpo, rloo or reinforce++."""
    scale_rewards: bool = True
    """Divide by the group's (reinforce++: the batch's) reward std; off for Dr. GRPO."""
    loss_aggregation: Literal["token-mean", "sequence-mean", "dr-grpo"] = "token-mean"
    """How token losses make the step's loss: token-mean, sequence-mean or dr-grpo (a
    --loss-type other than grpo sets its own)."""
    loss_type: str = "grpo"
    """The policy loss (`losses.py`): grpo, dapo, dr_grpo, gspo or cispo."""
    overlong_buffer: int = field(default=0, metadata={"range": Range(low=0, high=2**31 - 1)})
    """DAPO's soft overlong penalty: a response within this many tokens of
    --max-new-tokens loses up to --overlong-penalty reward, linearly (0: none)."""
    overlong_penalty: float = field(default=1.0, metadata={"range": NON_NEGATIVE})
    """The reward lost by a response that reaches --max-new-tokens (--overlong-buffer)."""
    overlong_filter: bool = False
    """DAPO's overlong filtering: truncated responses (no stop before --max-new-tokens)
    leave the loss."""

    def validate(self) -> None:
        super().validate()
        check(
            self.advantage in OUTCOME_ADVANTAGES,
            "advantage",
            f"must be one of {OUTCOME_ADVANTAGES.names()}",
        )
        check(
            self.advantage not in ("grpo", "rloo") or self.group_size > 1,
            "group_size",
            f"--advantage {self.advantage} compares the samples of a prompt with each other: "
            "one sample has advantage 0 and nothing is learned; use 2 or more, or "
            "--advantage reinforce++",
        )
        check(
            self.loss_type in POLICY_LOSSES,
            "loss_type",
            f"must be one of {POLICY_LOSSES.names()}",
        )
        check(
            self.overlong_buffer < self.max_new_tokens,
            "overlong_buffer",
            f"must be below --max-new-tokens {self.max_new_tokens}",
        )


@ALGORITHMS.register("grpo")
class GRPO(RLStage):
    config_cls: ClassVar[type[BaseConfig]] = GRPOConfig
    config: GRPOConfig

    @staticmethod
    def advantages(config: Any, batch: Batch, kl_coef: float) -> Batch:
        reward = batch["reward"] + overlong_penalty(config, batch["response_length"])
        adv = OUTCOME_ADVANTAGES.get(config.advantage)(
            reward, config.group_size, config.scale_rewards
        )
        mask = batch["loss_mask"]
        if config.overlong_filter:
            mask = mask & ~batch["truncated"][:, None]
        lengths = batch["response_length"].float().clamp(min=1)
        aggregation = POLICY_LOSSES.get(config.loss_type).aggregation or config.loss_aggregation
        units = {
            "token-mean": lengths,
            "sequence-mean": torch.ones_like(lengths),
            "dr-grpo": torch.full_like(lengths, float(config.max_new_tokens)),
        }[aggregation]
        per_token = 1 / lengths if aggregation == "sequence-mean" else torch.ones_like(lengths)
        return {
            **batch,
            "advantages": adv[:, None] * mask,
            "token_weight": per_token[:, None] * mask,
            "units": units * ~batch["truncated"] if config.overlong_filter else units,
        }

    @staticmethod
    def loss(config: Any, model: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return surrogate(config, model, batch, config.kl_coef, POLICY_LOSSES.get(config.loss_type))

    @staticmethod
    def learner_metrics(metrics: dict[str, float]) -> dict[str, float]:
        return token_means(metrics)


def surrogate(
    config: Any, model: Any, batch: Batch, kl_coef: float, policy_loss: PolicyLoss | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The policy loss (`policy_loss`, by default GRPO's clipped ratio: `losses.py`) plus
    `kl_coef` x the KL to the reference, per token, weighed by ``token_weight`` and summed;
    and the per-token sums to log."""
    logp, logits = sampler_logps(model, batch, config)
    low, high = config.clip_bounds()
    inputs = PolicyInputs(
        logp, tokens(batch, "logps"), tokens(batch, "advantages"), samples_of(batch), low, high
    )
    term = (policy_loss or POLICY_LOSSES.get("grpo")).term(inputs)
    policy = term.loss
    if "tis_weight" in batch:  # importance sampling: engine vs learner (rl_roles.py)
        policy = policy * tokens(batch, "tis_weight")
    kl = KL_ESTIMATORS.get(config.kl_estimator)(logp, tokens(batch, "ref_logps"))
    loss = ((policy + kl_coef * kl) * tokens(batch, "token_weight")).sum()
    with torch.no_grad():
        stats = {
            "policy_loss": policy.sum(),
            "kl": kl.sum(),
            "entropy": entropy(logits).sum(),
            "clip_fraction": term.clipped.float().sum(),
            "ratio": term.ratio.sum(),
            "targets": torch.tensor(float(len(logp)), device=logp.device),
        }
    return loss, stats


def overlong_penalty(config: Any, lengths: torch.Tensor) -> torch.Tensor:
    """DAPO's soft overlong punishment ``[N]``: 0 up to max_new_tokens - buffer tokens, then
    down linearly to -penalty at max_new_tokens (all 0 without ``--overlong-buffer``)."""
    if not config.overlong_buffer:
        return torch.zeros_like(lengths, dtype=torch.float32)
    start = config.max_new_tokens - config.overlong_buffer
    over = (lengths.float() - start).clamp(min=0) / config.overlong_buffer
    return -config.overlong_penalty * over.clamp(max=1.0)


def token_means(metrics: dict[str, float]) -> dict[str, float]:
    """The loss's per-token sums as means over the tokens; the loss as ``objective``."""
    out = dict(metrics)
    targets = max(out.pop("targets"), 1e-12)
    for k in TOKEN_STATS:
        if k in out:
            out[k] = out[k] / targets
    out["objective"] = out.pop("loss")
    return out
