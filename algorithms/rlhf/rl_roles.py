"""The RL stages' roles besides the generator and the rewards: the frozen reference
(per-token log-probs), and the policy learner that turns a step's samples into
advantages and takes ``--ppo-epochs`` passes of ``--minibatch-size`` optimizer steps.

Per-token fields are ``[N, T]`` tensors aligned with ``input_ids`` (a token's value at
its own position, 0 outside the response); `tokens(batch, key)` reads them in the order
`logprobs.target_logits` returns the targets, so the loss pairs them up without copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rlkit import batch as B
from rlkit.algorithms.rlhf.roles import LLMLearner, micro_batches
from rlkit.batch import Batch
from rlkit.device import autocast, use_threads
from rlkit.llm.logprobs import target_logits, token_logps
from rlkit.llm.models import load_model
from rlkit.llm.offload import Offload, peak_memory_gb
from rlkit.roles import Metrics, Scorer

if TYPE_CHECKING:
    from rlkit.algorithms.rlhf.rl_config import RLConfig
    from rlkit.algorithms.rlhf.rl_template import RLStage


def targets_of(batch: Batch) -> torch.Tensor:
    """Which positions hold a target token ``[N, T - 1]`` (position t + 1 predicted at t)."""
    return batch["loss_mask"][:, 1:]


def tokens(batch: Batch, key: str) -> torch.Tensor:
    """Per-token field `key` ``[N, T']`` at the batch's target tokens ``[n]`` (a micro-batch
    may be trimmed to fewer positions than the field has)."""
    width = batch["input_ids"].shape[-1]
    return batch[key][:, 1:width][targets_of(batch)]


def placed(flat: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Values of the target tokens ``[n]`` as a per-token field ``[N, T]`` (the inverse of
    `tokens`)."""
    out = torch.zeros(batch["input_ids"].shape, dtype=flat.dtype, device=flat.device)
    out[:, 1:][targets_of(batch)] = flat
    return out


def policy_logps(model: Any, batch: Batch, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(token) ``[n]`` of the target tokens under `model`, of its logits divided by
    `temperature` (as the generator sampled), and those logits ``[n, V]``."""
    logits, targets, _ = target_logits(model, batch)
    logits = logits / temperature
    return token_logps(logits, targets), logits


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """The entropy of each row's softmax ``[n]``."""
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1)


class TokenReference(Offload, Scorer):
    """The frozen starting model: per-token log-probs of the responses, ``ref_logps``."""

    def __init__(
        self, config: RLConfig, pad_token_id: int | None, device: torch.device | None = None
    ) -> None:
        use_threads(config.torch_threads)
        self.config = config
        self.device = device or torch.device("cpu")
        # the weights loaded, not a copy: a LoRA learner's base (QLoRA's 4-bit one too)
        model = load_model(
            config.model, "causal", config.seed, pad_token_id, True, config.base_quantization()
        )
        self.model: Any = model.to(self.home()).eval()

    def score(self, batch: Batch) -> Batch:
        """``ref_logps`` ``[N, T]`` of a generated batch."""
        on_device = B.to({k: batch[k] for k in ("input_ids", "mask", "loss_mask")}, self.device)
        parts = []
        with torch.inference_mode(), self.on_device():
            for mb in micro_batches(on_device, self.config.micro_batch):
                with autocast(self.device, self.config.precision):
                    logps, _ = policy_logps(self.model, mb, self.config.temperature)
                parts.append((mb, logps.float().cpu()))
        out = torch.zeros(batch["input_ids"].shape)  # outside inference mode: a plain tensor
        start = 0
        for mb, logps in parts:
            n, width = mb["input_ids"].shape
            out[start : start + n, :width] = placed(logps, B.to(mb, torch.device("cpu")))
            start += n
        return {"ref_logps": out}

    def state_dict(self) -> dict[str, Any]:
        return {}  # frozen: rebuilt from --model and the seed

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class PolicyLearner(Offload, LLMLearner):
    """The policy: a step's samples (responses, rewards, reference log-probs and, for PPO,
    values) in; their advantages (`RLStage.advantages`), then ``--ppo-epochs`` passes of
    shuffled minibatches, one optimizer step each (`LLMLearner.update`)."""

    algorithm: type[RLStage]
    config: RLConfig

    def __init__(
        self,
        algorithm: type[RLStage],
        config: RLConfig,
        pad_token_id: int | None,
        total_updates: int,
        device: torch.device | None = None,
        replica: int = 0,
    ) -> None:
        super().__init__(algorithm, config, pad_token_id, total_updates, device, replica)
        self.model.to(self.home())

    def learn(self, batch: Batch, kl_coef: float = 0.0) -> Metrics:
        """Advantages, then the epochs of minibatch steps; their metrics as the loss's sums
        over the step's units (`RLStage.learner_metrics` makes the means from the sums
        averaged over the learners, so K learners log what one would)."""
        cfg = self.config
        correction: dict[str, float] = {}
        if cfg.recomputes():
            batch, correction = self.recompute(batch)
        batch = self.algorithm.advantages(cfg, batch, kl_coef)
        n = B.batch_size(batch)
        size = max(1, cfg.step_minibatch() // self.dp.world)
        sums: dict[str, float] = {}
        steps = 0
        with self.on_device():
            for _ in range(cfg.ppo_epochs):
                order = torch.randperm(n, generator=self.generator)
                for start in range(0, n, size):
                    stats = self.update(B.index(batch, order[start : start + size]))
                    for k, v in stats.items():
                        sums[k] = sums.get(k, 0.0) + float(v)
                    steps += 1
        metrics = {k: v / steps for k, v in sums.items()}  # the driver makes the means
        return {
            **metrics,
            **correction,
            **self.algorithm.batch_metrics(cfg, batch),
            **peak_memory_gb(self.device),
        }

    @torch.no_grad()
    def recompute(self, batch: Batch) -> tuple[Batch, dict[str, float]]:
        """The responses' log-probs under the learner's own weights (those that were pushed
        to the engine that sampled them) as pi_old ``logps``, the engine's kept as
        ``engine_logps``; with ``--tis`` the truncated importance weights ``tis_weight``
        ``[N, T]`` = min(pi_old / pi_engine, ``--tis-cap``); and the mismatch's metrics."""
        cfg = self.config
        engine, mask = batch["logps"], batch["loss_mask"]
        old = torch.zeros_like(engine)
        on_device = B.to({k: batch[k] for k in ("input_ids", "mask", "loss_mask")}, self.device)
        with self.on_device():
            start = 0
            for mb in micro_batches(on_device, cfg.micro_batch):
                with autocast(self.device, cfg.precision):
                    logps, _ = policy_logps(self.model, mb, cfg.temperature)
                n, width = mb["input_ids"].shape
                old[start : start + n, :width] = placed(logps.float(), mb).cpu()
                start += n
        diff = (old - engine)[mask]
        out = {**batch, "logps": old, "engine_logps": engine}
        if not diff.numel():
            return out, {}
        metrics = {
            "logp_diff_mean": float(diff.abs().mean()),
            "logp_diff_max": float(diff.abs().max()),
        }
        if cfg.tis:
            ratio = diff.exp()
            weight = torch.zeros_like(engine)
            weight[mask] = ratio.clamp(max=cfg.tis_cap)
            out["tis_weight"] = weight
            metrics["tis_weight"] = float(weight[mask].mean())
            metrics["tis_clipped_fraction"] = float((ratio > cfg.tis_cap).float().mean())
        return out, metrics

    def load_checkpoint(self, directory: Path, state: dict[str, Any]) -> None:
        super().load_checkpoint(directory, state)
        self.model.to(self.home())

    def load_progress(self, state: dict[str, Any]) -> None:
        if "order" in state:  # written before the learner base: the generator was "order"
            state = {"generator": state["order"], **state}
        super().load_progress(state)
