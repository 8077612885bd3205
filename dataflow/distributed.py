"""Distribution policies for a cluster: `multi-actor` and `colocate`.

Both compile a logical graph into workers that the Ray executor runs as one Ray actor
each. A worker also says which Ray placement group it belongs to and with what
strategy: the replicas of one fragment form a group (SPREAD when there are several, so
actors go to different nodes when the scheduler puts them there), a colocation group is
one worker (PACK). Edges go through Ray's object store; the driver calls each group and
passes results on, as it does under the local executor.

Not here yet: `async-actor` (actors running continuously) and `dp-learner` (several
learner replicas joined by an all-reduce). Each policy refuses what needs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlkit.dataflow.graph import Fragment, LogicalGraph, Pattern
from rlkit.dataflow.plan import Plan, Transport, Worker
from rlkit.dataflow.policies import POLICIES, DistributionPolicy, PolicyOptions
from rlkit.errors import ConfigError

STRATEGIES = ("PACK", "SPREAD")


@dataclass
class ClusterWorker(Worker):
    """A worker of a distributed plan: one process, in one Ray placement group."""

    group: str = ""
    """Placement group name; workers with the same group are reserved together."""
    strategy: str = "PACK"
    """Ray placement strategy of the group: PACK (colocated) or SPREAD (actor replicas)."""


def _refuse_several_learners(policy: str, graph: LogicalGraph, options: PolicyOptions) -> None:
    if options.learners > 1:
        raise ConfigError(
            f"--learners {options.learners}: policy {policy} runs one learner; "
            "dp-learner is needed for several learners"
        )
    for edge in graph.edges:
        if edge.pattern is Pattern.ALLREDUCE and graph.fragments[edge.src].replicas > 1:
            raise ConfigError(
                f"fragment {edge.src!r} has {graph.fragments[edge.src].replicas} replicas "
                f"joined by all-reduce edge {edge.name!r}: policy {policy} cannot carry it; "
                "dp-learner is needed for several learners"
            )


def _transports(graph: LogicalGraph) -> list[Transport]:
    return [
        Transport(e, "collective" if e.pattern is Pattern.ALLREDUCE else "object-store")
        for e in graph.edges
    ]


def _replica_workers(fragment: Fragment) -> list[ClusterWorker]:
    """One worker per replica; several replicas are spread, a single one is packed."""
    r = fragment.resources
    spread = fragment.replicas > 1
    return [
        ClusterWorker(
            f"{fragment.name}-{i}" if spread else fragment.name,
            [(fragment.name, i)],
            device=r.device,
            cpus=r.cpus,
            gpus=r.gpus if r.device != "cpu" else 0.0,
            memory_gb=r.memory_gb,
            group=fragment.name,
            strategy="SPREAD" if spread else "PACK",
        )
        for i in range(fragment.replicas)
    ]


@POLICIES.register("multi-actor")
class MultiActorPolicy(DistributionPolicy):
    """Every replica of every fragment in its own worker, synchronously driven.

    The learner's worker gets the learner's device; actor replicas are spread. Colocation
    groups declared on fragments are ignored (each fragment is placed separately).
    """

    name = "multi-actor"

    def compile(self, graph: LogicalGraph, options: PolicyOptions) -> Plan:
        _refuse_several_learners(self.name, graph, options)
        workers: list[Worker] = []
        for fragment in graph.fragments.values():
            workers += _replica_workers(fragment)
        replicas = {name: f.replicas for name, f in graph.fragments.items()}
        return Plan(graph, self.name, workers, _transports(graph), replicas)


@POLICIES.register("colocate")
class ColocatePolicy(DistributionPolicy):
    """Fragments with the same `Fragment.colocate` group share one worker and its device.

    The members are time-shared on that device (the RLHF "hybrid engine"): the worker
    asks for the largest CPU and accelerator share of its members, not their sum.
    Fragments outside a group are placed as under `multi-actor`.
    """

    name = "colocate"

    def compile(self, graph: LogicalGraph, options: PolicyOptions) -> Plan:
        _refuse_several_learners(self.name, graph, options)
        groups: dict[str, list[Fragment]] = {}
        for fragment in graph.fragments.values():
            if fragment.colocate:
                groups.setdefault(fragment.colocate, []).append(fragment)
        if not groups:
            raise ConfigError(
                f"policy colocate: graph {graph.name!r} declares no colocation group "
                "(Fragment.colocate); use --policy multi-actor"
            )
        workers: list[Worker] = []
        for fragment in graph.fragments.values():
            if not fragment.colocate:
                workers += _replica_workers(fragment)
            elif fragment is groups[fragment.colocate][0]:
                workers.append(self._group_worker(fragment.colocate, groups[fragment.colocate]))
        replicas = {name: f.replicas for name, f in graph.fragments.items()}
        return Plan(graph, self.name, workers, _transports(graph), replicas)

    @staticmethod
    def _group_worker(group: str, members: list[Fragment]) -> ClusterWorker:
        kinds = {f.resources.device for f in members} - {"cpu"}
        concrete = kinds - {"auto"}
        if len(concrete) > 1:
            names = ", ".join(f"{f.name} ({f.resources.device})" for f in members)
            raise ConfigError(
                f"colocation group {group!r} mixes accelerator kinds: {names}; "
                "put them in separate groups or ask for one kind"
            )
        device = next(iter(concrete)) if concrete else ("auto" if kinds else "cpu")
        accel = [f.resources.gpus for f in members if f.resources.device != "cpu"]
        return ClusterWorker(
            group,
            [(f.name, i) for f in members for i in range(f.replicas)],
            device=device,
            cpus=max(f.resources.cpus for f in members),
            gpus=max(accel, default=0.0),
            memory_gb=sum(f.resources.memory_gb * f.replicas for f in members),
            group=group,
            strategy="PACK",
        )


@POLICIES.register("dp-learner")
class DataParallelLearnerPolicy(DistributionPolicy):
    """As multi-actor, plus K learner replicas joined by an all-reduce edge.

    The replicas of an all-reduced fragment are packed (one placement group, PACK) so
    their collectives stay on one node when it has room; each replica is its own
    process, as torch.distributed needs (gloo on CPU, nccl on CUDA, hccl on NPU).
    """

    name = "dp-learner"

    def compile(self, graph: LogicalGraph, options: PolicyOptions) -> Plan:
        reduced = {e.src for e in graph.edges if e.pattern is Pattern.ALLREDUCE}
        if options.learners > 1 and not any(
            graph.fragments[f].replicas == options.learners for f in reduced
        ):
            raise ConfigError(
                f"--learners {options.learners}: graph {graph.name} has no data-parallel learner "
                "(no all-reduce edge among learner replicas); this algorithm supports one learner"
            )
        workers: list[Worker] = []
        for fragment in graph.fragments.values():
            replicas = _replica_workers(fragment)
            if fragment.name in reduced:
                for w in replicas:
                    w.strategy = "PACK"
            workers += replicas
        replicas_of = {name: f.replicas for name, f in graph.fragments.items()}
        return Plan(graph, self.name, workers, _transports(graph), replicas_of)
