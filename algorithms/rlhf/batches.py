"""Token batches: the training split's order, epoch by epoch, and the tensors of a step.

The driver owns the data: `EpochSampler` hands out the indices of each step (a seeded
permutation per epoch, crossing epoch boundaries without a short step), and its state
(epoch, position) is part of the checkpoint, so a resumed run continues at the same
example. A step's rows are padded to their longest; the learner trims each micro-batch
again. Batch fields (``mask`` as in `rlkit.batch`: True on real tokens):

    sequences (SFT)     input_ids [B, T] int64, mask [B, T], loss_mask [B, T] (True where
                        the token is a target: response tokens), position_ids [B, T] when
                        packed (several examples per row, positions restarting at each;
                        the attention then stays within an example)
    pairs (RM, DPO)     input_ids [B, 2, T], mask [B, 2, T], loss_mask [B, 2, T]; index 0
                        of the pair axis is the chosen response, 1 the rejected one
"""

from __future__ import annotations

import bisect
from typing import Any

import torch

from rlkit.batch import Batch
from rlkit.envs.text.data import Pairs, Sequences


class EpochSampler:
    """The indices of `n` examples: each epoch a permutation drawn from the seed (or the
    identity without shuffling); a step that reaches the end of an epoch continues into
    the next, so every step has the same size."""

    def __init__(self, n: int, seed: int, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch = 0
        self.position = 0
        """Examples of the current epoch already handed out."""
        self._order: tuple[int, torch.Tensor] | None = None

    def order(self, epoch: int) -> torch.Tensor:
        if self._order is None or self._order[0] != epoch:
            if self.shuffle:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                self._order = (epoch, torch.randperm(self.n, generator=g))
            else:
                self._order = (epoch, torch.arange(self.n))
        return self._order[1]

    def take(self, k: int) -> torch.Tensor:
        """The next `k` indices ``[k]``."""
        parts = []
        while k > 0:
            chunk = self.order(self.epoch)[self.position : self.position + k]
            parts.append(chunk)
            k -= len(chunk)
            self.position += len(chunk)
            if self.position == self.n:
                self.epoch, self.position = self.epoch + 1, 0
        return torch.cat(parts)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def _fill(rows: list[list[int]], length: int, value: int, dtype: torch.dtype) -> torch.Tensor:
    out = torch.full((len(rows), length), value, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=dtype)
    return out


def collate_sequences(data: Sequences, idx: torch.Tensor, pad_id: int) -> Batch:
    """Rows `idx` of SFT examples as padded tensors (see the module docstring)."""
    rows = idx.tolist()
    ids = [data.ids[i] for i in rows]
    length = max(len(r) for r in ids)
    batch = {
        "input_ids": _fill(ids, length, pad_id, torch.int64),
        "mask": _fill([[1] * len(r) for r in ids], length, 0, torch.bool),
        "loss_mask": _fill([[int(x) for x in data.loss[i]] for i in rows], length, 0, torch.bool),
    }
    if data.positions is not None:
        pos = [data.positions[i] for i in rows]
        # pads continue the last example's positions (they are after it: nothing sees them)
        padded = [p + list(range(p[-1] + 1, p[-1] + 1 + length - len(p))) for p in pos]
        batch["position_ids"] = torch.tensor(padded, dtype=torch.int64)
    return batch


def collate_pairs(data: Pairs, idx: torch.Tensor, pad_id: int) -> Batch:
    """Rows `idx` of preference pairs as ``[B, 2, T]`` tensors: chosen, then rejected."""
    seqs, loss = [], []
    for i in idx.tolist():
        p = data.prompt[i]
        for response in (data.chosen[i], data.rejected[i]):
            seqs.append(p + response)
            loss.append([0] * len(p) + [1] * len(response))
    length = max(len(s) for s in seqs)
    b = len(idx)
    return {
        "input_ids": _fill(seqs, length, pad_id, torch.int64).view(b, 2, length),
        "mask": _fill([[1] * len(s) for s in seqs], length, 0, torch.bool).view(b, 2, length),
        "loss_mask": _fill(loss, length, 0, torch.bool).view(b, 2, length),
    }


def pack(data: Sequences, length: int) -> Sequences:
    """Examples packed into rows of at most `length` tokens, best fit decreasing (each
    example goes into the fullest row it fits), with the position ids of each row (0 at
    each example's start). An example's first token is never a target (it follows
    another example). Deterministic: ties keep the data's order."""
    order = sorted(range(len(data)), key=lambda i: -len(data.ids[i]))
    rows: list[list[int]] = []
    room: list[tuple[int, int]] = []  # (free tokens, row), sorted
    for i in order:
        need = len(data.ids[i])
        at = bisect.bisect_left(room, (need, -1))
        if at < len(room):
            free, row = room.pop(at)
        else:
            free, row = length, len(rows)
            rows.append([])
        rows[row].append(i)
        if free - need > 0:
            bisect.insort(room, (free - need, row))
    positions: list[list[int]] = []
    packed = Sequences(dropped=data.dropped, positions=positions)
    for members in rows:
        ids, loss, pos = [], [], []
        for i in members:
            ids += data.ids[i]
            loss += [False, *data.loss[i][1:]]
            pos += list(range(len(data.ids[i])))
        packed.ids.append(ids)
        packed.loss.append(loss)
        positions.append(pos)
    return packed
