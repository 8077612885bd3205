"""Creating a run directory, with one clear line for every way the path can be wrong."""

from __future__ import annotations

import os
from pathlib import Path

from rlkit.errors import ConfigError


def check_name(name: str) -> None:
    """ConfigError unless `name` is one plain directory name (no separators, no ..)."""
    if not name:
        return
    parts = Path(name).parts
    if Path(name).is_absolute() or len(parts) != 1 or name in (".", "..") or "\0" in name:
        raise ConfigError(
            f"--name {name!r}: must be a plain directory name (no '/', '..' or absolute path); "
            "choose the parent directory with --out"
        )


def create(out: str, name: str) -> Path:
    """Make OUT/NAME (OUT/NAME-2, -3, ... if it exists); ConfigError naming the path if the
    directory cannot be made (OUT is a file, lies under a file, or is not writable)."""
    check_name(name)
    parent = Path(out)
    for above in (parent, *parent.parents):
        if above.exists():
            if not above.is_dir():
                what = "is a file" if above == parent else f"lies under the file {above}"
                raise ConfigError(f"--out {out}: {what}, not a directory; choose another --out")
            break
    path = parent / name
    suffix = 1
    while path.exists() or path.is_symlink():
        suffix += 1
        path = parent / f"{name}-{suffix}"
    try:
        path.mkdir(parents=True)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ConfigError(
            f"--out {out}: cannot create the run directory {path} ({reason}); "
            "choose a writable --out"
        ) from None
    if not os.access(path, os.W_OK):
        path.rmdir()
        raise ConfigError(f"--out {out}: {path} is not writable; choose a writable --out")
    return path
