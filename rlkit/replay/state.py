"""Replay buffer files: a state_dict flattened into an uncompressed .npz, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from rlkit.errors import BufferError

STATE_VERSION = 1
_META = "__meta__"


def write_file(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Writes to a temp file in the same directory, fsyncs it, then renames it over `path`,
    so a crash leaves either the old file or the new one, never a partial file."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    core = state["core"]
    meta = {k: v for k, v in state.items() if k != "core"}
    if core is not None:
        meta["core"] = {
            "total": int(core["total"]),
            "max_priority": float(core["max_priority"]),
            "rng": [str(int(w)) for w in core["rng"]],  # uint64 does not fit JSON numbers safely
            "fields": list(core["fields"]),
        }
        for k, a in core["fields"].items():
            arrays[f"field/{k}"] = a
        for k in ("priorities", "side_slots", "side_pending", "side_next_obs"):
            if k in core:
                arrays[k] = core[k]
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads a file written by `write_file` back into a state_dict; BufferError naming the
    path for a file that is missing, empty, truncated or not of this layout."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop(_META).tobytes().decode())
    except FileNotFoundError as e:
        raise BufferError(f"replay buffer file {str(path)!r} does not exist") from e
    except EOFError as e:
        raise BufferError(f"replay buffer file {str(path)!r} is empty or truncated") from e
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise BufferError(f"{str(path)!r} is not a replay buffer file or is corrupt ({e})") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("layout"), dict):
        raise BufferError(f"{str(path)!r} is corrupt: its metadata is not a replay buffer state")
    state: dict[str, Any] = {k: v for k, v in meta.items() if k != "core"}
    core = meta.get("core")
    if core is not None:
        try:
            core["rng"] = [int(w) for w in core["rng"]]
            core["fields"] = {k: arrays[f"field/{k}"] for k in core["fields"]}
            for k in ("priorities", "side_slots", "side_pending", "side_next_obs"):
                if k in arrays:
                    core[k] = arrays[k]
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            raise BufferError(f"{str(path)!r} is missing replay data ({e!r}); it is corrupt") from e
    state["core"] = core
    return state
