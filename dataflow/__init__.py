"""The dataflow core: logical graphs of fragments, distribution policies, the scheduler
and executors.

    logical graph --compile(policy)--> plan --place(cluster)--> placement --start--> runtime
"""

# ray_executor registers the "ray" executor and the multi-actor / colocate policies (Ray
# is imported only when used, so this costs nothing without it)
from rlkit.dataflow import ray_executor as _ray_executor  # noqa: F401
from rlkit.dataflow.executor import EXECUTORS, LocalExecutor, Runtime, WorkerGroup
from rlkit.dataflow.graph import Edge, Fragment, LogicalGraph, Pattern, Resources
from rlkit.dataflow.plan import Plan, Worker
from rlkit.dataflow.policies import POLICIES, DistributionPolicy, PolicyOptions
from rlkit.dataflow.scheduler import Cluster, Node, Placement, local_cluster, place

__all__ = [
    "EXECUTORS",
    "POLICIES",
    "Cluster",
    "DistributionPolicy",
    "Edge",
    "Fragment",
    "LocalExecutor",
    "LogicalGraph",
    "Node",
    "Pattern",
    "Placement",
    "Plan",
    "PolicyOptions",
    "Resources",
    "Runtime",
    "Worker",
    "WorkerGroup",
    "local_cluster",
    "place",
]
