import pytest
import torch

from rlkit import batch as B


def test_cat_split_roundtrip():
    b = {"obs": torch.arange(10.0).reshape(5, 2), "r": torch.arange(5.0)}
    parts = B.split(b, 2)
    assert [B.batch_size(p) for p in parts] == [3, 2]
    back = B.cat(parts)
    assert all(torch.equal(back[k], b[k]) for k in b)


def test_batch_size_disagreement_is_an_error():
    with pytest.raises(ValueError, match="disagree"):
        B.batch_size({"a": torch.zeros(3), "b": torch.zeros(4)})


def test_split_more_parts_than_rows_is_an_error():
    with pytest.raises(ValueError, match="cannot split"):
        B.split({"a": torch.zeros(2)}, 3)


def test_flatten_time_and_index():
    b = {"obs": torch.arange(24.0).reshape(2, 3, 4)}
    flat = B.flatten_time(b)
    assert flat["obs"].shape == (6, 4)
    assert torch.equal(B.index(flat, torch.tensor([0, 5]))["obs"][1], b["obs"][1, 2])


def test_ragged_sequences_are_padded_with_a_mask_and_round_trip():
    short = {"tokens": torch.arange(6).reshape(2, 3), "reward": torch.ones(2), "id": ["a", "b"]}
    long = {
        "tokens": torch.arange(15).reshape(3, 5) + 100,
        "reward": torch.zeros(3),
        "id": ["c", "d", "e"],
    }
    both = B.cat([short, long])
    assert both["tokens"].shape == (5, 5)
    assert both["mask"].tolist() == [[True] * 3 + [False] * 2] * 2 + [[True] * 5] * 3
    assert both["tokens"][0].tolist() == [0, 1, 2, 0, 0]  # padded with zeros
    assert both["id"] == ["a", "b", "c", "d", "e"]  # per-sample metadata travels along
    parts = B.split(both, 2)
    assert [p["id"] for p in parts] == [["a", "b", "c"], ["d", "e"]]
    assert all(p["mask"].shape[1] == 5 for p in parts)  # the padding is kept
    back = B.cat(parts)
    assert all(torch.equal(back[k], both[k]) for k in ("tokens", "reward", "mask"))
    assert back["id"] == both["id"]
    # masks of their own are padded, not replaced; a third length extends every mask
    longer = {"tokens": torch.ones(1, 7, dtype=torch.int64), "reward": torch.ones(1), "id": ["f"]}
    three = B.cat([both, longer])
    assert three["mask"].shape == (6, 7) and three["mask"].sum(1).tolist() == [3, 3, 5, 5, 5, 7]
    idx = B.index(three, torch.tensor([5, 0]))
    assert idx["id"] == ["f", "a"] and idx["mask"].sum(1).tolist() == [7, 3]


def test_equal_length_batches_are_not_padded_and_one_is_not_copied():
    a = {"obs": torch.zeros(2, 4, 3)}
    assert "mask" not in B.cat([a, {"obs": torch.ones(1, 4, 3)}])
    assert B.cat([a])["obs"] is a["obs"]
