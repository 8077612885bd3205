"""What every algorithm is: a typed config, a logical graph of roles, and a driver step.

The trainer (`rlkit.trainer`) compiles `graph()` with a distribution policy, starts it on
an executor, hands the runtime to `start()`, and calls `train_step()` until the step
budget is spent. An algorithm never creates processes or picks devices itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

from rlkit.config import BaseConfig
from rlkit.dataflow.executor import Runtime
from rlkit.dataflow.graph import LogicalGraph
from rlkit.envs.vector import SpaceSpec
from rlkit.errors import ConfigError
from rlkit.registry import Registry

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


@dataclass
class StepResult:
    """What one driver step did."""

    steps: int
    """Environment steps taken (all actors, all envs)."""
    metrics: dict[str, float] = field(default_factory=dict)
    episodes: dict[str, list[float]] = field(default_factory=lambda: {"return": [], "length": []})
    """Episodes that ended during the step: their returns and lengths."""


class Algorithm(ABC):
    """Subclass a template (OnPolicy, OffPolicy, RLHF), not this."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type[BaseConfig]] = BaseConfig

    def __init__(self, config: BaseConfig, env_id: str, spec: SpaceSpec) -> None:
        self.config = config
        self.env_id = env_id
        self.spec = spec
        self._runtime: Runtime | None = None

    @classmethod
    def check_env(cls, env_id: str, spec: SpaceSpec) -> None:
        """Raise EnvError when the algorithm cannot act in this env (e.g. DQN, continuous)."""

    @abstractmethod
    def graph(self) -> LogicalGraph:
        """The logical dataflow graph: fragments (roles) and edges."""

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the algorithm has not been started on a runtime")
        return self._runtime

    def start(self, runtime: Runtime) -> None:
        """Called once the plan runs; e.g. push the learner's initial weights to actors."""
        self._runtime = runtime

    @abstractmethod
    def train_step(self) -> StepResult:
        """One iteration of the algorithm (collect, update, sync)."""

    def state_dict(self) -> dict[str, Any]:
        """The state of every replica of every fragment, plus the driver's own."""
        fragments = {n: g.call("state_dict") for n, g in self.runtime.groups.items()}
        return {"fragments": fragments, "driver": self.driver_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, states in state["fragments"].items():
            self.runtime[name].call_each("load_state_dict", [(s,) for s in states])
        self.load_driver_state(state["driver"])

    def driver_state(self) -> dict[str, Any]:
        return {}

    def load_driver_state(self, state: dict[str, Any]) -> None:
        """Restore what `driver_state` returned."""

    @classmethod
    @abstractmethod
    def eval_policy(
        cls, state: dict[str, Any], config: BaseConfig, spec: SpaceSpec
    ) -> Callable[[np.ndarray], np.ndarray]:
        """A deterministic batched policy ``obs [B, ...] -> actions [B, ...]`` from a checkpoint."""

    def current_policy(self) -> Callable[[np.ndarray], np.ndarray]:
        """The deterministic policy of actor replica 0 as it is now (for periodic evaluation)."""
        actor = self.runtime["actor"].one("state_dict")
        return self.eval_policy({"fragments": {"actor": [actor]}}, self.config, self.spec)

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """Env short name -> field overrides, from ``algorithms/presets/NAME.yaml``."""
        path = PRESETS_DIR / f"{cls.name}.yaml"
        if not path.exists():
            return {}
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: presets must be a mapping of env name to fields")
        return data


ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm")
