"""The scheduler: maps a plan's workers onto the nodes of a cluster.

It reads what exists (this machine, or a Ray cluster's CPU/GPU/NPU resources), settles
`auto` devices, and refuses an infeasible plan before anything starts, saying what is
missing and what to change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from rlkit.dataflow.plan import Plan, Worker
from rlkit.device import npu_available
from rlkit.errors import PlacementError


@dataclass
class Node:
    name: str
    cpus: float
    gpus: float = 0.0
    npus: float = 0.0
    memory_gb: float = 0.0

    def accelerators(self, kind: str) -> float:
        return {"gpu": self.gpus, "npu": self.npus}.get(kind, 0.0)


@dataclass
class Cluster:
    nodes: list[Node]

    def total(self, kind: str) -> float:
        return sum(n.accelerators(kind) for n in self.nodes)


def local_cluster() -> Cluster:
    """This machine as a one-node cluster."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = pages / 2**30
    except (ValueError, OSError):
        memory = 0.0
    gpus = float(torch.cuda.device_count()) if torch.cuda.is_available() else 0.0
    npus = 1.0 if npu_available() else 0.0
    return Cluster([Node("local", float(os.cpu_count() or 1), gpus, npus, memory)])


@dataclass
class Slot:
    """Where one worker runs and on which device."""

    worker: Worker
    node: str
    device: str
    """Concrete kind: cpu | gpu | npu."""


@dataclass
class Placement:
    plan: Plan
    slots: list[Slot] = field(default_factory=list)

    def slot(self, worker: str) -> Slot:
        for s in self.slots:
            if s.worker.name == worker:
                return s
        raise KeyError(worker)

    def device_of(self, fragment: str, replica: int = 0) -> str:
        """Concrete device kind for one fragment replica."""
        want = self.plan.fragment(fragment).resources.device
        if want == "cpu":
            return "cpu"
        return self.slot(self.plan.worker_of(fragment, replica).name).device

    def table(self) -> str:
        rows = [("worker", "node", "device", "cpus", "accel", "fragments")]
        for s in self.slots:
            w = s.worker
            rows.append(
                (
                    w.name,
                    s.node,
                    s.device,
                    f"{w.cpus:g}",
                    f"{w.gpus:g}" if s.device != "cpu" else "-",
                    ", ".join(f"{f}[{i}]" for f, i in w.members),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(c.ljust(wd) for c, wd in zip(r, widths, strict=True)).rstrip() for r in rows
        )


def place(plan: Plan, cluster: Cluster) -> Placement:
    """First-fit placement of each worker (accelerator workers first, so CPU workers do not
    take the room on accelerator nodes); PlacementError if one cannot fit anywhere."""
    free = {n.name: {"cpu": n.cpus, "gpu": n.gpus, "npu": n.npus} for n in cluster.nodes}
    local_only = plan.policy == "local"
    slots: dict[str, Slot] = {}
    for w in sorted(plan.workers, key=lambda w: w.device == "cpu"):
        kind = w.device
        if kind == "auto":
            kind = "gpu" if cluster.total("gpu") else "npu" if cluster.total("npu") else "cpu"
        need = (w.gpus or 1.0) if kind != "cpu" else 0.0
        for node in cluster.nodes:
            room = free[node.name]
            cpu_ok = local_only or room["cpu"] >= w.cpus
            if cpu_ok and (kind == "cpu" or room[kind] >= need):
                room["cpu"] -= w.cpus
                if kind != "cpu":
                    room[kind] -= need
                slots[w.name] = Slot(w, node.name, kind)
                break
        else:
            raise PlacementError(_explain(w, kind, need, free, plan))
    return Placement(plan, [slots[w.name] for w in plan.workers])


def _explain(
    w: Worker, kind: str, need: float, free: dict[str, dict[str, float]], plan: Plan
) -> str:
    fragments = sorted({f for f, _ in w.members})
    if kind != "cpu":  # name the fragments that asked for the accelerator, not their neighbours
        fragments = [
            f for f in fragments if plan.fragment(f).resources.device != "cpu"
        ] or fragments
    who = ", ".join(fragments)
    if kind != "cpu":
        have = sum(room[kind] for room in free.values())
        label = kind.upper()
        return (
            f"{who} needs {need:g} {label}; the cluster has {have:g} free: "
            f"use --device cpu or add a {label} node"
        )
    have = max(room["cpu"] for room in free.values())
    return (
        f"{who} needs {w.cpus:g} CPUs on one node; the most free on any node is {have:g}: "
        "use fewer --actors, a smaller --actor-cpus share (0.5 packs two actors on a core), "
        "or add nodes"
    )
