"""Streaming sources: the runtime keeps every source replica a bounded number of chunks
ahead along a queue edge (`Runtime.stream`).

Used by the `async-actor` distribution policy (off-policy actors stream transitions into
the replay buffer while the learner learns); any producer that returns
``Output(batch, info)`` with ``info["version"]`` (the weight version that acted), and whose
fragment takes weights along a broadcast edge as ``method(weights, version)``, can be
streamed the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlkit.dataflow.groups import Pending, WorkerGroup


class Stream:
    """The driver's side of streaming actors (the `async-actor` policy).

    Each actor has up to `depth` chunks in flight or waiting: collections, each preceded
    by a weight push when newer weights were published (Ray runs one actor's calls in the
    order they were sent, so the push is applied before the chunk). `harvest` moves the
    chunks that have arrived into per-actor FIFOs; `take` pops one chunk of every actor
    (their streams side by side, as the buffer's n-step returns need) while each has one;
    `fill` tops every actor up again. A restarted actor (its chunk carries an older weight
    version than it was sent) is sent the latest weights again.
    """

    def __init__(self, actors: int, depth: int, produce: str = "collect") -> None:
        self.depth = depth
        self.produce = produce
        """The source method that makes a chunk."""
        self.push = "set_weights"
        """The method that takes a weight broadcast (the broadcast edge's consumer)."""
        self.arrived: list[Any] = []
        """The chunks that arrived at the last `harvest`."""
        self.inflight: list[tuple[int, str, Pending, int]] = []
        """(replica, "push" | "collect", call, weight version the actor should have) in
        the order sent."""
        self.waiting: list[list[Any]] = [[] for _ in range(actors)]
        """Chunks that arrived, per actor, not yet added to the buffer."""
        self.weights: Any = None
        """The latest published weights, as shared with the actors (an object-store ref)."""
        self.published: Any = None
        """The same weights as a value (kept for checkpoints)."""
        self.version = 0
        """Version of the latest published weights."""
        self.sent = [0] * actors
        """Latest weight version sent to each actor."""

    def publish(
        self, actors: WorkerGroup, weights: Any, extra: tuple[Any, ...], push: str = "set_weights"
    ) -> None:
        """Weights for every actor's next chunk; `extra` is ``(version,)``."""
        self.weights, self.published = actors.share(weights), weights
        self.version, self.push = int(extra[0]), push

    def lag(self) -> float:
        """Mean weight versions between the latest and those that made the last arrivals."""
        if not self.arrived:
            return 0.0
        return sum(self.version - c[1]["version"] for c in self.arrived) / len(self.arrived)

    def queued(self, replica: int | None = None) -> int:
        """Chunks asked for and not yet added to the buffer (of one actor, or all)."""
        replicas = range(len(self.waiting)) if replica is None else [replica]
        return sum(
            len(self.waiting[r])
            + sum(1 for x, kind, _, _ in self.inflight if x == r and kind == "collect")
            for r in replicas
        )

    def fill(self, actors: WorkerGroup, args: Callable[[], tuple[Any, ...]]) -> None:
        for replica in range(actors.size):
            while self.queued(replica) < self.depth:
                if self.sent[replica] < self.version:
                    push = actors.call_one_async(replica, self.push, self.weights, self.version)
                    self.inflight.append((replica, "push", push, self.version))
                    self.sent[replica] = self.version
                call = actors.call_one_async(replica, self.produce, *args())
                self.inflight.append((replica, "collect", call, self.sent[replica]))

    def harvest(self, actors: WorkerGroup) -> list[Any]:
        """Wait until at least one chunk has arrived; file every arrived chunk under its
        actor; return them (in the order sent)."""
        chunks: list[Any] = []
        while not chunks:  # finished weight pushes alone are not enough
            ready = set(actors.wait_any([entry[2] for entry in self.inflight]))
            left = []
            for i, entry in enumerate(self.inflight):
                replica, kind, call, expected = entry
                if i not in ready:
                    left.append(entry)
                    continue
                result = call.wait()
                if kind == "collect":
                    chunks.append(result)
                    self.waiting[replica].append(result)
                    if result[1]["version"] < expected:  # restarted: initial weights
                        self.sent[replica] = result[1]["version"]
            self.inflight = left
        self.arrived = chunks
        return chunks

    def take(self) -> list[Any] | None:
        """The oldest waiting chunk of every actor, in actor order, or None if one has none."""
        if not all(self.waiting):
            return None
        return [w.pop(0) for w in self.waiting]

    def state_dict(self) -> dict[str, Any]:
        done = [(r, kind, call.wait(), v) for r, kind, call, v in self.inflight]
        return {
            "inflight": done,
            "waiting": self.waiting,
            "sent": list(self.sent),
            "weights": self.published,
            "version": self.version,
            "push": self.push,
        }

    def load_state_dict(self, actors: WorkerGroup, state: dict[str, Any]) -> None:
        from rlkit.dataflow.groups import Pending

        self.inflight = [(r, kind, Pending.done(x), v) for r, kind, x, v in state["inflight"]]
        self.waiting, self.sent = state["waiting"], list(state["sent"])
        self.publish(actors, state["weights"], (state["version"],), state.get("push", self.push))
