"""Time-sharing one accelerator (`--policy colocate`, the "hybrid engine"): a role keeps
its weights (and a learner its optimizer state) in host memory between its calls and
moves them onto the device only while it runs, so the generator, the reference, the
reward model and the learners that share one device hold its memory one at a time.
Whether a role shares its device is the plan's to say, not the role's to guess from the
policy's name: the executor calls `share_device()` on the members of a colocation group.

On CPU there is nothing to move: `on_device()` is a no-op, and so are the moves. The
device memory high-water mark of the process (`peak_memory_gb`) is logged with the
learner's metrics when it runs on CUDA.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

HOST = torch.device("cpu")


def move_optimizer(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Every tensor of `optimizer`'s state (Adam's moments) to `device`."""
    for state in optimizer.state.values():
        for k, v in state.items():
            if isinstance(v, torch.Tensor) and v.device != device:
                state[k] = v.to(device, non_blocking=True)


def offloads(mode: str, device: torch.device, shared: bool) -> bool:
    """Whether a role's weights go back to the host between its calls: ``--offload on``,
    or ``auto`` on a device the plan has it share with others (`shared`: a colocation
    group, `--policy colocate`); never on CPU, where there is nothing to move."""
    return device.type != "cpu" and (mode == "on" or (mode == "auto" and shared))


class Offload:
    """Mixin of a role with a `model` (and maybe an `optimizer`) on `device`. With
    `config.offload` on an accelerator they live on the host between calls
    (`rlkit.roles.SharesDevice`: the executor says when the plan shares the device)."""

    model: Any
    device: torch.device
    config: Any
    shared: bool = False
    """Whether the plan has this role take turns on its device (`share_device`)."""

    def share_device(self) -> None:
        """Told by the executor: this replica takes turns on its device with others; under
        ``--offload auto`` its weights now wait on the host between calls."""
        self.shared = True
        if self.offloads() and self.model is not None:  # a scorer may have no model
            self.model.to(HOST)

    def offloads(self) -> bool:
        """Whether the weights go back to the host between calls (`offloads`)."""
        return offloads(getattr(self.config, "offload", "off"), self.device, self.shared)

    def home(self) -> torch.device:
        """Where the weights stay between calls."""
        return HOST if self.offloads() else self.device

    @contextlib.contextmanager
    def on_device(self) -> Iterator[None]:
        """The weights (and optimizer state) on the device for the duration."""
        if not self.offloads():
            yield
            return
        self.model.to(self.device)
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None:
            move_optimizer(optimizer, self.device)
        try:
            yield
        finally:
            self.model.to(HOST)
            if optimizer is not None:
                move_optimizer(optimizer, HOST)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()


def peak_memory_gb(device: torch.device) -> dict[str, float]:
    """The device memory high-water mark of this process, on CUDA (nothing elsewhere)."""
    if device.type != "cuda":
        return {}
    return {"peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30}
