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
