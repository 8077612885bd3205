"""The roles of the LLM stages: the learner (a Hugging Face model and its optimizer) and
the frozen reference a DPO learner is measured against.

`LLMLearner.update(batch)` is one optimizer step on its share of a step's samples: the
share in micro-batches of ``--micro-batch`` samples, their gradients accumulated, then
averaged over the data-parallel learners in one flat all-reduce, clipped, and stepped.
Losses are sums over the stage's units (target tokens for SFT, pairs for RM and DPO)
divided by the step's total units over every learner, so K learners on K shares take
exactly the step one learner takes on the whole (to float rounding). Options: bf16
autocast (``--precision bf16``), gradient checkpointing, LoRA adapters (peft).
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from rlkit import batch as B
from rlkit.algorithms.learner import LearnerBase, adam
from rlkit.batch import Batch
from rlkit.device import autocast, use_threads
from rlkit.errors import CheckpointError, ConfigError
from rlkit.llm import fsdp
from rlkit.llm.models import fresh_model, load_into, load_model
from rlkit.roles import Metrics, Scorer, Weights

if TYPE_CHECKING:
    from rlkit.algorithms.rlhf.dpo import DPO
    from rlkit.algorithms.rlhf.template import LLMAlgorithm, LLMBase, LLMStage
    from rlkit.llm.config import LoRAFields

OPTIMIZER_FILE = "optimizer.pt"
MODEL_DIR = "model"
TOKEN_FIELDS = ("input_ids", "mask", "loss_mask", "position_ids")
"""The fields with a token axis (last): a micro-batch trims them to its longest sequence."""


def micro_batches(batch: Batch, size: int) -> list[Batch]:
    """`batch` in slices of `size` rows, each trimmed to its longest real sequence."""
    out = []
    for start in range(0, B.batch_size(batch), size):
        mb = B.index(batch, slice(start, start + size))
        real = mb["mask"].reshape(-1, mb["mask"].shape[-1]).any(0)
        length = int(real.nonzero().max()) + 1 if real.any() else 1
        out.append({k: v[..., :length] if k in TOKEN_FIELDS else v for k, v in mb.items()})
    return out


def with_lora(model: Any, config: LoRAFields, head: str) -> Any:
    """`model` with LoRA adapters on every linear layer (peft); only they train (and a
    reward model's value head)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ConfigError("--lora-rank needs peft: pip install 'rlkit[lora]'") from None
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type="SEQ_CLS" if head == "reward" else "CAUSAL_LM",
    )
    return get_peft_model(model, lora)


@torch.no_grad()
def merged_weights(model: Any) -> dict[str, torch.Tensor]:
    """A LoRA model's weights merged (W + scale B A per adapted layer; a 4-bit base
    dequantized first), on CPU, named as the plain model's (what a generator or an export
    takes), computed from the adapters without copying the model."""
    from peft.tuners.lora import LoraLayer

    inner = model.get_base_model()
    adapted = {n: m for n, m in inner.named_modules() if isinstance(m, LoraLayer)}
    out = {}
    for k, v in inner.state_dict().items():
        if ".lora_" in k or ".original_module." in k:  # a trained head's copy replaces it
            continue
        plain = k.replace(".base_layer.", ".").replace(".modules_to_save.default.", ".")
        if plain.rpartition(".weight.")[0] in adapted:  # a 4-bit weight's quantization state
            continue
        out[plain] = v.detach().to("cpu", copy=True)
    for name, module in adapted.items():
        weight = dense(cast(torch.Tensor, module.get_base_layer().weight)).cpu()
        for adapter in module.active_adapters:
            weight = weight + cast(Any, module).get_delta_weight(adapter).cpu()  # per layer type
        out[f"{name}.weight"] = weight
    return out


def dense(weight: torch.Tensor) -> torch.Tensor:
    """A weight as a plain float tensor (a bitsandbytes 4-bit one dequantized)."""
    state = getattr(weight, "quant_state", None)
    if state is None:
        return weight.detach()
    from bitsandbytes.functional import dequantize_4bit

    return dequantize_4bit(weight.data, state).float()


def plain_config(config: Any) -> Any:
    """A copy of a model's config without its quantization (a QLoRA base's): the merged
    model it describes is plain fp32."""
    config = copy.deepcopy(config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    return config


class LLMLearner(LearnerBase):
    """A stage's model, trained by the stage's loss (`LLMStage.loss`)."""

    def __init__(
        self,
        algorithm: type[LLMAlgorithm],
        config: LLMBase,
        pad_token_id: int | None,
        total_updates: int,
        device: torch.device | None = None,
        replica: int = 0,
    ) -> None:
        super().__init__(config, device, replica, total_updates)
        self.algorithm, self.config = algorithm, config
        lora = config.lora()
        model = load_model(  # a LoRA base is frozen: the weights loaded, not a copy
            config.model,
            algorithm.head,
            config.seed,
            pad_token_id,
            frozen=lora is not None,
            quantize=config.base_quantization(),
        )
        if config.gradient_checkpointing:  # transformers 5 renamed it
            enable = getattr(model, "activation_checkpointing_enable", None)
            (enable or model.gradient_checkpointing_enable)()
        if lora is not None:
            model = with_lora(model, lora, algorithm.head)
        self.model = model.to(self.device).train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = self.adamw()

    def adamw(self) -> torch.optim.Optimizer:
        """AdamW over the trainable parameters (under FSDP, their shards: not fused, the
        fused kernel takes no DTensor)."""
        cfg = self.config
        optimizer = adam(
            self.params,
            cfg.lr,
            weight_decay=cfg.weight_decay,
            decoupled=True,
            fused=not cfg.sharded(),
        )
        return self.add_optimizer("optimizer", optimizer)

    def join(self, address: str) -> None:
        """Join the data-parallel group; with ``--fsdp``, then shard the model over it."""
        super().join(address)
        if self.config.sharded():
            fsdp.shard(self.model)
            self.sharded = True
            self.params = [p for p in self.model.parameters() if p.requires_grad]
            self.optimizer = self.adamw()

    # -- training ------------------------------------------------------------------------
    def update(self, batch: Batch) -> Metrics:
        """One optimizer step on this learner's share of a step (fields as in
        `rlkit.algorithms.rlhf.batches`); the step's metrics, as means over its units."""
        cfg, world = self.config, self.dp.world
        batch = B.to(batch, self.device)
        units = self.algorithm.units(batch).double()
        total = self.dp.average_(units.clone()) * world  # over every learner's share
        scale = world / total.clamp(min=1)
        self.set_lr(cfg.lr, cfg.lr_schedule, cfg.warmup_steps)
        sums: dict[str, torch.Tensor] = {}
        for mb in self.micro_batches(batch):
            with self.autocast():
                loss, stats = self.algorithm.loss(cfg, self.model, mb)
            (loss * scale.float()).backward()
            for k, v in {"loss": loss, **stats}.items():
                sums[k] = sums.get(k, 0) + v.detach().double()
        self.average_grads(self.params)
        norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm or math.inf)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.updates += 1
        sums = {k: v * scale for k, v in sums.items()}
        sums["tokens"] = batch["mask"].sum().double() * world  # the mean over learners: all
        sums["grad_norm"] = _local(norm).double()
        names = list(sums)
        values = torch.stack([sums[k] for k in names]).tolist()  # the step's one host sync
        metrics: dict[str, Any] = dict(zip(names, values, strict=True))
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    def micro_batches(self, batch: Batch) -> list[Batch]:
        """The slices of an update's share that are forward and backward at once: rows of
        ``--micro-batch`` samples (the policy learner may pack them by a token budget)."""
        return micro_batches(batch, self.config.micro_batch)

    @torch.no_grad()
    def evaluate(self, batch: Batch) -> dict[str, float]:
        """Sums over this learner's share of the held-out split (`LLMStage.eval_sums`)."""
        stage = cast("type[LLMStage]", self.algorithm)  # only a stage on data has held-out sums
        batch = B.to(batch, self.device)
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        parts = micro_batches(batch, self.config.micro_batch)
        n = fsdp.passes(len(parts), self.device) if self.sharded else len(parts)
        try:
            for i in range(n):  # under FSDP a shorter share repeats a pass and drops it
                with self.autocast():
                    sums_i = stage.eval_sums(self.config, self.model, parts[i % len(parts)])
                for k, v in sums_i.items():
                    if i < len(parts):
                        sums[k] = sums.get(k, 0) + v.double()
        finally:
            self.model.train()
            if self.sharded:
                fsdp.reshard(self.model)
        names = list(sums)
        return dict(zip(names, torch.stack([sums[k] for k in names]).tolist(), strict=True))

    def get_weights(self) -> Weights:
        """Every weight, whole, on CPU, named as the plain model's (LoRA: merged with the
        adapters; under FSDP a collective that every learner calls, the first receiving the
        weights, the others nothing)."""
        if self.sharded:
            return fsdp.full_weights(self.model)
        if self.config.lora() is not None:
            return merged_weights(self.model)
        return self.own_weights()

    def own_weights(self) -> dict[str, torch.Tensor]:
        """The model's state dict as it is (LoRA: base and adapters apart), on CPU."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    # -- checkpoints and export ----------------------------------------------------------
    def save_checkpoint(self, directory: Path) -> dict[str, Any]:
        """The model as an HF directory (LoRA: the adapters) and the optimizer's state;
        under FSDP this learner's shards of both."""
        if self.sharded:
            fsdp.save_shards(self.model, self.optimizer, directory / fsdp.SHARDS_FILE)
            torch.save({"rng": torch.get_rng_state()}, directory / OPTIMIZER_FILE)
            return self.progress()
        self.model.save_pretrained(directory / MODEL_DIR)
        torch.save(
            {"optimizer": self.optimizer.state_dict(), "rng": torch.get_rng_state()},
            directory / OPTIMIZER_FILE,
        )
        return self.progress()

    def load_checkpoint(self, directory: Path, state: dict[str, Any]) -> None:
        from safetensors.torch import load_file

        directory = Path(directory)
        if (directory / fsdp.SHARDS_FILE).is_file():
            fsdp.load_shards(self.model, self.optimizer, directory / fsdp.SHARDS_FILE)
            torch.set_rng_state(torch.load(directory / OPTIMIZER_FILE)["rng"])
            self.load_progress(state)
            return
        weights: dict[str, torch.Tensor] = {}
        for f in sorted((Path(directory) / MODEL_DIR).glob("*.safetensors")):
            weights.update(checkpoint_weights(f, load_file))
        if self.config.lora() is not None:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.model, weights)
        else:
            self.load_weights(weights)
        saved = torch.load(Path(directory) / OPTIMIZER_FILE, map_location="cpu", weights_only=False)
        self.optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        self.load_progress(state)

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Every parameter from `weights` (tied ones may be absent: their twin is there)."""
        load_into(self.model, weights)

    def own_state(self) -> dict[str, Any]:
        """The model and torch's global RNG (dropout draws from it)."""
        return {"model": self.own_weights(), "rng": torch.get_rng_state()}

    def load_own_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        torch.set_rng_state(state["rng"])

    def export(self, directory: Path) -> None:
        """The model, merged with its LoRA adapters, as an HF directory (`save_pretrained`),
        written by the first learner (every learner calls it: under FSDP the weights are
        gathered first)."""
        model = self.model
        weights = fsdp.full_weights(model) if self.sharded else {}  # on the first only
        if self.dp.rank != 0:
            return
        if self.sharded:
            model = fresh_model(model.config, self.algorithm.head)
            load_into(model, weights)
        if self.config.lora() is not None:  # the merged weights in a plain model
            weights = merged_weights(model)
            model = fresh_model(plain_config(model.get_base_model().config), self.algorithm.head)
            load_into(model, weights)
        model.save_pretrained(directory)


def _local(x: torch.Tensor) -> torch.Tensor:
    """A DTensor's value (the norm of FSDP-sharded gradients is one), or `x`."""
    full = getattr(x, "full_tensor", None)
    return full() if full is not None else x


class ReferenceScorer(Scorer):
    """The frozen reference: the stage's starting model (built again from ``--model``),
    scoring pairs with their summed response log-probabilities (`LLMStage.reference`)."""

    def __init__(
        self,
        algorithm: type[DPO],
        config: LLMBase,
        pad_token_id: int | None,
        device: torch.device | None = None,
    ) -> None:
        use_threads(config.torch_threads)
        self.algorithm, self.config = algorithm, config
        self.device = device or torch.device("cpu")
        model = load_model(  # the LoRA learner's base, QLoRA's 4-bit one too
            config.model, "causal", config.seed, pad_token_id, True, config.base_quantization()
        )
        self.model: Any = model.to(self.device).eval()
        self.released = False

    @torch.no_grad()
    def score(self, batch: Batch) -> Batch:
        """`batch` plus ``ref_logps`` ``[B, 2]`` (chosen, rejected)."""
        if self.released:
            raise RuntimeError("the reference was released after precomputing its log-probs")
        on_device = B.to(batch, self.device)
        parts = []
        for mb in micro_batches(on_device, self.config.micro_batch):
            with autocast(self.device, self.config.precision):
                parts.append(self.algorithm.reference(self.config, self.model, mb))
        return {**batch, "ref_logps": torch.cat(parts).float().cpu()}

    def release(self) -> None:
        """Free the model (its log-probs were precomputed: nothing needs it any more)."""
        self.model, self.released = None, True

    def state_dict(self) -> dict[str, Any]:
        return {}  # frozen: rebuilt from --model and the seed

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def checkpoint_weights(path: Path, load_file: Any) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's weights file; CheckpointError naming it when it is
    unreadable (zeroed or cut by a failing disk), rather than safetensors' traceback."""
    try:
        return dict(load_file(path))
    except Exception as e:  # safetensors raises its own SafetensorError, or OSError
        raise CheckpointError(
            f"{path} is corrupt ({type(e).__name__}: {' '.join(str(e).split())[:120]}); this "
            "checkpoint cannot be resumed: start a new run from the run's model/ (--model RUN)"
        ) from None


def export_dir(run_dir: Path) -> tuple[Path, Path]:
    """Where a stage writes its model: a temp directory, renamed to ``RUN_DIR/model``."""
    return Path(run_dir) / f".model.tmp-{os.getpid()}", Path(run_dir) / MODEL_DIR
