"""Checkpoints: one file per run directory, written atomically (temp file, fsync, rename).

A crash or Ctrl-C while writing leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from rlkit.errors import CheckpointError

FORMAT = 1
CHECKPOINT = "checkpoint.pt"


def atomic_write(path: Path, write: Any) -> None:
    """Call `write(tmp_path)`, then replace `path` with the result in one rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(path: Path, algorithm: str, state: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "algorithm": algorithm, **state}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load(path: Path, algorithm: str | None = None) -> dict[str, Any]:
    """Read a checkpoint; CheckpointError if it is missing, corrupt, or of another algorithm."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        # Checkpoints hold numpy arrays and env states besides tensors: only load your own.
        data = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rlkit checkpoint (format {FORMAT})")
    if algorithm is not None and data.get("algorithm") != algorithm:
        raise CheckpointError(
            f"{path} is a {data.get('algorithm')!r} checkpoint, not {algorithm!r}: "
            "resume or evaluate it with the algorithm that wrote it"
        )
    return data
