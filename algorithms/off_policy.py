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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from rlkit.algorithms.base import Algorithm, StepResult
from rlkit.batch import Batch
from rlkit.config import BaseConfig, check
from rlkit.dataflow.executor import Runtime
from rlkit.dataflow.graph import Fragment, LogicalGraph, Pattern, Resources
from rlkit.envs.runner import EnvRunner
from rlkit.envs.vector import SpaceSpec
from rlkit.errors import EnvError
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

    def __init__(self, spec: SpaceSpec, config: OffPolicyConfig, streams: int) -> None:
        common: dict[str, Any] = {
            "seed": config.seed + 7,
            "n_step": config.n_step,
            "gamma": config.gamma,
            "num_envs": streams,
        }
        fields = replay_fields(spec)
        self.buffer: ReplayBuffer
        if config.prioritized:
            self.buffer = PrioritizedReplayBuffer(
                config.buffer_size, fields, alpha=config.per_alpha, beta=config.per_beta, **common
            )
        else:
            self.buffer = ReplayBuffer(config.buffer_size, fields, **common)

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
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.version = 0

    def set_weights(self, weights: Weights, version: int) -> None:
        self.policy.load_state_dict(weights)
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
    ) -> tuple[Batch, dict[str, list[float]]]:
        """`num_steps` steps of every env; fields are ``[num_steps, num_envs, ...]``."""
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
        return batch, self.runner.pop_episodes()

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
                {"spec": self.spec, "config": cfg, "streams": streams},
                Resources("cpu", cpus=0, memory_gb=cfg.buffer_size * row_bytes / 2**30),
            )
        )
        g.add(
            Fragment(
                "learner",
                self.learner_cls,
                {"spec": self.spec, "config": cfg},
                Resources.for_device(cfg.device),
            )
        )
        g.connect(
            "transitions",
            "actor",
            "replay",
            Pattern.QUEUE,
            "collect",
            "add",
            bound=max(2, cfg.actors),
        )
        g.connect("batch", "replay", "learner", Pattern.GATHER, "sample", "update")
        g.connect("weights", "learner", "actor", Pattern.BROADCAST, "get_weights", "set_weights")
        if cfg.prioritized:
            g.connect(
                "priorities", "learner", "replay", Pattern.GATHER, "update", "update_priorities"
            )
        return g

    def start(self, runtime: Runtime) -> None:
        super().start(runtime)
        self.env_steps = 0
        self.rounds = 0
        self.runtime["actor"].call("set_weights", self.runtime["learner"].one("get_weights"), 0)

    def beta(self) -> float:
        cfg = self.config
        return cfg.per_beta + (1.0 - cfg.per_beta) * min(1.0, self.env_steps / cfg.total_steps)

    def train_step(self) -> StepResult:
        cfg = self.config
        actors, replay, learner = (
            self.runtime["actor"],
            self.runtime["replay"],
            self.runtime["learner"],
        )
        warmup = self.env_steps < cfg.learning_starts
        results = actors.call("collect", cfg.train_freq, warmup, self.epsilon())
        transitions = {k: torch.cat([r[0][k] for r in results], dim=1) for k in results[0][0]}
        replay.one("add", transitions)
        steps = cfg.train_freq * cfg.num_envs * actors.size
        self.env_steps += steps
        metrics: dict[str, float] = {}
        if self.env_steps >= max(cfg.learning_starts, cfg.batch_size) and cfg.gradient_steps > 0:
            sums: dict[str, Any] = {}
            for _ in range(cfg.gradient_steps):
                batch = replay.one(
                    "sample", cfg.batch_size, self.beta() if cfg.prioritized else None
                )
                out = learner.one("update", batch)
                priorities = out.pop("priorities", None)
                if cfg.prioritized and priorities is not None:
                    replay.one("update_priorities", batch["indices"], priorities)
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v
            self.rounds += 1
            self.after_round()
            if self.rounds % cfg.weight_sync == 0:
                actors.call("set_weights", learner.one("get_weights"), self.rounds)
            metrics = {k: float(v) / cfg.gradient_steps for k, v in sums.items()}
            metrics["epsilon"] = self.epsilon()
        episodes = {k: [x for r in results for x in r[1][k]] for k in ("return", "length")}
        return StepResult(steps, metrics, episodes)

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


class OffPolicyLearnerBase(Learner):
    """Shared learner plumbing: device, threads, seeded construction, Polyak averaging."""

    def __init__(
        self, spec: SpaceSpec, config: OffPolicyConfig, device: torch.device | None = None
    ) -> None:
        torch.set_num_threads(config.torch_threads)
        self.spec, self.config = spec, config
        self.device = device or torch.device("cpu")
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.updates = 0

    @staticmethod
    def cpu_weights(module: nn.Module) -> Weights:
        """A CPU copy of `module`'s state dict (what actors load)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}

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
