"""Token-budget micro-batches for the policy update (``--max-tokens-per-micro-batch``).

RL responses vary in length, so micro-batches of a fixed number of samples are padded to
their longest and spend compute on pads. Here a learner's share of a step is cut into
micro-batches of at most B tokens each: the samples' real tokens (prompt and response)
laid end to end in one row, in order, a new row when the next would pass B (a sample
longer than B gets a row of its own). The row's ``position_ids`` restart at 0 at every
sample, and transformers then keeps each sample's attention within itself (no
cross-attention: the same mechanism SFT's packing uses, `batches.py`); ``segment`` says
which sample each token is (`rl_roles.samples_of`). Every per-token field (``[N, T]``,
as ``input_ids``) is packed the same way, the per-sample ones (``[N]``) and lists keep
the row's samples: the loss, a sum over target tokens, is that of the padded form.
"""

from __future__ import annotations

import torch

from rlkit import batch as B
from rlkit.batch import Batch


def bins(lengths: list[int], budget: int) -> list[list[int]]:
    """The samples of each micro-batch, in order: consecutive runs whose lengths sum to at
    most `budget` (a longer sample alone)."""
    out: list[list[int]] = []
    total = budget + 1
    for i, n in enumerate(lengths):
        if total + n > budget:
            out.append([])
            total = 0
        out[-1].append(i)
        total += n
    return out


def pack(batch: Batch, rows: list[int]) -> Batch:
    """Samples `rows` of `batch` as one packed row (see the module docstring)."""
    width = batch["input_ids"].shape[-1]
    lengths = batch["mask"][rows].sum(1).tolist()
    out: Batch = B.index(batch, torch.tensor(rows))
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[1] == width:
            out[key] = torch.cat([value[r, :n] for r, n in zip(rows, lengths, strict=True)])[None]
    out["position_ids"] = torch.cat([torch.arange(n) for n in lengths])[None]
    out["segment"] = torch.cat(
        [torch.full((n,), i, dtype=torch.int64) for i, n in enumerate(lengths)]
    )[None]
    return B.to(out, batch["input_ids"].device)


def token_micro_batches(batch: Batch, budget: int) -> list[Batch]:
    """`batch` (rows of samples, right padded) as packed micro-batches of at most `budget`
    tokens each."""
    lengths = batch["mask"].sum(1).tolist()
    return [pack(batch, rows) for rows in bins(lengths, budget)]
