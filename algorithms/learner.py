"""The learner base: the plumbing every learner shares, written once.

`LearnerBase` owns the torch threads, the device, the data-parallel group (`self.dp`),
the replica's random generator (one seed formula, `replica_seed`), optimizer
construction, the learning-rate schedule (`scheduled_lr`), the one gradient all-reduce
(`average_grads`), autocast precision, and the common part of the checkpoint state (the
optimizers, `updates`, the generator). A learner adds its networks, its update and its
own state (`own_state` / `load_own_state`): the on-policy, off-policy, multi-agent and
LLM learners all derive from it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from rlkit.dataflow.collectives import DataParallel, DataParallelRole
from rlkit.device import autocast, use_threads
from rlkit.roles import Learner

if TYPE_CHECKING:
    from rlkit.config import BaseConfig

LR_SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda done: 1.0,
    "linear": lambda done: 1.0 - done,
    "cosine": lambda done: 0.5 * (1 + math.cos(math.pi * done)),
}
"""The decay of the learning rate over the fraction of updates done, by name."""


def scheduled_lr(lr: float, schedule: str, step: int, total: int, warmup: int = 0) -> float:
    """The learning rate of update `step` (from 0) of `total`: a linear warm-up over the
    first `warmup` updates, then `schedule`'s decay (PPO's ``--anneal-lr`` is "linear")."""
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    done = min(1.0, step / max(1, total))
    return lr * warm * LR_SCHEDULES[schedule](done)


def replica_seed(seed: int, replica: int) -> int:
    """The seed of learner replica `replica`'s generator: each replica its own stream."""
    return seed + 1 + 7919 * replica


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw from torch's global RNG seeded with `seed` (to build networks) and leave the
    global RNG as it was afterwards."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


def adam(
    params: Iterable[torch.Tensor],
    lr: float,
    *,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    fused: bool = True,
) -> torch.optim.Optimizer:
    """Adam (AdamW when `decoupled`) over `params`, with torch's fused kernel where it has
    one (CPU and CUDA) unless `fused` is False (FSDP's sharded parameters take none)."""
    params = list(params)
    fused = fused and params[0].device.type in ("cpu", "cuda")
    kind = torch.optim.AdamW if decoupled else torch.optim.Adam
    return kind(params, lr=lr, eps=eps, weight_decay=weight_decay, fused=fused)


class LearnerBase(DataParallelRole, Learner):
    """What every learner sets up: threads, device, data parallelism (``--learners``), a
    seeded generator per replica, optimizers, the LR schedule, the gradient all-reduce,
    precision and the checkpoint state's common part."""

    generator_on_device: ClassVar[bool] = False
    """Whether the generator lives on the learner's device (it samples noise there) or
    on the CPU (it shuffles sample indices)."""
    sharded: bool = False
    """Whether the parameters are sharded over the learners (FSDP reduces the gradients
    itself: `average_grads` leaves them)."""

    def __init__(
        self,
        config: BaseConfig,
        device: torch.device | None = None,
        replica: int = 0,
        total_updates: int = 1,
    ) -> None:
        use_threads(config.torch_threads)
        self.device = device or torch.device("cpu")
        self.dp = DataParallel(replica, config.learners, self.device)
        where = self.device if self.generator_on_device else torch.device("cpu")
        seed = replica_seed(config.seed, replica)
        self.generator = torch.Generator(device=where).manual_seed(seed)
        self.precision = config.precision
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        """The optimizers by their name in the checkpoint state."""
        self.total_updates = max(1, total_updates)
        self.updates = 0

    # -- construction ----------------------------------------------------------------------
    def make_optimizer(
        self, params: Iterable[torch.Tensor], lr: float, name: str = "optimizer"
    ) -> torch.optim.Optimizer:
        """The optimizer of one network (Adam, fused on CPU and CUDA), checkpointed under
        `name`; override for another."""
        return self.add_optimizer(name, adam(params, lr))

    def add_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Checkpoint `optimizer` under `name` (replacing one of that name)."""
        self.optimizers[name] = optimizer
        return optimizer

    # -- training --------------------------------------------------------------------------
    def set_lr(self, lr: float, schedule: str, warmup: int = 0, name: str = "optimizer") -> float:
        """Set the learning rate of optimizer `name` for the next update by `schedule`
        from `lr` (over `total_updates`); returns it."""
        value = scheduled_lr(lr, schedule, self.updates, self.total_updates, warmup)
        for group in self.optimizers[name].param_groups:
            group["lr"] = value
        return value

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The learner's arithmetic for a forward pass (``--precision``)."""
        return autocast(self.device, self.precision)

    def average_grads(self, params: Iterable[torch.Tensor]) -> None:
        """Average the gradients of `params` over the replicas: one all-reduce of one flat
        buffer (nothing to do with one learner, or sharded ones). A parameter without a
        gradient gets zeros, so that every replica reduces the same buffer."""
        if self.dp.world == 1 or self.sharded:
            return
        grads = []
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        if len(grads) == 1:  # one flat parameter already (`FlatParameters`): in place
            self.dp.average_(grads[0])
            return
        flat = self.dp.average_(torch._utils._flatten_dense_tensors(grads))
        for g, averaged in zip(
            grads, torch._utils._unflatten_dense_tensors(flat, grads), strict=True
        ):
            g.copy_(averaged)

    # -- checkpoints -----------------------------------------------------------------------
    def own_state(self) -> dict[str, Any]:
        """The learner's own part of its state (its networks, ...)."""
        return {}

    def load_own_state(self, state: dict[str, Any]) -> None:
        """Restore what `own_state` returned (`state` holds the whole state)."""

    def progress(self) -> dict[str, Any]:
        """Where training stands: the update count and the generator's state."""
        return {"updates": self.updates, "generator": self.generator.get_state()}

    def load_progress(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        if "generator" in state:  # a learner that drew nothing saved none before
            self.generator.set_state(state["generator"])

    def state_dict(self) -> dict[str, Any]:
        optimizers = {name: opt.state_dict() for name, opt in self.optimizers.items()}
        return {**self.own_state(), **optimizers, **self.progress()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_own_state(state)
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])
        self.load_progress(state)
