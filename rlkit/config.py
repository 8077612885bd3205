"""Typed configs: one dataclass per algorithm, a docstring line per field.

The CLI builds its flags from these dataclasses (`--total-steps` for `total_steps`), so
flags and configs never drift. Overrides arrive as strings and are converted by the
field's annotation; `validate()` checks ranges and names the field that is wrong.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, ClassVar, Literal, TypeVar

from rlkit.errors import ConfigError
from rlkit.extras import FLAGS
from rlkit.limits import check_memory, check_ranges, check_relations
from rlkit.run_dir import check_name

C = TypeVar("C", bound="BaseConfig")


class FieldOptions:
    """Class-level options of a config (a plain base, so they are no dataclass fields)."""

    dropped: ClassVar[tuple[str, ...]] = ()
    """Inherited fields that do not apply to this algorithm: no flag is offered for them,
    setting one is refused, and they keep their defaults (which the subclass must make
    harmless: e.g. an A2C config drops the on-policy `target_kl` and `overlap`)."""


@dataclass
class BaseConfig(FieldOptions):
    """Fields every algorithm has: what to run, for how long, where, and how to log."""

    env: str = "CartPole"
    """Environment: a short name (Humanoid, simple_spread), a gymnasium id (Humanoid-v5) or
    a PettingZoo parallel env factory (module:factory); rlkit list shows the names."""
    env_kwargs: str = ""
    """Keyword arguments for the env's constructor: KEY=VALUE,... (e.g. N=5,local_ratio=0.5)."""
    seed: int = 0
    """Seed for environments, networks and sampling; a run is reproducible on CPU."""
    total_steps: int = 100_000
    """Environment steps to train for (summed over all parallel environments)."""
    device: str = "auto"
    """Learner device: auto (cuda, then npu, then cpu), cpu, cuda[:i] or npu[:i]."""
    num_envs: int = 1
    """Parallel environments per actor."""
    vector: Literal["sync", "async", "workers"] = "sync"
    """Vector env: sync (in process), async (gymnasium, a process per env), workers (rlkit:
    env_workers processes stepping slices of the envs in shared memory)."""
    env_workers: int = 0
    """Worker processes for --vector workers; 0 means one per CPU core."""
    actors: int = 1
    """Actor replicas (each owns num_envs environments)."""
    actor_cpus: float = 1.0
    """CPU share each actor replica reserves; below 1 packs several actors onto a core
    (oversubscribing knowingly: 2 actors and a learner on 2 cores with 0.5)."""
    executor: str = "local"
    """Dataflow executor: local (in-process; the default) or ray."""
    policy: str = "auto"
    """Distribution policy: auto (local with --executor local; multi-actor, or dp-learner
    with --learners > 1, on ray), local, multi-actor, async-actor (off-policy actors stream
    into the replay buffer), dp-learner, colocate, ddp (each worker one actor and one
    learner replica: --actors = --learners)."""
    address: str = ""
    """Ray cluster to join with --executor ray: auto, ray://HOST:PORT, or empty to start one here."""
    learners: int = 1
    """Learner replicas (data-parallel, for distribution policies that support it)."""
    torch_threads: int = 1
    """Torch intra-op threads per process; 1 is fastest for small networks on few cores."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Learner arithmetic: fp32, or bf16 (autocast: hidden layers multiply in bfloat16;
    output layers, losses, weights, gradients and optimizer state stay fp32). About 2x
    faster SAC updates on CPUs with AVX512-BF16 or AMX, and on recent GPUs."""
    out: str = "runs"
    """Parent directory of run directories."""
    name: str = ""
    """Run directory name; empty means ALGO-ENV-SEED-TIMESTAMP."""
    checkpoint_every: int = 50_000
    """Save a checkpoint every this many environment steps (and at the end)."""
    log_every: int = 0
    """Write a metrics row every this many environment steps; 0 means every iteration."""
    eval_every: int = 0
    """Evaluate the deterministic policy every this many environment steps (0: never)."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation."""
    target_return: float = float("inf")
    """Stop early once a periodic evaluation's mean return reaches this (inf: never)."""
    wandb: bool = False
    """Also log to Weights & Biases (offline when there is no network)."""
    wandb_project: str = "rlkit"
    """Weights & Biases project name."""

    def validate(self) -> None:
        """Raise ConfigError naming the first field out of range.

        Every numeric field is first checked against its range (`rlkit.limits`: a range
        declared in the field's metadata, the built-in table, or a default: ints that fit
        int64, finite floats); then cross-field rules and the memory the sizes imply."""
        check_ranges(self)
        check_relations(self)
        check_memory(self)
        check(self.total_steps > 0, "total_steps", "must be positive")
        check(self.num_envs >= 1, "num_envs", "must be at least 1")
        check(self.env_workers >= 0, "env_workers", "must be >= 0")
        check(self.actors >= 1, "actors", "must be at least 1")
        check(self.actor_cpus > 0, "actor_cpus", "must be positive")
        check(self.learners >= 1, "learners", "must be at least 1")
        check(self.torch_threads >= 1, "torch_threads", "must be at least 1")
        check(self.checkpoint_every > 0, "checkpoint_every", "must be positive")
        check(self.log_every >= 0, "log_every", "must be >= 0")
        check(self.eval_every >= 0, "eval_every", "must be >= 0")
        check(self.eval_episodes >= 1, "eval_episodes", "must be at least 1")
        check(bool(self.env), "env", "must name an environment")
        check_name(self.name)
        from rlkit.device import check_device_name  # torch, only once a config is validated

        check_device_name(self.device)

    def extras(self) -> dict[str, str]:
        """The package extras (`rlkit.extras`) these settings need, each with the flag
        that needs it: checked, with the install command, before a run creates anything."""
        return {"wandb": FLAGS["wandb"]} if self.wandb else {}

    def to_dict(self) -> dict[str, Any]:
        """The offered fields (dropped ones left out) as plain values."""
        offered = offered_fields(type(self))
        return {k: v for k, v in dataclasses.asdict(self).items() if k in offered}

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any]) -> C:
        """Build from a plain dict (a saved config.yaml); unknown keys are an error."""
        cfg = cls()
        apply_overrides(cfg, values)
        return cfg


def offered_fields(cls: type) -> list[str]:
    """The config fields a user can set: all of the dataclass's but the `dropped` ones."""
    dropped = set(getattr(cls, "dropped", ()))
    return [f.name for f in fields(cls) if f.name not in dropped]


def check(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"--{flag(field)}: {message}")


def flag(name: str) -> str:
    return name.replace("_", "-")


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the docstring line under it, collected along the MRO."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = nxt.value.value.strip()
    return docs


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def convert(name: str, annotation: Any, value: Any) -> Any:
    """Convert `value` (a string from the command line, or a YAML scalar) to `annotation`."""
    where = f"--{flag(name)}"
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        text = str(value).strip().replace("_", "")
        try:
            return int(text)  # exact, also beyond 2**53
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if not number.is_integer():
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(number)  # 1e6; its range is checked by validate()
    if annotation is float:
        try:
            return float(str(value).replace("_", "")) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if annotation is str:
        return str(value)
    if typing.get_origin(annotation) is tuple:
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        (inner, *_rest) = typing.get_args(annotation)
        return tuple(convert(name, inner, v) for v in items if str(v).strip())
    raise ConfigError(f"{where}: cannot set a field of type {annotation}")


def apply_overrides(cfg: BaseConfig, values: dict[str, Any]) -> None:
    """Set fields from `values` (converted by annotation); unknown keys raise ConfigError."""
    types = field_types(type(cfg))
    names = offered_fields(type(cfg))
    for key, value in values.items():
        name = key.replace("-", "_")
        if name in getattr(cfg, "dropped", ()):
            raise ConfigError(
                f"--{flag(name)} does not apply to this algorithm ({type(cfg).__name__} drops it)"
            )
        if name not in types or name not in names:
            import difflib

            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean --{flag(close[0])}?" if close else ""
            raise ConfigError(f"unknown option --{flag(name)} for {type(cfg).__name__}{hint}")
        setattr(cfg, name, convert(name, types[name], value))
