"""The dataflow core carries every graph shape the architecture names, including the
ones whose algorithms do not exist yet (DQN/SAC with a buffer, RLHF with five roles)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from rlkit import batch as B
from rlkit.dataflow import (
    EXECUTORS,
    POLICIES,
    Cluster,
    Fragment,
    LogicalGraph,
    Node,
    Pattern,
    PolicyOptions,
    Resources,
    local_cluster,
    place,
)
from rlkit.errors import ConfigError, PlacementError


class Stub:
    """A role that records its calls; stands in for roles whose algorithm is not built yet."""

    def __init__(
        self, width: int = 2, device: torch.device | None = None, replica: int = 0
    ) -> None:
        self.width, self.device, self.replica = width, device, replica
        self.received: list[Any] = []

    def produce(self, n: int) -> B.Batch:
        return {"x": torch.full((n, self.width), float(self.replica))}

    def consume(self, batch: Any) -> int:
        self.received.append(batch)
        return B.batch_size(batch) if isinstance(batch, dict) else 0

    # the methods the test graphs' edges name (they are checked when declared)
    collect = add = sample = generate = score = values = priorities = produce
    update = set_weights = update_priorities = consume

    def get_weights(self) -> dict[str, torch.Tensor]:
        return {"w": torch.ones(1)}

    def rendezvous(self) -> str:
        return ""

    def join(self, address: str) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"n": len(self.received)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def ppo_graph(actors: int = 3) -> LogicalGraph:
    g = LogicalGraph("ppo")
    g.add(Fragment("actor", Stub, replicas=actors))
    g.add(Fragment("learner", Stub, resources=Resources("auto", gpus=1)))
    g.connect("rollout", "actor", "learner", "gather", "collect", "update")
    g.connect("weights", "learner", "actor", "broadcast", "get_weights", "set_weights")
    return g


def offpolicy_graph(prioritized: bool) -> LogicalGraph:
    g = LogicalGraph("sac")
    g.add(Fragment("actor", Stub, replicas=2))
    g.add(Fragment("buffer", Stub, resources=Resources("cpu", memory_gb=4)))
    g.add(Fragment("learner", Stub))
    g.connect("transitions", "actor", "buffer", Pattern.QUEUE, "collect", "add", bound=64)
    g.connect("batch", "buffer", "learner", Pattern.GATHER, "sample", "update")
    g.connect("weights", "learner", "actor", Pattern.BROADCAST, "get_weights", "set_weights")
    if prioritized:
        g.connect(
            "priorities", "learner", "buffer", Pattern.GATHER, "priorities", "update_priorities"
        )
    return g


def rlhf_graph(colocate: bool, critic: bool = True) -> LogicalGraph:
    """RLHF PPO (GRPO when critic=False): prompts -> generator -> scorers -> learners."""
    group = "hybrid" if colocate else None
    g = LogicalGraph("rlhf-ppo" if critic else "grpo")
    gpu = Resources("gpu", gpus=1)
    g.add(Fragment("prompts", Stub, resources=Resources("cpu")))
    g.add(Fragment("generator", Stub, resources=gpu, replicas=2, colocate=group))
    g.add(Fragment("reference", Stub, resources=gpu, colocate=group))
    g.add(Fragment("reward", Stub, resources=gpu, colocate=group))
    g.add(Fragment("policy", Stub, resources=gpu, replicas=2, colocate=group))
    g.connect("prompts", "prompts", "generator", Pattern.SCATTER, "produce", "generate")
    g.connect("to_reference", "generator", "reference", Pattern.GATHER, "generate", "score")
    g.connect("to_reward", "generator", "reward", Pattern.GATHER, "generate", "score")
    g.connect("ref_logps", "reference", "policy", Pattern.SCATTER, "score", "update")
    g.connect("rewards", "reward", "policy", Pattern.SCATTER, "score", "update")
    if critic:
        g.add(Fragment("critic", Stub, resources=gpu, colocate=group))
        g.connect("to_critic", "generator", "critic", Pattern.GATHER, "generate", "values")
        g.connect("values", "critic", "policy", Pattern.SCATTER, "values", "update")
    g.connect("grads", "policy", "policy", Pattern.ALLREDUCE)
    g.connect("weights", "policy", "generator", Pattern.BROADCAST, "get_weights", "set_weights")
    return g


GRAPHS = {
    "ppo": lambda: ppo_graph(),
    "dqn": lambda: offpolicy_graph(prioritized=False),
    "dqn-per": lambda: offpolicy_graph(prioritized=True),
    "rlhf-ppo": lambda: rlhf_graph(colocate=False),
    "rlhf-colocated": lambda: rlhf_graph(colocate=True),
    "grpo": lambda: rlhf_graph(colocate=True, critic=False),
}
GPU_CLUSTER = Cluster([Node("head", cpus=8, gpus=8, memory_gb=64)])


@pytest.mark.parametrize("name", list(GRAPHS))
def test_graph_shapes_compile_and_place(name: str):
    graph = GRAPHS[name]()
    plan = POLICIES.get("local")().compile(graph, PolicyOptions())
    members = {m for w in plan.workers for m in w.members}
    expected = {(f.name, i) for f in graph.fragments.values() for i in range(f.replicas)}
    assert members == expected  # every replica is somewhere, once
    assert {t.edge.name for t in plan.transports} == {e.name for e in graph.edges}
    placement = place(plan, GPU_CLUSTER)
    table = placement.table()
    for fragment in graph.fragments:
        assert fragment in table
    text = graph.describe()
    for edge in graph.edges:
        assert f"--{edge.pattern.value}-->" in text


def test_rlhf_graph_has_five_roles_and_grpo_drops_the_critic():
    assert {"generator", "reference", "reward", "critic", "policy"} <= set(
        rlhf_graph(False).fragments
    )
    assert "critic" not in rlhf_graph(True, critic=False).fragments


def test_auto_device_settles_on_what_the_cluster_has():
    plan = POLICIES.get("local")().compile(ppo_graph(), PolicyOptions())
    assert place(plan, GPU_CLUSTER).device_of("learner") == "gpu"
    cpu_only = Cluster([Node("head", cpus=2)])
    assert place(plan, cpu_only).device_of("learner") == "cpu"
    assert place(plan, cpu_only).device_of("actor", 2) == "cpu"


def test_infeasible_plan_is_refused_with_what_to_change():
    g = LogicalGraph("needs-gpu")
    g.add(Fragment("learner", Stub, resources=Resources("gpu", gpus=1)))
    plan = POLICIES.get("local")().compile(g, PolicyOptions())
    with pytest.raises(
        PlacementError,
        match="learner needs 1 GPU; the cluster has 0 free: use --device cpu or add a GPU node",
    ):
        place(plan, Cluster([Node("head", cpus=2)]))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda g: g.add(Fragment("actor", Stub)), "declared twice"),
        (lambda g: g.connect("x", "actor", "nowhere", "gather"), "names no fragment 'nowhere'"),
        (
            lambda g: g.connect("x", "actor", "learner", "allreduce"),
            "must join a fragment to itself",
        ),
        (
            lambda g: g.connect("x", "actor", "learner", "gather", bound=3),
            "only queue edges have a bound",
        ),
        (lambda g: g.connect("x", "actor", "learner", "teleport"), "teleport"),
    ],
)
def test_malformed_graphs_are_refused(build, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        build(ppo_graph())


def test_bad_fragment_requests_are_refused():
    with pytest.raises(ConfigError, match="replicas"):
        Fragment("a", Stub, replicas=0)
    with pytest.raises(ConfigError, match="device"):
        Resources("tpu")


def test_local_executor_runs_the_patterns():
    graph = offpolicy_graph(prioritized=False)
    plan = POLICIES.get("local")().compile(graph, PolicyOptions())
    runtime = EXECUTORS.get("local")().start(place(plan, local_cluster()))
    actors, buffer, learner = runtime["actor"], runtime["buffer"], runtime["learner"]
    assert actors.size == 2
    # gather: every actor's output, concatenated in replica order
    gathered = B.cat(actors.call("produce", 3))
    assert gathered["x"].shape == (6, 2)
    assert gathered["x"][:3].eq(0).all() and gathered["x"][3:].eq(1).all()
    assert buffer.one("consume", gathered) == 6
    # broadcast: the same object reaches every replica (a reference under `local`)
    weights = {"w": torch.ones(1)}
    actors.call("consume", weights)
    assert all(a.received[-1] is weights for a in actors.instances)
    # scatter: a batch split across replicas
    assert actors.scatter("consume", gathered) == [3, 3]
    assert learner.one("state_dict") == {"n": 0}
    runtime.shutdown()
