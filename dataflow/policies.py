"""Distribution policies: compile a logical graph into a physical plan.

A policy decides replica counts, which fragments share a worker, and how each edge is
carried. `local` is built in here; the distributed policies (multi-actor, async-actor,
dp-learner, colocate, ddp) register themselves beside it with the Ray executor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from rlkit.dataflow.graph import LogicalGraph
from rlkit.dataflow.plan import Plan, Transport, Worker
from rlkit.registry import Registry


@dataclass
class PolicyOptions:
    """What the user asked for on the command line; a policy may refuse what it cannot do."""

    actors: int = 1
    learners: int = 1
    executor: str = "local"
    """The executor the plan will run under (a policy may lay workers out for it)."""


class DistributionPolicy(ABC):
    name: str = ""
    """Registry name."""

    @abstractmethod
    def compile(self, graph: LogicalGraph, options: PolicyOptions) -> Plan: ...


POLICIES: Registry[type[DistributionPolicy]] = Registry("distribution policy")


@POLICIES.register("local")
class LocalPolicy(DistributionPolicy):
    """Everything in this process; edges are Python references (zero copy).

    Replica counts are kept (N actors are N objects) so a plan means the same thing here
    as on a cluster and a run gives the same numbers under both.
    """

    def compile(self, graph: LogicalGraph, options: PolicyOptions) -> Plan:
        replicas = {name: f.replicas for name, f in graph.fragments.items()}
        worker = Worker("local")
        devices = set()
        for name, f in graph.fragments.items():
            worker.members += [(name, i) for i in range(f.replicas)]
            devices.add(f.resources.device)
            worker.gpus = max(worker.gpus, f.resources.gpus if f.resources.device != "cpu" else 0)
            worker.memory_gb += f.resources.memory_gb * f.replicas
        accel = sorted(devices - {"cpu"})
        worker.device = accel[0] if accel else "cpu"
        worker.cpus = 1.0
        transports = [Transport(e, "reference") for e in graph.edges]
        return Plan(graph, self.name, [worker], transports, replicas)
