"""Device resolution: ``auto`` means cuda, then npu (torch_npu), then cpu."""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any

import torch

from rlkit.errors import DeviceError

DEVICES = ("auto", "cpu", "cuda", "npu")


def npu_available() -> bool:
    if importlib.util.find_spec("torch_npu") is None:
        return False
    import torch_npu  # noqa: F401  (registers torch.npu)

    return bool(torch.npu.is_available())  # type: ignore[attr-defined]


def check_device_name(name: str) -> tuple[str, str]:
    """(kind, index) of ``auto|cpu|cuda[:i]|npu[:i]``; DeviceError naming a malformed one.
    Only the spelling: whether this machine has the device is `resolve_device`'s job."""
    kind, colon, index = str(name).partition(":")
    if kind not in DEVICES:
        raise DeviceError(f"unknown device {name!r}; use one of {', '.join(DEVICES)}")
    if colon and (kind == "auto" or not index.isdigit() or len(index) > 6):
        raise DeviceError(
            f"--device {name}: malformed; use auto, cpu, cuda, cuda:N, npu or npu:N (N an index)"
        )
    return kind, index


def resolve_device(name: str) -> torch.device:
    """A concrete torch device for ``auto|cpu|cuda[:i]|npu[:i]``; DeviceError if absent."""
    kind, index = check_device_name(name)
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("npu") if npu_available() else torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"--device {name}: this machine has no CUDA GPU; use --device cpu or auto"
        )
    if kind == "npu" and not npu_available():
        raise DeviceError(
            f"--device {name}: no Ascend NPU (torch_npu) here; use --device cpu or auto"
        )
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise DeviceError(
            f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
            "numbered from 0"
        )
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise DeviceError(f"--device {name}: {' '.join(str(e).split())}") from None


def use_threads(n: int) -> None:
    """Torch's intra-op threads in this process (``--torch-threads``): every role that
    computes sets them when it is built, since a worker process starts with one per core."""
    torch.set_num_threads(n)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The learner's arithmetic for a forward pass: bfloat16 autocast, or plain fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
