"""The logical dataflow graph: fragments (placed roles) and typed edges between them.

An algorithm declares its graph; nothing about processes or devices is decided here.
A distribution policy compiles the graph into a plan (`rlkit.dataflow.policies`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from rlkit.errors import ConfigError


class Pattern(str, Enum):
    """How data moves along an edge."""

    BROADCAST = "broadcast"  # the same value to every replica of dst (weights)
    GATHER = "gather"  # outputs of every src replica concatenated (rollouts)
    SCATTER = "scatter"  # a batch split across dst replicas
    QUEUE = "queue"  # async many-to-one, bounded (transitions into a buffer)
    ALLREDUCE = "allreduce"  # among the replicas of one fragment (gradients)


DEVICE_KINDS = ("cpu", "gpu", "npu", "auto")


@dataclass(frozen=True)
class Resources:
    """What one replica of a fragment asks for."""

    device: str = "cpu"
    """cpu | gpu | npu | auto (an accelerator if the cluster has one, else cpu)."""
    cpus: float = 1.0
    gpus: float = 0.0
    """Accelerator share per replica when device is gpu/npu (0.5 = half a device)."""
    memory_gb: float = 0.0
    index: int | None = None
    """Which device of its kind (``cuda:1`` -> 1) in one process; a cluster assigns its own."""

    @classmethod
    def for_device(cls, device: str, cpus: float = 1.0) -> Resources:
        """What a learner needs for a torch device name (``cpu``, ``cuda:1``, ``npu``, ``auto``):
        one whole accelerator unless it is cpu."""
        name, _, index = device.partition(":")
        kind = {"cpu": "cpu", "cuda": "gpu", "npu": "npu", "auto": "auto"}[name]
        return cls(
            kind,
            cpus=cpus,
            gpus=0.0 if kind == "cpu" else 1.0,
            index=int(index) if index.isdigit() and kind != "cpu" else None,
        )

    def __post_init__(self) -> None:
        if self.device not in DEVICE_KINDS:
            raise ConfigError(f"fragment device {self.device!r} is not one of {DEVICE_KINDS}")
        if self.cpus < 0 or self.gpus < 0 or self.memory_gb < 0:
            raise ConfigError("fragment resources must be non-negative")


@dataclass
class Fragment:
    """A role class, its constructor arguments, what each replica needs, and how many."""

    name: str
    role: type
    kwargs: dict[str, Any] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    replicas: int = 1
    colocate: str | None = None
    """Name of a colocation group: fragments in one group share a worker and its device."""
    beside: str | None = None
    """Name of a fragment whose workers this one always joins, under every policy (replica
    i beside replica i; both have as many replicas): for a fragment read by that one alone,
    e.g. a replay buffer sampled by its learner, so the edge between them never leaves the
    process."""

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ConfigError(f"fragment {self.name!r}: replicas must be at least 1")


DRIVER = "driver"
"""The algorithm's driver as an edge endpoint: a source of data it makes (prompts, seeds)
or a sink of what fragments produce (metrics). It is no fragment and has no replicas."""

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Edge(Generic[P, R]):
    """Named data flow from `src` to `dst`, with the role methods on either end.

    The runtime carries it (`Runtime.carry`): it calls `produce` on the source replicas,
    routes what they return by `pattern`, calls `consume` on the destination replicas and
    hands their results back. The type parameters are the producer's parameters (what
    `carry` takes) and the consumer's result (what a `Delivery` holds), so mypy checks a
    driver's calls; build typed edges with `LogicalGraph.connect` and method references
    (``OnPolicyActor.collect``)."""

    name: str
    src: str
    dst: str
    pattern: Pattern
    produce: str = ""
    """Method of src that produces the data (e.g. "collect"); empty for the driver."""
    consume: str = ""
    """Method of dst that takes it (e.g. "update"); empty for the driver."""
    bound: int = 0
    """Queue capacity in items (QUEUE only; 0 = unbounded)."""
    ahead: int = 0
    """Producer calls started ahead of their use (0 or 1): with 1, each `carry` starts the
    next production before delivering this one, so producers work while consumers do
    (PPO --overlap). The data is one call old when it is consumed."""
    extra: tuple[Any, ...] = ()
    """Arguments the consumer gets after the data (see `bind`)."""

    def bind(self, *extra: Any) -> Edge[P, R]:
        """This edge with `extra` passed to the consumer after the data, e.g. the policy
        version of a weight broadcast: ``runtime.carry(WEIGHTS.bind(version))``."""
        return replace(self, extra=extra)

    def with_options(self, bound: int | None = None, ahead: int | None = None) -> Edge[P, R]:
        """A copy with another queue bound or prefetch depth (what a config decides)."""
        return replace(
            self,
            bound=self.bound if bound is None else bound,
            ahead=self.ahead if ahead is None else ahead,
        )


def method_name(method: Callable[..., Any] | str | None) -> str:
    """The name of a role method given as a reference (``Actor.collect``) or a string."""
    if method is None:
        return ""
    return method if isinstance(method, str) else method.__name__


def from_driver(
    name: str, dst: str, pattern: Pattern | str, consume: Callable[..., R] | str
) -> Edge[[Any], R]:
    """A typed edge whose source is the driver: ``runtime.carry(EDGE, data)`` sends `data`
    (split by scatter, the same value to all by broadcast) to `consume` on `dst`."""
    return Edge(name, DRIVER, dst, Pattern(pattern), "", method_name(consume))


def to_driver(
    name: str, src: str, pattern: Pattern | str, produce: Callable[Concatenate[Any, P], Any] | str
) -> Edge[P, Any]:
    """A typed edge into the driver: ``runtime.carry(EDGE, *args)`` runs `produce` on `src`
    and returns what it made, merged, as the delivery's data."""
    return Edge(name, src, DRIVER, Pattern(pattern), method_name(produce), "")


def edge(
    name: str,
    src: str,
    dst: str,
    pattern: Pattern | str,
    produce: Callable[Concatenate[Any, P], Any] | str | None = None,
    consume: Callable[..., R] | str | None = None,
    bound: int = 0,
    ahead: int = 0,
) -> Edge[P, R]:
    """A typed edge, declared once (e.g. at module level, beside the template) and added
    to each graph with `LogicalGraph.add_edge`."""
    return Edge(
        name, src, dst, Pattern(pattern), method_name(produce), method_name(consume), bound, ahead
    )


class LogicalGraph:
    """Fragments and edges of one algorithm; validated as it is built: every edge's
    methods must exist on its roles (`check` adds what depends on replica counts)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fragments: dict[str, Fragment] = {}
        self.edges: list[Edge[Any, Any]] = []

    def add(self, fragment: Fragment) -> Fragment:
        if fragment.name in self.fragments or fragment.name == DRIVER:
            what = "is reserved for the driver" if fragment.name == DRIVER else "declared twice"
            raise ConfigError(f"graph {self.name}: fragment {fragment.name!r} {what}")
        self.fragments[fragment.name] = fragment
        return fragment

    def connect(
        self,
        name: str,
        src: str,
        dst: str,
        pattern: Pattern | str,
        produce: Callable[Concatenate[Any, P], Any] | str | None = None,
        consume: Callable[..., R] | str | None = None,
        bound: int = 0,
        ahead: int = 0,
    ) -> Edge[P, R]:
        """Declare and add an edge; methods as references (typed) or names."""
        return self.add_edge(edge(name, src, dst, pattern, produce, consume, bound, ahead))

    def add_edge(self, e: Edge[P, R]) -> Edge[P, R]:
        """Add an edge declared with `edge()`; refused with a line naming it when an end or
        a method does not exist, or the pattern cannot join those ends."""
        where = f"graph {self.name}: edge {e.name!r}"
        for end in (e.src, e.dst):
            if end not in self.fragments and end != DRIVER:
                raise ConfigError(f"{where} names no fragment {end!r}")
        if e.src == DRIVER and e.dst == DRIVER:
            raise ConfigError(f"{where} joins the driver to itself")
        if e.pattern is Pattern.ALLREDUCE and e.src != e.dst:
            raise ConfigError(f"{where}: an allreduce edge must join a fragment to itself")
        if e.pattern is not Pattern.QUEUE and e.bound:
            raise ConfigError(f"{where}: only queue edges have a bound")
        if e.ahead not in (0, 1):
            raise ConfigError(f"{where}: ahead must be 0 or 1, not {e.ahead}")
        if any(x.name == e.name for x in self.edges):
            raise ConfigError(f"{where} declared twice")
        if e.pattern is Pattern.ALLREDUCE:
            for method in ("rendezvous", "join"):  # the runtime forms the group with these
                self._check_method(where, e.src, method, "form its all-reduce group")
        else:
            self._check_method(where, e.src, e.produce, "produce its data")
            self._check_method(where, e.dst, e.consume, "consume it")
        self.edges.append(e)
        return e

    def _check_method(self, where: str, fragment: str, method: str, purpose: str) -> None:
        if fragment == DRIVER:
            if method:
                raise ConfigError(f"{where}: the driver end takes no method ({method!r})")
            return
        role = self.fragments[fragment].role
        if not method:
            raise ConfigError(
                f"{where}: name the method of {fragment} ({role.__name__}) to {purpose}"
            )
        if not callable(getattr(role, method, None)):
            close = difflib.get_close_matches(
                method, [m for m in dir(role) if not m.startswith("_")], n=1
            )
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{where}: {fragment} ({role.__name__}) has no method {method!r} to {purpose}{hint}"
            )

    def check(self) -> None:
        """What depends on replica counts (known once the config set them): a broadcast
        takes one value, so its source must have one replica, or replicas kept identical
        by an all-reduce edge (data-parallel learners)."""
        reduced = {e.src for e in self.edges if e.pattern is Pattern.ALLREDUCE}
        for e in self.edges:
            if e.pattern is not Pattern.BROADCAST or e.src == DRIVER:
                continue
            src = self.fragments[e.src]
            if src.replicas > 1 and e.src not in reduced:
                raise ConfigError(
                    f"graph {self.name}: edge {e.name!r} broadcasts from {e.src}, which has "
                    f"{src.replicas} replicas that nothing keeps identical (no all-reduce edge): "
                    "gather from it instead, or give it one replica"
                )

    def edge(self, name: str) -> Edge[Any, Any]:
        for e in self.edges:
            if e.name == name:
                return e
        raise KeyError(name)

    def inputs(self, fragment: str) -> list[Edge[Any, Any]]:
        return [e for e in self.edges if e.dst == fragment]

    def outputs(self, fragment: str) -> list[Edge[Any, Any]]:
        return [e for e in self.edges if e.src == fragment]

    def describe(self) -> str:
        """One line per fragment and per edge."""
        lines = [f"graph {self.name}"]
        for f in self.fragments.values():
            r = f.resources
            share = f", {r.gpus:g} {r.device}" if r.device in ("gpu", "npu") else ""
            group = f", colocate={f.colocate}" if f.colocate else ""
            group += f", beside {f.beside}" if f.beside else ""
            lines.append(
                f"  fragment {f.name:<12} {f.role.__name__} x{f.replicas} "
                f"[{r.device}, {r.cpus:g} cpu{share}{group}]"
            )
        for e in self.edges:
            src = f"{e.src}.{e.produce}" if e.produce else e.src
            dst = f"{e.dst}.{e.consume}" if e.consume else e.dst
            call = f"  ({src} -> {dst})" if e.pattern is not Pattern.ALLREDUCE else ""
            lines.append(f"  edge {e.name:<12} {e.src} --{e.pattern.value}--> {e.dst}{call}")
        return "\n".join(lines)
