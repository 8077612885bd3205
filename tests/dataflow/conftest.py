"""Ray for the dataflow tests: one Ray at a time, started once per session.

`ray_local` is a single-node Ray with 4 logical CPUs (a PPO plan with 2 actors and a
learner asks for 3). `ray_nodes` is a `ray.cluster_utils.Cluster` of a head and two
nodes declaring GPU and NPU resources (compute stays on CPU). Asking for one shuts the
other down first, so module order does not matter; each starts at most once if the
modules asking for it run together (pytest runs them in file order).
Ray's files (sockets, logs, the address file that `--address auto` reads) live in a
private directory, not in the machine-wide /tmp/ray.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from rlkit.dataflow.ray_executor import init_ray

RAY_CPUS = 4
GPU_NODE = {"num_cpus": 4, "num_gpus": 2}
NPU_NODE = {"num_cpus": 2, "resources": {"NPU": 2}}


class RayState:
    """Which Ray is up in this test process: None, "local" or "nodes"."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.cluster: Any = None
        self.root = tempfile.mkdtemp(prefix="rlkit-rt-", dir="/tmp")

    def stop(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None
        self.kind = None

    def local(self) -> None:
        import ray

        if self.kind == "local" and ray.is_initialized():
            return
        self.stop()
        init_ray(
            num_cpus=RAY_CPUS,
            include_dashboard=False,
            logging_level="WARNING",
            _temp_dir=os.path.join(self.root, "local"),
        )
        self.kind = "local"

    def nodes(self) -> Any:
        import ray
        from ray.cluster_utils import Cluster

        if self.kind == "nodes" and ray.is_initialized():
            return self.cluster
        self.stop()
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 2, "include_dashboard": False},
        )
        self.cluster.add_node(**GPU_NODE)
        self.cluster.add_node(**NPU_NODE)
        self.cluster.wait_for_nodes()
        init_ray(address=self.cluster.address, logging_level="WARNING")
        self.kind = "nodes"
        return self.cluster


@pytest.fixture(scope="session")
def ray_state() -> Iterator[RayState]:
    pytest.importorskip("ray")
    old = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_TMPDIR")}
    state = RayState()
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_TMPDIR"] = state.root  # Cluster writes its address file under here
    yield state
    state.stop()
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(state.root, ignore_errors=True)


@pytest.fixture
def ray_local(ray_state: RayState) -> RayState:
    """A single-node Ray with RAY_CPUS logical CPUs is up in this process."""
    ray_state.local()
    return ray_state


@pytest.fixture
def ray_nodes(ray_state: RayState) -> Any:
    """A three-node Ray (head; GPU node; NPU node) is up; returns the Cluster."""
    return ray_state.nodes()
