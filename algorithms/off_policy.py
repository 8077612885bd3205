"""The off-policy template (DQN, SAC): actors fill a replay buffer, a learner samples it.

Logical graph::

    actor xN --transitions(queue)--> replay --batch--> learner --weights(broadcast)--> actor
                                      ^--------priorities (prioritized replay)---------'

An algorithm built on it supplies a learner role and three class-level hooks:
`make_actor_policy` (the module actors act with), `explore` (an exploration action) and
`greedy` (the evaluation action). Everything else (warm-up, buffer, n-step returns,
prioritized replay and its beta schedule, update rounds, weight pushes) lives here; the
roles are in `off_policy_roles.py`. The driver step carries the transitions edge (the
runtime streams it under async-actor), an update round after each delivery, and the
weights edge; the same code runs under every distribution policy.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from rlkit.algorithms.base import EnvAlgorithm, StepResult
from rlkit.algorithms.off_policy_roles import OffPolicyActor, Replay, learn
from rlkit.config import BaseConfig, EnvConfig, Group, VectorFields, check
from rlkit.dataflow.collectives import GRADIENTS
from rlkit.dataflow.graph import Fragment, LogicalGraph, Pattern, Resources, edge
from rlkit.envs.vector import SpaceSpec
from rlkit.errors import ConfigError, EnvError
from rlkit.roles import Learner


@dataclass
class OffPolicyConfig(VectorFields, EnvConfig):
    """Fields of every off-policy algorithm."""

    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    batch_size: int = 256
    """Transitions per gradient step."""
    learning_starts: int = 100
    """Environment steps of uniformly random actions before learning starts."""
    train_freq: int = 1
    """Environment steps per env between update rounds."""
    gradient_steps: int = 1
    """Gradient steps per update round."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Target network update rate (1 = hard copy)."""
    n_step: int = 1
    """n-step returns, computed by the replay buffer at sample time."""
    lr: float = 3e-4
    """Adam learning rate."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the networks."""
    weight_sync: int = 1
    """Push learner weights to the actors every this many update rounds."""
    log_every: int = 1000
    """Write a metrics row every this many environment steps; 0 means every iteration."""

    def validate(self) -> None:
        super().validate()
        check(self.buffer_size >= 1, "buffer_size", "must be at least 1")
        check(self.batch_size >= 1, "batch_size", "must be at least 1")
        check(self.learning_starts >= 0, "learning_starts", "must be >= 0")
        check(self.train_freq >= 1, "train_freq", "must be at least 1")
        check(self.gradient_steps >= 0, "gradient_steps", "must be >= 0")
        check(0.0 <= self.gamma <= 1.0, "gamma", "must be in [0, 1]")
        check(0.0 < self.tau <= 1.0, "tau", "must be in (0, 1]")
        check(self.n_step >= 1, "n_step", "must be at least 1")
        check(self.lr > 0, "lr", "must be positive")
        check(
            len(self.hidden) >= 1 and min(self.hidden) >= 1, "hidden", "needs positive layer sizes"
        )
        check(self.weight_sync >= 1, "weight_sync", "must be at least 1")

    def priorities(self) -> tuple[float, float] | None:
        """Prioritized replay's (alpha, initial beta), or None for uniform replay
        (`PrioritizedFields`)."""
        return None


@dataclass
class PrioritizedFields(Group):
    """Prioritized replay (DQN's and SAC's option)."""

    prioritized: bool = False
    """Prioritized replay (proportional) instead of uniform."""
    per_alpha: float = 0.6
    """Prioritized replay: how strongly priorities skew sampling."""
    per_beta: float = 0.4
    """Prioritized replay: initial importance-weight exponent, annealed to 1 over the run."""

    def validate(self) -> None:
        super().validate()
        check(self.per_alpha >= 0, "per_alpha", "must be >= 0")
        check(0.0 <= self.per_beta <= 1.0, "per_beta", "must be in [0, 1]")

    def priorities(self) -> tuple[float, float] | None:
        return (self.per_alpha, self.per_beta) if self.prioritized else None


TRANSITIONS = edge(
    "transitions", "actor", "replay", Pattern.QUEUE, OffPolicyActor.collect, Replay.add
)
"""Every actor's transitions into the replay buffer (its shards, with several learners):
in lockstep, or streamed under async-actor (the bound set by the graph)."""
BATCH = edge("batch", "replay", "learner", Pattern.GATHER, Replay.sample, Learner.update)
"""Sampled batches into the learner, carried in the learner's process by `learn`."""
PRIORITIES = edge(
    "priorities", "learner", "replay", Pattern.GATHER, Learner.update, Replay.update_priorities
)
"""New priorities back into the buffer (prioritized replay), also carried by `learn`."""
WEIGHTS = edge(
    "weights",
    "learner",
    "actor",
    Pattern.BROADCAST,
    Learner.get_weights,
    OffPolicyActor.set_weights,
)
"""The learner's acting parameters to every actor, with their version (the round)."""


class OffPolicy(EnvAlgorithm):
    """Template: subclasses set `config_cls`, `learner_cls` and the three policy hooks."""

    config_cls: ClassVar[type[BaseConfig]] = OffPolicyConfig
    learner_cls: ClassVar[type[Learner] | None] = None
    """The learner role: a subclass of `OffPolicyLearnerBase` that implements `update`."""
    actor_cls: ClassVar[type[OffPolicyActor]] = OffPolicyActor
    discrete: ClassVar[bool | None] = None
    """The kind of action space the algorithm acts in: True (discrete, DQN), False
    (continuous, SAC), None (either)."""
    instead: ClassVar[str] = ""
    """The algorithm to suggest for the other kind of action space (empty: none)."""
    config: OffPolicyConfig

    @classmethod
    def check_env(cls, env_id: str, spec: SpaceSpec) -> None:
        if cls.discrete is not None and spec.discrete != cls.discrete:
            need, have = ("discrete", "continuous") if cls.discrete else ("continuous", "discrete")
            other = (
                f"use {cls.instead.upper()} (rlkit run {cls.instead} --env {env_id}) or PPO"
                if cls.instead
                else "use PPO (rlkit run ppo --env " + env_id + ")"
            )
            raise EnvError(
                f"{cls.name.upper()} needs {need} actions and {env_id} has {have} ones: {other}"
            )

    @staticmethod
    @abstractmethod
    def make_actor_policy(config: Any, spec: SpaceSpec) -> nn.Module:
        """The module actors act with; its state_dict is what `get_weights` sends."""

    @staticmethod
    @abstractmethod
    def explore(
        policy: nn.Module,
        obs: torch.Tensor,
        generator: torch.Generator,
        epsilon: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Exploration actions for a batch of observations ``[B, ...]``."""

    @staticmethod
    @abstractmethod
    def greedy(policy: nn.Module, obs: torch.Tensor) -> np.ndarray:
        """Evaluation actions for a batch of observations."""

    def epsilon(self) -> float:
        """Exploration rate for the next collection (epsilon-greedy algorithms override)."""
        return 0.0

    def after_round(self) -> None:
        """Hook after each update round (e.g. DQN's periodic target sync)."""

    def graph(self) -> LogicalGraph:
        cfg = self.config
        streams = cfg.num_envs * cfg.actors
        shards = cfg.learners  # one replay shard beside each (data-parallel) learner
        if streams % shards or cfg.batch_size % shards:
            raise ConfigError(
                f"--learners {shards}: each learner samples its own replay shard, which takes "
                f"a share of the env streams: num_envs x actors ({streams}) and batch_size "
                f"({cfg.batch_size}) must be multiples of --learners"
            )
        if self.learner_cls is None:
            raise ConfigError(
                f"{type(self).__name__} sets no learner_cls: an off-policy algorithm names its "
                "learner role (a subclass of OffPolicyLearnerBase)"
            )
        g = LogicalGraph(self.name)
        g.add(
            Fragment(
                "actor",
                self.actor_cls,
                {"algorithm": type(self), "env_id": self.env_id, "spec": self.spec, "config": cfg},
                Resources("cpu", cpus=cfg.actor_cpus),
                replicas=cfg.actors,
            )
        )
        row_bytes = 2 * 4 * int(np.prod(self.spec.obs_shape)) + 4 * self.spec.action_dim + 8
        g.add(
            Fragment(
                "replay",
                Replay,
                {"spec": self.spec, "config": cfg, "streams": streams // shards},
                Resources("cpu", cpus=0, memory_gb=cfg.buffer_size * row_bytes / 2**30 / shards),
                replicas=shards,
                beside="learner",  # sampled where it is stored: batches never leave the process
            )
        )
        g.add(
            Fragment(
                "learner",
                self.learner_cls,
                {"spec": self.spec, "config": cfg},
                Resources.for_device(cfg.device),
                replicas=shards,
            )
        )
        g.add_edge(TRANSITIONS.with_options(bound=2 * cfg.actors))  # streamed: 2 chunks ahead
        g.add_edge(BATCH)
        g.add_edge(WEIGHTS)
        if cfg.priorities():
            g.add_edge(PRIORITIES)
        g.add_edge(GRADIENTS)
        return g

    def setup(self) -> None:
        self.env_steps = 0
        self.rounds = 0
        self.runtime.carry(WEIGHTS.bind(0))

    def beta(self) -> float:
        priorities = self.config.priorities()
        assert priorities is not None
        start = priorities[1]
        return start + (1.0 - start) * min(1.0, self.env_steps / self.config.total_steps)

    def learning(self) -> bool:
        cfg = self.config
        return self.env_steps >= max(cfg.learning_starts, cfg.batch_size) and cfg.gradient_steps > 0

    def update_round(self, sums: dict[str, float]) -> None:
        """`gradient_steps` learner updates on sampled batches (the batch and priorities
        edges, carried where the replay shard and its learner live), the round hook, and
        a weight broadcast every `weight_sync` rounds (queued before each actor's next
        chunk when the actors stream)."""
        cfg = self.config
        shards = cfg.learners
        beta = self.beta() if cfg.priorities() else None
        outs = self.runtime.run_together(
            ["replay", "learner"], learn, cfg.gradient_steps, cfg.batch_size // shards, beta
        )
        for k in outs[0]:  # the mean over the learners
            sums[k] = sums.get(k, 0.0) + sum(out[k] for out in outs) / len(outs)
        sums["rounds"] = sums.get("rounds", 0.0) + 1
        self.rounds += 1
        self.after_round()
        if self.rounds % cfg.weight_sync == 0:
            self.runtime.carry(WEIGHTS.bind(self.rounds))

    def train_step(self) -> StepResult:
        """Every set of transition chunks the actors delivered (one, in lockstep; under
        async-actor, every set that has arrived, while the actors keep acting), each
        followed by an update round once learning has started."""
        sums: dict[str, float] = {}
        steps = 0
        episodes: dict[str, list[float]] = {"return": [], "length": []}
        for delivery in self.runtime.stream(TRANSITIONS, self.next_chunk_args):
            added = delivery.data["rewards"].numel()  # streams x steps
            steps += added
            self.env_steps += added
            for k, v in delivery.episodes().items():
                episodes.setdefault(k, []).extend(v)
            if self.learning():
                self.update_round(sums)
        metrics = self.round_metrics(sums)
        metrics.update(self.runtime.stream_stats(TRANSITIONS))
        return StepResult(steps, metrics, episodes)

    def round_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        rounds = sums.pop("rounds", 0.0)
        if not rounds:
            return {}
        metrics = {k: v / (rounds * self.config.gradient_steps) for k, v in sums.items()}
        if type(self).epsilon is not OffPolicy.epsilon:  # an exploration schedule (DQN)
            metrics["epsilon"] = self.epsilon()
        return metrics

    def next_chunk_args(self) -> tuple[int, bool, float]:
        """Arguments of the next `collect` an actor is sent; warm-up is decided by the env
        steps already asked for (those in flight too, when streaming), so a run takes as
        many random steps under every policy."""
        cfg = self.config
        per_chunk = cfg.train_freq * cfg.num_envs
        asked = self.env_steps + self.runtime.queued(TRANSITIONS) * per_chunk
        return (cfg.train_freq, asked < cfg.learning_starts, self.epsilon())

    def driver_state(self) -> dict[str, Any]:
        return {"env_steps": self.env_steps, "rounds": self.rounds}

    def load_driver_state(self, state: dict[str, Any]) -> None:
        self.env_steps, self.rounds = state["env_steps"], state["rounds"]

    @classmethod
    def eval_policy(
        cls, state: dict[str, Any], config: BaseConfig, spec: SpaceSpec
    ) -> Callable[[np.ndarray], np.ndarray]:
        policy = cls.make_actor_policy(config, spec)
        policy.load_state_dict(state["fragments"]["actor"][0]["policy"])

        def act(obs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return cls.greedy(policy, torch.as_tensor(np.asarray(obs, np.float32)))

        return act
