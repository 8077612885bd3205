"""Time-sharing one accelerator (`--policy colocate`, the "hybrid engine"): a role keeps
its weights (and a learner its optimizer state) in host memory between its calls and
moves them onto the device only while it runs, so the generator, the reference, the
reward model and the learners that share one device hold its memory one at a time.

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


class Offload:
    """Mixin of a role with a `model` (and maybe an `optimizer`) on `device`. With
    `config.offload` on an accelerator they live on the host between calls."""

    model: Any
    device: torch.device
    config: Any

    def offloads(self) -> bool:
        """Whether the weights go back to the host between calls: ``--offload on``, or
        ``auto`` under ``--policy colocate``; never on CPU."""
        mode = getattr(self.config, "offload", "off")
        colocated = getattr(self.config, "policy", "") == "colocate"
        return self.device.type != "cpu" and (mode == "on" or (mode == "auto" and colocated))

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
