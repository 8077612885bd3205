"""LLM stages on the roles: supervised fine-tuning, reward models and DPO (this half of
RLHF), on Hugging Face models (the ``rlhf`` extra: transformers, tokenizers, datasets).

Importing registers ``sft``, ``rm`` and ``dpo``; transformers is imported only when a
stage runs, so the rest of rlkit works without the extra. See docs/rlhf.md.
"""

from rlkit.algorithms.rlhf.dpo import DPO, DPOConfig
from rlkit.algorithms.rlhf.reward_model import RewardModel, RewardModelConfig
from rlkit.algorithms.rlhf.sft import SFT, SFTConfig
from rlkit.algorithms.rlhf.template import LLMConfig, LLMStage

__all__ = [
    "DPO",
    "SFT",
    "DPOConfig",
    "LLMConfig",
    "LLMStage",
    "RewardModel",
    "RewardModelConfig",
    "SFTConfig",
]

# the RL half (issue 13): importing registers grpo and rlhf-ppo
from rlkit.algorithms.rlhf import grpo as _grpo  # noqa: E402, F401
from rlkit.algorithms.rlhf import ppo_llm as _ppo_llm  # noqa: E402, F401
