"""The multi-actor, async-actor, colocate, dp-learner and ddp policies compile graphs into workers and placement
groups, and refuse what they cannot carry. No Ray needed."""

from __future__ import annotations

import pytest

from rlkit.dataflow import POLICIES, Cluster, Fragment, LogicalGraph, Node, PolicyOptions, place
from rlkit.dataflow.distributed import ClusterWorker
from rlkit.dataflow.graph import Resources
from rlkit.errors import ConfigError, PlacementError


class Role:
    """Has every method the test graphs' edges name (they are checked when declared)."""

    def collect(self): ...
    def update(self, batch): ...
    def get_weights(self): ...
    def set_weights(self, weights, version): ...
    def produce(self): ...
    def generate(self, prompts): ...
    def score(self, batch): ...
    def add(self, batch): ...
    def sample(self, n): ...
    def rendezvous(self): ...
    def join(self, address): ...


def ppo_graph(actors: int = 3) -> LogicalGraph:
    g = LogicalGraph("ppo")
    g.add(Fragment("actor", Role, replicas=actors))
    g.add(Fragment("learner", Role, resources=Resources("auto", gpus=1)))
    g.connect("rollout", "actor", "learner", "gather", "collect", "update")
    g.connect("weights", "learner", "actor", "broadcast", "get_weights", "set_weights")
    return g


def rlhf_graph(group: str | None, policy_replicas: int = 1) -> LogicalGraph:
    g = LogicalGraph("rlhf")
    share = Resources("gpu", cpus=0.5, gpus=0.25)
    g.add(Fragment("prompts", Role))
    for name, n in (("generator", 2), ("reference", 1), ("reward", 1), ("critic", 1)):
        g.add(Fragment(name, Role, resources=share, replicas=n, colocate=group))
    g.add(Fragment("policy", Role, resources=share, replicas=policy_replicas, colocate=group))
    g.connect("prompts", "prompts", "generator", "scatter", "produce", "generate")
    g.connect("grads", "policy", "policy", "allreduce")
    g.connect("weights", "policy", "generator", "broadcast", "get_weights", "set_weights")
    return g


def compile_(policy: str, graph: LogicalGraph, **options: int):
    return POLICIES.get(policy)().compile(graph, PolicyOptions(**options))


def test_multi_actor_gives_every_replica_a_worker_and_spreads_actors():
    plan = compile_("multi-actor", ppo_graph(3), actors=3)
    assert [w.name for w in plan.workers] == ["actor-0", "actor-1", "actor-2", "learner"]
    assert all(isinstance(w, ClusterWorker) for w in plan.workers)
    actors = [w for w in plan.workers if w.name.startswith("actor")]
    assert {(w.group, w.strategy, w.cpus) for w in actors} == {("actor", "SPREAD", 1.0)}
    learner = plan.workers[-1]
    assert (learner.device, learner.gpus, learner.strategy) == ("auto", 1.0, "PACK")
    # the weights as one buffer over a collective between workers; the rollout via the store
    assert {t.edge.name: t.how for t in plan.transports} == {
        "rollout": "object-store",
        "weights": "collective",
    }
    placement = place(plan, Cluster([Node("cpu", 2), Node("gpu", 4, gpus=1)]))
    assert placement.slot("actor-0").node == "cpu" and placement.slot("actor-2").node == "gpu"
    assert placement.device_of("learner") == "gpu"  # auto settles on what the cluster has


def test_colocate_shares_one_worker_and_one_device_share():
    plan = compile_("colocate", rlhf_graph("hybrid"))
    by_name = {w.name: w for w in plan.workers}
    assert set(by_name) == {"prompts", "hybrid"}
    hybrid = by_name["hybrid"]
    assert len(hybrid.members) == 6 and hybrid.strategy == "PACK"
    # time-shared: the largest share of a member, not the sum
    assert (hybrid.device, hybrid.cpus, hybrid.gpus) == ("gpu", 0.5, 0.25)
    assert dict(t for t in ((t.edge.name, t.how) for t in plan.transports))["grads"] == "collective"


def test_separate_placement_of_the_rlhf_graph_needs_a_share_per_replica():
    plan = compile_("multi-actor", rlhf_graph(None))
    assert len(plan.workers) == 7
    placement = place(plan, Cluster([Node("head", 2), Node("gpu", 4, gpus=2)]))
    assert {placement.slot(w.name).node for w in plan.workers[1:]} == {"gpu"}
    with pytest.raises(PlacementError, match="needs 0.25 GPU"):
        place(plan, Cluster([Node("head", 8), Node("gpu", 8, gpus=1)]))


def offpolicy_graph(actors: int = 2) -> LogicalGraph:
    g = LogicalGraph("dqn")
    g.add(Fragment("actor", Role, replicas=actors))
    g.add(Fragment("replay", Role, resources=Resources("cpu", cpus=0), beside="learner"))
    g.add(Fragment("learner", Role))
    g.connect("transitions", "actor", "replay", "queue", "collect", "add", bound=2 * actors)
    g.connect("batch", "replay", "learner", "gather", "sample", "update")
    g.connect("weights", "learner", "actor", "broadcast", "get_weights", "set_weights")
    return g


def test_async_actor_streams_the_queue_edge_and_refuses_graphs_without_one():
    plan = compile_("async-actor", offpolicy_graph(2), actors=2)
    assert plan.policy == "async-actor"
    assert [w.name for w in plan.workers] == ["actor-0", "actor-1", "learner"]
    assert plan.workers[-1].members == [("replay", 0), ("learner", 0)]  # the buffer beside it
    assert plan.transport("transitions") == "queue"
    assert plan.transport("batch") == "reference"
    assert plan.transport("weights") == "object-store"
    assert compile_("multi-actor", offpolicy_graph(2)).transport("transitions") == "object-store"
    with pytest.raises(ConfigError, match="ppo's actors feed its learner directly.*multi-actor"):
        compile_("async-actor", ppo_graph())


@pytest.mark.parametrize("policy", ["multi-actor", "colocate"])
def test_several_learners_need_dp_learner(policy: str):
    with pytest.raises(ConfigError, match="--learners 2: .*dp-learner is needed for several"):
        compile_(policy, rlhf_graph("hybrid"), learners=2)
    with pytest.raises(ConfigError, match="'policy' has 2 replicas joined by all-reduce"):
        compile_(policy, rlhf_graph("hybrid", policy_replicas=2))


def test_colocate_refuses_what_it_cannot_share():
    with pytest.raises(ConfigError, match="declares no colocation group.*multi-actor"):
        compile_("colocate", ppo_graph())
    g = LogicalGraph("mixed")
    g.add(Fragment("a", Role, resources=Resources("gpu", gpus=1), colocate="x"))
    g.add(Fragment("b", Role, resources=Resources("npu", gpus=1), colocate="x"))
    with pytest.raises(ConfigError, match="group 'x' mixes accelerator kinds"):
        compile_("colocate", g)


def test_dp_learner_needs_an_all_reduced_learner_and_joins_shards_beside_it():
    with pytest.raises(ConfigError, match="--learners 2: graph dqn has no data-parallel learner"):
        compile_("dp-learner", offpolicy_graph(1), learners=2)
    g = LogicalGraph("dqn")
    g.add(Fragment("actor", Role))
    g.add(
        Fragment(
            "replay",
            Role,
            resources=Resources("cpu", cpus=0, memory_gb=2),
            replicas=2,
            beside="learner",
        )
    )
    g.add(Fragment("learner", Role, replicas=2))
    g.connect("batch", "replay", "learner", "gather", "sample", "update")
    g.connect("gradients", "learner", "learner", "allreduce")
    plan = compile_("dp-learner", g, learners=2)
    assert [(w.name, w.members, w.memory_gb) for w in plan.workers] == [
        ("actor", [("actor", 0)], 0.0),
        ("learner-0", [("replay", 0), ("learner", 0)], 2.0),
        ("learner-1", [("replay", 1), ("learner", 1)], 2.0),
    ]
    assert plan.transport("batch") == "reference"
    g.connect("transitions", "actor", "replay", "queue", "collect", "add", bound=2)
    streaming = compile_("async-actor", g, learners=2)  # async actors, data-parallel learners
    assert [w.name for w in streaming.workers] == ["actor", "learner-0", "learner-1"]
    assert streaming.transport("transitions") == "queue"
    g.fragments["replay"].replicas = 1
    with pytest.raises(
        ConfigError, match="'replay' is beside 'learner', which must be a fragment with as many"
    ):
        compile_("dp-learner", g, learners=2)


def dp_ppo_graph(actors: int, learners: int) -> LogicalGraph:
    g = LogicalGraph("ppo")
    g.add(Fragment("actor", Role, resources=Resources("cpu", cpus=1, memory_gb=1), replicas=actors))
    g.add(Fragment("learner", Role, resources=Resources("cpu", cpus=2), replicas=learners))
    g.connect("rollout", "actor", "learner", "gather", "collect", "update")
    g.connect("weights", "learner", "actor", "broadcast", "get_weights", "set_weights")
    g.connect("gradients", "learner", "learner", "allreduce")
    return g


def test_ddp_puts_actor_i_and_learner_i_in_worker_i_sharing_its_cpus():
    plan = compile_("ddp", dp_ppo_graph(2, 2), actors=2, learners=2)
    assert [(w.name, w.members, w.cpus, w.memory_gb) for w in plan.workers] == [
        ("learner-0", [("actor", 0), ("learner", 0)], 2.0, 1.0),  # the largest share, not the sum
        ("learner-1", [("actor", 1), ("learner", 1)], 2.0, 1.0),
    ]
    assert {t.edge.name: t.how for t in plan.transports} == {
        "rollout": "object-store",
        "weights": "object-store",  # learner 0 shares a process with actor 0: no collective
        "gradients": "collective",
    }
    # a replay buffer beside its learner joins that worker too
    g = dp_ppo_graph(2, 2)
    g.add(Fragment("replay", Role, replicas=2, beside="learner"))
    g.connect("batch", "replay", "learner", "gather", "sample", "update")
    members = [w.members for w in compile_("ddp", g, actors=2, learners=2).workers]
    assert members[1] == [("actor", 1), ("replay", 1), ("learner", 1)]


def test_ddp_refuses_unequal_counts_and_a_single_learner():
    with pytest.raises(ConfigError, match="no fragment has as many replicas as the 2 learners"):
        compile_("ddp", dp_ppo_graph(3, 2), actors=3, learners=2)
    with pytest.raises(ConfigError, match="policy ddp: graph ppo needs one data-parallel learner"):
        compile_("ddp", dp_ppo_graph(2, 1), actors=2)


def test_policies_are_registered_beside_local():
    assert {"local", "multi-actor", "async-actor", "colocate", "dp-learner", "ddp"} <= set(POLICIES)


def test_an_actor_cpu_share_below_one_packs_actors_onto_cores():
    from rlkit.dataflow.scheduler import Cluster, Node, place

    def plan(share: float):
        g = LogicalGraph("ppo")
        g.add(Fragment("actor", Role, resources=Resources("cpu", cpus=share), replicas=2))
        g.add(Fragment("learner", Role))
        return compile_("multi-actor", g, actors=2)

    two_cores = Cluster([Node("head", cpus=2)])
    with pytest.raises(PlacementError, match="a smaller --actor-cpus share"):
        place(plan(1.0), two_cores)
    assert len(place(plan(0.5), two_cores).slots) == 3
