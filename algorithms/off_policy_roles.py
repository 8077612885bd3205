"""The roles of the off-policy template: the replay buffer over rlkit's C++ buffer, the
actor that steps environments and returns transitions, the update round that runs where
the buffer and the learner live, and the learner base class DQN's and SAC's learners
extend (`LearnerBase`'s plumbing plus batches onto the device, Polyak averaging and
flat CPU weights)."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from rlkit.algorithms.flat_params import FlatParameters
from rlkit.algorithms.learner import LearnerBase
from rlkit.batch import Batch
from rlkit.device import use_threads
from rlkit.envs.families import parse_env_kwargs
from rlkit.envs.runner import EnvRunner
from rlkit.envs.vector import SpaceSpec
from rlkit.replay import PrioritizedReplayBuffer, ReplayBuffer
from rlkit.roles import Actor, Buffer, Output, Weights

if TYPE_CHECKING:
    from rlkit.algorithms.off_policy import OffPolicy, OffPolicyConfig


def transition_fields(spec: SpaceSpec) -> dict[str, tuple[tuple[int, ...], Any]]:
    """The fields of a transition in the batch schema (`rlkit.batch`): shape and dtype."""
    actions = ((), np.int64) if spec.discrete else ((spec.action_dim,), np.float32)
    return {
        "obs": (spec.obs_shape, np.float32),
        "actions": actions,
        "rewards": ((), np.float32),
        "next_obs": (spec.obs_shape, np.float32),
        "terminated": ((), np.bool_),
        "truncated": ((), np.bool_),
    }


TO_BUFFER = {"rewards": "reward"}
"""Schema names the replay buffer knows by its own (it computes n-step returns over its
"reward" field); `Replay` translates both ways."""
FROM_BUFFER = {"reward": "rewards", "discount": "discounts"}


def replay_fields(spec: SpaceSpec) -> dict[str, tuple[tuple[int, ...], Any]]:
    """The replay buffer's fields (buffer names)."""
    return {TO_BUFFER.get(k, k): v for k, v in transition_fields(spec).items()}


class Replay(Buffer):
    """The buffer role over rlkit's C++ replay buffer.

    Transitions arrive env-major, ``[streams, steps, ...]``, one stream per environment
    across all actors, and are stored step-major so the buffer's n-step returns follow
    each stream. `sample` returns torch tensors that share memory with the sampled arrays,
    in the batch schema's names (`rlkit.batch`).
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
        self.buffer.add(
            {
                TO_BUFFER.get(k, k): v.transpose(0, 1).reshape(-1, *v.shape[2:]).numpy()
                for k, v in batch.items()
            }
        )

    def sample(self, n: int, beta: float | None = None) -> Batch:
        if isinstance(self.buffer, PrioritizedReplayBuffer):
            data = self.buffer.sample(n, beta)
        else:
            data = self.buffer.sample(n)
        return {FROM_BUFFER.get(k, k): torch.from_numpy(v) for k, v in data.items()}

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
        use_threads(config.torch_threads)
        self.algorithm, self.config, self.spec = algorithm, config, spec
        seed = config.seed + 10_007 * replica
        self.runner = EnvRunner(
            env_id,
            spec,
            config.num_envs,
            config.vector,
            seed,
            workers=config.env_workers,
            kwargs=parse_env_kwargs(config.env_kwargs),
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
    def collect(self, num_steps: int, random: bool = False, epsilon: float = 0.0) -> Output:
        """`num_steps` steps of every env: the transitions (env-major: fields ``[num_envs,
        num_steps, ...]``) and, as the info, the episodes that ended and the policy
        "version" that acted."""
        fields = transition_fields(self.spec)
        rows: dict[str, list[np.ndarray]] = {k: [] for k in fields}
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
            rows["actions"].append(actions)
            rows["rewards"].append(step.reward)
            rows["next_obs"].append(step.next_obs_with_final())
            rows["terminated"].append(step.terminated)
            rows["truncated"].append(step.truncated)
        batch = {  # stacked step-major, handed on env-major (a view: no copy here)
            k: torch.from_numpy(np.stack(v).astype(fields[k][1], copy=False)).transpose(0, 1)
            for k, v in rows.items()
        }
        return Output(batch, {**self.runner.pop_episodes(), "version": self.version})

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


class OffPolicyLearnerBase(LearnerBase):
    """The off-policy learners' base: `LearnerBase` (data parallel: `config.learners`
    replicas, each on its own replay shard, averaging gradients with one all-reduce per
    backward pass), its generator on the device (for exploration noise), Polyak
    averaging."""

    generator_on_device = True

    def __init__(
        self,
        spec: SpaceSpec,
        config: OffPolicyConfig,
        device: torch.device | None = None,
        replica: int = 0,
    ) -> None:
        super().__init__(config, device, replica)
        self.spec, self.config = spec, config

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
