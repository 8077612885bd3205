"""The logical dataflow graph: fragments (placed roles) and typed edges between them.

An algorithm declares its graph; nothing about processes or devices is decided here.
A distribution policy compiles the graph into a plan (`rlkit.dataflow.policies`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

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

    @classmethod
    def for_device(cls, device: str, cpus: float = 1.0) -> Resources:
        """What a learner needs for a torch device name (``cpu``, ``cuda:1``, ``npu``, ``auto``):
        one whole accelerator unless it is cpu."""
        kind = {"cpu": "cpu", "cuda": "gpu", "npu": "npu", "auto": "auto"}[device.split(":")[0]]
        return cls(kind, cpus=cpus, gpus=0.0 if kind == "cpu" else 1.0)

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


@dataclass(frozen=True)
class Edge:
    """Named data flow from `src` to `dst`, with the role methods on either end."""

    name: str
    src: str
    dst: str
    pattern: Pattern
    produce: str = ""
    """Method of src that produces the data (e.g. "collect")."""
    consume: str = ""
    """Method of dst that takes it (e.g. "update")."""
    bound: int = 0
    """Queue capacity in items (QUEUE only; 0 = unbounded)."""


class LogicalGraph:
    """Fragments and edges of one algorithm; validated as it is built."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fragments: dict[str, Fragment] = {}
        self.edges: list[Edge] = []

    def add(self, fragment: Fragment) -> Fragment:
        if fragment.name in self.fragments:
            raise ConfigError(f"graph {self.name}: fragment {fragment.name!r} declared twice")
        self.fragments[fragment.name] = fragment
        return fragment

    def connect(
        self,
        name: str,
        src: str,
        dst: str,
        pattern: Pattern | str,
        produce: str = "",
        consume: str = "",
        bound: int = 0,
    ) -> Edge:
        pattern = Pattern(pattern)
        for end in (src, dst):
            if end not in self.fragments:
                raise ConfigError(f"graph {self.name}: edge {name!r} names no fragment {end!r}")
        if pattern is Pattern.ALLREDUCE and src != dst:
            raise ConfigError(
                f"graph {self.name}: allreduce edge {name!r} must join a fragment to itself"
            )
        if pattern is not Pattern.QUEUE and bound:
            raise ConfigError(f"graph {self.name}: only queue edges have a bound ({name!r})")
        if any(e.name == name for e in self.edges):
            raise ConfigError(f"graph {self.name}: edge {name!r} declared twice")
        edge = Edge(name, src, dst, pattern, produce, consume, bound)
        self.edges.append(edge)
        return edge

    def edge(self, name: str) -> Edge:
        for e in self.edges:
            if e.name == name:
                return e
        raise KeyError(name)

    def inputs(self, fragment: str) -> list[Edge]:
        return [e for e in self.edges if e.dst == fragment]

    def outputs(self, fragment: str) -> list[Edge]:
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
            call = f"  ({e.src}.{e.produce} -> {e.dst}.{e.consume})" if e.produce else ""
            lines.append(f"  edge {e.name:<12} {e.src} --{e.pattern.value}--> {e.dst}{call}")
        return "\n".join(lines)
