"""Data-parallel learners: K replicas, each with a shard of the batch, averaging gradients
with one all-reduce of the flat gradient (torch.distributed: gloo on CPU, nccl on CUDA,
hccl on Ascend NPUs).

The replicas rendezvous through the driver: replica 0 names a free address
(`rendezvous`), every replica `join`s it, concurrently (so this needs an executor that
runs replicas in parallel processes: Ray). With one replica everything here is a no-op.
"""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist

from rlkit.dataflow.graph import Edge, Pattern, edge

BACKENDS = {"cpu": "gloo", "cuda": "nccl", "npu": "hccl"}

GRADIENTS: Edge[[], None] = edge("gradients", "learner", "learner", Pattern.ALLREDUCE)
"""Data-parallel learner replicas average their gradients (nothing to do with one); the
edge of every template whose learner fragment is "learner"."""


def node_address() -> str:
    """This node's address as other nodes reach it (Ray's node IP when inside Ray)."""
    if "RLKIT_DIST_HOST" in os.environ:
        return os.environ["RLKIT_DIST_HOST"]
    try:
        import ray

        if ray.is_initialized():
            return str(ray.util.get_node_ip_address())
    except ImportError:
        pass
    return "127.0.0.1"


class DataParallel:
    def __init__(self, rank: int, world: int, device: torch.device) -> None:
        self.rank, self.world, self.device = rank, world, device
        self.joined = world == 1

    def rendezvous(self) -> str:
        """A free TCP address on this node for the group's store (call on rank 0)."""
        host = node_address()
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        return f"{host}:{port}"

    def join(self, address: str) -> None:
        """Join the process group at `address` (blocks until all `world` ranks joined)."""
        if self.joined:
            return
        backend = BACKENDS.get(self.device.type, "gloo")
        dist.init_process_group(
            backend, init_method=f"tcp://{address}", rank=self.rank, world_size=self.world
        )
        self.joined = True

    def average_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place mean over the replicas (one all-reduce)."""
        if self.world > 1:
            dist.all_reduce(tensor)
            tensor.div_(self.world)
        return tensor

    def mean_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and (unbiased) std of `x` over the union of every replica's `x`."""
        if self.world == 1:
            return x.mean(), x.std()
        moments = torch.stack(
            [x.sum(), x.pow(2).sum(), torch.tensor(float(x.numel()), device=x.device)]
        )
        dist.all_reduce(moments)
        total, squares, count = moments.unbind()
        mean = total / count
        return mean, ((squares - count * mean**2) / (count - 1)).clamp(min=0).sqrt()

    def leave(self) -> None:
        if self.world > 1 and self.joined and dist.is_initialized():
            dist.destroy_process_group()
            self.joined = False


class DataParallelRole:
    """The driver-facing side of a data-parallel learner role (`self.dp` set by it):
    replica 0 names the group's address, every replica joins it, `close` leaves it."""

    dp: DataParallel

    def rendezvous(self) -> str:
        """Replica 0: an address for the data-parallel group (see `join`)."""
        return self.dp.rendezvous()

    def join(self, address: str) -> None:
        """Join the data-parallel group of `config.learners` replicas."""
        self.dp.join(address)

    def close(self) -> None:
        self.dp.leave()
