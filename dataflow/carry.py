"""How the runtime carries an edge: call the producer, route by pattern, call the consumer.

    gather / scatter / queue   the source replicas' outputs are concatenated (batches
                               along their leading dimension, other values as a list) and
                               split into one part per destination replica: N actors into
                               one learner is a gather, one batch across K data-parallel
                               learners a scatter, and both at once is the same rule
    broadcast                  the producer runs on one source replica (one replica, or
                               replicas an all-reduce keeps identical); the value goes to
                               every destination replica, shared once, not copied per call
    allreduce                  not carried by calls: the runtime forms the group at start
                               (`rendezvous` on replica 0, `join` on all) and the replicas
                               reduce among themselves inside their methods

A producer returns its data, or `Output(data, info)`: the data travels, the info (episode
returns, the policy version that acted) comes back to the driver with the delivery. The
driver can be either end (`DRIVER`): a source of data it makes, or a sink.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch

from rlkit import batch as B
from rlkit.dataflow.graph import Edge
from rlkit.roles import Output

R = TypeVar("R")


@dataclass
class Delivery(Generic[R]):
    """One carried transfer: what travelled, the producers' infos, the consumers' results."""

    edge: Edge[Any, R]
    data: Any
    """What travelled, merged over the source replicas (the gathered rollout; the weights)."""
    infos: list[dict[str, Any]] = field(default_factory=list)
    """The info of each source replica's `Output`, in replica order ({} for plain data);
    for an edge from the driver, of each destination replica's result, if an `Output`."""
    results: list[R] = field(default_factory=list)
    """What each destination replica's consumer returned, in replica order (for a sink
    edge into the driver: the merged data, once)."""

    def mean(self) -> dict[str, float]:
        """The destination replicas' metric dicts averaged key by key (one replica: its
        own, as floats): the metrics of data-parallel learners."""
        results = [r for r in self.results if isinstance(r, Mapping)]
        if not results:
            return {}
        return {k: sum(float(r[k]) for r in results) / len(results) for k in results[0]}

    def collected(self, key: str) -> list[Any]:
        """`info[key]` of every source replica, concatenated (lists) or listed (scalars)."""
        out: list[Any] = []
        for info in self.infos:
            value = info.get(key)
            if isinstance(value, list):
                out += value
            elif value is not None:
                out.append(value)
        return out

    def episodes(self) -> dict[str, list[float]]:
        """Per-episode values of the episodes that ended, over every source replica: the
        "return" and "length", and every other list the infos carry (a multi-agent env's
        per-agent returns); scalars in the infos (a weight version) are no episode's."""
        keys = dict.fromkeys(k for i in self.infos for k, v in i.items() if isinstance(v, list))
        return {"return": [], "length": [], **{k: self.collected(k) for k in keys}}


def unpack(outputs: Sequence[Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Separate the data of producer outputs from their infos."""
    data, infos = [], []
    for out in outputs:
        if isinstance(out, Output):
            data.append(out.data)
            infos.append(out.info)
        else:
            data.append(out)
            infos.append({})
    return data, infos


def merge(parts: Sequence[Any]) -> Any:
    """Concatenate replica outputs: batches along the leading dimension (ragged ones padded,
    see `rlkit.batch.cat`), lists end to end; anything else comes back as a list."""
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, Mapping) for p in parts) and all(
        isinstance(v, (torch.Tensor, list)) for p in parts for v in p.values()
    ):
        return B.cat(parts)
    if all(isinstance(p, list) for p in parts):
        return [x for p in parts for x in p]
    return list(parts)


def split(data: Any, parts: int) -> list[Any]:
    """`data` in `parts` nearly equal pieces (the inverse of `merge`); one part is `data`."""
    if parts == 1:
        return [data]
    if isinstance(data, Mapping):
        return B.split(data, parts)
    if isinstance(data, (list, tuple)):
        size = math.ceil(len(data) / parts)
        return [list(data[i * size : (i + 1) * size]) for i in range(parts)]
    raise TypeError(
        f"cannot split a {type(data).__name__} across {parts} replicas: "
        "send a batch or a list, or broadcast it"
    )
