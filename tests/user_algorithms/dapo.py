"""DAPO (Yu et al. 2025, "DAPO: an open-source LLM reinforcement learning system at
scale"), written as a user outside rlkit would: one file on the RL-on-prompts shape, a
variant of GRPO that changes its config's defaults and one static function.

    rlkit run tests/user_algorithms/dapo.py:DAPO --prompts P.jsonl --reward MOD:FN

(rlkit has DAPO built in as flags of GRPO: ``rlkit run grpo --loss-type dapo
--clip-high 0.28 --dynamic-sampling true --overlong-buffer 4 --kl-coef 0``, docs/rlhf.md;
this file stays the example of writing such a variant yourself.) What it changes:
- **clip-higher**: the ratio is clipped to [1 - clip_coef, 1 + clip_high], a wider upper
  side so that unlikely tokens with a positive advantage can grow (entropy collapse);
- **the zero-variance filter**: groups whose rewards are all equal (all right or all
  wrong) teach nothing; they leave the loss and its token count, so the informative
  groups carry the step (the paper also refills the batch by sampling more prompts:
  GRPO's ``--dynamic-sampling``, a driver-side policy);
- **token-level loss**: every response token of the step counts once (GRPO's
  ``--loss-aggregation token-mean``, the default);
- **overlong reward shaping** on by default: a response within ``--overlong-buffer``
  tokens of ``--max-new-tokens`` loses up to ``--overlong-penalty`` reward, linearly
  (GRPO's shaping, `overlong_penalty`);
- **no KL** to the reference (``--kl-coef 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from rlkit.algorithms.rlhf.grpo import GRPO, GRPOConfig, overlong_penalty
from rlkit.batch import Batch
from rlkit.config import BaseConfig


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
        out = GRPO.advantages(config, batch, kl_coef)  # the rewards shaped for overlength
        reward = batch["reward"] + overlong_penalty(config, batch["response_length"])
        keep = informative(reward, config.group_size)
        out["advantages"] = out["advantages"] * keep[:, None]
        out["token_weight"] = out["token_weight"] * keep[:, None]
        out["units"] = out["units"] * keep  # the token-mean counts the informative groups only
        return out
