"""API, bad input and state of rlkit.replay buffers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit.errors import BufferError
from rlkit.replay import Field, PrioritizedReplayBuffer, ReplayBuffer

FIELDS = {
    "obs": ((3,), np.float32),
    "action": ((2,), np.int64),
    "reward": ((), np.float32),
    "next_obs": ((3,), np.float32),
    "terminated": ((), np.bool_),
    "truncated": ((), np.bool_),
}


def transition(i: float) -> dict[str, np.ndarray]:
    return {
        "obs": np.full(3, i, np.float32),
        "action": np.full(2, int(i), np.int64),
        "reward": np.float32(i),
        "next_obs": np.full(3, i + 1, np.float32),
        "terminated": np.bool_(False),
        "truncated": np.bool_(False),
    }


def batch(start: int, n: int) -> dict[str, np.ndarray]:
    rows = [transition(start + k) for k in range(n)]
    return {k: np.stack([r[k] for r in rows]) for k in FIELDS}


def test_single_and_batch_add_ring():
    rb = ReplayBuffer(5, FIELDS, seed=0)
    assert len(rb) == 0 and rb.capacity == 5
    assert rb.add(transition(0)) == 0
    assert rb.add(batch(1, 3)) == 1
    assert len(rb) == 4
    rb.add(batch(4, 4))
    assert len(rb) == 5 and rb.total == 8
    s = rb.sample(5)
    assert set(s["indices"].tolist()) <= set(range(3, 8))
    np.testing.assert_array_equal(s["obs"][:, 0], s["indices"].astype(np.float32))
    np.testing.assert_array_equal(s["action"][:, 1], s["indices"])
    assert s["obs"].dtype == np.float32 and s["terminated"].dtype == np.bool_
    assert s["discount"].dtype == np.float32
    rb.clear()
    assert len(rb) == 0 and rb.total == 0


def test_python_scalars_and_torch_inputs():
    rb = ReplayBuffer(10, FIELDS, seed=0)
    t = transition(1)
    t["reward"], t["terminated"], t["truncated"] = 1.5, True, False  # type: ignore[assignment]
    rb.add(t)
    tb = {k: torch.from_numpy(v) for k, v in batch(2, 4).items()}
    rb.add(tb)
    assert len(rb) == 5
    s = rb.sample(5)
    assert torch.from_numpy(s["obs"]).shape == (5, 3)  # zero-copy view in torch


def test_inference_from_first_add():
    rb = ReplayBuffer(10, seed=0)
    rb.add(batch(0, 4))
    assert rb.fields["obs"] == Field((3,), np.dtype(np.float32))
    assert rb.fields["reward"] == Field((), np.dtype(np.float32))
    rb2 = ReplayBuffer(10, seed=0)
    rb2.add(transition(0))
    assert rb2.fields["obs"].shape == (3,) and len(rb2) == 1
    rb3 = ReplayBuffer(10, seed=0)
    rb3.add({"x": np.zeros((2, 2), np.float32)}, batched=True)
    assert rb3.fields["x"].shape == (2,) and len(rb3) == 2


def test_sample_into_torch_tensors():
    rb = PrioritizedReplayBuffer(20, FIELDS, seed=0)
    rb.add(batch(0, 20))
    out = {
        "obs": torch.empty(8, 3),
        "reward": torch.empty(8),
        "indices": torch.empty(8, dtype=torch.int64),
        "weights": torch.empty(8),
    }
    rb.sample_into(out, 8)
    assert torch.equal(out["obs"][:, 0], out["indices"].float())
    assert torch.equal(out["reward"], out["indices"].float())
    assert torch.all(out["weights"] == 1.0)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"obs": np.zeros(4, np.float32)}, "shape"),
        ({"obs": np.zeros((2, 4), np.float32)}, "shape"),
        ({"obs": np.zeros(3, np.float64)}, "dtype"),
        ({"action": np.zeros(2, np.float32)}, "dtype"),
        ({"extra": np.zeros(1)}, "unexpected"),
        ({"obs": None}, "missing"),
        ({"obs": np.zeros((2, 3), np.float32)}, "same leading batch size"),
        ({"obs": "abc"}, "field 'obs'"),
    ],
)
def test_bad_add(change, words):
    rb = ReplayBuffer(10, FIELDS)
    t = {**transition(0), **change}
    t = {k: v for k, v in t.items() if v is not None}
    with pytest.raises(BufferError, match=words):
        rb.add(t)
    assert len(rb) == 0


def test_bad_sizes_and_capacity():
    for cap in (0, -1, 1.5, True):
        with pytest.raises(BufferError, match="capacity"):
            ReplayBuffer(cap, FIELDS)  # type: ignore[arg-type]
    rb = ReplayBuffer(10, FIELDS)
    with pytest.raises(BufferError, match="empty"):
        rb.sample(1)
    with pytest.raises(BufferError, match="empty"):
        ReplayBuffer(10).sample(1)
    rb.add(batch(0, 3))
    with pytest.raises(BufferError, match="only 3"):
        rb.sample(4)
    with pytest.raises(BufferError, match="positive"):
        rb.sample(0)
    with pytest.raises(BufferError, match="dtype"):
        rb.sample_into({"obs": torch.empty(2, 3, dtype=torch.float64)}, 2)
    with pytest.raises(BufferError, match="shape"):
        rb.sample_into({"obs": torch.empty(3, 3)}, 2)
    with pytest.raises(BufferError, match="not fields"):
        rb.sample_into({"nope": torch.empty(2)}, 2)
    with pytest.raises(BufferError, match="dtype"):
        ReplayBuffer(4, {"x": ((2,), np.complex64)})
    with pytest.raises(BufferError, match="n_step"):
        ReplayBuffer(4, {"x": ((2,), np.float32)}, n_step=3)


def test_bad_priorities_and_indices():
    rb = PrioritizedReplayBuffer(10, FIELDS, seed=0)
    rb.add(batch(0, 5))
    for bad in (np.nan, -1.0, np.inf):
        with pytest.raises(BufferError, match="finite"):
            rb.update_priorities([1], [bad])
    for idx in (-1, 5, 10**9):
        with pytest.raises(BufferError, match="out of range"):
            rb.update_priorities([idx], [1.0])
    with pytest.raises(BufferError, match="integers"):
        rb.update_priorities([1.0], [1.0])
    with pytest.raises(BufferError, match="indices but"):
        rb.update_priorities([1, 2], [1.0])
    with pytest.raises(BufferError, match="beta"):
        rb.sample(2, beta=-1.0)
    with pytest.raises(BufferError, match="alpha"):
        PrioritizedReplayBuffer(10, FIELDS, alpha=float("nan"))
    rb.update_priorities(np.arange(5), np.zeros(5))
    with pytest.raises(BufferError, match="zero"):
        rb.sample(1)


def test_state_dict_resume_gives_same_samples(tmp_path):
    def make():
        return PrioritizedReplayBuffer(16, FIELDS, seed=3, n_step=3, gamma=0.9)

    a = make()
    a.add(batch(0, 20))
    s = a.sample(4)
    a.update_priorities(s["indices"], np.arange(1, 5))
    b = make()
    b.load_state_dict(a.state_dict())
    a.save(tmp_path / "rb.npz")
    c = make()
    c.load(tmp_path / "rb.npz")
    for _ in range(3):
        sa, sb, sc = a.sample(6), b.sample(6), c.sample(6)
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k])
            np.testing.assert_array_equal(sa[k], sc[k])
    assert [p.name for p in tmp_path.iterdir()] == ["rb.npz"]  # no temp file left behind


def test_load_other_layout_fails(tmp_path):
    a = ReplayBuffer(8, FIELDS, seed=0)
    a.add(batch(0, 4))
    a.save(tmp_path / "a.npz")
    other = ReplayBuffer(8, {**FIELDS, "obs": ((4,), np.float32)})
    with pytest.raises(BufferError, match="another layout"):
        other.load(tmp_path / "a.npz")
    with pytest.raises(BufferError, match="another layout"):
        ReplayBuffer(9, FIELDS).load(tmp_path / "a.npz")
    with pytest.raises(BufferError, match="another layout"):
        PrioritizedReplayBuffer(8, FIELDS).load(tmp_path / "a.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(BufferError, match="corrupt"):
        a.load(tmp_path / "junk.npz")
    with pytest.raises(BufferError, match="does not exist"):
        a.load(tmp_path / "missing.npz")
    sd = a.state_dict()
    sd["core"]["fields"]["obs"] = sd["core"]["fields"]["obs"][:2]
    with pytest.raises(BufferError, match="obs"):
        ReplayBuffer(8, FIELDS).load_state_dict(sd)


def test_inferred_buffer_loads_state():
    a = ReplayBuffer(8, seed=0)
    a.add(batch(0, 6))
    b = ReplayBuffer(8, seed=1)
    b.load_state_dict(a.state_dict())
    assert b.fields == a.fields and len(b) == 6


def test_share_obs_halves_memory_and_matches():
    full = ReplayBuffer(100, FIELDS, seed=0)
    shared = ReplayBuffer(100, FIELDS, seed=0, share_obs=True)
    for buf in (full, shared):
        for start in range(0, 30, 5):
            b = batch(start, 5)
            if start == 10:
                b["terminated"][-1] = True
                b["next_obs"][-1] = -7
            buf.add(b)
    a, b = full.sample(30), shared.sample(30)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    st = shared.state_dict()["core"]
    assert "next_obs" not in st["fields"] and len(st["side_slots"]) == 2  # terminal + newest
    again = ReplayBuffer(100, FIELDS, seed=0, share_obs=True)
    again.load_state_dict(shared.state_dict())
    np.testing.assert_array_equal(again.sample(30)["next_obs"], shared.sample(30)["next_obs"])


def test_non_contiguous_and_awkward_inputs():
    rb = ReplayBuffer(10, FIELDS, seed=0)
    b = batch(0, 4)
    b["obs"] = np.asfortranarray(np.repeat(np.arange(4, dtype=np.float32)[:, None], 3, 1))
    b["action"] = np.arange(16, dtype=np.int64).reshape(4, 4)[:, ::2]  # strided view
    rb.add(b)
    s = rb.state_dict()["core"]["fields"]
    np.testing.assert_array_equal(s["obs"][:, 2], np.arange(4))
    np.testing.assert_array_equal(s["action"][:, 1], [2, 6, 10, 14])
    t = {k: torch.as_tensor(v) for k, v in transition(1).items() if k != "reward"}
    t["reward"] = torch.ones((), dtype=torch.float64)
    with pytest.raises(BufferError, match="'reward' has dtype float64"):
        rb.add(t)
    t["reward"] = torch.ones((), requires_grad=True)  # read as plain data
    rb.add(t)
    with pytest.raises(BufferError, match="does not fit"):
        ReplayBuffer(4, {"x": ((), np.int8)}).add({"x": 300})
    with pytest.raises(BufferError, match="float"):
        ReplayBuffer(4, {"x": ((), np.int64)}).add({"x": 1.5})
    assert len(rb) == 5 and rb.sample(5)["reward"].max() == 3.0
