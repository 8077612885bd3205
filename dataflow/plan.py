"""The physical plan a distribution policy compiles a logical graph into."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlkit.dataflow.graph import Edge, Fragment, LogicalGraph


@dataclass
class Worker:
    """One process (or, under the local executor, this process) holding fragment replicas."""

    name: str
    members: list[tuple[str, int]] = field(default_factory=list)
    """(fragment name, replica index) pairs that live in this worker."""
    device: str = "cpu"
    """Device kind the worker needs: cpu | gpu | npu."""
    cpus: float = 0.0
    gpus: float = 0.0
    memory_gb: float = 0.0
    shared_device: bool = False
    """Whether its members take turns on one device (a colocation group of several
    replicas under `colocate`, the "hybrid engine"): the executor tells each role that
    can step aside (`rlkit.roles.SharesDevice`), so the plan, not the role, decides."""


@dataclass
class Transport:
    """How an edge is carried under the plan."""

    edge: Edge
    how: str
    """'reference' (same process), 'object-store', 'collective', 'shared-memory', 'queue'."""


@dataclass
class Plan:
    graph: LogicalGraph
    policy: str
    workers: list[Worker]
    transports: list[Transport]
    replicas: dict[str, int]

    def fragment(self, name: str) -> Fragment:
        return self.graph.fragments[name]

    def transport(self, edge: str) -> str:
        """How the edge named `edge` is carried ('' when the graph has no such edge)."""
        return next((t.how for t in self.transports if t.edge.name == edge), "")

    def worker_of(self, fragment: str, replica: int) -> Worker:
        for w in self.workers:
            if (fragment, replica) in w.members:
                return w
        raise KeyError((fragment, replica))

    def shares_device(self, fragment: str, replica: int) -> bool:
        """Whether that replica takes turns on its device with the other members of its
        worker (`Worker.shared_device`)."""
        return self.worker_of(fragment, replica).shared_device

    def describe(self) -> str:
        lines = [f"plan ({self.policy}): {len(self.workers)} worker(s)"]
        for w in self.workers:
            members = ", ".join(f"{f}[{i}]" for f, i in w.members)
            need = f"{w.cpus:g} cpu" + (f", {w.gpus:g} {w.device}" if w.gpus else "")
            lines.append(f"  {w.name:<14} {w.device:<4} {need:<16} {members}")
        for t in self.transports:
            lines.append(f"  edge {t.edge.name:<12} {t.edge.pattern.value:<9} via {t.how}")
        return "\n".join(lines)
