"""Executors run a placed plan. `local` constructs every fragment replica in this process.

The algorithm's driver talks to fragments through `WorkerGroup`s, one per fragment; a
group call runs a role method on its replicas and merges the results according to the
edge pattern (call = broadcast the same arguments, scatter = split a batch). The Ray
executor offers the same groups over Ray actors, so a driver runs unchanged on both.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from rlkit import batch as B
from rlkit.dataflow.plan import Plan
from rlkit.dataflow.scheduler import Cluster, Placement, local_cluster
from rlkit.device import resolve_device
from rlkit.registry import Registry

TORCH_DEVICE = {"cpu": "cpu", "gpu": "cuda", "npu": "npu"}


class Pending:
    """Results of a group call that may still be running (see `WorkerGroup.call_async`)."""

    def __init__(self, wait: Any) -> None:
        self._wait = wait
        self._results: list[Any] | None = None

    @classmethod
    def done(cls, results: list[Any]) -> Pending:
        p = cls(None)
        p._results = results
        return p

    def wait(self) -> list[Any]:
        """Block until every replica answered; results in replica order."""
        if self._results is None:
            self._results = self._wait()
        return self._results


class WorkerGroup(ABC):
    """The replicas of one fragment, addressed together."""

    name: str
    size: int

    @abstractmethod
    def call(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Run `method` on every replica with the same arguments; results in replica order."""

    @abstractmethod
    def call_each(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Run `method` on replica i with `args[i]`."""

    @abstractmethod
    def one(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run `method` on replica 0 only (e.g. `get_weights` of a single learner)."""

    def call_async(self, method: str, *args: Any) -> Pending:
        """Start `method` on every replica and return at once; `wait()` for the results.
        Executors without parallel workers run it right away (same results, no overlap)."""
        return Pending.done(self.call(method, *args))

    def scatter(self, method: str, batch: B.Batch) -> list[Any]:
        """Split `batch` across the replicas and run `method` on each part."""
        parts = B.split(batch, self.size)
        return self.call_each(method, [(p,) for p in parts])


class LocalGroup(WorkerGroup):
    def __init__(self, name: str, instances: list[Any]) -> None:
        self.name = name
        self.instances = instances
        self.size = len(instances)

    def call(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        return [getattr(x, method)(*args, **kwargs) for x in self.instances]

    def call_each(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        return [getattr(x, method)(*a) for x, a in zip(self.instances, args, strict=True)]

    def one(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.instances[0], method)(*args, **kwargs)


class Runtime:
    """A started plan: its groups by fragment name."""

    def __init__(self, plan: Plan, placement: Placement, groups: dict[str, WorkerGroup]) -> None:
        self.plan = plan
        self.placement = placement
        self.groups = groups

    def __getitem__(self, fragment: str) -> WorkerGroup:
        return self.groups[fragment]

    def restarts(self) -> int:
        """Worker processes restarted since the start (always 0 in one process)."""
        return 0

    def shutdown(self) -> None:
        """Close every replica that has a `close()` (environments, subprocesses)."""
        for g in self.groups.values():
            g.call("close")


class Executor(ABC):
    """Runs placed plans. Constructed with the run's config (for e.g. a cluster address);
    `cluster()` tells the scheduler what resources exist before anything starts."""

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def cluster(self) -> Cluster:
        """The resources plans are placed onto (default: this machine)."""
        return local_cluster()

    def check_device(self, device: str) -> None:
        """Refuse a device this executor cannot provide (local: this machine's devices)."""
        resolve_device(device)

    @abstractmethod
    def start(self, placement: Placement) -> Runtime: ...


EXECUTORS: Registry[type[Executor]] = Registry("executor")


def construct(role: type, kwargs: dict[str, Any], device: str, replica: int) -> Any:
    """Build a role, passing `device` and `replica` when its constructor takes them."""
    params = inspect.signature(role).parameters
    extra: dict[str, Any] = {}
    if "device" in params and "device" not in kwargs:
        extra["device"] = (
            torch.device(TORCH_DEVICE[device]) if device in TORCH_DEVICE else torch.device(device)
        )
    if "replica" in params:
        extra["replica"] = replica
    return role(**kwargs, **extra)


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """Every replica is an object in this process; edges are references (zero copy)."""

    def start(self, placement: Placement) -> Runtime:
        plan = placement.plan
        groups: dict[str, WorkerGroup] = {}
        for name, fragment in plan.graph.fragments.items():
            instances = [
                construct(fragment.role, fragment.kwargs, placement.device_of(name, i), i)
                for i in range(plan.replicas[name])
            ]
            groups[name] = LocalGroup(name, instances)
        return Runtime(plan, placement, groups)
