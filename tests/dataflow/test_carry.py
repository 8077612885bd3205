"""Edges are executable: the runtime calls the producer, routes by pattern, calls the
consumer; a graph whose edges name methods the roles lack is refused as it is built."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from rlkit import batch as B
from rlkit.dataflow import (
    EXECUTORS,
    POLICIES,
    Fragment,
    LogicalGraph,
    Pattern,
    PolicyOptions,
    place,
)
from rlkit.dataflow.carry import Output
from rlkit.dataflow.executor import Runtime
from rlkit.dataflow.graph import DRIVER, Resources, edge
from rlkit.dataflow.scheduler import Cluster, Node, local_cluster
from rlkit.errors import ConfigError


class Source:
    """Produces rows tagged with its replica and counts its calls."""

    def __init__(self, replica: int = 0) -> None:
        self.replica, self.calls, self.weights, self.version = replica, 0, None, -1

    def produce(self, n: int) -> Output:
        self.calls += 1
        rows = {"x": torch.full((n, 2), float(self.replica)), "call": torch.full((n,), self.calls)}
        return Output(rows, {"return": [float(self.replica)], "version": self.version})

    def set_weights(self, weights: Any, version: int) -> None:
        self.weights, self.version = weights, version

    def state_dict(self) -> dict[str, Any]:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls = state["calls"]


class Sink:
    def __init__(self, replica: int = 0) -> None:
        self.replica, self.received = replica, []

    def update(self, batch: B.Batch) -> dict[str, float]:
        self.received.append(batch)
        return {"rows": float(B.batch_size(batch)), "replica": float(self.replica)}

    def weights(self) -> dict[str, torch.Tensor]:
        return {"w": torch.ones(3)}

    def score(self, batch: B.Batch) -> B.Batch:
        return {"score": batch["x"].sum(-1)}

    def rendezvous(self) -> str:
        return "nowhere"

    def join(self, address: str) -> None:
        self.joined = address

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


ROWS = edge("rows", "source", "sink", Pattern.GATHER, Source.produce, Sink.update)
WEIGHTS = edge("weights", "sink", "source", Pattern.BROADCAST, Sink.weights, Source.set_weights)
REDUCE = edge("reduce", "sink", "sink", Pattern.ALLREDUCE)


def start(graph: LogicalGraph) -> Runtime:
    graph.check()
    plan = POLICIES.get("local")().compile(graph, PolicyOptions())
    return EXECUTORS.get("local")().start(place(plan, local_cluster()))


def two_to(sinks: int, ahead: int = 0) -> LogicalGraph:
    g = LogicalGraph("t")
    g.add(Fragment("source", Source, replicas=2))
    g.add(Fragment("sink", Sink, replicas=sinks))
    g.add_edge(ROWS.with_options(ahead=ahead))
    g.add_edge(WEIGHTS)
    g.add_edge(REDUCE)
    return g


def test_gather_concatenates_the_sources_and_returns_infos_and_results():
    runtime = start(two_to(1))
    sent = runtime.carry(ROWS, 3)
    assert sent.data["x"].shape == (6, 2)
    assert sent.data["x"][:3].eq(0).all() and sent.data["x"][3:].eq(1).all()
    assert sent.episodes()["return"] == [0.0, 1.0]  # the infos, in replica order
    assert sent.results == [{"rows": 6.0, "replica": 0.0}]
    assert sent.mean() == {"rows": 6.0, "replica": 0.0}


def test_gather_into_replicated_consumers_splits_the_rows_evenly():
    runtime = start(two_to(2))
    runtime.connect_collectives()
    sent = runtime.carry(ROWS, 3)
    assert [r["rows"] for r in sent.results] == [3.0, 3.0]
    assert sent.mean() == {"rows": 3.0, "replica": 0.5}
    first, second = runtime["sink"].instances  # type: ignore[attr-defined]
    assert first.received[0]["x"].eq(0).all() and second.received[0]["x"].eq(1).all()
    assert first.joined == second.joined == "nowhere"  # the all-reduce group was formed


def test_broadcast_reaches_every_replica_with_the_bound_arguments():
    runtime = start(two_to(1))
    sent = runtime.carry(WEIGHTS.bind(7))
    for source in runtime["source"].instances:  # type: ignore[attr-defined]
        assert source.weights is sent.data and source.version == 7  # one object, no copies
    assert runtime.carry(ROWS, 1).collected("version") == [7, 7]


def test_ahead_starts_the_next_production_before_the_consumer_and_is_checkpointed():
    runtime = start(two_to(1, ahead=1))
    first = runtime.carry(ROWS, 2)
    assert first.data["call"].eq(1).all()
    sources = runtime["source"].instances  # type: ignore[attr-defined]
    assert [s.calls for s in sources] == [2, 2]  # the next one already made
    state = runtime.edge_state()
    second = runtime.carry(ROWS, 2)
    assert second.data["call"].eq(2).all()

    restored = start(two_to(1, ahead=1))
    restored.load_edge_state(state)
    again = restored.carry(ROWS, 2)
    assert torch.equal(again.data["call"], second.data["call"])


def test_the_driver_is_a_source_and_a_sink():
    g = LogicalGraph("driver")
    g.add(Fragment("source", Source, replicas=2))
    g.add(Fragment("sink", Sink, replicas=2))
    seeds = g.connect("seeds", DRIVER, "sink", Pattern.SCATTER, consume=Sink.update)
    out = g.connect("out", "source", DRIVER, Pattern.GATHER, produce=Source.produce)
    runtime = start(g)
    sent = runtime.carry(seeds, {"x": torch.arange(8.0).reshape(4, 2)})
    assert [r["rows"] for r in sent.results] == [2.0, 2.0]
    got = runtime.carry(out, 2)
    assert got.results[0]["x"].shape == (4, 2) and got.episodes()["return"] == [0.0, 1.0]
    lists = g.connect("lists", DRIVER, "source", Pattern.SCATTER, consume=Source.set_weights)
    runtime = start(g)
    runtime.carry(lists.bind(3), [1, 2, 3])  # a list is split too: [1, 2] and [3]
    assert [s.weights for s in runtime["source"].instances] == [[1, 2], [3]]  # type: ignore[attr-defined]


class Generator:
    def __init__(self, replica: int = 0) -> None:
        self.replica = replica

    def generate(self, prompts: B.Batch) -> B.Batch:
        return {"x": prompts["p"][:, None].repeat(1, 2) + self.replica}


def test_pass_on_and_join_carry_fan_out_and_fan_in():
    g = LogicalGraph("fan")
    g.add(Fragment("generator", Generator, replicas=2))
    g.add(Fragment("scorer", Sink))
    g.add(Fragment("learner", Sink))
    prompts = g.connect("prompts", DRIVER, "generator", Pattern.SCATTER, None, Generator.generate)
    to_score = g.connect(
        "to_score", "generator", "scorer", "gather", Generator.generate, Sink.score
    )
    responses = g.connect(
        "responses", "generator", "learner", "gather", Generator.generate, Sink.update
    )
    scores = g.connect("scores", "scorer", "learner", Pattern.GATHER, Sink.score, Sink.update)
    runtime = start(g)
    made = runtime.carry(prompts, {"p": torch.arange(4.0)})  # each generator takes 2 prompts
    scored = runtime.pass_on(to_score, made)  # the responses, made once, on to the scorer
    assert torch.equal(scored.results[0]["score"], torch.tensor([0.0, 2.0, 6.0, 8.0]))
    update = runtime.join([responses, scores], [made, scored])
    batch = runtime["learner"].instances[0].received[-1]  # type: ignore[attr-defined]
    assert set(batch) == {"x", "score"} and update.results == [{"rows": 4.0, "replica": 0.0}]
    with pytest.raises(ValueError, match="starts at generator, not at scorer"):
        runtime.pass_on(to_score, scored)


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (
            lambda g: g.connect("rows", "source", "sink", "gather", "produce", "updat"),
            r"edge 'rows': sink \(Sink\) has no method 'updat' to consume it; did you mean 'update'\?",
        ),
        (
            lambda g: g.connect("rows", "source", "sink", "gather", "make", "update"),
            r"edge 'rows': source \(Source\) has no method 'make' to produce its data",
        ),
        (
            lambda g: g.connect("r", "source", "source", "allreduce"),
            r"edge 'r': source \(Source\) has no method 'rendezvous' to form its all-reduce group",
        ),
        (
            lambda g: g.connect("rows", DRIVER, "sink", "scatter", "produce", "update"),
            "the driver end takes no method",
        ),
        (lambda g: g.add(Fragment(DRIVER, Sink)), "reserved for the driver"),
    ],
)
def test_edges_naming_missing_methods_are_refused_with_the_edge_named(declare, message):
    g = LogicalGraph("bad")
    g.add(Fragment("source", Source))
    g.add(Fragment("sink", Sink))
    with pytest.raises(ConfigError, match=message):
        declare(g)


def test_a_broadcast_from_replicas_nothing_keeps_identical_is_refused():
    g = LogicalGraph("bad")
    g.add(Fragment("source", Source))
    g.add(Fragment("sink", Sink, replicas=2))
    g.add_edge(WEIGHTS)
    with pytest.raises(
        ConfigError, match="edge 'weights' broadcasts from sink, which has 2 replicas"
    ):
        g.check()
    g.add_edge(REDUCE)
    g.check()  # all-reduced replicas agree


def test_typed_group_calls_and_an_unknown_edge():
    runtime = start(two_to(1))
    assert runtime.group("sink", Sink).one(Sink.weights)["w"].shape == (3,)
    assert runtime.group("source", Source).call(Source.state_dict) == [{"calls": 0}] * 2
    with pytest.raises(TypeError, match="holds Sink, not Source"):
        runtime.group("sink", Source)
    with pytest.raises(KeyError, match="no edge 'elsewhere'"):
        runtime.carry(
            edge("elsewhere", "source", "sink", Pattern.GATHER, Source.produce, Sink.update), 1
        )


def test_a_device_index_is_kept_in_one_process():
    from rlkit.dataflow.executor import local_device

    assert Resources.for_device("cuda:1").index == 1
    assert Resources.for_device("cuda").index is None
    g = LogicalGraph("gpu")
    g.add(Fragment("learner", Sink, resources=Resources.for_device("cuda:1")))
    plan = POLICIES.get("local")().compile(g, PolicyOptions())
    placement = place(plan, Cluster([Node("head", cpus=2, gpus=2)]))
    assert local_device(placement, "learner", 0) == "cuda:1"
