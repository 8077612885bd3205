"""The template of the RL stages on prompts (GRPO, PPO for LLMs): generators sample
responses, scorers score them, the policy learner learns from them, and the weights go
back to the generators.

Logical graph (the driver owns the prompts)::

    driver --prompts(scatter)--> generator xG
    generator --to_reference(gather)--> reference        per-token log-probs
    generator --to_reward(gather)--> reward              rule functions, reward model
    {generator, reference, reward} --join--> learner xK  advantages, minibatch steps
    learner --weights(broadcast)--> generator xG         one flat buffer, a version tag
    learner <--gradients(allreduce)--> learner

One vocabulary for batch sizes: ``--prompts-per-step`` prompts x ``--group-size``
samples each = samples_per_step samples per step; ``--minibatch-size`` samples per
optimizer step (0: all of them), each learner's share in micro-batches of
``--micro-batch``; ``--ppo-epochs`` passes over the step's samples. The accumulation is
derived, never a free number; `rlkit plan` prints the arithmetic. The budget counts
samples (``unit = "samples"``): ``--total-steps``, or ``--epochs`` passes over the prompts
(each prompt giving group_size samples). Under ``--policy colocate`` the generator,
reference, reward model and learner share one worker and device (`offload.py`).

An algorithm supplies its advantages (`advantages`), its loss (`loss`, summed over the
step's units as `LLMLearner` wants) and the means it logs (`learner_metrics`); GRPO in
`grpo.py`, PPO (a critic beside the policy) in `ppo_llm.py`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import torch

from rlkit.algorithms.base import Algorithm, StepResult
from rlkit.algorithms.rlhf.estimators import zero_variance_fraction
from rlkit.algorithms.rlhf.rl_config import RLConfig
from rlkit.algorithms.rlhf.rl_roles import PolicyLearner, TokenReference
from rlkit.algorithms.rlhf.template import LLMAlgorithm
from rlkit.batch import Batch
from rlkit.config import BaseConfig
from rlkit.dataflow.carry import Delivery, merge, unpack
from rlkit.dataflow.collectives import GRADIENTS
from rlkit.dataflow.graph import Edge, Fragment, LogicalGraph, Pattern, Resources, edge, from_driver
from rlkit.envs.families import Env
from rlkit.envs.text.data import Format
from rlkit.envs.text.prompts import Prompts, collate_prompts, prompts
from rlkit.envs.text.rewards import RewardScorer, answer_metrics, load_function
from rlkit.errors import ConfigError
from rlkit.llm.engines import GENERATORS, engine_note
from rlkit.llm.generator import HFGenerator
from rlkit.llm.models import check_model
from rlkit.llm.vllm_engine import TIMINGS

PROMPTS = from_driver("prompts", "generator", Pattern.SCATTER, HFGenerator.generate)
"""A step's prompts, split across the generators; each samples group_size per prompt."""
TO_REFERENCE = edge(
    "to_reference",
    "generator",
    "reference",
    Pattern.GATHER,
    HFGenerator.generate,
    TokenReference.score,
)
TO_REWARD = edge(
    "to_reward", "generator", "reward", Pattern.GATHER, HFGenerator.generate, RewardScorer.score
)
RESPONSES = edge(
    "responses", "generator", "learner", Pattern.GATHER, HFGenerator.generate, PolicyLearner.learn
)
FROM_REFERENCE = edge(
    "from_reference",
    "reference",
    "learner",
    Pattern.GATHER,
    TokenReference.score,
    PolicyLearner.learn,
)
FROM_REWARD = edge(
    "from_reward", "reward", "learner", Pattern.GATHER, RewardScorer.score, PolicyLearner.learn
)
"""Responses, reference log-probs and rewards are joined into one learner call."""
WEIGHTS = edge(
    "weights",
    "learner",
    "generator",
    Pattern.BROADCAST,
    PolicyLearner.get_weights,
    HFGenerator.set_weights,
)
"""The policy's parameters to every generator, with their version."""
EVAL_PROMPTS = from_driver("eval_prompts", "generator", Pattern.SCATTER, HFGenerator.greedy)
EVAL_TO_REWARD = edge(
    "eval_to_reward", "generator", "reward", Pattern.GATHER, HFGenerator.greedy, RewardScorer.score
)
"""Held-out prompts answered greedily, and their rewards."""


class Score(NamedTuple):
    """A scorer's delivery of a step's responses, and the edge that joins it into the
    learner's update (`RLStage.score` returns them by the scorer's name)."""

    into: Edge[Any, Any]
    delivery: Delivery[Any]


HYBRID = "hybrid"
"""The colocation group of the RL stage's fragments (--policy colocate)."""


class RLStage(LLMAlgorithm):
    """Template of an RL stage: see the module docstring for what an algorithm supplies."""

    config_cls: ClassVar[type[BaseConfig]] = RLConfig
    config: RLConfig
    progress_metric = "reward"  # GRPO's loss is near zero by construction: no progress signal
    data_flags = ("--prompts", "--eval-prompts")

    def __init__(self, config: BaseConfig, env: Env) -> None:
        """`env`: the text environment of ``--prompts`` (`envs/text/family.py`), its rows
        in a `TextSpec`."""
        self.env = env
        super().__init__(config)
        self.version = 0

    @classmethod
    def trains_on(cls) -> str:
        return "text (--prompts)"

    def check_positions(self, limit: int | None) -> None:
        """The longest prompt (as cut to --max-length) and --max-new-tokens must fit the
        model's positions: past them generation runs on positions it never learned (and
        a huge --max-new-tokens runs for hours)."""
        cfg = self.config
        longest = max(len(ids) for ids in self.train.ids)
        if limit is not None and longest + cfg.max_new_tokens > limit:
            raise ConfigError(
                f"--max-new-tokens {cfg.max_new_tokens}: with the longest prompt "
                f"({longest} tokens) it passes the {limit} token positions of {cfg.model}; "
                f"use --max-new-tokens {max(1, limit - longest)} or less"
            )

    @classmethod
    def create(cls, config: BaseConfig) -> Algorithm:
        """The stage in the text environment of its ``--prompts``; a missing prompt set or
        reward, or a reward function that cannot be loaded, refused before anything starts."""
        assert isinstance(config, RLConfig)
        if not config.prompts:
            raise ConfigError(f"{cls.name}: --prompts is required (a .jsonl file, ...)")
        if not config.reward and not config.reward_model:
            raise ConfigError(
                f"{cls.name}: give a reward: --reward module:function (or file.py:function) "
                "and/or --reward-model RM_RUN"
            )
        for spec_ in config.reward:
            load_function(spec_)
        if config.gold_reward:
            load_function(config.gold_reward, "--gold-reward")
        if config.reward_model:
            check_model(config.reward_model, "reward", "--reward-model")
        env = Env.of(cls.name, ("text",), config.prompts, f"split={config.data_split}")
        return cls(config, env)

    # -- what an algorithm supplies ----------------------------------------------------
    @staticmethod
    @abstractmethod
    def advantages(config: Any, batch: Batch, kl_coef: float) -> Batch:
        """`batch` (responses, ``reward``, ``ref_logps``...) plus ``advantages`` ``[N, T]``,
        ``units`` ``[N]`` (what each sample counts in the loss's mean) and what the loss needs."""

    @staticmethod
    @abstractmethod
    def learner_metrics(metrics: dict[str, float]) -> dict[str, float]:
        """The logged means from the loss's sums (`LLMLearner.update`'s, averaged over the
        learners: a per-token mean is a token sum over the token count, both so averaged)."""

    @staticmethod
    def batch_metrics(config: Any, batch: Batch) -> dict[str, float]:
        """Metrics of the step's samples themselves (before any update)."""
        return {}

    def kl_coefficient(self) -> float:
        """The KL coefficient the learners get this step (PPO's controller)."""
        return 0.0

    def after_step(self, metrics: dict[str, float]) -> None:
        """The driver's own update after each step (PPO's adaptive KL)."""

    # -- data --------------------------------------------------------------------------
    def sources(self) -> tuple[str, str]:
        return self.env.id, self.config.eval_prompts

    def training_rows(self) -> list[dict[str, Any]]:
        """The prompts of the text environment (probed once, by its family)."""
        return list(self.env.spec.rows)

    def examples(self, rows: list[dict[str, Any]], fmt: Format) -> Prompts:
        return prompts(rows, fmt, self.config.prompt_column)

    def collate(self, data: Prompts, idx: torch.Tensor) -> Batch:
        return collate_prompts(data, idx, self.pad_id())

    @staticmethod
    def units(batch: Batch) -> torch.Tensor:
        return batch["units"].sum()

    def budget(self) -> int:
        cfg = self.config
        return cfg.total_steps or cfg.epochs * len(self.train) * cfg.group_size

    def steps(self) -> int:
        return -(-self.budget() // self.config.samples())

    def updates(self) -> int:
        cfg = self.config
        return self.steps() * cfg.ppo_epochs * (cfg.samples() // cfg.step_minibatch())

    # -- the graph ---------------------------------------------------------------------
    def fragment(
        self, name: str, role: type, kwargs: dict[str, Any], cpus: float, replicas: int = 1
    ) -> Fragment:
        resources = Resources.for_device(self.config.device, cpus=cpus)
        return Fragment(name, role, kwargs, resources, replicas, colocate=HYBRID)

    def graph(self) -> LogicalGraph:
        cfg = self.config
        g = LogicalGraph(self.name)
        engine = GENERATORS.get(cfg.generator)
        g.add(self.fragment("generator", engine, {"config": cfg}, 1.0, cfg.generators))
        ref = {"config": cfg, "pad_token_id": self.pad_id()}
        g.add(self.fragment("reference", TokenReference, ref, 0.5))
        g.add(self.fragment("reward", RewardScorer, {"config": cfg}, 0.5))
        learner = self.learner_fragment()
        learner.role, learner.colocate = PolicyLearner, HYBRID
        g.add(learner)
        g.add_edge(PROMPTS)
        g.add_edge(TO_REFERENCE)
        g.add_edge(TO_REWARD)
        g.add_edge(RESPONSES)
        g.add_edge(FROM_REFERENCE)
        g.add_edge(FROM_REWARD)
        g.add_edge(WEIGHTS)
        g.add_edge(EVAL_PROMPTS)
        g.add_edge(EVAL_TO_REWARD)
        g.add_edge(GRADIENTS)
        return g

    def setup(self) -> None:
        self.runtime.carry(WEIGHTS.bind(self.version))

    # -- the driver --------------------------------------------------------------------
    def train_step(self) -> StepResult:
        cfg = self.config
        batch = self.collate(self.train, self.sampler.take(cfg.prompts_per_step))
        responses = self.runtime.carry(PROMPTS, batch)
        if self.stale(responses):  # a generator restarted (Ray) with its initial weights
            self.runtime.carry(WEIGHTS.bind(self.version))
            responses = self.runtime.carry(PROMPTS, batch)
        scored = self.score(responses)
        metrics = self.learn(responses, scored)
        self.version += 1
        self.runtime.carry(WEIGHTS.bind(self.version))
        metrics.update(self.sample_metrics(responses, scored["reward"].delivery))
        self.after_step(metrics)
        return StepResult(cfg.samples(), metrics)

    def stale(self, responses: Delivery[Any]) -> bool:
        """Whether any response was sampled by weights older than the last push."""
        made = merge(unpack(responses.results)[0])
        return bool((made["version"] != self.version).any())

    def learn(self, responses: Delivery[Any], scored: dict[str, Score]) -> dict[str, float]:
        """The learners' update on the responses and their scores, joined: its metrics."""
        into = [RESPONSES.bind(self.kl_coefficient()), *(s.into for s in scored.values())]
        update = self.runtime.join(into, [responses, *(s.delivery for s in scored.values())])
        return self.learner_metrics(update.mean())

    def score(self, responses: Delivery[Any]) -> dict[str, Score]:
        """Each scorer's score of a step's responses, by the scorer's name."""
        return {
            "reference": Score(FROM_REFERENCE, self.runtime.pass_on(TO_REFERENCE, responses)),
            "reward": Score(FROM_REWARD, self.runtime.pass_on(TO_REWARD, responses)),
        }

    def sample_metrics(self, responses: Delivery[Any], rewards: Delivery[Any]) -> dict[str, float]:
        """Reward, gold reward, response length, truncation, zero-variance groups."""
        cfg = self.config
        r = merge(unpack(rewards.results)[0])
        made = merge(unpack(responses.results)[0])
        out = {
            "reward": float(r["reward"].mean()),
            "reward_std": float(r["reward"].std()) if len(r["reward"]) > 1 else 0.0,
            "zero_variance_groups": zero_variance_fraction(r["reward"], cfg.group_size),
            "response_length": float(made["response_length"].float().mean()),
            "truncated_fraction": float(made["truncated"].float().mean()),
            "policy_lag": float(self.version - 1 - made["version"].float().mean()),
        }
        if "gold" in r:
            out["gold_reward"] = float(r["gold"].mean())
        out.update({k: float(made[k].mean()) for k in TIMINGS if k in made})
        if r["rewards"].shape[1] > 1:
            for i, v in enumerate(r["rewards"].nan_to_num().mean(0).tolist()):
                out[f"reward_{i}"] = v
        return out

    def judge(self, state: dict[str, Any] | None) -> Callable[[Batch], dict[str, float]]:
        """Greedy answers to a batch of prompts, judged by the rewards (`answer_metrics`):
        the running generators and scorer's (`state` None), or a generator given the
        checkpoint's policy and a scorer of this process's own."""
        if state is None:
            return self.judge_in_run
        learner = self.restored(PolicyLearner, state)
        generator = HFGenerator(self.config)
        generator.set_weights(learner.get_weights(), 0)

        def offline(batch: Batch) -> dict[str, float]:
            answers = generator.greedy(batch)
            return answer_metrics([RewardScorer(self.config).score(answers)], [answers])

        return offline

    def judge_in_run(self, batch: Batch) -> dict[str, float]:
        """Greedy answers of the running generators, scored by the run's reward scorer."""
        answers = self.runtime.carry(EVAL_PROMPTS, batch)
        return answer_metrics(
            self.runtime.pass_on(EVAL_TO_REWARD, answers).results, answers.results
        )

    def driver_state(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "version": self.version}

    def load_driver_state(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.version = int(state["version"])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A checkpoint's state, then the restored policy's weights to the generators."""
        super().load_state_dict(state)
        self.runtime.carry(WEIGHTS.bind(self.version))

    def plan_notes(self) -> str:
        cfg = self.config
        held = len(self.held_out) if self.held_out is not None else 0
        per_step = cfg.samples() // cfg.step_minibatch() * cfg.ppo_epochs
        return "\n".join(
            [
                "batch sizes (one vocabulary: prompts, samples, minibatches of samples)",
                f"  prompts_per_step {cfg.prompts_per_step} x group_size {cfg.group_size} = "
                f"samples_per_step {cfg.samples()}",
                f"  minibatch_size {cfg.step_minibatch()} samples = micro_batch {cfg.micro_batch} x "
                f"accumulation {cfg.accumulation()} x learners {cfg.learners}",
                f"  optimizer steps per step: {cfg.samples() // cfg.step_minibatch()} minibatches x "
                f"ppo_epochs {cfg.ppo_epochs} = {per_step}",
                f"  generators {cfg.generators}: {cfg.prompts_per_step // cfg.generators} prompts "
                f"({cfg.samples() // cfg.generators} samples) each, at most {cfg.max_new_tokens} new tokens",
                f"  engine: {engine_note(cfg)}",
                f"  data: {len(self.train):,} prompts, {held:,} held out",
                f"  budget: {self.budget():,} samples"
                + (
                    ""
                    if cfg.total_steps
                    else f" (epochs {cfg.epochs} x {len(self.train):,} prompts x {cfg.group_size})"
                )
                + f" = {self.steps():,} steps = {self.updates():,} optimizer steps",
            ]
        )
