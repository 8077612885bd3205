"""Worker groups: the replicas of one fragment, addressed together.

A `WorkerGroup` runs a role method on its replicas (all with the same arguments, each with
its own, one, or asynchronously); `LocalGroup` holds them in this process and the Ray
executor's `RayGroup` in Ray actors. `Group` is the typed view a driver uses for calls that
are no edge. The runtime (`runtime.py`) carries edges over these groups.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast

from rlkit import batch as B

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")


class Pending:
    """Results of a group call that may still be running (see `WorkerGroup.call_async`)."""

    def __init__(self, wait: Any, refs: Sequence[Any] = (), poll: Any = None) -> None:
        self._wait = wait
        self._poll = poll
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

    def ready(self) -> bool:
        """Whether `wait()` would return at once (it has, or the calls have ended)."""
        return self._done or (self._poll is not None and bool(self._poll()))

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


class Group(Generic[T]):
    """A fragment's replicas with typed calls: ``group.call(Role.method, *args)`` is checked
    by mypy against `Role.method`'s signature (for calls that are no edge: a target sync,
    a state query)."""

    def __init__(self, group: WorkerGroup) -> None:
        self.group = group
        self.size = group.size

    def call(
        self, method: Callable[Concatenate[T, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> list[R]:
        """`method` on every replica; results in replica order."""
        return self.group.call(method.__name__, *args, **kwargs)

    def call_each(
        self, method: Callable[Concatenate[T, ...], R], args: Sequence[tuple[Any, ...]]
    ) -> list[R]:
        """`method` on replica i with `args[i]`; results in replica order."""
        return self.group.call_each(method.__name__, args)

    def on(self, replica: int, method: Callable[Concatenate[T, ...], R], *args: Any) -> R:
        """`method` on replica `replica` only."""
        return cast(R, self.group.call_one_async(replica, method.__name__, *args).wait())

    def one(self, method: Callable[Concatenate[T, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """`method` on replica 0."""
        return cast(R, self.group.one(method.__name__, *args, **kwargs))
