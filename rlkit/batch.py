"""The batch type that flows along every edge of a dataflow graph, and its one schema.

A `Batch` is a plain ``dict[str, torch.Tensor]`` whose fields share a leading batch
dimension. Plain dicts pickle cheaply (Ray's object store, multiprocessing), need no
wrapper to index, and type-check; the helpers below do the few things a batch needs.
A field may also be a list with one Python object per row (per-sample metadata: prompt
texts, episode ids); the helpers carry such lists along.

Ragged batches: sequences are ``[B, T, ...]`` fields with a ``mask`` field ``[B, T]``
(True where a position holds data). `cat` of batches whose sequences differ in length
pads them to the longest with zeros and pads (or creates) the mask, so token sequences
and agents that finish early travel on the same edges; `split` keeps the padding, so
``cat(split(b, k)) == b``. Equal-length batches are concatenated without padding, and a
single batch is passed on as it is (zero copy).

The schema (every template's field names; shapes for a rollout of E envs x T steps):

    obs          [E, T, *obs_shape]  observation the action was taken in
    actions      [E, T] (discrete, int64) or [E, T, action_dim] (continuous)
    rewards      [E, T]
    next_obs     [E, T, *obs_shape]  the next observation (the final one at an episode end)
    terminated   [E, T] bool         the episode ended in a terminal state
    truncated    [E, T] bool         the episode was cut (time limit)
    dones        [E, T] bool         terminated or truncated
    log_probs    [E, T]              log pi(action | obs) of the acting policy
    values       [E, T]              V(obs) of the acting policy
    next_values  [E, T]              V(next obs), 0 after termination
    advantages, returns              computed by the learner
    version      [E] int64           the weight version that acted (policy lag)
    mask         [B, T] bool         valid positions of ragged sequences

Rollouts (on-policy) and transitions (off-policy actors) are env-major: the leading
dimension is the environment (trajectory) index and the second is time. Replay samples
are flat ``[B, ...]`` rows of the same fields, plus ``discounts`` (gamma^n of an n-step
return), ``indices`` and, with prioritized replay, ``weights``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

Batch = dict[str, torch.Tensor]
MASK = "mask"


def batch_size(batch: Mapping[str, Any]) -> int:
    """The common leading dimension; raises ValueError if the fields disagree."""
    sizes = {k: len(v) for k, v in batch.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch fields disagree on the leading dimension: {sizes}")
    return next(iter(sizes.values())) if sizes else 0


def _pad(x: torch.Tensor, length: int) -> torch.Tensor:
    """`x` ``[B, T, ...]`` padded with zeros (False) to ``[B, length, ...]``."""
    if x.shape[1] == length:
        return x
    pad = x.new_zeros((x.shape[0], length - x.shape[1], *x.shape[2:]))
    return torch.cat([x, pad], 1)


def cat(batches: Sequence[Mapping[str, Any]]) -> Batch:
    """Concatenate batches along the leading dimension (the `gather` edge pattern).

    Fields whose second dimension differs between the batches (sequences of different
    lengths) are padded to the longest, and the ``mask`` says which positions are real:
    a batch without a mask counts every position of its longest field as real."""
    if len(batches) == 1:
        return dict(batches[0])
    keys = list(batches[0].keys())
    for b in batches[1:]:
        if list(b.keys()) != keys and set(b.keys()) - {MASK} != set(keys) - {MASK}:
            raise ValueError(f"cannot concatenate batches with fields {keys} and {list(b)}")
    ragged = any(
        isinstance(batches[0][k], torch.Tensor)
        and batches[0][k].dim() >= 2
        and len({b[k].shape[1] for b in batches}) > 1
        for k in keys
    )
    if not ragged:
        return {k: _join([b[k] for b in batches]) for k in keys}
    masks = [_mask_of(b) for b in batches]
    length = max(m.shape[1] for m in masks)
    out: dict[str, Any] = {}
    for k in keys:
        if k == MASK:
            continue
        values = [b[k] for b in batches]
        if isinstance(values[0], torch.Tensor) and values[0].dim() >= 2:
            values = [
                _pad(v, length) if v.shape[1] == m.shape[1] else v
                for v, m in zip(values, masks, strict=True)
            ]
        out[k] = _join(values)
    out[MASK] = torch.cat([_pad(m, length) for m in masks])
    return out


def _join(values: Sequence[Any]) -> Any:
    if isinstance(values[0], list):
        return [x for v in values for x in v]
    return torch.cat(list(values))


def _mask_of(batch: Mapping[str, Any]) -> torch.Tensor:
    """The batch's mask, or all-True over its longest sequence field."""
    if MASK in batch:
        return batch[MASK]
    n = batch_size(batch)
    length = max(
        (v.shape[1] for v in batch.values() if isinstance(v, torch.Tensor) and v.dim() >= 2),
        default=1,
    )
    return torch.ones((n, length), dtype=torch.bool)


def split(batch: Mapping[str, Any], parts: int) -> list[Batch]:
    """Split a batch into `parts` nearly equal pieces (the `scatter` edge pattern)."""
    n = batch_size(batch)
    if parts < 1 or parts > n:
        raise ValueError(f"cannot split a batch of {n} into {parts} parts")
    bounds = [len(c) for c in torch.tensor_split(torch.arange(n), parts)]
    starts = [sum(bounds[:i]) for i in range(parts)]
    return [index(batch, slice(s, s + size)) for s, size in zip(starts, bounds, strict=True)]


def index(batch: Mapping[str, Any], idx: torch.Tensor | slice) -> Batch:
    """Rows `idx` of every field (list fields too)."""
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, list):
            out[k] = v[idx] if isinstance(idx, slice) else [v[int(i)] for i in idx]
        else:
            out[k] = v[idx]
    return out


def to(batch: Mapping[str, Any], device: torch.device | str) -> Batch:
    """Move every tensor field to `device` (non-blocking where the source is pinned)."""
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


def flatten_time(batch: Mapping[str, torch.Tensor]) -> Batch:
    """``[envs, steps, ...]`` -> ``[envs * steps, ...]`` for every field."""
    return {k: v.reshape(-1, *v.shape[2:]) for k, v in batch.items()}
