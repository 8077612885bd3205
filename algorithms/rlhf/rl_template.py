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

import math
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import torch

from rlkit.algorithms.base import Algorithm, StepResult
from rlkit.algorithms.rlhf.dynamic import Drawn, Score, data, dynamic_sampling
from rlkit.algorithms.rlhf.estimators import zero_variance_fraction
from rlkit.algorithms.rlhf.in_flight import InFlightRollouts, Learned
from rlkit.algorithms.rlhf.rl_config import RLConfig
from rlkit.algorithms.rlhf.rl_roles import PolicyLearner, TokenReference
from rlkit.algorithms.rlhf.template import LLMAlgorithm
from rlkit.batch import Batch
from rlkit.config import BaseConfig
from rlkit.dataflow.carry import Delivery, merge, unpack
from rlkit.dataflow.collectives import GRADIENTS
from rlkit.dataflow.distributed import IN_FLIGHT
from rlkit.dataflow.graph import Fragment, LogicalGraph, Pattern, Resources, edge, from_driver
from rlkit.envs.families import Env
from rlkit.envs.text.data import Format
from rlkit.envs.text.prompts import Prompts, collate_prompts, prompts
from rlkit.envs.text.reward_args import TrainerState, logged_metrics
from rlkit.envs.text.rewards import RewardScorer, answer_metrics, load_function, reward_names
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


class Answer(NamedTuple):
    """A prompt, the checkpoint's greedy answer to it and its rewards (`rlkit eval --show`)."""

    prompt: Any
    """As the data holds it: text or messages."""
    answer: str
    reward: float
    """The weighted sum trained on."""
    rewards: dict[str, float]
    """Each reward by its function's name."""
    gold: float | None


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
        self.rollouts: InFlightRollouts | None = None
        """The requests in flight when the plan carries the prompts so (--policy async)."""

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
        if self.runtime.plan.transport(PROMPTS.name) == IN_FLIGHT:
            self.rollouts = InFlightRollouts(self, self.runtime.declared(PROMPTS))
        self.runtime.carry(WEIGHTS.bind(self.version))

    # -- the driver --------------------------------------------------------------------
    def train_step(self) -> StepResult:
        if self.rollouts is not None:
            return self.step_in_flight(self.rollouts)
        cfg = self.config
        drawn = self.draw()
        metrics = self.learn(drawn.responses, drawn.scored) if drawn.groups else {}
        rewards = drawn.scored["reward"].delivery
        table = self.sample_table(drawn.responses, rewards, self.version)
        self.version += 1
        self.runtime.carry(WEIGHTS.bind(self.version))
        metrics.update(self.sample_metrics(drawn.responses, rewards, self.version - 1))
        metrics.update(drawn.metrics)
        self.after_step(metrics)
        return StepResult(cfg.samples(), metrics, samples=table)

    def sample_round(self) -> tuple[Delivery[Any], dict[str, Score]]:
        """One step's worth of prompts, sampled and scored."""
        batch = self.collate(self.train, self.sampler.take(self.config.prompts_per_step))
        responses = self.runtime.carry(PROMPTS, batch)
        if self.stale(responses):  # a generator restarted (Ray) with its initial weights
            self.runtime.carry(WEIGHTS.bind(self.version))
            responses = self.runtime.carry(PROMPTS, batch)
        return responses, self.score(responses)

    def draw(self) -> Drawn:
        """The step's samples: one round, or with ``--dynamic-sampling`` rounds until
        prompts_per_step groups with differing rewards are in (at most
        ``--sampling-rounds``), the others dropped (`dynamic.py`)."""
        cfg = self.config
        if not cfg.dynamic_sampling:
            responses, scored = self.sample_round()
            return Drawn(responses, scored, cfg.prompts_per_step, {})
        return dynamic_sampling(self.sample_round, cfg, cfg.learners)

    def step_in_flight(self, rollouts: InFlightRollouts) -> StepResult:
        """The step under --policy async: the same scoring, learning and weight push on
        samples the generators made ahead (`in_flight.py`), with the async metrics."""
        learned = rollouts.step(self.learn_on)
        self.version += 1
        self.runtime.carry(WEIGHTS.bind(self.version))
        self.after_step(learned.metrics)
        return StepResult(self.config.samples(), learned.metrics, samples=learned.table)

    def learn_on(self, responses: Delivery[Any]) -> Learned:
        """Score `responses`, learn on them: the metrics (of learning and of the samples)
        and the sample table."""
        scored = self.score(responses)
        metrics = self.learn(responses, scored)
        rewards = scored["reward"].delivery
        metrics.update(self.sample_metrics(responses, rewards, self.version))
        return Learned(metrics, self.sample_table(responses, rewards, self.version))

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
            "reward": Score(
                FROM_REWARD, self.runtime.pass_on(TO_REWARD.bind(self.trainer_state()), responses)
            ),
        }

    def sample_table(
        self, responses: Delivery[Any], rewards: Delivery[Any], trained_at: int
    ) -> list[dict[str, Any]]:
        """The step's samples as rows for a person to read (`rlkit.samples`); staleness is
        the policy versions a sample (its oldest token) lags `trained_at`, the version that
        learns on it."""
        r, made = data(rewards), data(responses)
        names = reward_names(self.config.reward, bool(self.config.reward_model))
        each = [[None if math.isnan(v) else v for v in row] for row in r["rewards"].tolist()]
        gold = r["gold"].tolist() if "gold" in r else [None] * len(each)
        return [
            {
                "prompt": made["prompt"][i],
                "response": made["completion"][i],
                "reward": float(r["reward"][i]),
                "rewards": dict(zip(names, each[i], strict=False)),
                "gold": gold[i],
                "length": int(made["response_length"][i]),
                "staleness": int(trained_at - made["version"][i]),
                "truncated": bool(made["truncated"][i]),
            }
            for i in range(len(each))
        ]

    def trainer_state(self) -> TrainerState:
        """The progress reward functions get as ``trainer_state`` (TRL's convention)."""
        samples = self.version * self.config.samples()
        per_epoch = max(1, len(self.train) * self.config.group_size)
        return TrainerState(self.version, self.steps(), samples / per_epoch, samples)

    def sample_metrics(
        self, responses: Delivery[Any], rewards: Delivery[Any], trained_at: int
    ) -> dict[str, float]:
        """Reward, gold reward, response length, truncation, zero-variance groups, and the
        lag of the samples' weights behind `trained_at`, the version that learns on them."""
        cfg = self.config
        r = merge(unpack(rewards.results)[0])
        made = merge(unpack(responses.results)[0])
        out = {
            "reward": float(r["reward"].mean()),
            "reward_std": float(r["reward"].std()) if len(r["reward"]) > 1 else 0.0,
            "zero_variance_groups": zero_variance_fraction(r["reward"], cfg.group_size),
            "response_length": float(made["response_length"].float().mean()),
            "truncated_fraction": float(made["truncated"].float().mean()),
            "policy_lag": float(trained_at - made["version"].float().mean()),
        }
        if "gold" in r:
            out["gold_reward"] = float(r["gold"].mean())
        out.update({k: float(made[k].mean()) for k in TIMINGS if k in made})
        if r["rewards"].shape[1] > 1:
            names = reward_names(cfg.reward, bool(cfg.reward_model))
            for name, v in zip(names, r["rewards"].nan_to_num().mean(0).tolist(), strict=True):
                out[f"reward_{name}"] = v
        return {**out, **logged_metrics(r)}

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

    def answers(self, state: dict[str, Any], n: int) -> list[Answer]:
        """The first `n` held-out prompts (training prompts when none are held out), the
        checkpoint's greedy answers to them and their rewards."""
        data = self.held_out if self.held_out is not None else self.train
        learner = self.restored(PolicyLearner, state)
        generator = HFGenerator(self.config)
        generator.set_weights(learner.get_weights(), 0)
        made: Any = generator.greedy(self.collate(data, torch.arange(min(n, len(data)))))
        scores = RewardScorer(self.config).score(made, self.trainer_state())
        names = reward_names(self.config.reward, bool(self.config.reward_model))
        return [
            Answer(
                made["prompt"][i],
                made["completion"][i],
                float(scores["reward"][i]),
                dict(zip(names, scores["rewards"][i].tolist(), strict=True)),
                float(scores["gold"][i]) if "gold" in scores else None,
            )
            for i in range(len(made["completion"]))
        ]

    def judge_in_run(self, batch: Batch) -> dict[str, float]:
        """Greedy answers of the running generators, scored by the run's reward scorer."""
        answers = self.runtime.carry(EVAL_PROMPTS, batch)
        return answer_metrics(
            self.runtime.pass_on(EVAL_TO_REWARD, answers).results, answers.results
        )

    def driver_state(self) -> dict[str, Any]:
        state = {"sampler": self.sampler.state_dict(), "version": self.version}
        if self.rollouts is not None:
            state["in_flight"] = self.rollouts.state_dict()
        return state

    def load_driver_state(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.version = int(state["version"])
        if self.rollouts is not None and "in_flight" in state:
            self.rollouts.load_state_dict(state["in_flight"])

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
                *(
                    [
                        f"  async: requests up to max_staleness {cfg.max_staleness} steps ahead, "
                        f"weights pushed between chunks of {cfg.decode_chunk} decode steps"
                    ]
                    if cfg.policy == "async"
                    else []
                ),
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
