"""What a rollout engine (`generator.py`, `vllm_engine.py`) reads of its stage's config.

The engines are the LLM runtime's, below the algorithms: they take any config with
these fields (the RL stages' `RLConfig` has them), typed structurally, so that the
runtime imports nothing of the stages that use it.
"""

from __future__ import annotations

from typing import Protocol


class RolloutConfig(Protocol):
    """The sampling, engine and placement settings a rollout engine reads (read-only)."""

    @property
    def model(self) -> str: ...

    @property
    def seed(self) -> int: ...

    @property
    def device(self) -> str: ...

    @property
    def executor(self) -> str: ...

    @property
    def precision(self) -> str: ...

    @property
    def torch_threads(self) -> int: ...

    @property
    def group_size(self) -> int: ...

    @property
    def generator(self) -> str: ...

    @property
    def generators(self) -> int: ...

    @property
    def max_new_tokens(self) -> int: ...

    @property
    def min_new_tokens(self) -> int: ...

    @property
    def temperature(self) -> float: ...

    @property
    def top_p(self) -> float: ...

    @property
    def top_k(self) -> int: ...

    @property
    def stop_strings(self) -> tuple[str, ...]: ...

    @property
    def stop_token_ids(self) -> tuple[int, ...]: ...

    @property
    def engine_sleep(self) -> str: ...

    @property
    def engine_memory(self) -> float: ...

    @property
    def engine_kv_cache_gb(self) -> float: ...

    @property
    def tis(self) -> bool: ...

    @property
    def tis_cap(self) -> float: ...

    def recomputes(self) -> bool:
        """Whether the learner recomputes the samples' log-probs (not the engine's)."""
        ...
