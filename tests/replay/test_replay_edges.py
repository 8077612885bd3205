"""Replay buffer edges: Python objects, sizes beyond memory, bad files, bad priorities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlkit.errors import BufferError
from rlkit.replay import PrioritizedReplayBuffer, ReplayBuffer

FIELDS = {"obs": ((2,), np.float32), "reward": ((), np.float32)}


@pytest.mark.parametrize(
    "value",
    [
        np.array([[None, 1.0]], dtype=object),
        np.array([[2.0, 1.0]], dtype=object),
        [[None, 1.0]],
        [["a", 1.0]],
    ],
)
def test_python_objects_are_refused_not_stored_as_nan(value):
    buffer = ReplayBuffer(8, FIELDS)
    with pytest.raises(BufferError, match="field 'obs'"):
        buffer.add({"obs": value, "reward": np.zeros(1, np.float32)})
    assert len(buffer) == 0


def test_lists_of_numbers_still_convert():
    buffer = ReplayBuffer(8, FIELDS)
    buffer.add({"obs": [[1, 2]], "reward": [0.5]})
    assert buffer.sample(1)["obs"].tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize("dtype", [object, "U4", "V8"])
def test_non_numeric_field_dtypes_are_refused(dtype):
    with pytest.raises(BufferError, match="field 'x'"):
        ReplayBuffer(8, {"x": ((2,), dtype)})


@pytest.mark.parametrize(
    ("capacity", "shape"),
    [(2**40, (2**30,)), (2**62, (2**62,)), (2**36, (16,))],
)
def test_capacity_times_row_bytes_beyond_memory_is_refused(capacity, shape):
    with pytest.raises(BufferError, match="lower the capacity"):
        ReplayBuffer(capacity, {"x": (shape, np.float64)})


def write_meta(path: Path, meta: object) -> Path:
    np.savez(path, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    return path


@pytest.mark.parametrize(
    "meta",
    [
        [1, 2],
        "text",
        None,
        {"core": [1]},
        {"version": 1, "layout": [], "core": None},
        {"version": 1, "layout": {"fields": 3}, "core": None},
        {"version": 1, "layout": {"fields": [["x", "<f4", [2]]]}, "core": {"total": "x"}},
        {"version": 1, "layout": {"fields": [["x", "<f4", [2]]]}, "core": [1]},
    ],
)
def test_bad_metadata_is_a_buffer_error_naming_the_file(tmp_path: Path, meta):
    path = write_meta(tmp_path / "replay.npz", meta)
    with pytest.raises(BufferError, match="replay.npz"):
        ReplayBuffer(8).load(path)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04", b"\x93NUMPY"])
def test_empty_or_truncated_files_are_a_buffer_error_naming_the_file(tmp_path: Path, content):
    path = tmp_path / "replay.npz"
    path.write_bytes(content)
    with pytest.raises(BufferError, match="replay.npz"):
        ReplayBuffer(8).load(path)


@pytest.mark.parametrize("max_priority", [float("nan"), float("inf"), -1.0, 0.0, "x"])
def test_a_bad_max_priority_is_refused_on_load(max_priority):
    buffer = PrioritizedReplayBuffer(8, FIELDS)
    buffer.add({"obs": np.ones((4, 2), np.float32), "reward": np.zeros(4, np.float32)})
    state = buffer.state_dict()
    state["core"]["max_priority"] = max_priority
    fresh = PrioritizedReplayBuffer(8, FIELDS)
    with pytest.raises(BufferError, match="max_priority"):
        fresh.load_state_dict(state)
    fresh.load_state_dict(buffer.state_dict())  # the real state still loads
    assert len(fresh.sample(2)["indices"]) == 2
