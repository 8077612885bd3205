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
from rlkit.algorithms.rlhf.packing import token_micro_batches
from rlkit.algorithms.rlhf.roles import LLMLearner, micro_batches
from rlkit.batch import Batch
from rlkit.device import autocast, use_threads
from rlkit.llm.logprobs import sampled_logps, target_logits
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


def samples_of(batch: Batch) -> torch.Tensor:
    """The sample each target token belongs to ``[n]`` int64: its row, or in a packed
    micro-batch (several samples to a row) the per-token ``segment`` field."""
    if "segment" in batch:
        return tokens(batch, "segment")
    where = targets_of(batch)
    rows = torch.arange(where.shape[0], device=where.device)
    return rows[:, None].expand_as(where)[where]


def placed(flat: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Values of the target tokens ``[n]`` as a per-token field ``[N, T]`` (the inverse of
    `tokens`)."""
    out = torch.zeros(batch["input_ids"].shape, dtype=flat.dtype, device=flat.device)
    out[:, 1:][targets_of(batch)] = flat
    return out


def policy_logps(
    model: Any,
    batch: Batch,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
    min_new_tokens: int = 0,
    stop_ids: tuple[int, ...] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(token) ``[n]`` of the target tokens under `model`, in the distribution the
    generator sampled from (the `stop_ids` and the model's eos banned within a response's
    first `min_new_tokens`, logits divided by `temperature`, cut to `top_k` / `top_p`:
    `logprobs.sampled_logps`), so that the importance ratio compares like with like; and
    those processed logits ``[n, V]`` (-inf where cut)."""
    logits, targets, _ = target_logits(model, batch)
    banned = None
    if min_new_tokens:
        eos = getattr(model.config, "eos_token_id", None)
        stops = {*stop_ids, *([] if eos is None else [eos] if isinstance(eos, int) else eos)}
        banned = torch.zeros_like(logits, dtype=torch.bool)
        early = (response_index(batch) < min_new_tokens).nonzero()[:, 0]
        ids = torch.tensor(sorted(stops), dtype=torch.int64, device=logits.device)
        banned[early[:, None], ids[None]] = True
    return sampled_logps(logits, targets, temperature, top_k, top_p, banned)


def sampler_logps(model: Any, batch: Batch, config: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """`policy_logps` with the sampling fields of `config` (an `RLConfig`)."""
    return policy_logps(
        model,
        batch,
        config.temperature,
        config.top_k,
        config.top_p,
        config.min_new_tokens,
        tuple(config.stop_token_ids),
    )


def response_index(batch: Batch) -> torch.Tensor:
    """Each target token's place in its response ``[n]`` (0 for the first), packed or not."""
    lm = batch["loss_mask"].long()
    before = lm.cumsum(-1) - lm  # response tokens before it in its row
    if "segment" in batch:  # packed: less those of the row's earlier samples
        segment = batch["segment"]
        first = torch.full((int(segment.max()) + 1,), 2**62, device=lm.device)
        first = first.scatter_reduce(0, segment.flatten(), before.flatten(), "amin")
        before = before - first[segment]
    return tokens({**batch, "before": before}, "before")


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """The entropy of each row's softmax ``[n]`` (rows may hold -inf: cut tokens)."""
    return torch.special.entr(torch.softmax(logits, -1)).sum(-1)


def importance_weights(
    config: RLConfig, log_ratio: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weights ``[N, T]`` that correct the engine's sampling toward the learner's pi_old
    from the per-token log-ratios log pi_old - log pi_engine ``[N, T]`` at `mask`: the
    ratio truncated at ``--tis-cap`` (``--tis``, else 1), times 0 where ``--is-mask``
    rejects (a token, or every token of a sample, whose ratio leaves [--is-low,
    --is-high]); and their metrics, the rejected fraction among them."""
    ratio = log_ratio.exp() * mask
    weight = ratio.clamp(max=config.tis_cap) if config.tis else mask.to(ratio.dtype)
    metrics: dict[str, float] = {}
    if config.tis:
        metrics["tis_clipped_fraction"] = float((ratio[mask] > config.tis_cap).float().mean())
    if config.is_mask != "off":
        if config.is_mask == "sequence":
            count = mask.sum(1).clamp(min=1)
            per_sample = ((log_ratio * mask).sum(1) / count).exp()
            rejected = ((per_sample < config.is_low) | (per_sample > config.is_high))[:, None]
            rejected = rejected & mask
            metrics["is_rejected_fraction"] = float(rejected.any(1)[mask.any(1)].float().mean())
        else:
            rejected = ((ratio < config.is_low) | (ratio > config.is_high)) & mask
            metrics["is_rejected_fraction"] = float(rejected[mask].float().mean())
        weight = weight.masked_fill(rejected, 0.0)
    metrics["tis_weight"] = float(weight[mask].mean())
    return weight * mask, metrics


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
                    logps, _ = sampler_logps(self.model, mb, self.config)
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

    def micro_batches(self, batch: Batch) -> list[Batch]:
        """With ``--max-tokens-per-micro-batch``, packed micro-batches (`packing.py`)."""
        budget = self.config.max_tokens_per_micro_batch
        return token_micro_batches(batch, budget) if budget else super().micro_batches(batch)

    @torch.no_grad()
    def recompute(self, batch: Batch) -> tuple[Batch, dict[str, float]]:
        """The responses' log-probs under the learner's own weights (those that were pushed
        to the engine that sampled them) as pi_old ``logps``, the engine's kept as
        ``engine_logps``; with ``--tis`` or ``--is-mask`` the importance weights
        ``tis_weight`` ``[N, T]`` (`importance_weights`); and the mismatch's metrics."""
        cfg = self.config
        engine, mask = batch["logps"], batch["loss_mask"]
        old = torch.zeros_like(engine)
        on_device = B.to({k: batch[k] for k in ("input_ids", "mask", "loss_mask")}, self.device)
        with self.on_device():
            start = 0
            for mb in micro_batches(on_device, cfg.micro_batch):
                with autocast(self.device, cfg.precision):
                    logps, _ = sampler_logps(self.model, mb, cfg)
                n, width = mb["input_ids"].shape
                old[start : start + n, :width] = placed(logps.float(), mb).cpu()
                start += n
        out = {**batch, "logps": old, "engine_logps": engine}
        diff = (old - engine)[mask]
        if not diff.numel():
            return out, {}
        metrics = {
            "logp_diff_mean": float(diff.abs().mean()),
            "logp_diff_max": float(diff.abs().max()),
            # KL(engine || learner), k3 on the engine's own samples: >= 0, 0 when they agree
            "mismatch_kl": float((diff.exp() - 1 - diff).mean()),
        }
        if cfg.tis or cfg.is_mask != "off":
            out["tis_weight"], correction = importance_weights(cfg, old - engine, mask)
            metrics.update(correction)
        return out, metrics

    def load_checkpoint(self, directory: Path, state: dict[str, Any]) -> None:
        super().load_checkpoint(directory, state)
        self.model.to(self.home())

    def load_progress(self, state: dict[str, Any]) -> None:
        if "order" in state:  # written before the learner base: the generator was "order"
            state = {"generator": state["order"], **state}
        super().load_progress(state)
