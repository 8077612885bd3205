"""What every algorithm is: a typed config, a logical graph of roles, and a driver step.

The trainer (`rlkit.trainer`) compiles `graph()` with a distribution policy, starts it on
an executor, hands the runtime to `begin()`, and calls `train_step()` until the step
budget is spent. An algorithm never creates processes or picks devices itself, and its
driver never calls a role by name: it carries the graph's edges.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

from rlkit.config import BaseConfig, EnvConfig, offered_fields
from rlkit.dataflow.executor import Runtime
from rlkit.dataflow.graph import LogicalGraph
from rlkit.envs.families import Env, EnvFamily
from rlkit.envs.vector import SpaceSpec
from rlkit.errors import ConfigError
from rlkit.limits import check_memory
from rlkit.registry import Registry

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


@dataclass
class StepResult:
    """What one driver step did."""

    steps: int
    """`Algorithm.unit`s done: environment steps taken (all actors, all envs), or samples."""
    metrics: dict[str, float] = field(default_factory=dict)
    episodes: dict[str, list[float]] = field(default_factory=lambda: {"return": [], "length": []})
    """Episodes that ended during the step: their "return" and "length", and any other
    per-episode values (a multi-agent env's per-agent returns), each one list over the
    episodes; the trainer logs the mean of the last 100 as ``episode_<key>``."""
    samples: list[dict[str, Any]] = field(default_factory=list)
    """The step's sample table, one row per sample (`rlkit.samples`: prompt, response,
    rewards, ...), which the trainer writes to the run; empty for an env algorithm."""


class Algorithm(ABC):
    """Subclass a template (`OnPolicy`, `OffPolicy`), or this for an algorithm with none.

    Contract (docs/custom_algorithm.md): `graph()` declares fragments and edges;
    `train_step()` carries edges (``self.runtime.carry(EDGE, ...)``) and returns what it
    did; `eval_policy` builds a deterministic policy from a checkpoint's state, which the
    evaluation service (`rlkit.evaluation`) plays in the env family's loop. The
    trainer calls `begin(runtime)` once the plan runs: the runtime is attached, all-reduce
    groups formed, the template's `setup()` done (e.g. the initial weight push), then your
    `start()` hook, which needs no `super()` call.
    """

    name: ClassVar[str] = ""
    """Registry name, given once: by ``@ALGORITHMS.register("name")``, or as this
    attribute; a subclass that gives none is named after its class (lower case)."""
    config_cls: ClassVar[type[BaseConfig]] = BaseConfig
    """The typed config dataclass; its fields are the command-line flags."""
    _auto_name: ClassVar[bool] = True
    """Whether `name` came from the class name (no name given)."""
    families: ClassVar[tuple[str, ...]] = ()
    """The env families (`rlkit.envs.families`) it trains in, preferred first
    (`EnvAlgorithm`); none for an algorithm that trains on data (it has no `--env`)."""
    progress_metric: ClassVar[str] = "return"
    """What the progress line shows: "return" (the mean of the last 100 episodes), or a
    metric of `StepResult.metrics` ("loss" for the data stages, "reward" for RL on prompts)."""
    extras: ClassVar[tuple[str, ...]] = ()
    """The package extras (`rlkit.extras.EXTRAS`) a run needs beyond the base install:
    ``("rlhf",)`` for the LLM stages, ``("marl",)`` for PettingZoo's envs."""
    unit: ClassVar[str] = "steps"
    """What `StepResult.steps`, the budget and the ``*_every`` intervals count: env steps,
    or samples (or tokens) for an algorithm that trains on data."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._auto_name = "name" not in cls.__dict__
        if cls._auto_name:  # never inherit a registered name
            cls.name = cls.__name__.lower()

    def __init__(self, config: BaseConfig) -> None:
        self.config = config
        self._runtime: Runtime | None = None

    @classmethod
    def create(cls, config: BaseConfig) -> Algorithm:
        """What the trainer builds a run's algorithm with: an algorithm in an env family
        receives the family's `Env` (`EnvAlgorithm.create`), one on data its config."""
        return cls(config)

    def budget(self) -> int:
        """How many `unit`s to train for: ``config.total_steps`` (an algorithm on data may
        derive it from its epochs and dataset size)."""
        return int(self.config.total_steps)

    @classmethod
    def trains_on(cls) -> str:
        """What `rlkit list` says it trains on: its env families, or data."""
        return ", ".join(cls.families) or "data"

    @classmethod
    def run_label(cls, config: BaseConfig) -> str:
        """What a run directory is named after besides the algorithm (an env's short name)."""
        return ""

    @classmethod
    def default_preset(cls, env: str, overrides: dict[str, Any]) -> str:
        """The preset a run starts from when ``--preset`` is not given (`EnvAlgorithm`:
        the env's short name; an algorithm on data names its own, e.g. its model's family)."""
        return "default"

    def export(self, run_dir: Path) -> None:
        """Called by the trainer after the final checkpoint (also after Ctrl-C): write what
        users take away besides the checkpoint (an LLM stage: an HF-format ``model/``)."""

    def plan_notes(self) -> str:
        """Lines `rlkit plan` prints after the placement (e.g. the batch-size arithmetic)."""
        return ""

    @abstractmethod
    def graph(self) -> LogicalGraph:
        """The logical dataflow graph: fragments (roles) and edges."""

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError(
                f"{type(self).__name__}.runtime is used before the trainer started the plan "
                "(it is set by begin(), before setup() and start())"
            )
        return self._runtime

    def begin(self, runtime: Runtime) -> None:
        """Called by the trainer once the plan runs: attach, form all-reduce groups, the
        template's `setup()`, then the `start()` hook. Not meant to be overridden."""
        self._runtime = runtime
        runtime.connect_collectives()
        self.setup()
        self.start()

    def setup(self) -> None:
        """The template's own start (initial weights to the actors, counters)."""

    def start(self) -> None:
        """Your hook, run after `setup()`; nothing to call up."""

    @abstractmethod
    def train_step(self) -> StepResult:
        """One iteration of the algorithm (collect, update, sync)."""

    def state_dict(self, files_dir: Path | None = None) -> dict[str, Any]:
        """The state of every replica of every fragment, what is in flight on the edges,
        and the driver's own. Given `files_dir` (the trainer's checkpoint), a role that
        writes its own state (`save_checkpoint(directory)`) does so there, each replica
        in its own process, and only the small part it returns comes here."""
        return {
            "fragments": self.runtime.fragment_state(files_dir),
            "edges": self.runtime.edge_state(),
            "driver": self.driver_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (files entries by the roles' `load_checkpoint`)."""
        self.runtime.load_fragment_state(state["fragments"])
        self.runtime.load_edge_state(state.get("edges", {}))
        self.load_driver_state(state["driver"])

    def driver_state(self) -> dict[str, Any]:
        return {}

    def load_driver_state(self, state: dict[str, Any]) -> None:
        """Restore what `driver_state` returned."""

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """Env short name -> field overrides: ``presets/NAME.yaml`` of the class and of each
        algorithm it derives from (rlkit's own, or beside the module that defines it), the
        parent's first; fields the config does not offer are skipped (a parent's tuning)."""
        merged: dict[str, dict[str, Any]] = {}
        for klass in reversed(cls.__mro__):
            if not (isinstance(klass, type) and issubclass(klass, Algorithm)) or not klass.name:
                continue
            for path in _preset_files(klass):
                for env, fields in _read_presets(path).items():
                    merged.setdefault(env, {}).update(fields)
        offered = offered_fields(cls.config_cls)
        return {
            env: {k: v for k, v in fields.items() if k.replace("-", "_") in offered}
            for env, fields in merged.items()
        }


class EnvAlgorithm(Algorithm):
    """An algorithm that trains in an environment family: the trainer gives it the
    family's `Env` (the resolved id, its spaces, the family), typed."""

    families: ClassVar[tuple[str, ...]] = ("gymnasium",)
    config: EnvConfig

    def __init__(self, config: BaseConfig, env: Env) -> None:
        super().__init__(config)
        self.env = env

    @property
    def env_id(self) -> str:
        return self.env.id

    @property
    def spec(self) -> Any:
        """The env's spaces (`SpaceSpec`, or a `MultiAgentSpec`)."""
        return self.env.spec

    @property
    def family(self) -> EnvFamily:
        return self.env.family

    @classmethod
    def env_of(cls, config: BaseConfig) -> Env:
        """The env of `config` (``--env``, ``--env-kwargs``) as the first of `families`
        that owns it gives it: its id, spaces, family and kwargs."""
        assert isinstance(config, EnvConfig)
        return Env.of(cls.name, cls.families, config.env, config.env_kwargs)

    @classmethod
    def create(cls, config: BaseConfig) -> Algorithm:
        assert isinstance(config, EnvConfig)
        env = cls.env_of(config)
        if isinstance(env.spec, SpaceSpec):
            check_memory(config, env.spec)  # with the env's real observation and action sizes
        cls.check_env(env.id, env.spec)
        return cls(config, env)

    def current_policy(self) -> Callable[[np.ndarray], np.ndarray]:
        """The deterministic policy as it is now (for periodic evaluation): `eval_policy` of
        a state laid out as a checkpoint's, with replica 0 of every fragment (`eval_state`:
        a replay buffer's contents left out) and the driver's state."""
        state = {"fragments": self.runtime.policy_state(), "driver": self.driver_state()}
        return self.eval_policy(state, self.config, self.spec)

    @classmethod
    def run_label(cls, config: BaseConfig) -> str:
        """The env's short name."""
        assert isinstance(config, EnvConfig)
        from rlkit.envs.families import select

        family = select(cls.name, cls.families, config.env)
        return family.short_name(family.resolve(config.env))

    @classmethod
    def default_preset(cls, env: str, overrides: dict[str, Any]) -> str:
        """The env's short name."""
        from rlkit.envs.families import select

        family = select(cls.name, cls.families, env)
        return family.short_name(family.resolve(env))

    @classmethod
    def check_env(cls, env_id: str, spec: SpaceSpec) -> None:
        """Raise EnvError when the algorithm cannot act in this env (e.g. DQN, continuous)."""

    @classmethod
    @abstractmethod
    def eval_policy(
        cls, state: dict[str, Any], config: BaseConfig, spec: SpaceSpec
    ) -> Callable[[np.ndarray], np.ndarray]:
        """A deterministic batched policy ``obs [B, ...] -> actions [B, ...]`` from a
        checkpoint's state: ``state["fragments"][NAME]`` lists each fragment's replica
        states, ``state["driver"]`` is `driver_state()` (periodic evaluation passes
        replica 0 of every fragment, a buffer's `eval_state` being empty)."""


def _preset_files(klass: type[Algorithm]) -> list[Path]:
    here = Path(inspect.getfile(klass)).resolve().parent / "presets" / f"{klass.name}.yaml"
    return [p for p in dict.fromkeys([PRESETS_DIR / f"{klass.name}.yaml", here]) if p.exists()]


def _read_presets(path: Path) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"{path}: presets must be a mapping of env name to fields")
    return data


ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm")
