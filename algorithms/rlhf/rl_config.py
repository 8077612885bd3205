"""The config of the RL stages on prompts (GRPO, PPO for LLMs): the prompts, the rewards,
sampling, the batch vocabulary (prompts_per_step x group_size = samples per step,
minibatches of samples, ppo_epochs) and the KL to the reference. See `rl_template.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlkit.algorithms.rlhf.estimators import KL_ESTIMATORS
from rlkit.algorithms.rlhf.template import LLMBase
from rlkit.config import Group, check
from rlkit.envs.text.config import PromptFields
from rlkit.envs.text.rewards import absolute
from rlkit.limits import COUNT, NON_NEGATIVE, POSITIVE, Range
from rlkit.llm.config import GenerationFields, LoRAFields, OffloadFields


def _range(rng: Range) -> dict[str, Range]:
    return {"range": rng}


@dataclass
class AsyncFields(Group):
    """Sampling while the learner learns (``--policy async``, `in_flight.py`)."""

    section = "asynchrony"

    max_staleness: int = field(default=1, metadata=_range(Range(low=0, high=1_000)))
    """With --policy async: how many policy versions a sample may lag the learner that
    trains on it (its oldest token's); 0 is the synchronous run exactly."""
    decode_chunk: int = field(default=4, metadata=_range(Range(low=1, high=1_000_000)))
    """With --policy async: decode steps per generator call; weight pushes land between
    two such calls, so a response may span versions."""


@dataclass
class RLConfig(AsyncFields, GenerationFields, PromptFields, LoRAFields, OffloadFields, LLMBase):
    """Fields of every RL stage on prompts: the text environment (prompts and rewards),
    generation, the batch vocabulary, the clipped objective and the KL to the reference;
    LoRA adapters for the policy (the reference is the same base weights, adapters off)."""

    prompts_per_step: int = field(default=16, metadata=_range(COUNT))
    """Prompts per step; each gives --group-size samples."""
    group_size: int = field(default=8, metadata=_range(Range(low=1, high=65_536)))
    """Samples per prompt (G)."""
    minibatch_size: int = field(default=0, metadata=_range(Range(low=0, high=2**31 - 1)))
    """Samples per optimizer step; 0: every sample of the step (one optimizer step per pass)."""
    ppo_epochs: int = field(default=1, metadata=_range(Range(low=1, high=1_000)))
    """Passes of minibatch steps over each step's samples."""
    max_tokens_per_micro_batch: int = field(
        default=0, metadata=_range(Range(low=0, high=2**31 - 1))
    )
    """Form the update's micro-batches by a token budget instead of --micro-batch samples:
    samples packed end to end, at most this many tokens each, no attention across them
    (0: off)."""
    kl_coef: float = field(default=0.04, metadata=_range(NON_NEGATIVE))
    """Weight of the KL to the reference (0: none; the KL is still logged)."""
    kl_estimator: str = "k3"
    """Per-token KL estimator: k1, k2 or k3."""
    clip_coef: float = field(default=0.2, metadata=_range(POSITIVE))
    """Clip the probability ratio to [1 - clip_coef, 1 + clip_coef]."""
    clip_low: float = field(default=0.0, metadata=_range(NON_NEGATIVE))
    """The lower side of the clip range, [1 - clip_low, ...] (0: --clip-coef)."""
    clip_high: float = field(default=0.0, metadata=_range(NON_NEGATIVE))
    """The upper side of the clip range, [..., 1 + clip_high] (0: --clip-coef); DAPO's
    clip-higher: 0.28 with --clip-low 0.2."""
    dynamic_sampling: bool = False
    """DAPO's dynamic sampling: drop the groups whose rewards are all equal (nothing to
    learn) and sample more prompts until the step has --prompts-per-step groups."""
    sampling_rounds: int = field(default=4, metadata=_range(Range(low=1, high=1_000)))
    """With --dynamic-sampling, the most rounds of prompts a step draws; a step still short
    then trains on the informative groups it has."""
    recompute_logps: Literal["auto", "on", "off"] = "auto"
    """The learner recomputes pi_old's log-probs rather than trusting the engine's (the
    mismatch is logged): auto (with --generator vllm, or --policy async with
    --max-staleness above 0), on, off."""
    tis: bool = True
    """Truncated importance sampling when log-probs are recomputed: each token's policy loss
    weighed by min(pi_old / pi_engine, --tis-cap)."""
    tis_cap: float = field(default=2.0, metadata=_range(Range(low=1, high=1e6)))
    """The cap of the truncated importance weight."""
    is_mask: Literal["off", "token", "sequence"] = "off"
    """Masked importance sampling when log-probs are recomputed: drop from the loss each
    token (token) or each whole sample (sequence: the geometric mean of its tokens' ratios)
    whose ratio pi_old / pi_engine leaves [--is-low, --is-high]; off: none."""
    is_low: float = field(default=0.5, metadata=_range(Range(low=0, high=1)))
    """The lower edge of the accepted band of importance ratios (--is-mask)."""
    is_high: float = field(default=2.0, metadata=_range(Range(low=1, high=1e6)))
    """The upper edge of the accepted band of importance ratios (--is-mask)."""

    def validate(self) -> None:
        super().validate()  # first: ranges; the arithmetic below divides by some of them
        self.reward = tuple(absolute(s) for s in self.reward)
        self.gold_reward = absolute(self.gold_reward) if self.gold_reward else ""
        per_pass = self.micro_batch * self.learners
        check(
            self.step_minibatch() % per_pass == 0,
            "minibatch_size",
            f"{self.step_minibatch()} samples are not a multiple of --micro-batch "
            f"{self.micro_batch} x --learners {self.learners} = {per_pass}; lower --micro-batch",
        )
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
        self.check_sampling()
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

    def update_samples(self) -> int:
        return self.step_minibatch()

    def clip_bounds(self) -> tuple[float, float]:
        """The ratio's clip range [1 - low, 1 + high]: --clip-low and --clip-high, each
        --clip-coef unless given (DAPO's clip-higher widens the upper side)."""
        return self.clip_low or self.clip_coef, self.clip_high or self.clip_coef

    def samples(self) -> int:
        """Samples per step: prompts_per_step x group_size."""
        return self.prompts_per_step * self.group_size

    def step_minibatch(self) -> int:
        """Samples per optimizer step."""
        return self.minibatch_size or self.samples()

    def check_sampling(self) -> None:
        """The off-policy correction and dynamic sampling against the rest of the run."""
        check(
            self.is_mask == "off" or self.recomputes(),
            "is_mask",
            "weighs the engine's samples against the learner's recomputed log-probs: "
            "add --recompute-logps on (automatic with --generator vllm)",
        )
        check(
            not self.dynamic_sampling or self.group_size > 1,
            "dynamic_sampling",
            "needs --group-size 2 or more (a group of one has no variance)",
        )
        check(
            not (self.dynamic_sampling and self.policy == "async"),
            "dynamic_sampling",
            "is a synchronous step's edge policy; not with --policy async (drop one of them)",
        )

    def recomputes(self) -> bool:
        """Whether the learner recomputes pi_old's log-probs (``--recompute-logps``)."""
        return self.recompute_logps == "on" or (
            self.recompute_logps == "auto" and (self.generator != "hf" or self.runs_ahead())
        )

    def runs_ahead(self) -> bool:
        """Whether samples may be older than the learner (async with a positive bound)."""
        return self.policy == "async" and self.max_staleness > 0
