"""Replay buffers backed by the C++ core in `rlkit.replay._core`.

A buffer holds named fields (obs, action, reward, next_obs, terminated, truncated, or any
other), each with a per-transition shape and dtype, declared up front or inferred from the
first `add`. Rows are addressed by *index*: the running count of transitions ever added,
so an index names one transition for good (its slot is `index % capacity`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from rlkit.errors import BufferError
from rlkit.limits import machine_memory
from rlkit.replay._core import Core
from rlkit.replay.state import STATE_VERSION, read_file, write_file


class Field(NamedTuple):
    """Per-transition shape and dtype of one field, e.g. `Field((4,), np.float32)`."""

    shape: tuple[int, ...]
    dtype: np.dtype


def _as_field(name: str, spec: Any) -> Field:
    if isinstance(spec, Field):
        shape, dtype = spec
    elif isinstance(spec, Mapping):
        shape, dtype = spec.get("shape", ()), spec.get("dtype", np.float32)
    elif isinstance(spec, tuple) and len(spec) == 2:
        shape, dtype = spec
    else:
        raise BufferError(
            f"field {name!r}: give (shape, dtype), e.g. ((4,), np.float32), not {spec!r}"
        )
    try:
        dt = np.dtype(_numpy_dtype(dtype))
        dims = (int(shape),) if isinstance(shape, int) else tuple(int(d) for d in shape)
    except (TypeError, ValueError) as e:
        raise BufferError(f"field {name!r}: bad shape or dtype ({e})") from e
    return Field(dims, dt)


def _numpy_dtype(dtype: Any) -> Any:
    """numpy dtype for a numpy or torch dtype."""
    if type(dtype).__module__ == "torch":
        import torch

        return torch.empty(0, dtype=dtype).numpy().dtype
    return dtype


def _as_numpy(value: Any) -> np.ndarray:
    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _infer_fields(data: Mapping[str, Any], batched: bool | None) -> dict[str, Field]:
    if not data:
        raise BufferError("the first add has no fields: pass a mapping of field name -> array")
    arrays = {k: _as_numpy(v) for k, v in data.items()}
    if batched is None:
        # A batch: every value has a leading dim of one common size and some field is a batch
        # of scalars (like reward). Pass batched= to say so when that rule does not fit.
        leads = {a.shape[0] if a.ndim else None for a in arrays.values()}
        batched = (
            None not in leads and len(leads) == 1 and any(a.ndim == 1 for a in arrays.values())
        )
    fields = {}
    for k, a in arrays.items():
        if batched and a.ndim == 0:
            raise BufferError(f"field {k!r} is a scalar in what was taken as a batch")
        fields[str(k)] = Field(tuple(a.shape[1:] if batched else a.shape), a.dtype)
    return fields


class ReplayBuffer:
    """Uniform replay over a ring of `capacity` transitions.

    Args:
        capacity: rows kept; the oldest is overwritten once full.
        fields: name -> (shape, dtype) per transition; None infers them from the first add.
        seed: seeds sampling; the RNG state is part of `state_dict()`.
        n_step: > 1 returns n-step returns, computed at sample time across episode ends
            (needs fields reward, terminated or done, next_obs; truncated is honoured).
        gamma: discount for n-step returns; `sample` also returns `discount` = gamma**steps.
        num_envs: rows between consecutive steps of one env, when each add is a batch with one
            row per env in a fixed order (used by n-step and share_obs).
        share_obs: store each observation once: next_obs is read from the next step's obs,
            and only episode-end next observations are kept aside (halves observation memory).
    """

    _prioritized = False

    def __init__(
        self,
        capacity: int,
        fields: Mapping[str, Any] | None = None,
        *,
        seed: int | None = None,
        n_step: int = 1,
        gamma: float = 0.99,
        num_envs: int = 1,
        share_obs: bool = False,
    ) -> None:
        _check_int("capacity", capacity, 1)
        _check_int("n_step", n_step, 1)
        _check_int("num_envs", num_envs, 1)
        if not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0):
            raise BufferError(f"gamma must be in [0, 1], got {gamma!r}")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy) & (2**64 - 1)  # type: ignore[arg-type]
        _check_int("seed", seed, 0)
        self._capacity = int(capacity)
        self._seed = int(seed) & (2**64 - 1)
        self.n_step, self.gamma, self.num_envs, self.share_obs = (
            n_step,
            float(gamma),
            num_envs,
            share_obs,
        )
        self.alpha = 1.0
        self._fields: dict[str, Field] | None = None
        self._core: Core | None = None
        if fields is not None:
            self._build({str(k): _as_field(str(k), v) for k, v in fields.items()})

    # -- layout -------------------------------------------------------------------------
    def _build(self, fields: dict[str, Field]) -> Core:
        if self.n_step > 1 or self.share_obs:
            what = "n_step > 1" if self.n_step > 1 else "share_obs"
            need = ["next_obs"] + (["reward"] if self.n_step > 1 else [])
            missing = [k for k in need if k not in fields]
            if "terminated" not in fields and "done" not in fields:
                missing.append("terminated (or done)")
            if missing:
                raise BufferError(f"{what} needs the field(s) {', '.join(missing)}")
            for k in ("terminated", "done", "truncated"):
                if k in fields and fields[k].shape not in ((), (1,)):
                    raise BufferError(f"{what}: field {k!r} must hold one flag per transition")
        if self.n_step > 1:
            r = fields["reward"]
            if r.shape not in ((), (1,)) or r.dtype not in (np.float32, np.float64):
                raise BufferError("n_step > 1 needs a scalar float32 or float64 'reward' field")
        if self.share_obs and ("obs" not in fields or fields["obs"] != fields["next_obs"]):
            raise BufferError(
                "share_obs needs 'obs' and 'next_obs' fields of the same shape and dtype"
            )
        _check_size(self._capacity, fields)
        spec = [(k, f.dtype.str, list(f.shape)) for k, f in fields.items()]
        self._core = Core(
            self._capacity,
            spec,
            self._prioritized,
            self.alpha,
            self.n_step,
            self.gamma,
            self.num_envs,
            self.share_obs,
            self._seed,
        )
        self._fields = fields
        return self._core

    @property
    def fields(self) -> dict[str, Field]:
        """name -> Field(shape, dtype); empty until declared or inferred."""
        return dict(self._fields or {})

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def total(self) -> int:
        """Transitions ever added (the next index); `len` is min(total, capacity)."""
        return self._core.total if self._core is not None else 0

    def __len__(self) -> int:
        return len(self._core) if self._core is not None else 0

    # -- data ---------------------------------------------------------------------------
    def add(self, data: Mapping[str, Any], *, batched: bool | None = None) -> int:
        """Adds one transition (values shaped like the fields) or a batch (a leading dim).

        Values are numpy arrays, CPU torch tensors or Python scalars; arrays must have the
        field's dtype exactly. `batched` is only consulted when fields are inferred from this
        first add. Returns the index of the first added row.
        """
        core = self._core
        if core is None:
            core = self._build(_infer_fields(data, batched))
        if type(data) is not dict:
            data = dict(data)
        return core.add(data)

    def _ready(self) -> Core:
        if self._core is None:
            raise BufferError("cannot sample from an empty buffer: add transitions first")
        return self._core

    def sample(self, n: int) -> dict[str, np.ndarray]:
        """n uniform rows: each field as [n, *shape], plus `indices` (int64) and `discount`
        (float32, gamma ** steps; the reward is the n-step return when n_step > 1)."""
        return self._ready().sample(n)

    def sample_into(self, out: Mapping[str, Any], n: int) -> None:
        """Like `sample`, but writes into caller-owned C-contiguous CPU arrays or tensors
        (pinned memory works, for a later `.to(device, non_blocking=True)`). `out` holds any
        subset of the fields plus optionally `indices`, `discount` (and `weights`)."""
        self._ready().sample_into(dict(out), n)

    def clear(self) -> None:
        if self._core is not None:
            self._core.clear()

    # -- state --------------------------------------------------------------------------
    def _layout(self) -> dict[str, Any]:
        fields = [[k, f.dtype.str, list(f.shape)] for k, f in (self._fields or {}).items()]
        return {
            "kind": "PrioritizedReplayBuffer" if self._prioritized else "ReplayBuffer",
            "capacity": self._capacity,
            "fields": fields,
            "n_step": self.n_step,
            "gamma": self.gamma,
            "num_envs": self.num_envs,
            "share_obs": self.share_obs,
            "alpha": self.alpha,
        }

    def state_dict(self) -> dict[str, Any]:
        """Contents, counters, priorities and RNG state: loading it into a buffer of the same
        layout resumes it exactly (same samples as an uninterrupted run)."""
        core = self._core.get_state() if self._core is not None else None
        return {
            "version": STATE_VERSION,
            "layout": self._layout(),
            "core": core,
            "extra": self._extra(),
        }

    def _extra(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            layout, core = state["layout"], state["core"]
            if state.get("version") != STATE_VERSION:
                raise BufferError(
                    f"replay state version {state.get('version')!r} is not {STATE_VERSION}"
                )
        except (KeyError, TypeError) as e:
            raise BufferError(
                f"not a replay buffer state (missing {e}); pass what state_dict() returned"
            ) from e
        fields = layout.get("fields") if isinstance(layout, Mapping) else None
        if (
            not isinstance(fields, list)
            or not all(isinstance(f, list) and len(f) == 3 for f in fields)
            or not (core is None or isinstance(core, Mapping))
        ):
            raise BufferError(
                "not a replay buffer state (malformed layout or core); "
                "pass what state_dict() returned"
            )
        mine = self._layout()
        if self._fields is None and layout["fields"]:
            mine["fields"] = layout["fields"]
        if mine != layout:
            diff = [k for k in mine if mine[k] != layout.get(k)]
            raise BufferError(
                f"the saved replay buffer has another layout ({', '.join(diff)} differ): "
                f"saved {layout}, this buffer {mine}"
            )
        if core is None:
            self.clear()
            return
        if self._core is None:
            self._build({k: Field(tuple(s), np.dtype(d)) for k, d, s in layout["fields"]})
        assert self._core is not None and self._fields is not None
        _check_core_state(core, self._fields, self._capacity, self._prioritized, self.share_obs)
        self._core.set_state(dict(core))
        self._load_extra(state.get("extra") or {})

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        pass

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes `state_dict()` to `path` atomically (temp file, fsync, rename)."""
        write_file(path, self.state_dict())

    def load(self, path: str | os.PathLike[str]) -> None:
        """Loads a file written by `save`; raises BufferError if its layout differs."""
        state = read_file(path)
        try:
            self.load_state_dict(state)
        except BufferError as e:
            raise BufferError(f"{str(path)!r}: {e}") from e

    def __repr__(self) -> str:
        names = ", ".join(self._fields or {}) or "inferred on first add"
        return (
            f"{type(self).__name__}(capacity={self._capacity}, len={len(self)}, fields=[{names}])"
        )


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016) on a k-ary sum tree and min tree.

    Rows are drawn with probability p_i**alpha / sum_j p_j**alpha by stratified sampling; new
    rows get the largest priority seen so far. `sample` adds `weights` (float32), the
    importance weights (N P(i))**-beta normalised by their exact maximum (from the min tree).
    Rows with priority 0 are never drawn.
    """

    _prioritized = True

    def __init__(
        self,
        capacity: int,
        fields: Mapping[str, Any] | None = None,
        *,
        alpha: float = 0.6,
        beta: float = 0.4,
        seed: int | None = None,
        n_step: int = 1,
        gamma: float = 0.99,
        num_envs: int = 1,
        share_obs: bool = False,
    ) -> None:
        for name, v in (("alpha", alpha), ("beta", beta)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise BufferError(f"{name} must be a finite number >= 0, got {v!r}")
        self._alpha = float(alpha)
        self.beta = float(beta)
        super().__init__(
            capacity,
            None,
            seed=seed,
            n_step=n_step,
            gamma=gamma,
            num_envs=num_envs,
            share_obs=share_obs,
        )
        self.alpha = self._alpha
        if fields is not None:
            self._build({str(k): _as_field(str(k), v) for k, v in fields.items()})

    @property
    def priority_total(self) -> float:
        """Sum of p**alpha over stored rows (the sum tree's root, fp64)."""
        return self._core.priority_total if self._core is not None else 0.0

    def sample(self, n: int, beta: float | None = None) -> dict[str, np.ndarray]:
        """n rows by priority, plus `indices`, `weights` and `discount`. `beta` defaults to
        the attribute `self.beta` (anneal it there)."""
        return self._ready().sample(n, self._beta(beta))

    def sample_into(self, out: Mapping[str, Any], n: int, beta: float | None = None) -> None:
        self._ready().sample_into(dict(out), n, self._beta(beta))

    def _beta(self, beta: float | None) -> float:
        b = self.beta if beta is None else beta
        if not (isinstance(b, (int, float)) and math.isfinite(b) and b >= 0):
            raise BufferError(f"beta must be a finite number >= 0, got {b!r}")
        return float(b)

    def update_priorities(self, indices: Any, priorities: Any) -> None:
        """Sets the priorities of rows by the `indices` that `sample` returned. Rows written
        over since they were sampled are skipped. Priorities must be finite and >= 0."""
        if (
            type(indices) is np.ndarray
            and type(priorities) is np.ndarray
            and indices.dtype == np.int64
            and priorities.dtype == np.float64
            and indices.ndim == priorities.ndim == 1
        ):  # the common case, straight from sample(): no conversion
            self._ready().update_priorities(indices, priorities)
            return
        idx = _as_numpy(indices).reshape(-1)
        if idx.dtype.kind not in "iu":
            raise BufferError(f"indices must be integers, got dtype {idx.dtype}")
        pri = _as_numpy(priorities).reshape(-1)
        if pri.dtype.kind not in "iuf":
            raise BufferError(f"priorities must be real numbers, got dtype {pri.dtype}")
        if idx.dtype.kind == "u" and idx.size and idx.max() > np.iinfo(np.int64).max:
            raise BufferError("an index is out of range: pass the indices returned by sample")
        self._ready().update_priorities(
            np.ascontiguousarray(idx, dtype=np.int64), np.ascontiguousarray(pri, dtype=np.float64)
        )

    def _extra(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        self.beta = float(extra.get("beta", self.beta))


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise BufferError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_size(capacity: int, fields: Mapping[str, Field]) -> None:
    """BufferError before allocating when capacity x row bytes cannot fit in this machine."""
    for k, f in fields.items():
        if f.dtype.kind not in "biuf":
            raise BufferError(
                f"field {k!r} has dtype {f.dtype}: use a bool, int, uint or float dtype"
            )
    row = sum(f.dtype.itemsize * math.prod(f.shape) for f in fields.values())
    need = capacity * row
    memory = machine_memory()
    if need >= 2**63 or (memory and need > memory):
        raise BufferError(
            f"capacity {capacity:,} x {row:,} bytes per row needs {need / 2**30:,.1f} GiB, "
            f"more than this machine's {memory / 2**30:,.1f} GiB of memory: lower the capacity"
        )


def _check_core_state(
    core: Mapping[str, Any], fields: dict[str, Field], capacity: int, prioritized: bool, share: bool
) -> None:
    """Checks a core state's arrays against the layout before C++ reads them."""
    try:
        total = int(core["total"])
        n = min(total, capacity)
        if total < 0:
            raise BufferError("replay state has a negative row count")
        max_priority = core["max_priority"]
        if not (
            isinstance(max_priority, (int, float, np.floating))
            and math.isfinite(max_priority)
            and max_priority > 0
        ):
            raise BufferError(
                f"replay state has max_priority {max_priority!r}; it must be a finite number > 0"
            )
        rng = list(core["rng"])
        if len(rng) != 4 or not all(0 <= int(w) < 2**64 for w in rng):
            raise BufferError("replay state has a malformed RNG state")
        stored = core["fields"]
        names = [k for k in fields if not (share and k == "next_obs")]
        if sorted(stored) != sorted(names):
            raise BufferError(
                f"replay state holds fields {sorted(stored)}, expected {sorted(names)}"
            )
        for k in names:
            _check_array(f"field {k!r}", stored[k], (n, *fields[k].shape), fields[k].dtype)
        if prioritized:
            _check_array("priorities", core["priorities"], (n,), np.dtype(np.float64))
        if share:
            kept = len(core["side_slots"])
            obs = fields["obs"]
            _check_array("side_slots", core["side_slots"], (kept,), np.dtype(np.int64))
            _check_array("side_pending", core["side_pending"], (kept,), np.dtype(np.uint8))
            _check_array("side_next_obs", core["side_next_obs"], (kept, *obs.shape), obs.dtype)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, BufferError):
            raise
        raise BufferError(
            f"replay state is malformed ({e!r}); pass what state_dict() returned"
        ) from e


def _check_array(what: str, a: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if (
        not isinstance(a, np.ndarray)
        or a.shape != shape
        or a.dtype != dtype
        or not a.flags.c_contiguous
    ):
        got = (getattr(a, "shape", None), getattr(a, "dtype", type(a).__name__))
        raise BufferError(f"replay state: {what} is {got}, expected shape {shape} dtype {dtype}")
