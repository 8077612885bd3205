"""The batch type that flows along every edge of a dataflow graph.

A `Batch` is a plain ``dict[str, torch.Tensor]`` whose tensors share a leading batch
dimension. Plain dicts pickle cheaply (Ray's object store, multiprocessing), need no
wrapper to index, and type-check; the helpers below do the few things a batch needs.
For an on-policy rollout the leading dimension is the environment (trajectory) index
and the second is time: ``obs`` is ``[num_envs, num_steps, *obs_shape]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

Batch = dict[str, torch.Tensor]


def batch_size(batch: Mapping[str, torch.Tensor]) -> int:
    """The common leading dimension; raises ValueError if the fields disagree."""
    sizes = {k: v.shape[0] for k, v in batch.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch fields disagree on the leading dimension: {sizes}")
    return next(iter(sizes.values())) if sizes else 0


def cat(batches: Sequence[Mapping[str, torch.Tensor]]) -> Batch:
    """Concatenate batches along the leading dimension (the `gather` edge pattern)."""
    if len(batches) == 1:
        return dict(batches[0])
    keys = batches[0].keys()
    return {k: torch.cat([b[k] for b in batches]) for k in keys}


def split(batch: Mapping[str, torch.Tensor], parts: int) -> list[Batch]:
    """Split a batch into `parts` nearly equal pieces (the `scatter` edge pattern)."""
    n = batch_size(batch)
    if parts < 1 or parts > n:
        raise ValueError(f"cannot split a batch of {n} into {parts} parts")
    chunks = {k: torch.tensor_split(v, parts) for k, v in batch.items()}
    return [{k: chunks[k][i] for k in batch} for i in range(parts)]


def index(batch: Mapping[str, torch.Tensor], idx: torch.Tensor | slice) -> Batch:
    """Rows `idx` of every field."""
    return {k: v[idx] for k, v in batch.items()}


def to(batch: Mapping[str, torch.Tensor], device: torch.device | str) -> Batch:
    """Move every field to `device` (non-blocking where the source is pinned)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def flatten_time(batch: Mapping[str, torch.Tensor]) -> Batch:
    """``[envs, steps, ...]`` -> ``[envs * steps, ...]`` for every field."""
    return {k: v.reshape(-1, *v.shape[2:]) for k, v in batch.items()}
