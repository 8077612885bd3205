"""`--generator`: the rollout engines that can play the Generator role of the RL stages.

hf     transformers `generate` with its KV cache (`generator.py`): the default
vllm   a vLLM engine in the generator's process (`vllm_engine.py`); needs vllm
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlkit.llm.generator import HFGenerator
from rlkit.llm.vllm_engine import VLLMGenerator
from rlkit.registry import Registry

if TYPE_CHECKING:
    from rlkit.llm.rollout import RolloutConfig

GENERATORS: Registry[type[HFGenerator]] = Registry("generator")
GENERATORS.add("hf", HFGenerator)
GENERATORS.add("vllm", VLLMGenerator)


def engine_note(config: RolloutConfig) -> str:
    """What `rlkit plan` says of the rollout engine: where it runs, its memory, its sync."""
    cfg = config
    if cfg.generator == "hf":
        note = "hf generate (transformers, KV cache) in each generator's process"
    else:
        from rlkit.device import resolve_device

        on_cpu = resolve_device(cfg.device).type == "cpu"
        memory = (
            f"KV cache {cfg.engine_kv_cache_gb:g} GiB of host memory"
            if on_cpu
            else f"{cfg.engine_memory:.0%} of the device's memory"
        )
        sleeps = cfg.engine_sleep == "on" or (cfg.engine_sleep == "auto" and not on_cpu)
        note = (
            f"vllm in each generator's process, {memory}, weights loaded in place each step, "
            f"sleep while the learner trains: {'on' if sleeps else 'off'}"
        )
    if cfg.recomputes():
        tis = f"truncated importance sampling, cap {cfg.tis_cap:g}" if cfg.tis else "no IS"
        note += f"; pi_old recomputed by the learner ({tis})"
    return note
