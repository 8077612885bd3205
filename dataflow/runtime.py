"""The runtime: a started plan, and the carrying of its edges.

An algorithm's driver names edges and the runtime carries them (`carry`, `stream`,
`pass_on`, `join`; the routing rules are in `carry.py`): it calls the producer on the
source replicas, routes the data by the edge's pattern and the plan's transport, and calls
the consumer on the destination replicas, over the fragments' worker groups (`groups.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from rlkit.dataflow.carry import Delivery, merge, split, unpack
from rlkit.dataflow.graph import DRIVER, Edge, Pattern
from rlkit.dataflow.groups import Group, LocalGroup, Pending, WorkerGroup
from rlkit.dataflow.plan import Plan
from rlkit.dataflow.scheduler import Placement
from rlkit.dataflow.stream import Stream

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")


class Runtime:
    """A started plan: its groups by fragment name, and the carrying of its edges."""

    def __init__(self, plan: Plan, placement: Placement, groups: dict[str, WorkerGroup]) -> None:
        self.plan = plan
        self.placement = placement
        self.groups = groups
        self.saved_state: Callable[[], dict[str, list[Any]] | None] | None = None
        """Where a restarted worker's fragments get their state back: a function giving the
        fragments' states of the last checkpoint (`{fragment: [state per replica]}`), or
        None when there is none yet. The trainer sets it; unset, a restarted worker keeps
        its initial state."""
        self._ahead: dict[str, Pending] = {}
        """Producer calls started ahead of their use, by edge name (`Edge.ahead`)."""
        self._edges = {e.name: e for e in plan.graph.edges}
        self._transports = {t.edge.name: t.how for t in plan.transports}
        self._streaming_sources = {
            e.src for e in plan.graph.edges if self._transports.get(e.name) == "queue"
        }
        self._streams: dict[str, Stream] = {}
        """Streaming sources (queue edges carried as "queue"), by fragment name."""

    def __getitem__(self, fragment: str) -> WorkerGroup:
        return self.groups[fragment]

    def group(self, fragment: str, role: type[T]) -> Group[T]:
        """Fragment `fragment` with calls typed by its role class `role`."""
        declared = self.plan.fragment(fragment).role
        if not issubclass(declared, role):
            raise TypeError(f"fragment {fragment} holds {declared.__name__}, not {role.__name__}")
        return Group(self.groups[fragment])

    def concurrently(self, fn: Callable[..., T], *args: Any) -> Pending:
        """`fn(*args)` (a driver function that carries edges) running beside the driver's
        next calls where the workers run in parallel, so that roles in other processes work
        at the same time (the learner learning while the generators sample, `--policy
        async`); `wait()` gives its result. In one process it runs now, to the end: the same
        calls in a fixed order, so a run is reproducible."""
        return Pending.done(fn(*args))

    def restarts(self) -> int:
        """Worker processes restarted since the start (always 0 in one process)."""
        return 0

    # -- carrying edges ------------------------------------------------------------------
    def declared(self, edge: Edge[P, R]) -> Edge[P, R]:
        """The plan's edge of that name (its bound and prefetch as the graph declared them),
        with the consumer arguments `edge` was bound to."""
        mine = self._edges.get(edge.name)
        if mine is None:
            raise KeyError(f"graph {self.plan.graph.name} has no edge {edge.name!r}")
        return cast(Edge[P, R], mine.bind(*edge.extra) if edge.extra else mine)

    def carry(self, edge: Edge[P, R], *args: P.args, **kwargs: P.kwargs) -> Delivery[R]:
        """Carry `edge` once: its producer with `args` on the source replicas (from the
        driver: `args[0]` is the data), the data routed by the pattern, its consumer on the
        destination replicas. Returns what travelled and what the consumers returned."""
        e: Edge[Any, Any] = self.declared(edge)
        if e.src == DRIVER:
            return self._deliver(e, [args[0]])
        if e.pattern is Pattern.BROADCAST and e.dst != DRIVER and not self._streaming(e.dst):
            return self._broadcast(e, args, kwargs)
        return self._deliver(e, self._produce(e, args, kwargs))

    def _broadcast(
        self, e: Edge[Any, R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Delivery[R]:
        """A broadcast edge, carried by the plan's transport for it (`broadcast.py`); in
        one process the consumers get the producer's objects themselves."""
        return self._deliver(e, self._produce(e, args, kwargs))

    def join(self, edges: Sequence[Edge[Any, R]], upstream: Sequence[Delivery[Any]]) -> Delivery[R]:
        """Carry several edges into one consumer call: edge i's data is what the consumers
        of `upstream[i]` returned (its destination is edge i's source), the parts for each
        destination replica are merged into one batch, and the consumer runs once per
        replica (the RLHF learner takes responses, rewards and reference log-probs together)."""
        declared: list[Edge[Any, R]] = [self.declared(e) for e in edges]
        first = declared[0]
        if any((e.dst, e.consume) != (first.dst, first.consume) for e in declared):
            raise ValueError("joined edges must end in the same fragment and method")
        for e, up in zip(declared, upstream, strict=True):
            if up.edge.dst != e.src:
                raise ValueError(f"edge {e.name} starts at {e.src}, not at {up.edge.dst}")
        group = self.groups[first.dst]
        data = [merge(unpack(up.results)[0]) for up in upstream]
        shards = [split(d, group.size) for d in data]
        parts = [{k: v for s in shard for k, v in s.items()} for shard in zip(*shards, strict=True)]
        results = group.call_each(first.consume, [(p, *first.extra) for p in parts])
        return Delivery(first, merge(parts), [], results)

    def pass_on(self, edge: Edge[Any, R], upstream: Delivery[Any]) -> Delivery[R]:
        """Carry `edge` with what the consumers of `upstream` returned as its data (the
        generator's responses, made as the consumer of the prompts edge, on to a scorer)."""
        e: Edge[Any, Any] = self.declared(edge)
        if upstream.edge.dst != e.src:
            raise ValueError(f"edge {e.name} starts at {e.src}, not at {upstream.edge.dst}")
        return self._deliver(e, upstream.results)

    def stream(
        self, edge: Edge[Any, R], args: Callable[[], tuple[Any, ...]]
    ) -> Iterator[Delivery[R]]:
        """Deliveries along a queue edge. Carried synchronously, one: every source called
        with `args()`, in lockstep. Carried as a stream (the async-actor policy), every
        complete set of chunks that has arrived (one per source replica, oldest first),
        each delivered to the consumer as it is yielded; each source is kept up to the
        edge's bound in chunks ahead, each chunk started with `args()` of its time, and a
        weight broadcast into a streaming fragment is queued before its next chunk."""
        e: Edge[Any, Any] = self.declared(edge)
        if self._transports[e.name] != "queue":
            yield self.carry(edge, *args())
            return
        group, stream = self.groups[e.src], self.stream_of(e.src)
        stream.fill(group, args)
        stream.harvest(group)
        while (chunks := stream.take()) is not None:
            yield self._deliver(e, chunks)
        stream.fill(group, args)

    def stream_stats(self, edge: Edge[Any, Any]) -> dict[str, float]:
        """For a streamed edge: "policy_lag" (weight versions between the latest and the
        ones that made the chunks that arrived last) and "queued_chunks"; else nothing."""
        e: Edge[Any, Any] = self.declared(edge)
        if self._transports[e.name] != "queue":
            return {}
        stream = self.stream_of(e.src)
        return {"policy_lag": stream.lag(), "queued_chunks": float(stream.queued())}

    def queued(self, edge: Edge[Any, Any]) -> int:
        """Chunks asked of the sources of a streamed edge and not yet delivered (0 else)."""
        e: Edge[Any, Any] = self.declared(edge)
        return self.stream_of(e.src).queued() if self._transports[e.name] == "queue" else 0

    def stream_of(self, fragment: str) -> Stream:
        if fragment not in self._streams:
            e = next(
                x
                for x in self.plan.graph.outputs(fragment)
                if self.plan.transport(x.name) == "queue"
            )
            replicas = self.plan.replicas[fragment]
            self._streams[fragment] = Stream(replicas, max(1, e.bound // replicas), e.produce)
        return self._streams[fragment]

    def _streaming(self, fragment: str) -> bool:
        return fragment in self._streaming_sources

    def _produce(
        self, e: Edge[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any]:
        group = self.groups[e.src]
        if e.pattern is Pattern.BROADCAST:  # one value: replica 0 (the replicas agree)
            return [group.one(e.produce, *args, **kwargs)]
        if not e.ahead:
            return group.call(e.produce, *args, **kwargs)
        started = self._ahead.pop(e.name, None)
        outputs = started.wait() if started is not None else group.call(e.produce, *args)
        self._ahead[e.name] = group.call_async(e.produce, *args)  # the next, while we consume
        return cast(list[Any], outputs)

    def _deliver(self, e: Edge[Any, R], outputs: list[Any]) -> Delivery[R]:
        data, infos = unpack(outputs)
        if e.dst == DRIVER:
            merged = merge(data)
            return Delivery(e, merged, infos, [merged])
        group = self.groups[e.dst]
        if e.pattern is Pattern.BROADCAST:
            if self._streaming(e.dst):  # applied before each streaming replica's next chunk
                self.stream_of(e.dst).publish(group, data[0], e.extra, e.consume)
                return Delivery(e, data[0], infos, [])
            return Delivery(e, data[0], infos, group.call(e.consume, data[0], *e.extra))
        merged = merge(data)
        parts = split(merged, group.size)
        results = group.call_each(e.consume, [(p, *e.extra) for p in parts])
        if e.src == DRIVER:  # no producers: the infos of consumers that return `Output`
            infos = unpack(results)[1]
        return Delivery(e, merged, infos, results)

    def connect_collectives(self) -> None:
        """Form the group of every all-reduce edge: replica 0 names an address, every replica
        joins it (concurrently, in their own processes under Ray)."""
        for e in self.plan.graph.edges:
            if e.pattern is Pattern.ALLREDUCE:
                group = self.groups[e.src]
                group.call("join", group.one("rendezvous"))

    def edge_state(self) -> dict[str, Any]:
        """What is in flight on the edges (prefetched productions, streamed chunks): part of
        a checkpoint, so a resumed run consumes it as the uninterrupted run would."""
        return {
            "ahead": {name: p.wait() for name, p in self._ahead.items()},
            "streams": {name: s.state_dict() for name, s in self._streams.items()},
        }

    def load_edge_state(self, state: dict[str, Any]) -> None:
        self._ahead = {name: Pending.done(v) for name, v in state.get("ahead", {}).items()}
        for name, s in state.get("streams", {}).items():
            self.stream_of(name).load_state_dict(self.groups[name], s)

    # -- the checkpoint service: the roles' state, replica by replica ------------------------
    def fragment_state(self, files_dir: Path | None = None) -> dict[str, list[Any]]:
        """Every replica's state, by fragment. Given `files_dir` (a checkpoint's), a role
        that writes its own state (`save_checkpoint(directory)`) does so there, each
        replica in its own process, and only the small part it returns comes back."""
        from rlkit import checkpoint

        fragments: dict[str, list[Any]] = {}
        for name, group in self.groups.items():
            role = self.plan.fragment(name).role
            if files_dir is None or not hasattr(role, "save_checkpoint"):
                fragments[name] = group.call("state_dict")
                continue
            dirs = [files_dir / f"{name}-{r}" for r in range(group.size)]
            for d in dirs:
                d.mkdir()
            smalls = group.call_each("save_checkpoint", [(d,) for d in dirs])
            fragments[name] = [
                checkpoint.files_entry(files_dir, d, s) for d, s in zip(dirs, smalls, strict=True)
            ]
        return fragments

    def load_fragment_state(self, fragments: dict[str, list[Any]]) -> None:
        """Restore what `fragment_state` returned (files entries by `load_checkpoint`)."""
        from rlkit import checkpoint

        for name, entries in fragments.items():
            calls = [checkpoint.restore_call(e) for e in entries]
            if len({method for method, _ in calls}) > 1:
                raise ValueError(f"fragment {name}: its replicas were saved in different ways")
            if calls:
                self[name].call_each(calls[0][0], [args for _, args in calls])

    def policy_state(self) -> dict[str, list[Any]]:
        """Replica 0's state of every fragment, laid out as `fragment_state`'s, for acting
        (a role's `eval_state` where it has one: a replay buffer leaves its contents out)."""
        fragments = {}
        for name, group in self.groups.items():
            has_eval_state = hasattr(self.plan.fragment(name).role, "eval_state")
            fragments[name] = [group.one("eval_state" if has_eval_state else "state_dict")]
        return fragments

    # -- roles together ------------------------------------------------------------------
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
