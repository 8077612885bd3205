"""Direct Preference Optimization (Rafailov et al. 2023), with IPO (Azar et al. 2023) as
an option, against a frozen reference model.

With h = [log pi(chosen) - log ref(chosen)] - [log pi(rejected) - log ref(rejected)]
(summed response log-probs; token means for IPO), the loss is ``-log sigmoid(beta h)``
(sigmoid) or ``(h - 1 / (2 beta))^2`` (ipo), the mean over the step's pairs. The implicit
reward of a response is beta times its log-ratio; logged are ``reward_margin`` (chosen
minus rejected), ``accuracy`` (margin > 0) and, held out, ``eval_policy_accuracy``: the
pairs whose chosen response the policy itself finds likelier.

The reference is a fragment of its own (`ReferenceScorer`, the starting model, one
beside each learner): each step's pairs go through it on their way to the learners
(``pairs`` then ``scored``). With ``--precompute-ref`` its log-probs are computed once, at
the start, for the whole dataset, and its model is freed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from rlkit.algorithms.base import ALGORITHMS, StepResult
from rlkit.algorithms.rlhf.reward_model import PairStage, PreferenceConfig
from rlkit.algorithms.rlhf.roles import LLMLearner, ReferenceScorer
from rlkit.algorithms.rlhf.template import BATCHES, HELD_OUT
from rlkit.batch import Batch
from rlkit.config import BaseConfig, check
from rlkit.dataflow.collectives import GRADIENTS
from rlkit.dataflow.graph import Fragment, LogicalGraph, Pattern, Resources, edge, from_driver
from rlkit.envs.text.data import Pairs
from rlkit.llm.logprobs import sequence_logps


@dataclass
class DPOConfig(PreferenceConfig):
    """DPO: preference pairs against the frozen starting model."""

    lr: float = 1e-6
    """AdamW learning rate."""
    beta: float = 0.1
    """Strength of the KL constraint to the reference (the scale of the implicit reward)."""
    loss_type: Literal["sigmoid", "ipo"] = "sigmoid"
    """sigmoid (DPO) or ipo (a squared loss on token-mean log-ratios)."""
    precompute_ref: bool = False
    """Compute the reference log-probs of the whole dataset once at the start and free the reference."""

    def validate(self) -> None:
        super().validate()
        check(self.beta > 0, "beta", "must be positive")


PAIRS = from_driver("pairs", "reference", Pattern.SCATTER, ReferenceScorer.score)
"""A step's pairs into the reference, which adds their log-probs."""
SCORED = edge(
    "scored", "reference", "learner", Pattern.SCATTER, ReferenceScorer.score, LLMLearner.update
)
"""The scored pairs on to the learners (each reference sits beside its learner)."""
SCORED_HELD_OUT = edge(
    "scored_held_out",
    "reference",
    "learner",
    Pattern.SCATTER,
    ReferenceScorer.score,
    LLMLearner.evaluate,
)
"""Scored held-out pairs on to the learners' evaluation."""


def objective(
    config: Any, model: Any, batch: Batch
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """The loss summed over the pairs, the sums to log, and the policy's summed response
    log-probs ``[B, 2]``."""
    logps = sequence_logps(model, batch)
    ratios = logps - batch["ref_logps"]
    if config.loss_type == "ipo":  # token means
        ratios = ratios / batch["loss_mask"][..., 1:].sum(-1).clamp(min=1)
    h = ratios[:, 0] - ratios[:, 1]
    if config.loss_type == "ipo":
        loss = (h - 1 / (2 * config.beta)).pow(2).sum()
    else:
        loss = -F.logsigmoid(config.beta * h).sum()
    with torch.no_grad():
        reward = config.beta * ratios
        margin = reward[:, 0] - reward[:, 1]
        stats = {
            "reward_margin": margin.sum(),
            "accuracy": (margin > 0).float().sum(),
            "chosen_reward": reward[:, 0].sum(),
            "rejected_reward": reward[:, 1].sum(),
        }
    return loss, stats, logps.detach()


@ALGORITHMS.register("dpo")
class DPO(PairStage):
    config_cls: ClassVar[type[BaseConfig]] = DPOConfig
    config: DPOConfig

    @staticmethod
    def loss(config: Any, model: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, stats, _ = objective(config, model, batch)
        return loss, stats

    @staticmethod
    def reference(config: Any, model: Any, batch: Batch) -> torch.Tensor:
        """The reference's summed response log-probs ``[B, 2]``."""
        return sequence_logps(model, batch)

    @staticmethod
    def eval_sums(config: Any, model: Any, batch: Batch) -> dict[str, torch.Tensor]:
        loss, stats, logps = objective(config, model, batch)
        own = (logps[:, 0] > logps[:, 1]).float().sum()
        return {"loss": loss, **stats, "policy_accuracy": own, "pairs": DPO.units(batch)}

    @staticmethod
    def eval_metrics(sums: dict[str, float]) -> dict[str, float]:
        n = max(sums["pairs"], 1.0)
        return {
            "eval_loss": sums["loss"] / n,
            "eval_reward_margin": sums["reward_margin"] / n,
            "eval_accuracy": sums["accuracy"] / n,
            "eval_policy_accuracy": sums["policy_accuracy"] / n,
        }

    # -- the graph and the driver ----------------------------------------------------------
    def graph(self) -> LogicalGraph:
        cfg = self.config
        g = LogicalGraph(self.name)
        g.add(self.learner_fragment())
        kwargs = {"algorithm": type(self), "config": cfg, "pad_token_id": self.pad_id()}
        reference = Resources.for_device(cfg.device, cpus=0.0)  # shares its learner's worker
        g.add(
            Fragment(
                "reference", ReferenceScorer, kwargs, reference, cfg.learners, beside="learner"
            )
        )
        g.add_edge(BATCHES)
        g.add_edge(HELD_OUT)
        g.add_edge(PAIRS)
        g.add_edge(SCORED)
        g.add_edge(SCORED_HELD_OUT)
        g.add_edge(GRADIENTS)
        return g

    def setup(self) -> None:
        if not self.config.precompute_ref:
            return
        for data in (self.train, self.held_out):
            if data is not None:
                data.ref_logps = self.score_all(data)
        self.runtime.group("reference", ReferenceScorer).call(ReferenceScorer.release)

    def score_all(self, data: Pairs) -> torch.Tensor:
        """The reference log-probs ``[N, 2]`` of every pair, a step's worth at a time."""
        n = len(data)
        chunks = torch.tensor_split(torch.arange(n), max(1, n // self.config.samples_per_step))
        out = []
        for idx in chunks:
            scored = self.runtime.carry(PAIRS, self.collate(data, idx)).results
            out += [part["ref_logps"] for part in scored]
        return torch.cat(out)

    def collate(self, data: Pairs, idx: torch.Tensor) -> Batch:
        batch = super().collate(data, idx)
        if data.ref_logps is not None:
            batch["ref_logps"] = data.ref_logps[idx]
        return batch

    def train_step(self) -> StepResult:
        batch = self.next_batch()
        if "ref_logps" in batch:  # precomputed
            sent = self.runtime.carry(BATCHES, batch)
        else:
            sent = self.runtime.pass_on(SCORED, self.runtime.carry(PAIRS, batch))
        return StepResult(self.config.samples_per_step, sent.mean())

    def held_out_sums(self, batch: Batch) -> list[dict[str, float]]:
        if "ref_logps" in batch:
            return self.runtime.carry(HELD_OUT, batch).results
        return self.runtime.pass_on(SCORED_HELD_OUT, self.runtime.carry(PAIRS, batch)).results

    def offline_batch(self, batch: Batch) -> Batch:
        if "ref_logps" in batch:
            return batch
        return ReferenceScorer(type(self), self.config, self.pad_id()).score(batch)
