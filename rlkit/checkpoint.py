"""Checkpoints: a manifest per run directory, written atomically (temp file, fsync, rename),
and the files of the roles that write their own state.

A role with large state (an LLM learner: an HF model directory and optimizer state)
implements ``save_checkpoint(directory) -> small dict`` and ``load_checkpoint(directory,
small)``: each of its replicas writes into a directory of its own under
``checkpoint-files/<checkpoint>/<fragment>-<replica>/``, in its own process, so nothing
large passes through the driver. Every other role's `state_dict()` is kept inline in the
manifest. The manifest (``checkpoint.pt``) is written last and names the files directory
it belongs to; files directories that the current manifest does not name (the previous
checkpoint's, or a write that was killed) are removed once a new manifest is in place,
or at the next resume, so a kill mid-write leaves the previous checkpoint loadable.

A crash or Ctrl-C while writing leaves the previous checkpoint as it was. Beside each
checkpoint, ``checkpoint.pt.sha256`` records its SHA-256 (and the previous one's, so that a
kill between the two renames leaves a pair that still verifies); `load` refuses a file
whose bytes match neither. Temp files of writers that were killed are removed by
`remove_stale_temps` on the next start or resume.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import re
import shutil
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rlkit.errors import CheckpointError

FORMAT = 1
CHECKPOINT = "checkpoint.pt"
FILES_DIR = "checkpoint-files"
FILES = "__files__"
"""Key of a manifest entry that a role wrote as files: ``{FILES: path, "state": small}``
(the path relative to FILES_DIR in the file, absolute once `load` has read it)."""


def new_files_dir(run_dir: Path, step: int) -> Path:
    """A fresh directory for one checkpoint's role files (created, empty)."""
    path = Path(run_dir) / FILES_DIR / f"step{step}-{os.getpid()}-{time.time_ns()}"
    path.mkdir(parents=True)
    return path


def files_entry(files_dir: Path, role_dir: Path, small: Any) -> dict[str, Any]:
    """The manifest entry of a replica that wrote `role_dir` (inside `files_dir`)."""
    return {FILES: f"{files_dir.name}/{role_dir.name}", "state": small}


def restore_call(entry: Any) -> tuple[str, tuple[Any, ...]]:
    """How a replica takes its checkpointed `entry` back: the role method and arguments
    (``load_checkpoint(directory, small)`` for files, else ``load_state_dict(state)``)."""
    if isinstance(entry, Mapping) and FILES in entry:
        return "load_checkpoint", (Path(entry[FILES]), entry["state"])
    return "load_state_dict", (entry,)


def prune_files(run_dir: Path, keep: str | None) -> None:
    """Remove every files directory of `run_dir` but `keep` (the current manifest's)."""
    root = Path(run_dir) / FILES_DIR
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if entry.name != keep and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


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
    _fsync_dir(path.parent)


def replace_dir(new: Path, target: Path) -> None:
    """Put directory `new` in `target`'s place so that `target` is a whole directory at
    every instant (the old one, then the new one): a kill at any point never leaves no
    `target` behind. With an existing `target` the two are exchanged in one
    ``renameat2(RENAME_EXCHANGE)`` (Linux), then the old one, now at `new`, is removed;
    where the exchange is not supported, `target` is renamed away first (a short window
    without it). A kill before the removal leaves the old one at `new` for the caller's
    cleanup of stale temp directories."""
    new, target = Path(new), Path(target)
    if not target.exists():
        os.rename(new, target)
    elif not _exchange(new, target):
        old = new.with_name(new.name + ".old")
        os.rename(target, old)
        os.rename(new, target)
        new = old
    _fsync_dir(target.parent)
    shutil.rmtree(new, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap paths `a` and `b` atomically; False where the system cannot."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not Linux, or a libc without it (glibc < 2.28)
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a file system without it
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(path: Path, algorithm: str, state: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "algorithm": algorithm, **state}
    path = Path(path)

    def write(tmp: Path) -> None:
        torch.save(payload, tmp)
        digest = sha256(tmp)
        previous = _recorded(path)[:1]
        # the digest file names the new file before the rename makes it current
        text = "".join(f"{d}  {path.name}\n" for d in [digest, *previous])
        atomic_write(checksum_path(path), lambda t: t.write_text(text))

    atomic_write(path, write)


def checksum_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".sha256")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _recorded(path: Path) -> list[str]:
    """The digests recorded beside `path`, newest first ([] when there is no record)."""
    try:
        text = checksum_path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return []
    return [m.group(1) for m in re.finditer(r"^([0-9a-f]{64})\b", text, re.MULTILINE)]


def verify(path: Path) -> None:
    """CheckpointError if `path` does not match the digest recorded beside it."""
    record = checksum_path(path)
    if not record.exists():
        return  # a checkpoint from before digests were written
    recorded = _recorded(path)
    if not recorded:
        raise CheckpointError(f"{record} is corrupt (no SHA-256 digest in it)")
    if sha256(path) not in recorded:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its SHA-256 does not match {record.name}; "
            f"restore it from a backup (or delete {record.name} if you replaced the checkpoint "
            "on purpose)"
        )


_TEMP = re.compile(r"^\..+\.tmp-(\d+)$")


def remove_stale_temps(directory: Path) -> list[Path]:
    """Delete ``.NAME.tmp-PID`` files (from `atomic_write`) whose writer is no longer alive."""
    removed: list[Path] = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None or not entry.is_file() or _alive(int(m.group(1))):
            continue
        try:
            entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours, from a write this process already finished or abandoned
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def check_layout(path: Path, data: Mapping[str, Any]) -> None:
    """CheckpointError when a trainer checkpoint's top-level structure is wrong."""
    state, trainer = data.get("state", {}), data.get("trainer", {})
    if not isinstance(state, Mapping) or not isinstance(trainer, Mapping):
        raise CheckpointError(f"{path} is corrupt: 'state' and 'trainer' must be mappings")
    fragments = state.get("fragments", {})
    if not isinstance(fragments, Mapping) or not all(
        isinstance(k, str) and isinstance(v, (list, tuple)) for k, v in fragments.items()
    ):
        raise CheckpointError(
            f"{path} is corrupt: 'fragments' must map fragment names to lists of states"
        )


def load(path: Path, algorithm: str | None = None) -> dict[str, Any]:
    """Read a checkpoint; CheckpointError if it is missing, corrupt, or of another algorithm."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    verify(path)
    try:
        # Checkpoints hold numpy arrays and env states besides tensors: only load your own.
        data = torch.load(path, map_location="cpu", weights_only=False)
    except (
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        ImportError,
        UnicodeDecodeError,
    ) as e:
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
    check_layout(path, data)
    _absolute_files(path, data)
    return data


def _absolute_files(path: Path, data: dict[str, Any]) -> None:
    """Make the files entries' paths absolute (they are stored relative to FILES_DIR);
    CheckpointError when a named directory is missing."""
    root = path.parent / FILES_DIR
    for name, entries in data.get("state", {}).get("fragments", {}).items():
        for i, entry in enumerate(entries):
            if isinstance(entry, Mapping) and FILES in entry:
                where = root / str(entry[FILES])
                if not where.is_dir():
                    raise CheckpointError(
                        f"{path}: fragment {name} replica {i} was saved as files in {where}, "
                        "which is missing; the checkpoint cannot be loaded without it"
                    )
                entries[i] = {FILES: str(where), "state": entry["state"]}


SHARED_MIN_BYTES = 1 << 20
"""Files smaller than this are not worth a link (tokenizers, configs)."""


def share_equal_files(directory: Path, among: Path) -> int:
    """Replace each large file under `directory` that has a byte-equal twin under `among`
    (a run's checkpoint files) by a hard link to the twin: an export whose weights are
    the last checkpoint's takes no second copy on disk. Each replacement is one rename
    (a reader sees the old file or the link, never a partial one); where links cannot be
    made (another file system) the file stays. Returns the bytes saved."""
    import filecmp

    if not Path(among).is_dir():
        return 0
    by_size: dict[int, list[Path]] = {}
    for f in Path(among).rglob("*"):
        if f.is_file() and not f.is_symlink() and f.stat().st_size >= SHARED_MIN_BYTES:
            by_size.setdefault(f.stat().st_size, []).append(f)
    saved = 0
    for f in sorted(Path(directory).rglob("*")):
        if not f.is_file() or f.is_symlink():
            continue
        size = f.stat().st_size
        twin = next((t for t in by_size.get(size, []) if filecmp.cmp(f, t, shallow=False)), None)
        if twin is None or twin.stat().st_ino == f.stat().st_ino:
            continue
        link = f.with_name(f".{f.name}.link-{os.getpid()}")
        try:
            os.link(twin, link)
            os.replace(link, f)
            saved += size
        except OSError:
            link.unlink(missing_ok=True)
    return saved
