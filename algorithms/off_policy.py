"""The off-policy template (DQN, SAC): actors fill a replay buffer, a learner samples it.

Logical graph::

    actor xN --transitions(queue)--> replay --batch--> learner --weights(broadcast)--> actor
                                      ^--------priorities (prioritized replay)---------'

An algorithm built on it supplies a learner role and three class-level hooks:
`make_actor_policy` (the module actors act with), `explore` (an exploration action) and
`greedy` (the evaluation action). Everything else (warm-up, buffer, n-step returns,
prioritized replay and its beta schedule, update rounds, weight pushes) lives here; the
roles are in `off_policy_roles.py`, the driver of streaming actors in `dataflow/stream.py`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from rlkit.algorithms.base import Algorithm, StepResult
from rlkit.algorithms.off_policy_roles import OffPolicyActor, Replay, learn
from rlkit.config import BaseConfig, check
from rlkit.dataflow.executor import Runtime
from rlkit.dataflow.graph import Fragment, LogicalGraph, Pattern, Resources
from rlkit.dataflow.stream import Stream
from rlkit.envs.vector import SpaceSpec
from rlkit.errors import ConfigError, EnvError
from rlkit.roles import Learner


@dataclass
class OffPolicyConfig(BaseConfig):
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
    prioritized: bool = False
    """Prioritized replay (proportional) instead of uniform."""
    per_alpha: float = 0.6
    """Prioritized replay: how strongly priorities skew sampling."""
    per_beta: float = 0.4
    """Prioritized replay: initial importance-weight exponent, annealed to 1 over the run."""
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
        check(self.per_alpha >= 0, "per_alpha", "must be >= 0")
        check(0.0 <= self.per_beta <= 1.0, "per_beta", "must be in [0, 1]")
        check(self.lr > 0, "lr", "must be positive")
        check(
            len(self.hidden) >= 1 and min(self.hidden) >= 1, "hidden", "needs positive layer sizes"
        )
        check(self.weight_sync >= 1, "weight_sync", "must be at least 1")


class OffPolicy(Algorithm):
    """Template: subclasses set `config_cls`, `learner_cls` and the three policy hooks."""

    config_cls: ClassVar[type[BaseConfig]] = OffPolicyConfig
    learner_cls: ClassVar[type[Learner]]
    discrete: ClassVar[bool]
    """The kind of action space the algorithm acts in: discrete (DQN) or continuous (SAC)."""
    instead: ClassVar[str] = ""
    """The algorithm to suggest for the other kind of action space."""
    config: OffPolicyConfig

    @classmethod
    def check_env(cls, env_id: str, spec: SpaceSpec) -> None:
        if spec.discrete != cls.discrete:
            need, have = ("discrete", "continuous") if cls.discrete else ("continuous", "discrete")
            raise EnvError(
                f"{cls.name.upper()} needs {need} actions and {env_id} has {have} ones: "
                f"use {cls.instead.upper()} (rlkit run {cls.instead} --env {env_id}) or PPO"
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
        g = LogicalGraph(self.name)
        g.add(
            Fragment(
                "actor",
                OffPolicyActor,
                {"algorithm": type(self), "env_id": self.env_id, "spec": self.spec, "config": cfg},
                Resources("cpu", cpus=1),
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
        g.connect(
            "transitions",
            "actor",
            "replay",
            Pattern.QUEUE,
            "collect",
            "add",
            bound=2 * cfg.actors,  # async-actor: each actor at most two chunks ahead
        )
        g.connect("batch", "replay", "learner", Pattern.GATHER, "sample", "update")
        g.connect("weights", "learner", "actor", Pattern.BROADCAST, "get_weights", "set_weights")
        if cfg.prioritized:
            g.connect(
                "priorities", "learner", "replay", Pattern.GATHER, "update", "update_priorities"
            )
        if shards > 1:
            g.connect("gradients", "learner", "learner", Pattern.ALLREDUCE)
        return g

    def start(self, runtime: Runtime) -> None:
        super().start(runtime)
        self.env_steps = 0
        self.rounds = 0
        actors, learner = self.runtime["actor"], self.runtime["learner"]
        if learner.size > 1:  # data-parallel learners form their all-reduce group
            learner.call("join", learner.one("rendezvous"))
        actors.call("set_weights", learner.one("get_weights"), 0)
        plan = self.runtime.plan
        self.streaming = plan.transport("transitions") == "queue"
        if self.streaming:
            bound = plan.graph.edge("transitions").bound
            self.stream = Stream(actors.size, max(1, bound // actors.size))

    def beta(self) -> float:
        cfg = self.config
        return cfg.per_beta + (1.0 - cfg.per_beta) * min(1.0, self.env_steps / cfg.total_steps)

    def learning(self) -> bool:
        cfg = self.config
        return self.env_steps >= max(cfg.learning_starts, cfg.batch_size) and cfg.gradient_steps > 0

    def update_round(self, sums: dict[str, float]) -> None:
        """`gradient_steps` learner updates on sampled batches (priorities sent back), the
        round hook, and a weight push every `weight_sync` rounds (to the actors at once
        when synchronous; queued before each actor's next chunk when streaming)."""
        cfg = self.config
        actors, learner = self.runtime["actor"], self.runtime["learner"]
        beta = self.beta() if cfg.prioritized else None
        shards = self.runtime.run_together(
            ["replay", "learner"], learn, cfg.gradient_steps, cfg.batch_size // learner.size, beta
        )
        for k in shards[0]:  # the mean over the learners
            sums[k] = sums.get(k, 0.0) + sum(out[k] for out in shards) / len(shards)
        sums["rounds"] = sums.get("rounds", 0.0) + 1
        self.rounds += 1
        self.after_round()
        if self.rounds % cfg.weight_sync == 0:
            weights = learner.one("get_weights")
            if self.streaming:
                self.stream.publish(actors, weights, self.rounds)
            else:
                actors.call("set_weights", weights, self.rounds)

    def train_step(self) -> StepResult:
        if self.streaming:
            return self.stream_step()
        cfg = self.config
        warmup = self.env_steps < cfg.learning_starts
        results = self.runtime["actor"].call("collect", cfg.train_freq, warmup, self.epsilon())
        sums: dict[str, float] = {}
        steps = self.add_round(results, sums)
        episodes = {k: [x for r in results for x in r[1][k]] for k in ("return", "length")}
        return StepResult(steps, self.round_metrics(sums), episodes)

    def add_round(self, results: list[Any], sums: dict[str, float]) -> int:
        """Add one chunk of every actor to the replay buffer (streams side by side; with
        several learners each replay shard takes its share of the streams), then run an
        update round once learning has started. The env steps added."""
        cfg = self.config
        replay = self.runtime["replay"]
        transitions = {k: torch.cat([r[0][k] for r in results], dim=1) for k in results[0][0]}
        if replay.size == 1:
            replay.one("add", transitions)
        else:
            parts = {k: v.chunk(replay.size, dim=1) for k, v in transitions.items()}
            replay.call_each(
                "add", [({k: p[i] for k, p in parts.items()},) for i in range(replay.size)]
            )
        steps = cfg.train_freq * cfg.num_envs * len(results)
        self.env_steps += steps
        if self.learning():
            self.update_round(sums)
        return steps

    def round_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        rounds = sums.pop("rounds", 0.0)
        if not rounds:
            return {}
        metrics = {k: v / (rounds * self.config.gradient_steps) for k, v in sums.items()}
        metrics["epsilon"] = self.epsilon()
        return metrics

    def stream_step(self) -> StepResult:
        """async-actor: wait for chunks to arrive (at least one), add every complete set
        (one chunk per actor) with its update round, as the synchronous loop does, and keep
        every actor `depth` chunks ahead. The actors act while the learner learns."""
        actors = self.runtime["actor"]
        self.stream.fill(actors, self.next_chunk_args)
        arrived = self.stream.harvest(actors)
        sums: dict[str, float] = {}
        steps = 0
        while (results := self.stream.take()) is not None:
            steps += self.add_round(results, sums)
        self.stream.fill(actors, self.next_chunk_args)
        metrics = self.round_metrics(sums)
        metrics["policy_lag"] = float(
            np.mean([self.stream.version - c[1]["version"] for c in arrived])
        )
        metrics["queued_chunks"] = float(self.stream.queued())
        episodes = {k: [x for c in arrived for x in c[1][k]] for k in ("return", "length")}
        return StepResult(steps, metrics, episodes)

    def next_chunk_args(self) -> tuple[Any, ...]:
        """Arguments of the next `collect` an actor is sent; warm-up is decided by the env
        steps already asked for, so a run takes as many random steps as the synchronous loop."""
        cfg = self.config
        per_actor = cfg.train_freq * cfg.num_envs
        asked = self.env_steps + self.stream.queued() * per_actor
        return (cfg.train_freq, asked < cfg.learning_starts, self.epsilon())

    def driver_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"env_steps": self.env_steps, "rounds": self.rounds}
        if self.streaming:  # chunks in flight are part of the state: resume adds them
            state["stream"] = self.stream.state_dict()
        return state

    def load_driver_state(self, state: dict[str, Any]) -> None:
        self.env_steps, self.rounds = state["env_steps"], state["rounds"]
        if self.streaming and "stream" in state:
            self.stream.load_state_dict(self.runtime["actor"], state["stream"])

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
