"""Reward model: a scalar per (prompt, response), trained on preference pairs with the
Bradley-Terry loss.

P(chosen preferred) = sigmoid(r(chosen) - r(rejected)); the loss is its negative log,
the mean over the step's pairs. The model is an `AutoModelForSequenceClassification`
with one label (from a causal LM, a value head is added and seeded): the reward is read
at the last token of each text. Logged: ``accuracy`` (the pairs the model ranks right)
and ``margin`` (r(chosen) - r(rejected)), held out as ``eval_accuracy`` and
``eval_reward_margin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rlkit.algorithms.base import ALGORITHMS
from rlkit.algorithms.rlhf.batches import collate_pairs
from rlkit.algorithms.rlhf.template import LLMConfig, LLMStage
from rlkit.batch import Batch
from rlkit.config import BaseConfig
from rlkit.envs.text.data import Format, Pairs, pairs


@dataclass
class PreferenceConfig(LLMConfig):
    """Fields of the stages on preference pairs (prompt, chosen, rejected)."""

    chosen_column: str = "chosen"
    """Column of the preferred response (text, or the assistant's messages)."""
    rejected_column: str = "rejected"
    """Column of the dispreferred response."""


@dataclass
class RewardModelConfig(PreferenceConfig):
    """Reward model: Bradley-Terry on preference pairs."""

    lr: float = 1e-5
    """AdamW learning rate."""


def rewards(model: Any, batch: Batch) -> torch.Tensor:
    """r(prompt, response) ``[B, 2]`` (chosen, rejected) for pairs ``[B, 2, T]``."""
    shape = batch["input_ids"].shape
    out = model(
        input_ids=batch["input_ids"].reshape(-1, shape[-1]),
        attention_mask=batch["mask"].reshape(-1, shape[-1]).long(),
        use_cache=False,
    )
    return out.logits[:, 0].float().view(shape[:-1])


class PairStage(LLMStage):
    """A stage on preference pairs: their examples and batches."""

    config: PreferenceConfig

    def examples(self, rows: list[dict[str, Any]], fmt: Format) -> Pairs:
        cfg = self.config
        return pairs(rows, fmt, cfg.prompt_column, cfg.chosen_column, cfg.rejected_column)

    def collate(self, data: Pairs, idx: torch.Tensor) -> Batch:
        return collate_pairs(data, idx, self.pad_id())

    @staticmethod
    def units(batch: Batch) -> torch.Tensor:
        return torch.tensor(float(batch["input_ids"].shape[0]), device=batch["input_ids"].device)


@ALGORITHMS.register("rm")
class RewardModel(PairStage):
    config_cls: ClassVar[type[BaseConfig]] = RewardModelConfig
    head: ClassVar[str] = "reward"

    @staticmethod
    def loss(config: Any, model: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        r = rewards(model, batch)
        margin = r[:, 0] - r[:, 1]
        loss = -F.logsigmoid(margin).sum()
        with torch.no_grad():
            stats = {"accuracy": (margin > 0).float().sum(), "margin": margin.sum()}
        return loss, stats

    @staticmethod
    def eval_sums(config: Any, model: Any, batch: Batch) -> dict[str, torch.Tensor]:
        loss, stats = RewardModel.loss(config, model, batch)
        return {"loss": loss, **stats, "pairs": RewardModel.units(batch)}

    @staticmethod
    def eval_metrics(sums: dict[str, float]) -> dict[str, float]:
        n = max(sums["pairs"], 1.0)
        return {
            "eval_loss": sums["loss"] / n,
            "eval_accuracy": sums["accuracy"] / n,
            "eval_reward_margin": sums["margin"] / n,
        }
