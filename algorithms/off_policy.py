"""The off-policy template (DQN, SAC): actors fill a replay buffer, a learner samples it.

Logical graph::

    actor xN --transitions(queue)--> replay --batch--> learner --weights(broadcast)--> actor
                                      ^--------priorities (prioritized replay)---------'

An algorithm built on it supplies a learner role and three class-level hooks:
`make_actor_policy` (the module actors act with), `explore` (an exploration action) and
`greedy` (the evaluation action). Everything else (warm-up, buffer, n-step returns,
prioritized replay and its beta schedule, update rounds, weight pushes) lives here.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from rlkit.algorithms.base import Algorithm, StepResult
from rlkit.algorithms.data_parallel import DataParallel, DataParallelRole
from rlkit.algorithms.flat_params import FlatParameters
from rlkit.batch import Batch
from rlkit.config import BaseConfig, check
from rlkit.dataflow.executor import Pending, Runtime, WorkerGroup
from rlkit.dataflow.graph import Fragment, LogicalGraph, Pattern, Resources
from rlkit.envs.runner import EnvRunner
from rlkit.envs.vector import SpaceSpec
from rlkit.errors import ConfigError, EnvError
from rlkit.replay import PrioritizedReplayBuffer, ReplayBuffer
from rlkit.roles import Actor, Buffer, Learner, Weights


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


def replay_fields(spec: SpaceSpec) -> dict[str, tuple[tuple[int, ...], Any]]:
    action = ((), np.int64) if spec.discrete else ((spec.action_dim,), np.float32)
    return {
        "obs": (spec.obs_shape, np.float32),
        "action": action,
        "reward": ((), np.float32),
        "next_obs": (spec.obs_shape, np.float32),
        "terminated": ((), np.bool_),
        "truncated": ((), np.bool_),
    }


class Replay(Buffer):
    """The buffer role over rlkit's C++ replay buffer.

    Transitions arrive as ``[steps, streams, ...]`` arrays, one stream per environment
    across all actors, and are stored step-major so the buffer's n-step returns follow
    each stream. `sample` returns torch tensors that share memory with the sampled arrays.
    """

    def __init__(
        self, spec: SpaceSpec, config: OffPolicyConfig, streams: int, replica: int = 0
    ) -> None:
        capacity = config.buffer_size // config.learners  # one shard per learner
        common: dict[str, Any] = {
            "seed": config.seed + 7 + 7919 * replica,
            "n_step": config.n_step,
            "gamma": config.gamma,
            "num_envs": streams,
        }
        fields = replay_fields(spec)
        self.buffer: ReplayBuffer
        if config.prioritized:
            self.buffer = PrioritizedReplayBuffer(
                capacity, fields, alpha=config.per_alpha, beta=config.per_beta, **common
            )
        else:
            self.buffer = ReplayBuffer(capacity, fields, **common)

    def add(self, batch: Batch) -> None:
        self.buffer.add({k: v.reshape(-1, *v.shape[2:]).numpy() for k, v in batch.items()})

    def sample(self, n: int, beta: float | None = None) -> Batch:
        if isinstance(self.buffer, PrioritizedReplayBuffer):
            data = self.buffer.sample(n, beta)
        else:
            data = self.buffer.sample(n)
        return {k: torch.from_numpy(v) for k, v in data.items()}

    def update_priorities(self, indices: torch.Tensor, priorities: torch.Tensor) -> None:
        assert isinstance(self.buffer, PrioritizedReplayBuffer)
        self.buffer.update_priorities(indices.numpy(), priorities.detach().cpu().double().numpy())

    def __len__(self) -> int:
        return len(self.buffer)

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])


class OffPolicyActor(Actor):
    """Acts in `num_envs` environments and returns the transitions it saw."""

    def __init__(
        self,
        algorithm: type[OffPolicy],
        env_id: str,
        spec: SpaceSpec,
        config: OffPolicyConfig,
        replica: int = 0,
    ) -> None:
        torch.set_num_threads(config.torch_threads)
        self.algorithm, self.config, self.spec = algorithm, config, spec
        seed = config.seed + 10_007 * replica
        self.runner = EnvRunner(
            env_id, spec, config.num_envs, config.vector, seed, workers=config.env_workers
        )
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.policy = algorithm.make_actor_policy(config, spec)
        self.flat = FlatParameters(self.policy)  # its parameters as views into one buffer
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.version = 0

    def set_weights(self, weights: Weights, version: int) -> None:
        self.flat.set(weights["flat"])
        self.version = version

    def random_actions(self) -> np.ndarray:
        n, spec = self.config.num_envs, self.spec
        if spec.discrete:
            return self.rng.integers(0, spec.action_dim, n)
        return self.rng.uniform(spec.action_low, spec.action_high, (n, spec.action_dim)).astype(
            np.float32
        )

    @torch.no_grad()
    def collect(
        self, num_steps: int, random: bool = False, epsilon: float = 0.0
    ) -> tuple[Batch, dict[str, Any]]:
        """`num_steps` steps of every env: the transitions (fields ``[num_steps, num_envs,
        ...]``) and the episodes that ended, with the policy "version" that acted."""
        rows: dict[str, list[np.ndarray]] = {k: [] for k in replay_fields(self.spec)}
        for _ in range(num_steps):
            obs = self.runner.obs
            if random:
                actions = self.random_actions()
            else:
                actions = self.algorithm.explore(
                    self.policy, torch.from_numpy(obs), self.generator, epsilon, self.rng
                )
            step = self.runner.step(actions)
            rows["obs"].append(obs)
            rows["action"].append(actions)
            rows["reward"].append(step.reward)
            rows["next_obs"].append(step.next_obs_with_final())
            rows["terminated"].append(step.terminated)
            rows["truncated"].append(step.truncated)
        dtypes = dict(replay_fields(self.spec))
        batch = {
            k: torch.from_numpy(np.stack(v).astype(dtypes[k][1], copy=False))
            for k, v in rows.items()
        }
        return batch, {**self.runner.pop_episodes(), "version": self.version}

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "generator": self.generator.get_state(),
            "rng": self.rng.bit_generator.state,
            "runner": self.runner.state_dict(),
            "version": self.version,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
        self.runner.load_state_dict(state["runner"])
        self.version = state["version"]

    def close(self) -> None:
        self.runner.close()


def learn(
    roles: dict[str, Any], steps: int, batch_size: int, beta: float | None
) -> dict[str, float]:
    """One update round where the replay buffer and the learner live (the replay buffer is
    `beside` the learner): `steps` times sample, update, and send priorities back (with
    prioritized replay, when `beta` is given). The learner's metrics summed over the steps;
    they stay tensors until the end of the round (no device sync per gradient step)."""
    replay, learner = roles["replay"], roles["learner"]
    sums: dict[str, Any] = {}
    for _ in range(steps):
        batch = replay.sample(batch_size, beta)
        out = learner.update(batch)
        priorities = out.pop("priorities", None)
        if beta is not None and priorities is not None:
            replay.update_priorities(batch["indices"], priorities)
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + v
    return {k: float(v) for k, v in sums.items()}


class Stream:
    """The driver's side of streaming actors (the `async-actor` policy).

    Each actor has up to `depth` chunks in flight or waiting: collections, each preceded
    by a weight push when newer weights were published (Ray runs one actor's calls in the
    order they were sent, so the push is applied before the chunk). `harvest` moves the
    chunks that have arrived into per-actor FIFOs; `take` pops one chunk of every actor
    (their streams side by side, as the buffer's n-step returns need) while each has one;
    `fill` tops every actor up again. A restarted actor (its chunk carries an older weight
    version than it was sent) is sent the latest weights again.
    """

    def __init__(self, actors: int, depth: int) -> None:
        self.depth = depth
        self.inflight: list[tuple[int, str, Pending, int]] = []
        """(replica, "push" | "collect", call, weight version the actor should have) in
        the order sent."""
        self.waiting: list[list[Any]] = [[] for _ in range(actors)]
        """Chunks that arrived, per actor, not yet added to the buffer."""
        self.weights: Any = None
        """The latest published weights, as shared with the actors (an object-store ref)."""
        self.published: Any = None
        """The same weights as a value (kept for checkpoints)."""
        self.version = 0
        """Version of the latest published weights."""
        self.sent = [0] * actors
        """Latest weight version sent to each actor."""

    def publish(self, actors: WorkerGroup, weights: Any, version: int) -> None:
        self.weights, self.published, self.version = actors.share(weights), weights, version

    def queued(self, replica: int | None = None) -> int:
        """Chunks asked for and not yet added to the buffer (of one actor, or all)."""
        replicas = range(len(self.waiting)) if replica is None else [replica]
        return sum(
            len(self.waiting[r])
            + sum(1 for x, kind, _, _ in self.inflight if x == r and kind == "collect")
            for r in replicas
        )

    def fill(self, actors: WorkerGroup, args: Callable[[], tuple[Any, ...]]) -> None:
        for replica in range(actors.size):
            while self.queued(replica) < self.depth:
                if self.sent[replica] < self.version:
                    push = actors.call_one_async(replica, "set_weights", self.weights, self.version)
                    self.inflight.append((replica, "push", push, self.version))
                    self.sent[replica] = self.version
                call = actors.call_one_async(replica, "collect", *args())
                self.inflight.append((replica, "collect", call, self.sent[replica]))

    def harvest(self, actors: WorkerGroup) -> list[Any]:
        """Wait until at least one chunk has arrived; file every arrived chunk under its
        actor; return them (in the order sent)."""
        chunks: list[Any] = []
        while not chunks:  # finished weight pushes alone are not enough
            ready = set(actors.wait_any([entry[2] for entry in self.inflight]))
            left = []
            for i, entry in enumerate(self.inflight):
                replica, kind, call, expected = entry
                if i not in ready:
                    left.append(entry)
                    continue
                result = call.wait()
                if kind == "collect":
                    chunks.append(result)
                    self.waiting[replica].append(result)
                    if result[1]["version"] < expected:  # restarted: initial weights
                        self.sent[replica] = result[1]["version"]
            self.inflight = left
        return chunks

    def take(self) -> list[Any] | None:
        """The oldest waiting chunk of every actor, in actor order, or None if one has none."""
        if not all(self.waiting):
            return None
        return [w.pop(0) for w in self.waiting]

    def state_dict(self) -> dict[str, Any]:
        done = [(r, kind, call.wait(), v) for r, kind, call, v in self.inflight]
        return {
            "inflight": done,
            "waiting": self.waiting,
            "sent": list(self.sent),
            "weights": self.published,
            "version": self.version,
        }

    def load_state_dict(self, actors: WorkerGroup, state: dict[str, Any]) -> None:
        self.inflight = [(r, kind, Pending.done(x), v) for r, kind, x, v in state["inflight"]]
        self.waiting, self.sent = state["waiting"], list(state["sent"])
        self.publish(actors, state["weights"], state["version"])


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


class OffPolicyLearnerBase(DataParallelRole, Learner):
    """Shared learner plumbing: device, threads, seeded construction, Polyak averaging, and
    data parallelism (`config.learners` replicas, each on its own replay shard, averaging
    gradients with one all-reduce per backward pass)."""

    def __init__(
        self,
        spec: SpaceSpec,
        config: OffPolicyConfig,
        device: torch.device | None = None,
        replica: int = 0,
    ) -> None:
        torch.set_num_threads(config.torch_threads)
        self.spec, self.config = spec, config
        self.device = device or torch.device("cpu")
        self.dp = DataParallel(replica, config.learners, self.device)
        seed = config.seed + 1 + 7919 * replica  # each replica its own noise
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.updates = 0

    def average_grads(self, params: Iterable[torch.Tensor]) -> None:
        """Average the gradients of `params` over the replicas: one all-reduce of one flat
        buffer (nothing to do with one learner)."""
        if self.dp.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = self.dp.average_(torch.cat([g.reshape(-1) for g in grads]))
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def to_device(self, batch: Batch) -> Batch:
        """`batch` on the learner's device (as it is on CPU: no per-field calls)."""
        if self.device.type == "cpu":
            return batch
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    @staticmethod
    def cpu_weights(module: nn.Module) -> Weights:
        """`module`'s parameters as one flat CPU buffer (what actors load, see
        `FlatParameters.set`): a weight push is one message, not one per parameter."""
        return {"flat": torch.cat([p.detach().reshape(-1) for p in module.parameters()]).cpu()}

    @staticmethod
    @torch.no_grad()
    def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
        """target <- (1 - tau) target + tau source, for every parameter, in one fused op."""
        t: list[torch.Tensor] = list(target.parameters())
        s: list[torch.Tensor] = list(source.parameters())
        if tau >= 1.0:
            torch._foreach_copy_(t, s)
        else:
            torch._foreach_lerp_(t, s, tau)

    @abstractmethod
    def update(self, batch: Batch) -> dict[str, Any]: ...
