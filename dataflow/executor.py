"""Executors run a placed plan. `local` constructs every fragment replica in this process.

The algorithm's driver talks to fragments through `WorkerGroup`s, one per fragment; a
group call runs a role method on its replicas and merges the results according to the
edge pattern (call = broadcast the same arguments, scatter = split a batch). The Ray
executor offers the same groups over Ray actors, so a driver runs unchanged on both.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import torch

from rlkit import batch as B
from rlkit.dataflow.plan import Plan
from rlkit.dataflow.scheduler import Cluster, Placement, local_cluster
from rlkit.device import resolve_device
from rlkit.registry import Registry

TORCH_DEVICE = {"cpu": "cpu", "gpu": "cuda", "npu": "npu"}
T = TypeVar("T")


class Pending:
    """Results of a group call that may still be running (see `WorkerGroup.call_async`)."""

    def __init__(self, wait: Any, refs: Sequence[Any] = ()) -> None:
        self._wait = wait
        self._results: Any = None
        self._done = False
        self.refs = list(refs)
        """Executor handles of the running calls (Ray object refs), for `WorkerGroup.wait_any`."""

    @classmethod
    def done(cls, results: Any) -> Pending:
        p = cls(None)
        p._results, p._done = results, True
        return p

    @property
    def finished(self) -> bool:
        """True once `wait()` has returned (the results are kept)."""
        return self._done

    def wait(self) -> Any:
        """Block until every replica answered; results in replica order (one result for
        `WorkerGroup.call_one_async`)."""
        if not self._done:
            self._results = self._wait()
            self._done = True
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

    @abstractmethod
    def call_one_async(self, replica: int, method: str, *args: Any) -> Pending:
        """Start `method` on one replica; `wait()` gives its result. Calls to the same
        replica run in the order they were started (a weight push started before a
        collection is applied before it)."""

    def share(self, value: Any) -> Any:
        """`value` in a form that can be passed to many calls without copying it for each
        (the object store under Ray; the value itself in one process)."""
        return value

    def wait_any(self, pendings: Sequence[Pending]) -> list[int]:
        """Block until at least one of `pendings` has finished; the indices of all that
        have, in order. (Without parallel workers every call has finished already.)"""
        return list(range(len(pendings)))

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

    def call_one_async(self, replica: int, method: str, *args: Any) -> Pending:
        return Pending.done(getattr(self.instances[replica], method)(*args))


class RemoteRole:
    """Replica `replica` of a fragment seen from the driver: `role.method(*args)` runs
    `method` on that replica and waits. What `Runtime.run_together` hands a function when
    the fragments it names live in different workers."""

    def __init__(self, group: WorkerGroup, replica: int = 0) -> None:
        self._group, self._replica = group, replica

    def __getattr__(self, method: str) -> Callable[..., Any]:
        return lambda *args: self._group.call_one_async(self._replica, method, *args).wait()


class Runtime:
    """A started plan: its groups by fragment name."""

    def __init__(self, plan: Plan, placement: Placement, groups: dict[str, WorkerGroup]) -> None:
        self.plan = plan
        self.placement = placement
        self.groups = groups
        self.saved_state: Callable[[], dict[str, list[Any]] | None] | None = None
        """Where a restarted worker's fragments get their state back: a function giving the
        fragments' states of the last checkpoint (`{fragment: [state per replica]}`), or
        None when there is none yet. The trainer sets it; unset, a restarted worker keeps
        its initial state."""

    def __getitem__(self, fragment: str) -> WorkerGroup:
        return self.groups[fragment]

    def restarts(self) -> int:
        """Worker processes restarted since the start (always 0 in one process)."""
        return 0

    def run_together(self, fragments: Sequence[str], fn: Callable[..., T], *args: Any) -> list[T]:
        """`fn(roles, *args)` for every replica i of the fragments (they have as many), with
        `roles` mapping each named fragment to its replica i; the results in replica order.

        Each runs where those replicas live when one worker holds them (in that process:
        what passes between them never leaves it; see `Fragment.beside`), the replicas
        concurrently; otherwise here, each role call going to its worker. `fn` must be a
        module-level function (it is sent to the worker by reference). Here every role is
        in this process."""
        groups = [cast(LocalGroup, self.groups[name]) for name in fragments]
        return [
            fn({name: g.instances[i] for name, g in zip(fragments, groups, strict=True)}, *args)
            for i in range(groups[0].size)
        ]

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
