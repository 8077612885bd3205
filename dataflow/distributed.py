"""Distribution policies for a cluster: `multi-actor`, `async-actor`, `colocate`,
`dp-learner` and `ddp`.

Each compiles a logical graph into workers that the Ray executor runs as one Ray actor
each. A worker also says which Ray placement group it belongs to and with what
strategy: the replicas of one fragment form a group (SPREAD when there are several, so
actors go to different nodes when the scheduler puts them there), a colocation group is
one worker (PACK). Edges go through Ray's object store; the driver calls each group and
passes results on, as it does under the local executor; a broadcast between workers (the
weights) goes as one flat buffer over a torch.distributed group of its own instead, and
fragments sharing a worker pass references (see `broadcast.py`).

Under `async-actor` the queue edges from actors into a buffer are carried as streams
("queue" transport): the algorithm's driver keeps every actor a bounded number of chunks
ahead instead of calling the actors in lockstep.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlkit.dataflow.graph import DRIVER, Edge, Fragment, LogicalGraph, Pattern
from rlkit.dataflow.plan import Plan, Transport, Worker
from rlkit.dataflow.policies import POLICIES, DistributionPolicy, LocalPolicy, PolicyOptions
from rlkit.errors import ConfigError
from rlkit.roles import Generator, InFlight

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


def _transports(graph: LogicalGraph, workers: list[Worker]) -> list[Transport]:
    """How each edge travels: "reference" between fragments beside each other, and for a
    broadcast within one worker process (the consumer gets the producer's objects);
    "collective" for all-reduces and for broadcasts between workers (one flat buffer
    over torch.distributed, `broadcast.py`); else the object store through the driver."""
    home = {member: w.name for w in workers for member in w.members}

    def how(e: Edge) -> str:
        if e.pattern is Pattern.ALLREDUCE:
            return "collective"
        if DRIVER in (e.src, e.dst):  # the driver is its own process
            return "object-store"
        src, dst = graph.fragments[e.src], graph.fragments[e.dst]
        if src.beside == e.dst or dst.beside == e.src:
            return "reference"
        if e.pattern is not Pattern.BROADCAST:
            return "object-store"
        sender = home.get((e.src, 0))
        shared = [home.get((e.dst, i)) == sender for i in range(dst.replicas)]
        if src.replicas == dst.replicas == 1 and shared[0]:
            return "reference"
        # a collective needs one process per rank
        return "object-store" if any(shared) else "collective"

    return [Transport(e, how(e)) for e in graph.edges]


def _join_beside(graph: LogicalGraph, workers: list[Worker]) -> list[Worker]:
    """Move replica i of every `Fragment.beside` fragment into the worker of replica i of
    its host (its CPU share and memory added there); the workers it had go away."""
    for fragment in graph.fragments.values():
        if fragment.beside is None:
            continue
        host = graph.fragments.get(fragment.beside)
        if host is None or host.replicas != fragment.replicas or host.beside is not None:
            raise ConfigError(
                f"graph {graph.name}: fragment {fragment.name!r} is beside {fragment.beside!r}, "
                "which must be a fragment with as many replicas that is not itself beside another"
            )
        for i in range(fragment.replicas):
            member = (fragment.name, i)
            workers = [w for w in workers if w.members != [member]]
            for w in workers:
                w.members = [m for m in w.members if m != member]
            target = next(w for w in workers if (host.name, i) in w.members)
            target.members.insert(target.members.index((host.name, i)), member)
            target.cpus += fragment.resources.cpus
            target.memory_gb += fragment.resources.memory_gb
    return workers


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

    def compile(self, graph: LogicalGraph, options: PolicyOptions) -> Plan:
        _refuse_several_learners(self.name, graph, options)
        workers: list[Worker] = []
        for fragment in graph.fragments.values():
            workers += _replica_workers(fragment)
        replicas = {name: f.replicas for name, f in graph.fragments.items()}
        workers = _join_beside(graph, workers)
        return Plan(graph, self.name, workers, _transports(graph, workers), replicas)


@POLICIES.register("async-actor")
class AsyncActorPolicy(DistributionPolicy):
    """Workers as under multi-actor; actors run continuously and stream into the buffer.

    Needs a queue edge from replicated actors into a buffer fragment (the off-policy
    graph); that edge's transport becomes "queue", which tells the algorithm's driver to
    stream (a bounded number of chunks in flight per actor, weights pushed between
    chunks, the policy-version lag of each chunk logged). With `--learners K` the learners
    are data-parallel as under dp-learner. A graph whose actors feed the learner directly
    (PPO) is refused.
    """

    def compile(self, graph: LogicalGraph, options: PolicyOptions) -> Plan:
        queues = [e for e in graph.edges if e.pattern is Pattern.QUEUE]
        if not queues:
            raise ConfigError(
                f"policy async-actor: {graph.name}'s actors feed its learner directly (no queue "
                "edge into a replay buffer); it needs synchronous actors: use --policy multi-actor"
            )
        # several learners: data-parallel, as under dp-learner
        base = DataParallelLearnerPolicy() if options.learners > 1 else MultiActorPolicy()
        plan = base.compile(graph, options)
        plan.policy = self.name
        streaming = {e.src for e in queues}
        for t in plan.transports:
            if t.edge.pattern is Pattern.QUEUE:
                t.how = "queue"
            elif t.edge.pattern is Pattern.BROADCAST and t.edge.dst in streaming:
                t.how = "object-store"  # queued for each actor, applied between its chunks
        return plan


IN_FLIGHT = "in-flight"
"""The transport of an edge whose requests the driver decodes a few steps at a time."""


def in_flight_edges(graph: LogicalGraph) -> list[Edge]:
    """The graph's prompt edges an incremental engine can carry in flight: from the
    driver, scattered, into a `InFlight` role's sampling method."""
    return [
        e
        for e in graph.edges
        if e.src == DRIVER
        and e.pattern is Pattern.SCATTER
        and issubclass(graph.fragments[e.dst].role, InFlight)
        and e.consume == Generator.generate.__name__
    ]


@POLICIES.register("async")
class AsyncPolicy(DistributionPolicy):
    """RL on prompts with the generators sampling while the learner learns: the same graph,
    its prompt edge carried in flight (the driver starts requests, decodes them a few steps
    at a time and pushes weights in between, at most ``--max-staleness`` versions behind;
    `algorithms/rlhf/in_flight.py`). Under the local executor every fragment is in this
    process as under `local` (the same calls in a fixed order: reproducible); on Ray each
    generator is a worker and the other fragments share one, the learner's, so sampling
    and learning run at the same time. Needs an engine that decodes incrementally (the
    HF engine) and one learner."""

    def compile(self, graph: LogicalGraph, options: PolicyOptions) -> Plan:
        edges = in_flight_edges(graph)
        if not edges:
            raise ConfigError(
                f"policy async: graph {graph.name} has no prompt edge into an engine that decodes "
                "in steps (RL on prompts with --generator hf); for off-policy actors use "
                "--policy async-actor"
            )
        _refuse_several_learners(self.name, graph, options)
        if options.executor == "local":
            plan = LocalPolicy().compile(graph, options)
        else:
            sampler = graph.fragments[edges[0].dst]
            rest = [f for f in graph.fragments.values() if f is not sampler]
            workers: list[Worker] = [*_replica_workers(sampler)]
            workers.append(ColocatePolicy._group_worker("learner", rest))
            replicas = {name: f.replicas for name, f in graph.fragments.items()}
            plan = Plan(graph, self.name, workers, _transports(graph, workers), replicas)
        plan.policy = self.name
        for t in plan.transports:
            if t.edge in edges:
                t.how = IN_FLIGHT
        return plan


@POLICIES.register("colocate")
class ColocatePolicy(DistributionPolicy):
    """Fragments with the same `Fragment.colocate` group share one worker and its device.

    The members are time-shared on that device (the RLHF "hybrid engine"): the worker
    asks for the largest CPU and accelerator share of its members, not their sum.
    Fragments outside a group are placed as under `multi-actor`.
    """

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
        workers = _join_beside(graph, workers)
        return Plan(graph, self.name, workers, _transports(graph, workers), replicas)

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
            shared_device=sum(f.replicas for f in members) > 1,
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
        workers = _join_beside(graph, workers)
        return Plan(graph, self.name, workers, _transports(graph, workers), replicas_of)


@POLICIES.register("ddp")
class DDPPolicy(DistributionPolicy):
    """K workers, each one learner replica and one replica of every fragment with as many
    replicas (the actors), time-sharing one process: worker i collects its share of the
    envs and learns on it, gradients all-reduced among the learners (as torch DDP and
    CleanRL's multi-GPU PPO). A worker asks for the largest CPU and accelerator share of
    its members, not their sum, since a synchronous step runs them one after the other.
    Routing is as under dp-learner (actor i's rollout is learner i's share), so the
    numbers are dp-learner's with the same counts; it needs ``--actors`` = ``--learners``.
    """

    def compile(self, graph: LogicalGraph, options: PolicyOptions) -> Plan:
        reduced = {e.src for e in graph.edges if e.pattern is Pattern.ALLREDUCE}
        hosts = [f for name, f in graph.fragments.items() if name in reduced and f.replicas > 1]
        if len(hosts) != 1:
            raise ConfigError(
                f"policy ddp: graph {graph.name} needs one data-parallel learner (--learners K "
                "with K > 1, on an algorithm whose learners all-reduce)"
            )
        host = hosts[0]
        joined = [
            f
            for f in graph.fragments.values()
            if f is not host and f.beside is None and f.replicas == host.replicas
        ]
        if not joined:
            counts = ", ".join(
                f"{f.name} {f.replicas}" for f in graph.fragments.values() if f is not host
            )
            raise ConfigError(
                f"policy ddp: no fragment has as many replicas as the {host.replicas} learners "
                f"({counts}); use --actors {host.replicas}, or --policy dp-learner"
            )
        workers: list[Worker] = []
        for i in range(host.replicas):
            members = [*joined, host]
            accel = [f.resources.gpus for f in members if f.resources.device != "cpu"]
            workers.append(
                ClusterWorker(
                    f"{host.name}-{i}",
                    [(f.name, i) for f in members],
                    device=host.resources.device,
                    cpus=max(f.resources.cpus for f in members),
                    gpus=max(accel, default=0.0) if host.resources.device != "cpu" else 0.0,
                    memory_gb=sum(f.resources.memory_gb for f in members),
                    group=host.name,
                    strategy="PACK",
                )
            )
        for f in graph.fragments.values():
            if f is not host and f not in joined:  # those beside another join it below
                workers += _replica_workers(f)
        replicas_of = {name: f.replicas for name, f in graph.fragments.items()}
        workers = _join_beside(graph, workers)
        return Plan(graph, self.name, workers, _transports(graph, workers), replicas_of)
