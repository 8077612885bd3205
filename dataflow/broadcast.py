"""Broadcast edges between the workers of one plan, over torch.distributed.

How a broadcast edge (the learner's weights to every actor or generator) travels:

- fragments in one process (the local executor, `Fragment.beside`, a colocation
  group): the consumer gets the producer's objects themselves (transport "reference");
- separate workers of a Ray plan (transport "collective"): the producer's tensors are
  packed into one flat buffer per dtype in the producer's process and broadcast over a
  gloo group of the edge's own (the source's replica 0 as rank 0, every destination
  replica after it); each destination unpacks its copy and calls the consumer. The
  driver sees only the header (names, dtypes, shapes);
- the object store, as the fallback: a payload that is not a dict of CPU tensors, one
  under `MIN_BYTES` (the collective takes two calls of its own, a header and then the
  send, which small payloads do not repay), destinations that stream (async-actor: applied between chunks), or a group
  broken by a worker restart.

The group is formed at the first payload that takes it and kept for the run. It is its
own `ProcessGroupGloo` on its own store, so it lives beside a data-parallel learner's
default process group. The functions here run inside the hosts (`FragmentHost.call`
with a function: ``fn(roles, *args)``), so they are module-level.
"""

from __future__ import annotations

import datetime
import socket
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

MIN_BYTES = 1 << 20
"""Payloads smaller than this go through the object store."""
TIMEOUT_S = 300.0
"""How long a rank waits for the others in a broadcast (a dead rank fails it then)."""

_GROUPS: dict[str, Any] = {}
"""Edge name -> this process's gloo group for it."""
_STAGED: dict[str, list[torch.Tensor]] = {}
"""Edge name -> the flat buffers the source produced and has not sent yet."""


@dataclass(frozen=True)
class Header:
    """What receivers need to unpack a broadcast: per tensor its key, dtype and shape,
    grouped by dtype in buffer order, and the size of each dtype's buffer."""

    entries: tuple[tuple[str, torch.dtype, tuple[int, ...]], ...]
    buffers: tuple[tuple[torch.dtype, int], ...]

    @property
    def nbytes(self) -> int:
        return sum(n * torch.empty((), dtype=d).element_size() for d, n in self.buffers)


def pack(value: Any) -> tuple[Header, list[torch.Tensor]] | None:
    """A dict of CPU tensors as one flat buffer per dtype, or None for anything else."""
    if not isinstance(value, dict) or not value:
        return None
    if not all(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in value.values()):
        return None
    by_dtype: dict[torch.dtype, list[tuple[str, torch.Tensor]]] = {}
    for key, t in value.items():
        by_dtype.setdefault(t.dtype, []).append((key, t))
    entries, buffers, flats = [], [], []
    for dtype, items in by_dtype.items():
        entries += [(k, dtype, tuple(t.shape)) for k, t in items]
        flat = torch.cat([t.detach().reshape(-1) for _, t in items])
        buffers.append((dtype, flat.numel()))
        flats.append(flat)
    return Header(tuple(entries), tuple(buffers)), flats


def unpack(header: Header, flats: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The dict `pack` was given, as views into the received buffers."""
    out: dict[str, torch.Tensor] = {}
    offsets = {dtype: 0 for dtype, _ in header.buffers}
    buffers = {dtype: flat for (dtype, _), flat in zip(header.buffers, flats, strict=True)}
    for key, dtype, shape in header.entries:
        n = int(torch.Size(shape).numel())
        start = offsets[dtype]
        out[key] = buffers[dtype][start : start + n].view(shape)
        offsets[dtype] = start + n
    return out


# -- run in the hosts -------------------------------------------------------------------
def rendezvous(roles: dict[str, Any]) -> str:
    """A free TCP address on this node (the group's store is served from here)."""
    from rlkit.dataflow.collectives import node_address

    host = node_address()
    with socket.socket() as s:
        s.bind((host, 0))
        return f"{host}:{s.getsockname()[1]}"


def join(roles: dict[str, Any], edge: str, address: str, rank: int, world: int) -> None:
    """Join edge `edge`'s group as `rank` of `world` (blocks until all have joined)."""
    host, port = address.rsplit(":", 1)
    timeout = datetime.timedelta(seconds=TIMEOUT_S)
    store = dist.TCPStore(host, int(port), world, rank == 0, timeout=timeout)
    _GROUPS[edge] = dist.ProcessGroupGloo(dist.PrefixStore(edge, store), rank, world, timeout)


def stage(
    roles: dict[str, Any],
    fragment: str,
    edge: str,
    produce: str,
    args: tuple[Any, ...],
    collective: bool,
    min_bytes: int,
) -> tuple[str, Any]:
    """Run the producer. ("header", Header) when its result is staged for a collective
    send; ("value", result) when it goes through the object store instead."""
    value = getattr(roles[fragment], produce)(*args)
    packed = pack(value) if collective else None
    if packed is None or packed[0].nbytes < min_bytes:
        return "value", value
    header, flats = packed
    _STAGED[edge] = flats
    return "header", header


def send(roles: dict[str, Any], edge: str) -> None:
    """Broadcast what `stage` kept (rank 0)."""
    group = _GROUPS[edge]
    for flat in _STAGED.pop(edge):
        group.broadcast(flat, 0).wait()


def receive(
    roles: dict[str, Any],
    fragment: str,
    edge: str,
    header: Header,
    consume: str,
    extra: tuple[Any, ...],
) -> Any:
    """Receive the broadcast, unpack it and hand it to the consumer; its result."""
    group = _GROUPS[edge]
    flats = [torch.empty(n, dtype=dtype) for dtype, n in header.buffers]
    for flat in flats:
        group.broadcast(flat, 0).wait()
    return getattr(roles[fragment], consume)(unpack(header, flats), *extra)


def joined(roles: dict[str, Any], edge: str) -> bool:
    """Whether this process is in edge `edge`'s group (a restarted one is not)."""
    return edge in _GROUPS


def relay(
    roles: dict[str, Any],
    src: str,
    produce: str,
    args: tuple[Any, ...],
    dst: str,
    consume: str,
    extra: tuple[Any, ...],
) -> Any:
    """Producer and consumer in one process: the consumer gets the producer's objects."""
    return getattr(roles[dst], consume)(getattr(roles[src], produce)(*args), *extra)
