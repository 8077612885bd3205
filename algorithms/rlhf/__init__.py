"""LLM stages on the roles: supervised fine-tuning, reward models and DPO (this half of
RLHF), on Hugging Face models (the ``rlhf`` extra: transformers, tokenizers, datasets).

Importing registers ``sft``, ``rm``, ``dpo``, ``grpo`` and ``rlhf-ppo``; transformers is
imported only when a stage runs, so the rest of rlkit works without the extra. See
docs/rlhf.md.
"""

from rlkit.algorithms.rlhf.dpo import DPO, DPOConfig
from rlkit.algorithms.rlhf.grpo import GRPO, GRPOConfig
from rlkit.algorithms.rlhf.ppo_llm import PPOLLM, PPOLLMConfig
from rlkit.algorithms.rlhf.reward_model import RewardModel, RewardModelConfig
from rlkit.algorithms.rlhf.sft import SFT, SFTConfig
from rlkit.algorithms.rlhf.template import LLMConfig, LLMStage

__all__ = [
    "DPO",
    "GRPO",
    "PPOLLM",
    "SFT",
    "DPOConfig",
    "GRPOConfig",
    "LLMConfig",
    "LLMStage",
    "PPOLLMConfig",
    "RewardModel",
    "RewardModelConfig",
    "SFTConfig",
]
