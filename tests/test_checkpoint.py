import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlkit import checkpoint
from rlkit.errors import CheckpointError


def test_roundtrip(tmp_path: Path):
    path = tmp_path / "c.pt"
    checkpoint.save(path, "ppo", {"x": torch.arange(3)})
    data = checkpoint.load(path, "ppo")
    assert torch.equal(data["x"], torch.arange(3))


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path: Path):
    path = tmp_path / "c.pt"
    checkpoint.save(path, "ppo", {"x": 1})

    def crash(tmp: Path) -> None:
        tmp.write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        checkpoint.atomic_write(path, crash)
    assert checkpoint.load(path, "ppo")["x"] == 1
    # no temp file left behind; the digest beside the checkpoint is the previous one's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "c.pt.sha256"]


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path: Path):
    path = tmp_path / "c.pt"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load(path)
    checkpoint.save(path, "dqn", {})
    with pytest.raises(CheckpointError, match="is a 'dqn' checkpoint, not 'ppo'"):
        checkpoint.load(path, "ppo")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path / "missing.pt")


def flip_bytes(path: Path, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + count] = bytes(b ^ 0xFF for b in data[middle : middle + count])
    path.write_bytes(bytes(data))


def test_flipped_bytes_are_refused_by_the_checksum(tmp_path: Path):
    path = tmp_path / "c.pt"
    checkpoint.save(path, "ppo", {"x": torch.zeros(4096)})
    flip_bytes(path)
    with pytest.raises(CheckpointError, match="SHA-256 does not match"):
        checkpoint.load(path, "ppo")


def test_a_kill_between_the_two_renames_still_verifies(tmp_path: Path):
    """The digest file is renamed first and names the previous digest too."""
    path = tmp_path / "c.pt"
    checkpoint.save(path, "ppo", {"x": 1})
    old = path.read_bytes()
    checkpoint.save(path, "ppo", {"x": 2})
    path.write_bytes(old)  # as if killed after the digest's rename, before the checkpoint's
    assert checkpoint.load(path, "ppo")["x"] == 1


def test_checkpoints_without_a_digest_still_load(tmp_path: Path):
    path = tmp_path / "c.pt"
    checkpoint.save(path, "ppo", {"x": 1})
    checkpoint.checksum_path(path).unlink()
    assert checkpoint.load(path, "ppo")["x"] == 1


@pytest.mark.parametrize(
    "state",
    [
        {"state": [1, 2]},
        {"state": {"fragments": [1, 2]}},
        {"state": {"fragments": {"actor": 3}}},
        {"state": {"fragments": {}}, "trainer": "x"},
    ],
)
def test_a_wrong_top_level_structure_is_refused(tmp_path: Path, state):
    path = tmp_path / "c.pt"
    checkpoint.save(path, "ppo", state)
    with pytest.raises(CheckpointError, match="is corrupt"):
        checkpoint.load(path, "ppo")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temp_files_of_dead_writers_are_removed(tmp_path: Path):
    dead = tmp_path / f".checkpoint.pt.tmp-{dead_pid()}"
    alive = tmp_path / f".checkpoint.pt.tmp-{os.getppid()}"  # a live writer keeps its file
    other = tmp_path / "notes.tmp-1"
    for p in (dead, alive, other):
        p.write_bytes(b"partial")
    assert checkpoint.remove_stale_temps(tmp_path) == [dead]
    assert not dead.exists() and alive.exists() and other.exists()
