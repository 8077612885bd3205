"""Placement on a real multi-node Ray (`ray.cluster_utils.Cluster`): a head, a node
declaring 2 GPUs and one declaring 2 NPUs (compute stays on CPU). Fragments that ask for
an accelerator land on the node that has it; an infeasible plan is refused with what to
change; the RLHF-shaped graph runs one step both colocated and placed separately, with
the same numbers as under `local`."""

from __future__ import annotations

import sys
from typing import Any

import pytest

pytest.importorskip("ray")

import torch  # noqa: E402
from ray import cloudpickle  # noqa: E402

from rlkit import batch as B  # noqa: E402
from rlkit.dataflow import (  # noqa: E402
    EXECUTORS,
    POLICIES,
    Fragment,
    LogicalGraph,
    Pattern,
    PolicyOptions,
    Resources,
    place,
)
from rlkit.dataflow.ray_executor import RayExecutor, RayRuntime  # noqa: E402
from rlkit.errors import ConfigError, EnvError, PlacementError  # noqa: E402
from rlkit.roles import Role  # noqa: E402

# The Ray workers cannot import this test module (pytest imports it by path): send its
# classes by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Dummy(Role):
    """Small stand-ins for the RLHF roles: no models, deterministic numbers."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Prompts(Dummy):
    def produce(self, n: int) -> B.Batch:
        return {"prompt": torch.arange(n, dtype=torch.float32)}


class Generator(Dummy):
    def __init__(self, replica: int = 0) -> None:
        self.scale, self.version, self.replica = 1.0, 0, replica

    def set_weights(self, weights: dict[str, torch.Tensor], version: int) -> None:
        self.scale, self.version = float(weights["flat"][0]), version

    def generate(self, prompts: B.Batch) -> B.Batch:
        n = B.batch_size(prompts)
        return {
            "prompt": prompts["prompt"],
            "response": prompts["prompt"] * self.scale + self.replica,
            "version": torch.full((n,), self.version),
        }


class Scorer(Dummy):
    """Reference log-probs, rewards or values, by `key`."""

    def __init__(self, key: str) -> None:
        self.key = key

    def score(self, batch: B.Batch) -> B.Batch:
        offset = {"ref_logp": -1.0, "reward": 0.5, "values": 0.0}[self.key]
        return {self.key: batch["response"] * 0.1 + offset}


class PolicyLearner(Dummy):
    def __init__(self, device: torch.device | None = None) -> None:
        self.device, self.updates = device, 0

    def update(self, batch: B.Batch) -> dict[str, float]:
        self.updates += 1
        adv = batch["reward"] - batch["values"] - 0.1 * batch["ref_logp"]
        return {"loss": float(adv.mean()), "version": float(batch["version"].max())}

    def get_weights(self) -> dict[str, torch.Tensor]:
        return {"flat": torch.tensor([1.0 + self.updates])}


class Probe(Dummy):
    """A role that only reports where it runs."""

    def fail(self) -> None:
        raise EnvError("no such env: pick another with --env")


class Broken(Dummy):
    def __init__(self) -> None:
        raise ConfigError("--hidden: needs positive layer sizes")


def rlhf_graph(colocate: bool, accelerator: str = "gpu") -> LogicalGraph:
    group = "hybrid" if colocate else None
    share = Resources(accelerator, cpus=0.5, gpus=0.25 if accelerator != "cpu" else 0.0)
    g = LogicalGraph("rlhf-ppo")
    g.add(Fragment("prompts", Prompts, resources=Resources("cpu", cpus=0.5)))
    g.add(Fragment("generator", Generator, resources=share, replicas=2, colocate=group))
    for key, name in (("ref_logp", "reference"), ("reward", "reward"), ("values", "critic")):
        g.add(Fragment(name, Scorer, {"key": key}, resources=share, colocate=group))
    g.add(Fragment("policy", PolicyLearner, resources=share, colocate=group))
    g.connect("prompts", "prompts", "generator", Pattern.SCATTER, "produce", "generate")
    g.connect("responses", "generator", "policy", Pattern.GATHER, "generate", "update")
    for name, call in (("reference", "score"), ("reward", "score"), ("critic", "score")):
        g.connect(f"to_{name}", "generator", name, Pattern.GATHER, "generate", call)
        g.connect(f"from_{name}", name, "policy", Pattern.GATHER, call, "update")
    g.connect("weights", "policy", "generator", Pattern.BROADCAST, "get_weights", "set_weights")
    return g


SCORERS = ("reference", "reward", "critic")


def rlhf_step(runtime: Any, version: int) -> dict[str, float]:
    """The RLHF PPO driver, one step, by the graph's edges: prompts scattered to the
    generators, their responses on to every scorer, responses and scores joined into one
    policy update, the weights broadcast back."""
    graph = runtime.plan.graph
    responses = runtime.carry(graph.edge("prompts"), 8)
    scores = [runtime.pass_on(graph.edge(f"to_{name}"), responses) for name in SCORERS]
    into_policy = [graph.edge("responses"), *(graph.edge(f"from_{n}") for n in SCORERS)]
    update = runtime.join(into_policy, [responses, *scores])
    runtime.carry(graph.edge("weights").bind(version))
    return update.results[0]


def run_two_steps(executor: Any, plan: Any) -> list[dict[str, float]]:
    runtime = executor.start(place(plan, executor.cluster()))
    try:
        return [rlhf_step(runtime, v) for v in (1, 2)]
    finally:
        runtime.shutdown()


def node_of(cluster: Any, resource: str) -> str:
    import ray

    return next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get(resource))


def test_fragments_land_on_the_nodes_with_their_accelerators(ray_nodes):
    g = LogicalGraph("placed")
    g.add(Fragment("actor", Probe, replicas=2))
    g.add(Fragment("learner", PolicyLearner, resources=Resources("gpu", gpus=0.5)))
    g.add(Fragment("scorer", Probe, resources=Resources("npu", gpus=1)))
    plan = POLICIES.get("multi-actor")().compile(g, PolicyOptions(actors=2))
    executor = RayExecutor()
    placement = place(plan, executor.cluster())
    table = placement.table()
    gpu_node, npu_node = node_of(ray_nodes, "GPU"), node_of(ray_nodes, "NPU")
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert gpu_node[:6] in rows["learner"] and "gpu" in rows["learner"]
    assert " 0.5 " in rows["learner"]  # the GPU share
    assert npu_node[:6] in rows["scorer"] and "npu" in rows["scorer"]
    runtime = executor.start(placement)
    assert isinstance(runtime, RayRuntime)
    try:
        where = runtime.where()
        assert where["learner"]["node_id"] == gpu_node
        assert where["learner"]["accelerators"].get("GPU")
        assert where["scorer"]["node_id"] == npu_node
        assert where["scorer"]["accelerators"].get("NPU")
        for actor in ("actor-0", "actor-1"):  # CPU work stays off the accelerator nodes
            assert where[actor]["node_id"] not in (gpu_node, npu_node)
            assert not where[actor]["accelerators"]
    finally:
        runtime.shutdown()
    import ray

    assert all(pg["state"] == "REMOVED" for pg in ray.util.placement_group_table().values())


def test_an_infeasible_plan_is_refused_with_what_to_change(ray_nodes):
    g = LogicalGraph("too-big")
    g.add(Fragment("scorer", Probe, resources=Resources("npu", gpus=1), replicas=3))
    plan = POLICIES.get("multi-actor")().compile(g, PolicyOptions())
    with pytest.raises(PlacementError, match="scorer needs 1 NPU; .*add a NPU node"):
        place(plan, RayExecutor().cluster())
    with pytest.raises(ConfigError, match="dp-learner is needed for several learners"):
        POLICIES.get("multi-actor")().compile(g, PolicyOptions(learners=2))


def test_the_rlhf_graph_runs_colocated_and_separately_as_it_does_locally(ray_nodes):
    local_plan = POLICIES.get("local")().compile(rlhf_graph(False, "cpu"), PolicyOptions())
    expected = run_two_steps(EXECUTORS.get("local")(), local_plan)
    assert expected[1]["version"] == 1.0  # the second step's responses carry version 1

    colocated = POLICIES.get("colocate")().compile(rlhf_graph(True), PolicyOptions())
    assert [w.name for w in colocated.workers] == ["prompts", "hybrid"]
    assert run_two_steps(RayExecutor(), colocated) == expected

    separate = POLICIES.get("multi-actor")().compile(rlhf_graph(False), PolicyOptions())
    assert len(separate.workers) == 7  # 2 generators, reference, reward, critic, policy
    assert run_two_steps(RayExecutor(), separate) == expected


def test_role_errors_reach_the_driver_as_themselves(ray_nodes):
    import ray

    g = LogicalGraph("errors")
    g.add(Fragment("probe", Probe))
    plan = POLICIES.get("multi-actor")().compile(g, PolicyOptions())
    executor = RayExecutor()
    runtime = executor.start(place(plan, executor.cluster()))
    try:
        with pytest.raises(EnvError, match="^no such env: pick another with --env$"):
            runtime["probe"].one("fail")
    finally:
        runtime.shutdown()
    g.add(Fragment("broken", Broken))
    plan = POLICIES.get("multi-actor")().compile(g, PolicyOptions())
    with pytest.raises(ConfigError, match="^--hidden: needs positive layer sizes$"):
        executor.start(place(plan, executor.cluster()))
    assert all(pg["state"] == "REMOVED" for pg in ray.util.placement_group_table().values())
