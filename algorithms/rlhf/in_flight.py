"""The driver of RL on prompts under ``--policy async``: generators keep sampling while the
learner learns, at most ``--max-staleness`` K policy versions behind.

The graph is the RL stage's (`rl_template.py`); only the prompt edge is carried in flight
(the `async` policy's "in-flight" transport). Each step's prompts are a request with a
ticket, the number of the step that will train on them. Request j may start once the
generators hold version j - K (so K = 0 is the synchronous run, call for call); the
driver then decodes every request in flight ``--decode-chunk`` tokens at a time, and the
learner's new weights reach the generators between two such chunks: a response may span
versions, and each token carries the version that sampled it (``token_version``). When
the bound would be exceeded, it is generation that waits (a request is not started), never
learning. While the learner scores and learns on step j's samples (`Runtime.concurrently`:
in another thread of the driver on Ray, so the processes work at the same time; in one
process right away, in a fixed order), the driver keeps decoding the requests after it.

Nothing is lost to a checkpoint taken between steps: the requests in flight are the
generators' state (their prompts and tokens so far), the finished and untrained ones and
the tickets' prompt indices are the driver's (`state_dict`), and the prompt cursor moved
when each request started, so it is aligned with them. ``trained`` counts how often each
prompt was trained on (a resumed epoch trains each exactly once; a test counts).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from rlkit.batch import Batch
from rlkit.dataflow.carry import Delivery, merge
from rlkit.dataflow.graph import Edge
from rlkit.llm.generator import Finished
from rlkit.roles import InFlight

if TYPE_CHECKING:
    from rlkit.algorithms.rlhf.rl_template import RLStage


class Learned(NamedTuple):
    """What a step's learning gives the driver: its metrics and its sample table."""

    metrics: dict[str, float]
    table: list[dict[str, Any]]


class InFlightRollouts:
    """Requests by ticket: started, in flight on the generators, finished, trained."""

    def __init__(self, stage: RLStage, edge: Edge[Any, Any]) -> None:
        self.stage = stage
        self.edge = edge
        self.prompts: dict[int, torch.Tensor] = {}
        """Each started, untrained ticket's prompt indices."""
        self.finished: dict[int, list[Batch | None]] = {}
        """Each ticket's samples, per generator replica (None until that part finishes)."""
        self.trained = torch.zeros(len(stage.train), dtype=torch.int64)
        self.busy = {"generation": 0.0, "learning": 0.0}

    @property
    def generators(self) -> Any:
        return self.stage.runtime.group(self.edge.dst, InFlight)

    def next_ticket(self) -> int:
        return max(self.prompts, default=self.stage.version - 1) + 1

    def fill(self) -> None:
        """Start every request the bound allows: ticket j once the generators hold
        version j - K, and none past the budget."""
        cfg, stage = self.stage.config, self.stage
        last = min(stage.version + cfg.max_staleness, stage.steps() - 1)
        while (ticket := self.next_ticket()) <= max(last, stage.version):
            idx = stage.sampler.take(cfg.prompts_per_step)
            batch = stage.collate(stage.train, idx)
            self.prompts[ticket] = idx
            parts = split_prompts(batch, self.generators.size)
            self.generators.call_each(InFlight.start, [(p, ticket) for p in parts])
            self.finished[ticket] = [None] * self.generators.size

    def advance(self) -> int:
        """One chunk of decode steps on every generator; what finished, kept by ticket (how
        many requests finished)."""
        t0 = time.perf_counter()
        done: list[list[Finished]] = self.generators.call(
            InFlight.advance, self.stage.config.decode_chunk
        )
        self.busy["generation"] += time.perf_counter() - t0
        for replica, finished in enumerate(done):
            for f in finished:
                if f.ticket in self.finished:  # else a request past the budget's end
                    self.finished[f.ticket][replica] = f.samples
        return sum(len(finished) for finished in done)

    def recover(self) -> None:
        """Start again the parts of requests that a generator no longer holds (a worker
        restarted with its initial state): their prompts are the driver's, so nothing is
        lost and none is trained twice."""
        flying = self.generators.call(InFlight.in_flight)
        for ticket, parts in self.finished.items():
            lost = [r for r, p in enumerate(parts) if p is None and ticket not in flying[r]]
            if not lost:
                continue
            batch = self.stage.collate(self.stage.train, self.prompts[ticket])
            split = split_prompts(batch, self.generators.size)
            for r in lost:
                self.generators.on(r, InFlight.start, split[r], ticket)

    def ready(self, ticket: int) -> bool:
        return all(p is not None for p in self.finished.get(ticket, [None]))

    def in_flight(self) -> bool:
        return any(not self.ready(t) for t in self.finished)

    def step(self, learn: Callable[[Delivery[Any]], Learned]) -> Learned:
        """Train on this step's samples (`learn`: score, learn, push the weights), decoding
        the requests after it meanwhile; the step's metrics with the async ones."""
        stage, t0 = self.stage, time.perf_counter()
        self.busy = {"generation": 0.0, "learning": 0.0}
        ticket = stage.version
        self.fill()
        while not self.ready(ticket):
            if not self.advance():
                self.recover()
        parts = [p for p in self.finished.pop(ticket) if p is not None]
        idx = self.prompts.pop(ticket)
        samples = Delivery(self.edge, merge(parts), [], parts)
        learning = stage.runtime.concurrently(self.timed_learn, learn, samples)
        while self.in_flight():  # at least one chunk while it learns (in one process: after)
            self.advance()
            if learning.ready():
                break
        learned: Learned = learning.wait()
        metrics = learned.metrics
        self.trained[idx] += 1
        wall = max(time.perf_counter() - t0, 1e-9)
        metrics.update(staleness(merge(parts), ticket, stage.config.max_staleness))
        metrics["generator_busy"] = self.busy["generation"] / wall
        metrics["learner_busy"] = self.busy["learning"] / wall
        metrics["generation_seconds"] = self.busy["generation"]
        metrics["learning_seconds"] = self.busy["learning"]
        return learned

    def timed_learn(
        self, learn: Callable[[Delivery[Any]], Learned], samples: Delivery[Any]
    ) -> Learned:
        t0 = time.perf_counter()
        out = learn(samples)
        self.busy["learning"] += time.perf_counter() - t0
        return out

    def state_dict(self) -> dict[str, Any]:
        """The started tickets' prompts, the finished samples, the per-prompt counts (the
        requests in flight are the generators' state)."""
        return {"prompts": self.prompts, "finished": self.finished, "trained": self.trained}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prompts = dict(state["prompts"])
        self.finished = dict(state["finished"])
        self.trained = state["trained"].clone()


def split_prompts(batch: Batch, parts: int) -> list[Batch]:
    """A step's prompts in whole parts, one per generator (as the scatter edge splits them)."""
    from rlkit.dataflow.carry import split

    return list(split(batch, parts))


def staleness(samples: Batch, version: int, bound: int) -> dict[str, float]:
    """How far behind the learner's `version` the step's samples were sampled: a sample's
    staleness is `version` minus the version of its oldest token; its mean, max and
    histogram (``staleness_k``: the fraction of samples k versions behind, k = 0..bound),
    and the fraction of response tokens sampled by older weights than the learner's."""
    lag = (version - samples["version"]).float()
    mask = samples["loss_mask"]
    tokens = samples["token_version"][mask]
    out = {
        "staleness_mean": float(lag.mean()),
        "staleness_max": float(lag.max()),
        "off_policy_tokens": float((tokens < version).float().mean()) if tokens.numel() else 0.0,
    }
    for k in range(bound + 1):
        out[f"staleness_{k}"] = float((lag == k).float().mean())
    return out
