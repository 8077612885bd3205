"""`--generator`: the rollout engines that can play the Generator role of the RL stages.

hf     transformers `generate` with its KV cache (`generator.py`): the default
vllm   a vLLM engine in the generator's process (`vllm_engine.py`); needs vllm
"""

from __future__ import annotations

from rlkit.algorithms.rlhf.generator import HFGenerator
from rlkit.algorithms.rlhf.vllm_engine import VLLMGenerator
from rlkit.registry import Registry

GENERATORS: Registry[type[HFGenerator]] = Registry("generator")
GENERATORS.add("hf", HFGenerator)
GENERATORS.add("vllm", VLLMGenerator)
