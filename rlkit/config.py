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


class Group:
    """A group of config fields that mean one thing (the run, its placement, its logging,
    the environment...): one section of ``--help``. A config is composed of the groups it
    needs (``class PPOConfig(PPOFields, EpochFields, OnPolicyConfig)``); a group is never
    removed from a parent: an algorithm that lacks one composes without it.

    Each group's `validate` checks its own fields after ``super().validate()`` (ranges
    first, for every field, in `BaseConfig.validate`)."""

    section: ClassVar[str] = "algorithm"
    """The ``--help`` section of the fields this class declares (`SECTIONS` orders them)."""

    def validate(self) -> None:
        """The group's own checks (cross-field rules of its fields)."""

    def extras(self) -> dict[str, str]:
        """The package extras (`rlkit.extras`) these settings need, each with the flag
        that needs it: checked, with the install command, before a run creates anything."""
        return {}


SECTIONS = (
    "environment",
    "model",
    "data",
    "generation",
    "algorithm",
    "optimization",
    "actors",
    "run",
    "placement",
    "logging",
)
"""The order of ``--help``'s sections: what a user needs first, first."""


PATH: dict[str, Any] = {"path": True}
"""Field metadata of a setting that may name a local file or directory (a model, data):
the run's config.yaml stores it absolute, so a resume works from any directory."""

RUNTIME_ONLY = (
    "total_steps",
    "torch_threads",
    "device",
    "log_every",
    "eval_every",
    "checkpoint_every",
    "wandb",
    "wandb_project",
)
"""Settings ``rlkit resume`` may change: how and where a run computes and reports, never
what it trains (a changed learning rate or dataset would not continue the same run)."""


@dataclass
class RunFields(Group):
    """What to train for how long, and where its run directory goes."""

    section = "run"

    seed: int = 0
    """Seed for environments, networks and sampling; a run is reproducible on CPU."""
    total_steps: int = 100_000
    """Environment steps to train for (summed over all parallel environments)."""
    checkpoint_every: int = 50_000
    """Save a checkpoint every this many environment steps (and at the end)."""
    out: str = "runs"
    """Parent directory of run directories."""
    name: str = ""
    """Run directory name; empty means ALGO-ENV-SEED-TIMESTAMP."""

    def validate(self) -> None:
        super().validate()
        check_name(self.name)


@dataclass
class PlacementFields(Group):
    """Where the roles run: executor, distribution policy, replicas, device, arithmetic."""

    section = "placement"

    device: str = "auto"
    """Learner device: auto (cuda, then npu, then cpu), cpu, cuda[:i] or npu[:i]."""
    executor: str = "local"
    """Dataflow executor: local (in-process; the default) or ray."""
    policy: str = "auto"
    """Distribution policy: auto (local with --executor local; multi-actor, or dp-learner
    with --learners > 1, on ray), local, multi-actor, async-actor (off-policy actors stream
    into the replay buffer), async (RL on prompts: generators sample while the learner
    learns, --max-staleness), dp-learner, colocate, ddp (each worker one actor and one
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

    def validate(self) -> None:
        super().validate()
        from rlkit.device import check_device_name  # torch, only once a config is validated

        check_device_name(self.device)

    def actor_replicas(self) -> int:
        """Actor replicas the distribution policy places (none without an env)."""
        return 1


@dataclass
class LoggingFields(Group):
    """What is written while a run trains."""

    section = "logging"

    log_every: int = 0
    """Write a metrics row every this many environment steps; 0 means every iteration."""
    eval_every: int = 0
    """Evaluate the deterministic policy every this many environment steps (0: never)."""
    wandb: bool = False
    """Also log to Weights & Biases (offline when there is no network)."""
    wandb_project: str = "rlkit"
    """Weights & Biases project name."""

    def extras(self) -> dict[str, str]:
        return {**super().extras(), **({"wandb": FLAGS["wandb"]} if self.wandb else {})}


@dataclass
class BaseConfig(LoggingFields, PlacementFields, RunFields):
    """Fields every algorithm has: what to run, for how long, where, and how to log."""

    def validate(self) -> None:
        """Raise ConfigError naming the first field out of range.

        Every numeric field is first checked against its range (`rlkit.limits`: a range
        declared in the field's metadata, the built-in table, or a default: ints that fit
        int64, finite floats); then each group's rules, cross-field rules and the memory
        the sizes imply."""
        check_ranges(self)
        super().validate()
        check_relations(self)
        check_memory(self)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any]) -> C:
        """Build from a plain dict (a saved config.yaml); unknown keys are an error."""
        cfg = cls()
        apply_overrides(cfg, values)
        return cfg

    def early_stop(self) -> float:
        """The evaluation return that ends the run early (inf: never)."""
        return float("inf")

    def eval_size(self) -> int:
        """Episodes per periodic evaluation (an algorithm on data evaluates its split)."""
        return 1


@dataclass
class EnvFields(Group):
    """The environment an algorithm trains in, and how it is evaluated."""

    section = "environment"

    env: str = "CartPole"
    """Environment: a short name (Humanoid, simple_spread), a gymnasium id (Humanoid-v5) or
    a PettingZoo parallel env factory (module:factory); rlkit list shows the names."""
    env_kwargs: str = ""
    """Keyword arguments for the env's constructor: KEY=VALUE,... (e.g. N=5,local_ratio=0.5)."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation."""
    target_return: float = float("inf")
    """Stop early once a periodic evaluation's mean return reaches this (inf: never)."""

    def validate(self) -> None:
        super().validate()
        check(bool(self.env), "env", "must name an environment")

    def early_stop(self) -> float:
        return self.target_return

    def eval_size(self) -> int:
        return self.eval_episodes


@dataclass
class ActorFields(Group):
    """The actors that step the environments."""

    section = "actors"

    num_envs: int = 1
    """Parallel environments per actor."""
    actors: int = 1
    """Actor replicas (each owns num_envs environments)."""
    actor_cpus: float = 1.0
    """CPU share each actor replica reserves; below 1 packs several actors onto a core
    (oversubscribing knowingly: 2 actors and a learner on 2 cores with 0.5)."""

    def actor_replicas(self) -> int:
        return self.actors


@dataclass
class VectorFields(Group):
    """How a single-agent actor steps its environments (gymnasium's vector envs)."""

    section = "actors"

    vector: Literal["sync", "async", "workers"] = "sync"
    """Vector env: sync (in process), async (gymnasium, a process per env), workers (rlkit:
    env_workers processes stepping slices of the envs in shared memory)."""
    env_workers: int = 0
    """Worker processes for --vector workers; 0 means one per CPU core."""


@dataclass
class EnvConfig(ActorFields, EnvFields, BaseConfig):
    """Fields of every algorithm in an environment: the env, its actors, the run."""


def offered_fields(cls: type) -> list[str]:
    """The config fields a user can set: every field of the config's groups."""
    return [f.name for f in fields(cls)]


def group_of(name: str) -> type[Group] | None:
    """The config group (a `Group` subclass named ``...Fields``, of any algorithm imported
    so far) that declares field `name`: to say that a flag does not apply, rather than
    that it is unknown."""
    todo, seen = list(Group.__subclasses__()), set()
    while todo:
        klass = todo.pop()
        if klass in seen:
            continue
        seen.add(klass)
        todo.extend(klass.__subclasses__())
        if klass.__name__.endswith("Fields") and name in vars(klass).get("__annotations__", {}):
            return klass
    return None


def field_sections(cls: type) -> dict[str, str]:
    """Field name -> its ``--help`` section: the `Group.section` of the class that
    first declares it (a subclass giving it another default keeps its section; fields of
    an algorithm's own config class: "algorithm")."""
    names = {f.name for f in fields(cls)}
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name in vars(klass).get("__annotations__", {}):
            if name in names:
                out.setdefault(name, vars(klass).get("section", "algorithm"))
    return out


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
        group = group_of(name)
        if name not in types and group is not None:
            raise ConfigError(
                f"--{flag(name)} does not apply to this algorithm ({type(cfg).__name__} "
                f"composes no {group.__name__})"
            )
        if name not in types or name not in names:
            import difflib

            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean --{flag(close[0])}?" if close else ""
            raise ConfigError(f"unknown option --{flag(name)} for {type(cfg).__name__}{hint}")
        setattr(cfg, name, convert(name, types[name], value))
