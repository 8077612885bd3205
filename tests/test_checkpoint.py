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
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


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
