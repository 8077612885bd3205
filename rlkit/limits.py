"""What a config's numbers may be: a range per numeric field, cross-field rules, and the
memory that the sizes imply, all checked by `BaseConfig.validate()` before anything starts.

A field's range comes from, in order: its dataclass metadata
(``field(default=..., metadata={"range": Range(low=0)})``), the table `RANGES` below (the
fields of the built-in algorithms, by name), or the default: an int must fit in int64, a
float must be finite. Elements of a tuple field (``hidden``) are checked one by one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass
from typing import Any

from rlkit.errors import ConfigError

INT64 = 2**63 - 1
SEED_MAX = 2**32 - 1
"""numpy's legacy seeding (and many env libraries) take seeds in [0, 2**32 - 1]."""
STEPS_MAX = 2**53
"""Step counters travel through metrics.csv as floats: beyond 2**53 they would round."""


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric config field (or of each element of a tuple field)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    """Exclude `low` itself (``(0, 1]``)."""
    high_open: bool = False
    finite: bool = True
    """Floats: refuse inf and -inf (nan is always refused)."""

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        if isinstance(value, float) and math.isinf(value):
            return not self.finite and self._within(value)
        return self._within(value)

    def _within(self, v: float) -> bool:
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        return not (
            self.high is not None and (v > self.high or (self.high_open and v == self.high))
        )

    def describe(self, kind: str) -> str:
        """E.g. "an integer in [0, 4294967295]", "a finite number > 0"."""
        what = ("a finite " if kind == "number" and self.finite else "a ") + kind
        what = "an integer" if kind == "integer" else what
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{what} in {left}{_exact(lo)}, {_exact(hi)}{right}"
        if lo is not None:
            return f"{what} {'>' if self.low_open else '>='} {_exact(lo)}"
        if hi is not None:
            return f"{what} {'<' if self.high_open else '<='} {_exact(hi)}"
        return what + ("" if self.finite or kind != "number" else " (inf allowed)")


POSITIVE = Range(low=0, low_open=True)
NON_NEGATIVE = Range(low=0)
UNIT = Range(low=0, high=1)
FINITE = Range()
COUNT = Range(low=1, high=2**31 - 1)
"""A count of things held in memory at once (rows, minibatch size): an int32 index."""

RANGES: dict[str, Range] = {
    # BaseConfig
    "seed": Range(low=0, high=SEED_MAX),
    "total_steps": Range(low=1, high=STEPS_MAX),
    "num_envs": Range(low=1, high=65_536),
    "env_workers": Range(low=0, high=4_096),
    "actors": Range(low=1, high=4_096),
    "actor_cpus": Range(low=0, high=4_096, low_open=True),
    "learners": Range(low=1, high=4_096),
    "torch_threads": Range(low=1, high=4_096),
    "checkpoint_every": Range(low=1, high=STEPS_MAX),
    "log_every": Range(low=0, high=STEPS_MAX),
    "eval_every": Range(low=0, high=STEPS_MAX),
    "eval_episodes": Range(low=1, high=1_000_000),
    "target_return": Range(finite=False),  # inf: never stop early
    # on-policy (PPO)
    "num_steps": COUNT,
    "gamma": UNIT,
    "gae_lambda": UNIT,
    "lr": POSITIVE,
    "epochs": Range(low=1, high=1_000_000),
    "minibatch_size": Range(low=0, high=2**31 - 1),  # 0: the whole rollout
    "vf_coef": NON_NEGATIVE,
    "ent_coef": FINITE,
    "max_grad_norm": NON_NEGATIVE,
    "target_kl": NON_NEGATIVE,
    "hidden": Range(low=1, high=1_048_576),
    "log_std_init": Range(low=-20, high=20),  # exp(+-20): a std of 5e8 or 2e-9 is a typo
    "clip_coef": POSITIVE,
    # multi-agent (MAPPO, IPPO)
    "value_norm_beta": Range(low=0, high=1, low_open=True, high_open=True),
    "huber_delta": NON_NEGATIVE,  # 0: the squared error
    # off-policy (DQN, SAC)
    "buffer_size": Range(low=1, high=2**40),
    "batch_size": COUNT,
    "learning_starts": Range(low=0, high=STEPS_MAX),
    "train_freq": COUNT,
    "gradient_steps": Range(low=0, high=1_000_000),
    "tau": Range(low=0, high=1, low_open=True),
    "n_step": Range(low=1, high=10_000),
    "per_alpha": NON_NEGATIVE,
    "per_beta": UNIT,
    "weight_sync": COUNT,
    "target_update_interval": Range(low=1, high=STEPS_MAX),
    "exploration_fraction": Range(low=0, high=1, low_open=True),
    "eps_start": UNIT,
    "eps_end": UNIT,
    "q_lr": POSITIVE,
    "alpha": NON_NEGATIVE,
    "target_entropy": FINITE,
    "policy_frequency": COUNT,
    "critics": Range(low=1, high=1_024),
    # LLM stages (SFT, reward model, DPO)
    "eval_fraction": Range(low=0, high=1, high_open=True),
    "max_length": Range(low=2, high=1_048_576),
    "samples_per_step": COUNT,
    "micro_batch": COUNT,
    "warmup_steps": Range(low=0, high=STEPS_MAX),
    "weight_decay": NON_NEGATIVE,
    "lora_rank": Range(low=0, high=65_536),
    "lora_alpha": POSITIVE,
    "lora_dropout": Range(low=0, high=1, high_open=True),
    "beta": POSITIVE,
}

_DEFAULT_INT = Range(low=-INT64 - 1, high=INT64)


def numeric_kind(annotation: Any) -> type | None:
    """int or float for a numeric field (or a tuple of them), else None."""
    if typing.get_origin(annotation) is tuple:
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return args[0] if args and args[0] in (int, float) else None
    return annotation if annotation in (int, float) else None


def field_range(field: dataclasses.Field[Any], annotation: Any) -> Range | None:
    """The declared range of a numeric field (metadata, then `RANGES`), or None."""
    declared = field.metadata.get("range") if field.metadata else None
    if declared is not None:
        return typing.cast(Range, declared)
    kind = numeric_kind(annotation)
    return RANGES.get(field.name) if kind is not None else None


def check_ranges(cfg: Any) -> None:
    """ConfigError naming the first numeric field whose value is out of its range."""
    types = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        kind = numeric_kind(types[f.name])
        if kind is None:
            continue
        value = getattr(cfg, f.name)
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        declared = field_range(f, types[f.name])
        rng = declared or (_DEFAULT_INT if kind is int else FINITE)
        what = "an integer" if kind is int else "a number"
        for v in values:
            ok_type = isinstance(v, int) if kind is int else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok_type:
                raise ConfigError(f"--{_flag(f.name)}: expected {what}, got {v!r}")
            if v not in rng or (kind is int and v not in _DEFAULT_INT):  # ints fit int64
                kind_name = "integer" if kind is int else "number"
                raise ConfigError(
                    f"--{_flag(f.name)}: must be {rng.describe(kind_name)}, got {_num(v)}"
                )


def check_relations(cfg: Any) -> None:
    """Rules between fields, applied to every config that has the fields."""
    if _has(cfg, "batch_size", "buffer_size", "learners"):
        shard = cfg.buffer_size // max(cfg.learners, 1)  # each learner samples its own shard
        if cfg.batch_size > shard:
            raise ConfigError(
                f"--batch-size: {cfg.batch_size} is more than the {shard} transitions the "
                "replay buffer holds per learner (--buffer-size / --learners), so no update "
                "would ever run; lower --batch-size or raise --buffer-size"
            )


def machine_memory() -> int:
    """Physical memory of this machine in bytes (0 when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def memory_needed(cfg: Any, spec: Any = None) -> dict[str, int]:
    """Bytes that a config's sizes need at least, by the field that sets them.

    Without an env `spec` (before the env is probed) observations and actions count as one
    float each, so this is a lower bound; with it, the observation and action sizes count.
    """
    obs = math.prod(spec.obs_shape) if spec is not None else 1
    act = 1 if spec is None or spec.discrete else spec.action_dim
    out = spec.action_dim if spec is not None else 1
    need: dict[str, int] = {}
    if _has(cfg, "buffer_size"):  # obs, next_obs, action, reward, terminated, truncated
        need["buffer_size"] = cfg.buffer_size * (8 * obs + 4 * act + 4 + 2)
    if _has(cfg, "num_steps", "num_envs", "actors"):  # obs, action, log-prob, value, reward...
        need["num_steps"] = cfg.num_steps * cfg.num_envs * cfg.actors * (4 * obs + 4 * act + 16)
    if _has(cfg, "hidden") and isinstance(cfg.hidden, tuple):
        sizes = [obs, *cfg.hidden, out]
        params = sum((a + 1) * b for a, b in zip(sizes, sizes[1:], strict=False))
        networks = 1 + int(getattr(cfg, "critics", 0) or 0)
        need["hidden"] = params * 4 * 4 * networks  # weights, gradients, two Adam moments
    return need


def check_memory(cfg: Any, spec: Any = None, available: int | None = None) -> None:
    """ConfigError naming the field whose sizes need more than the machine's memory.
    Skipped for a run on a Ray cluster elsewhere (`--address`): its nodes' memory counts."""
    remote = bool(getattr(cfg, "address", None))
    if available is None and remote:
        return
    total = machine_memory() if available is None else available
    if total <= 0:
        return
    for name, need in memory_needed(cfg, spec).items():
        if need > total:
            raise ConfigError(
                f"--{_flag(name)}: needs at least {need / 2**30:,.1f} GiB of memory and this "
                f"machine has {total / 2**30:,.1f} GiB; lower --{_flag(name)}"
            )


def _has(cfg: Any, *names: str) -> bool:
    return all(isinstance(getattr(cfg, n, None), (int, tuple)) for n in names)


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _num(v: float) -> str:
    if isinstance(v, int) and abs(v) >= 10**15:
        return f"{float(v):g}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _exact(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"
