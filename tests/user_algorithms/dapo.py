"""DAPO (Yu et al. 2025, "DAPO: an open-source LLM reinforcement learning system at
scale"), written as a user outside rlkit would: one file on the RL-on-prompts shape, a
variant of GRPO that changes its config and two static functions.

    rlkit run tests/user_algorithms/dapo.py:DAPO --prompts P.jsonl --reward MOD:FN

What it changes against GRPO:
- **clip-higher**: the ratio is clipped to [1 - clip_coef, 1 + clip_high], a wider upper
  side so that unlikely tokens with a positive advantage can grow (entropy collapse);
- **dynamic sampling's filter**: groups whose rewards are all equal (all right or all
  wrong) teach nothing; they leave the loss and its token count, so the informative
  groups carry the step (the paper also refills the batch by sampling more prompts);
- **token-level loss**: every response token of the step counts once (GRPO's
  ``--loss-aggregation token-mean``, the default);
- **overlong reward shaping**: a response within ``--overlong-buffer`` tokens of
  ``--max-new-tokens`` loses up to ``--overlong-penalty`` reward, linearly;
- **no KL** to the reference (``--kl-coef 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from rlkit.algorithms.rlhf.grpo import GRPO, GRPOConfig
from rlkit.batch import Batch
from rlkit.config import BaseConfig, check


@dataclass
class DAPOConfig(GRPOConfig):
    """DAPO: GRPO with clip-higher, zero-variance groups filtered out of the loss,
    overlong reward shaping and no KL."""

    kl_coef: float = 0.0
    """Weight of the KL to the reference (DAPO: none; the KL is still logged)."""
    clip_high: float = 0.28
    """The upper side of the ratio's clip range: [1 - clip_coef, 1 + clip_high]."""
    overlong_buffer: int = 4
    """Tokens before --max-new-tokens where the overlong penalty ramps up (0: none)."""
    overlong_penalty: float = 1.0
    """The reward lost by a response that reaches --max-new-tokens."""

    def validate(self) -> None:
        super().validate()
        check(self.clip_high > 0, "clip_high", "must be positive")
        check(
            0 <= self.overlong_buffer < self.max_new_tokens,
            "overlong_buffer",
            f"must be in [0, --max-new-tokens {self.max_new_tokens})",
        )
        check(self.overlong_penalty >= 0, "overlong_penalty", "must be >= 0")

    def clip_bounds(self) -> tuple[float, float]:
        return self.clip_coef, self.clip_high


def overlong_penalty(config: DAPOConfig, lengths: torch.Tensor) -> torch.Tensor:
    """``[N]`` reward shaping: 0 up to max_new_tokens - buffer tokens, then down linearly
    to -penalty at max_new_tokens."""
    if config.overlong_buffer == 0:
        return torch.zeros_like(lengths, dtype=torch.float32)
    start = config.max_new_tokens - config.overlong_buffer
    over = (lengths.float() - start).clamp(min=0) / config.overlong_buffer
    return -config.overlong_penalty * over.clamp(max=1.0)


def informative(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[N]`` 1.0 for the samples of a group whose rewards differ, else 0.0."""
    groups = rewards.view(-1, group_size)
    varied = (groups.max(1).values > groups.min(1).values).float()
    return varied.repeat_interleave(group_size)


class DAPO(GRPO):
    name = "dapo"
    config_cls: ClassVar[type[BaseConfig]] = DAPOConfig

    @staticmethod
    def advantages(config: Any, batch: Batch, kl_coef: float) -> Batch:
        reward = batch["reward"] + overlong_penalty(config, batch["response_length"])
        out = GRPO.advantages(config, {**batch, "reward": reward}, kl_coef)
        keep = informative(reward, config.group_size)
        out["advantages"] = out["advantages"] * keep[:, None]
        out["token_weight"] = out["token_weight"] * keep[:, None]
        out["units"] = out["units"] * keep  # the token-mean counts the informative groups only
        return out
