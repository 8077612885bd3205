"""The abstract roles an algorithm is written against.

Roles are plain classes: they take a `device`, hold tensors, and know nothing of where
they run. The dataflow executor constructs them inside a worker (in this process, or in
a Ray actor) and calls their methods as the graph's edges say; arguments and results are
batches, weight dicts and metric dicts, all picklable. Everything a role holds comes back
from `state_dict()`. A role need not derive from these classes: an edge only needs its
methods (checked when the graph is built); deriving documents the contract.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch

from rlkit.batch import Batch

Weights = dict[str, torch.Tensor]
Metrics = dict[str, Any]
"""Scalar metrics (floats, or 0-d tensors that the driver averages and converts once per
iteration to avoid a device sync per gradient step), plus optional per-sample outputs
such as ``priorities`` for prioritized replay."""


class Output(NamedTuple):
    """What a producer returns when it has more to say than the data it sends."""

    data: Any
    """What travels along the edge (a batch, usually)."""
    info: dict[str, Any]
    """What comes back to the driver (e.g. "return" and "length" of finished episodes)."""


class Role(ABC):
    """Anything placed as a fragment: constructed from keyword arguments, checkpointable."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly after `load_state_dict`."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def eval_state(self) -> dict[str, Any]:
        """What periodic evaluation gives `Algorithm.eval_policy` of this role: its whole
        state by default (a buffer gives none: its contents make no policy)."""
        return self.state_dict()

    def close(self) -> None:
        """Release what the role holds outside Python (env subprocesses, files)."""


@runtime_checkable
class SharesDevice(Protocol):
    """A role that can step aside on a device it shares (keep its weights on the host
    between its calls). The executor calls `share_device()` right after constructing a
    replica that the plan has take turns on its device with others (a colocation group
    under `colocate`); a role never reads the distribution policy itself."""

    def share_device(self) -> None: ...


class Actor(Role):
    """Owns environment instances and a copy of the policy."""

    @abstractmethod
    def collect(self, num_steps: int) -> Output:
        """Step the environments `num_steps` times; return `Output(experience, info)`: the
        experience an env-major batch (see `rlkit.batch`), the info the episode stats
        ("return", "length": lists over the episodes that ended) and the "version" of
        the weights that acted."""

    @abstractmethod
    def set_weights(self, weights: Weights, version: int) -> None:
        """Take new policy parameters; rollouts collected after this carry `version`."""


class Learner(Role):
    """Owns trainable modules and their optimizers."""

    @abstractmethod
    def update(self, batch: Batch) -> Metrics:
        """One round of optimization on `batch`; returns scalar metrics."""

    @abstractmethod
    def get_weights(self) -> Weights:
        """The parameters actors need (CPU tensors)."""


class Buffer(Role):
    """Stores experience between actors and learners (replay, or rollout storage)."""

    @abstractmethod
    def add(self, batch: Any) -> None:
        """Append a batch of transitions."""

    @abstractmethod
    def sample(self, n: int) -> Any:
        """`n` transitions."""

    @abstractmethod
    def __len__(self) -> int: ...

    def eval_state(self) -> dict[str, Any]:
        return {}


class Generator(Role):
    """RLHF rollout engine (HF `generate` or vLLM): prompts in, responses out."""

    @abstractmethod
    def generate(self, prompts: Batch) -> Batch: ...

    @abstractmethod
    def set_weights(self, weights: Weights, version: int) -> None: ...


class InFlight(Generator):
    """A rollout engine whose requests are decoded a few steps at a time, so that weights
    pushed between two calls land between decode steps of the requests in flight (the
    `async` distribution policy needs it; a response may then span policy versions)."""

    @abstractmethod
    def start(self, prompts: Batch, ticket: int) -> None:
        """Begin sampling responses to `prompts` as request `ticket`."""

    @abstractmethod
    def advance(self, steps: int) -> list[Any]:
        """Up to `steps` decode steps of every request in flight; the finished requests."""

    @abstractmethod
    def in_flight(self) -> list[int]:
        """The tickets of the requests in flight, oldest first."""


class Scorer(Role):
    """RLHF scoring role: a reward model, a reference model, or a rule function."""

    @abstractmethod
    def score(self, batch: Batch) -> Batch: ...
