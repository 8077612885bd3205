"""Executors run a placed plan. `local` constructs every fragment replica in this process.

An executor starts a placement and returns a `Runtime` (`runtime.py`), which carries the
algorithm's edges over one worker group per fragment (`groups.py`). The Ray executor
(`ray_executor.py`) offers the same groups over Ray actors, so a driver runs unchanged on
both.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any

import torch

from rlkit.dataflow.groups import Group, LocalGroup, Pending, RemoteRole, WorkerGroup
from rlkit.dataflow.runtime import Runtime
from rlkit.dataflow.scheduler import Cluster, Placement, local_cluster
from rlkit.device import resolve_device
from rlkit.registry import Registry
from rlkit.roles import SharesDevice

__all__ = [
    "EXECUTORS",
    "Executor",
    "Group",
    "LocalExecutor",
    "LocalGroup",
    "Pending",
    "RemoteRole",
    "Runtime",
    "WorkerGroup",
    "construct",
    "local_device",
]

TORCH_DEVICE = {"cpu": "cpu", "gpu": "cuda", "npu": "npu"}


class Executor(ABC):
    """Runs placed plans. Constructed with the run's config (for e.g. a cluster address);
    `cluster()` tells the scheduler what resources exist before anything starts."""

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def cluster(self) -> Cluster:
        """The resources plans are placed onto (default: this machine)."""
        return local_cluster()

    def check_device(self, device: str) -> None:
        """Refuse a device this executor cannot provide (local: this machine's devices)."""
        resolve_device(device)

    @abstractmethod
    def start(self, placement: Placement) -> Runtime: ...


EXECUTORS: Registry[type[Executor]] = Registry("executor")


def construct(
    role: type, kwargs: dict[str, Any], device: str, replica: int, shared: bool = False
) -> Any:
    """Build a role, passing `device` and `replica` when its constructor takes them; when
    the plan has it take turns on its device with others (`Plan.shares_device`), a role
    that can step aside between its calls is told so (`SharesDevice.share_device`)."""
    params = inspect.signature(role).parameters
    extra: dict[str, Any] = {}
    if "device" in params and "device" not in kwargs:
        extra["device"] = (
            torch.device(TORCH_DEVICE[device]) if device in TORCH_DEVICE else torch.device(device)
        )
    if "replica" in params:
        extra["replica"] = replica
    instance = role(**kwargs, **extra)
    if shared and isinstance(instance, SharesDevice):
        instance.share_device()
    return instance


def local_device(placement: Placement, fragment: str, replica: int) -> str:
    """The device of one replica in this process: its kind, with the index the fragment
    asked for (``cuda:1``); under Ray the cluster assigns devices and the index is moot."""
    kind = placement.device_of(fragment, replica)
    index = placement.plan.fragment(fragment).resources.index
    if kind == "cpu" or index is None:
        return kind
    return f"{TORCH_DEVICE[kind]}:{index}"


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """Every replica is an object in this process; edges are references (zero copy)."""

    def start(self, placement: Placement) -> Runtime:
        plan = placement.plan
        groups: dict[str, WorkerGroup] = {}
        for name, fragment in plan.graph.fragments.items():
            instances = [
                construct(
                    fragment.role,
                    fragment.kwargs,
                    local_device(placement, name, i),
                    i,
                    plan.shares_device(name, i),
                )
                for i in range(plan.replicas[name])
            ]
            groups[name] = LocalGroup(name, instances)
        return Runtime(plan, placement, groups)
