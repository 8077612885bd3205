"""Supervised fine-tuning: next-token cross-entropy on the response tokens only.

The prompt (every non-assistant turn of a conversation) conditions the model but is no
target: the loss is the mean negative log-likelihood over response tokens, over the
whole step (`LLMStage`: sums divided by the step's target tokens). With ``--packing``
several examples share a row of ``--max-length`` tokens (no padding; attention stays
within each example), and a sample is a packed row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from rlkit.algorithms.base import ALGORITHMS
from rlkit.algorithms.rlhf.batches import collate_sequences, pack
from rlkit.algorithms.rlhf.template import LLMConfig, LLMStage
from rlkit.batch import Batch
from rlkit.config import BaseConfig
from rlkit.envs.text.data import Format, Sequences, sequences
from rlkit.llm.logprobs import target_logits


@dataclass
class SFTConfig(LLMConfig):
    """SFT: demonstrations (prompt + response, or chat messages)."""

    response_column: str = "response"
    """Column of the response (text, or the assistant's messages)."""
    messages_column: str = "messages"
    """Column of chat conversations (used when the data has it): assistant turns are trained."""
    packing: bool = False
    """Pack several examples into each row of --max-length tokens (no padding); a sample is then a row."""


@ALGORITHMS.register("sft")
class SFT(LLMStage):
    config_cls: ClassVar[type[BaseConfig]] = SFTConfig
    config: SFTConfig

    def examples(self, rows: list[dict[str, Any]], fmt: Format) -> Sequences:
        cfg = self.config
        return sequences(rows, fmt, cfg.prompt_column, cfg.response_column, cfg.messages_column)

    def load_splits(self) -> tuple[Any, Any]:
        train, held = super().load_splits()
        return (pack(train, self.config.max_length) if self.config.packing else train), held

    def collate(self, data: Sequences, idx: torch.Tensor) -> Batch:
        return collate_sequences(data, idx, self.pad_id())

    @staticmethod
    def loss(config: Any, model: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, targets, _ = target_logits(model, batch)
        nll = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        with torch.no_grad():
            correct = (logits.argmax(-1) == targets).sum().float()
        return nll, {"token_accuracy": correct}

    @staticmethod
    def units(batch: Batch) -> torch.Tensor:
        return batch["loss_mask"][..., 1:].sum()

    @staticmethod
    def eval_sums(config: Any, model: Any, batch: Batch) -> dict[str, torch.Tensor]:
        nll, stats = SFT.loss(config, model, batch)
        return {"nll": nll, "correct": stats["token_accuracy"], "tokens": SFT.units(batch).float()}

    @staticmethod
    def eval_metrics(sums: dict[str, float]) -> dict[str, float]:
        loss = sums["nll"] / max(sums["tokens"], 1.0)
        return {
            "eval_loss": loss,
            "eval_perplexity": math.exp(min(loss, 700.0)),
            "eval_token_accuracy": sums["correct"] / max(sums["tokens"], 1.0),
        }
