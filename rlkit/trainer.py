"""The training driver: compile an algorithm's graph, start it, loop, log, checkpoint.

    config --validate--> algorithm.graph() --policy.compile--> plan --place--> placement
           --executor.start--> runtime --train_step()*--> run directory

A run directory holds config.yaml, metrics.csv, tb/ (TensorBoard), checkpoint.pt and,
at the end, learning_curve.png. Ctrl-C finishes the current iteration, saves a
checkpoint and prints how to resume; a second Ctrl-C stops at once (the previous
checkpoint stays intact). `resume` continues exactly: same step counter, RNG streams,
optimizer, environment states and logs.
"""

from __future__ import annotations

import math
import signal
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from rlkit import checkpoint
from rlkit.algorithms.base import Algorithm
from rlkit.config import BaseConfig
from rlkit.dataflow.executor import EXECUTORS, Executor, Runtime
from rlkit.dataflow.policies import POLICIES, PolicyOptions
from rlkit.dataflow.scheduler import Placement, place
from rlkit.divergence import check_finite
from rlkit.envs.registry import short_name
from rlkit.envs.vector import probe_spec
from rlkit.errors import CheckpointError, ConfigError, RegistryError
from rlkit.limits import check_memory
from rlkit.metrics import MetricsLogger
from rlkit.plugins import resolve
from rlkit.run_dir import create as create_run_dir

CONFIG_NAME = "config.yaml"
INTERRUPTED = 130


@dataclass
class Built:
    algorithm: Algorithm
    placement: Placement
    executor: Executor


def build(algo_cls: type[Algorithm], config: BaseConfig) -> Built:
    """Validate, resolve env and device, compile and place; nothing starts yet."""
    missing = sorted(getattr(algo_cls, "__abstractmethods__", ()))
    if missing:
        raise ConfigError(
            f"{algo_cls.__name__} leaves {', '.join(missing)} unimplemented: "
            "a template's abstract methods are what an algorithm must supply"
        )
    config.validate()
    executor = EXECUTORS.get(config.executor)(config)
    if config.learners > 1 and config.executor == "local":
        raise ConfigError("--learners > 1 needs learners in parallel processes: use --executor ray")
    executor.check_device(config.device)
    env_id, spec = probe_spec(config.env)
    check_memory(config, spec)  # with the env's real observation and action sizes
    algo_cls.check_env(env_id, spec)
    algorithm = algo_cls(config, env_id, spec)
    options = PolicyOptions(actors=config.actors, learners=config.learners)
    policy = config.policy
    if policy == "auto":  # one process for the local executor; a worker per replica on Ray
        if config.executor == "local":
            policy = "local"
        else:
            policy = "dp-learner" if config.learners > 1 else "multi-actor"
    graph = algorithm.graph()
    graph.check()
    plan = POLICIES.get(policy)().compile(graph, options)
    return Built(algorithm, place(plan, executor.cluster()), executor)


def make_config(
    algo_cls: type[Algorithm], env: str, preset: str | None, overrides: dict[str, Any]
) -> BaseConfig:
    """Defaults, then the env's preset (or the named one; "none" for no preset), then overrides."""
    from rlkit.config import apply_overrides
    from rlkit.envs.registry import resolve_env_id

    cfg = algo_cls.config_cls()
    presets = {k.lower(): v for k, v in algo_cls.presets().items()}
    key = (preset if preset is not None else short_name(resolve_env_id(env))).lower()
    if preset is not None and key != "none" and key not in presets:
        raise ConfigError(
            f"--preset: {algo_cls.name} has no preset {preset!r}; known: {', '.join(presets) or 'none'}"
        )
    if key in presets:
        apply_overrides(cfg, presets[key])
    apply_overrides(cfg, {"env": env, **overrides})
    return cfg


def new_run_dir(algo: str, config: BaseConfig) -> Path:
    name = (
        config.name
        or f"{algo}-{short_name(config.env)}-s{config.seed}-{datetime.now():%Y%m%d-%H%M%S}"
    )
    return create_run_dir(config.out, name)


def save_config(run_dir: Path, algo: str, config: BaseConfig) -> None:
    from rlkit.plugins import SOURCES

    values = {k: list(v) if isinstance(v, tuple) else v for k, v in config.to_dict().items()}
    record: dict[str, Any] = {"algorithm": algo}
    if algo.lower() in SOURCES:  # a plugin: where resume and eval find it again
        record["source"] = SOURCES[algo.lower()]
    text = yaml.safe_dump({**record, "config": values}, sort_keys=False)
    checkpoint.atomic_write(run_dir / CONFIG_NAME, lambda tmp: tmp.write_text(text))


def load_run(run_dir: Path) -> tuple[type[Algorithm], BaseConfig]:
    """The algorithm and config of an existing run directory."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_NAME
    if not run_dir.is_dir():
        raise CheckpointError(f"no run directory at {run_dir}")
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a run directory (no {CONFIG_NAME})")
    try:
        data = yaml.safe_load(path.read_bytes())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CheckpointError(f"{path} is corrupt: not valid YAML{where}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror}") from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path} is corrupt: expected a mapping with 'algorithm' and 'config', "
            f"got {type(data).__name__}"
        )
    name, values, source = data.get("algorithm"), data.get("config"), data.get("source")
    if not isinstance(name, str):
        raise CheckpointError(f"{path} is corrupt: 'algorithm' must be a name, got {name!r:.60}")
    if not isinstance(values, dict):
        raise CheckpointError(
            f"{path} is corrupt: 'config' must be a mapping of fields, got {type(values).__name__}"
        )
    if source is not None and not isinstance(source, str):
        raise CheckpointError(f"{path} is corrupt: 'source' must be a module:Class spec")
    try:
        algo_cls = resolve(name, source)
    except RegistryError:
        raise CheckpointError(
            f"{run_dir} was written by algorithm {name!r}, which is not registered here: "
            "install or import the package that registers it (see docs/custom_algorithm.md)"
        ) from None
    try:
        config = algo_cls.config_cls.from_dict(values)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} is corrupt: {' '.join(str(e).split())}") from None
    checkpoint.remove_stale_temps(run_dir)
    return algo_cls, config


class Trainer:
    def __init__(
        self, algo_cls: type[Algorithm], config: BaseConfig, run_dir: Path | None = None
    ) -> None:
        self.algo_cls, self.config = algo_cls, config
        self.built = build(algo_cls, config)
        self.run_dir = run_dir
        self.step = 0
        self.iteration = 0
        self.next_checkpoint = config.checkpoint_every
        self.returns: deque[float] = deque(maxlen=100)
        self.lengths: deque[float] = deque(maxlen=100)
        self.episodes = 0
        self.next_log = config.log_every
        self.next_eval = config.eval_every
        self.eval_env: Any = None
        self.reached_target = False
        self.runtime: Runtime | None = None
        self.pending: dict[str, tuple[float, int]] = {}  # metric (sum, count) since the last row
        self._stop = False

    # -- state -----------------------------------------------------------------
    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "iteration": self.iteration,
            "next_checkpoint": self.next_checkpoint,
            "returns": list(self.returns),
            "lengths": list(self.lengths),
            "episodes": self.episodes,
            "next_log": self.next_log,
            "next_eval": self.next_eval,
            "pending": dict(self.pending),
        }

    def _load_trainer_state(self, s: dict[str, Any]) -> None:
        self.step, self.iteration, self.next_checkpoint = (
            s["step"],
            s["iteration"],
            s["next_checkpoint"],
        )
        self.returns.extend(s["returns"])
        self.lengths.extend(s["lengths"])
        self.episodes = s["episodes"]
        self.next_log, self.pending = s["next_log"], dict(s["pending"])
        self.next_eval = s["next_eval"]

    def save_checkpoint(self) -> None:
        assert self.run_dir is not None
        # the next periodic checkpoint lies after this one (a resume must not save again at once)
        while self.next_checkpoint <= self.step:
            self.next_checkpoint += self.config.checkpoint_every
        checkpoint.remove_stale_temps(self.run_dir)
        state = {"trainer": self._trainer_state(), "state": self.built.algorithm.state_dict()}
        checkpoint.save(self.run_dir / checkpoint.CHECKPOINT, self.algo_cls.name, state)

    def _checkpointed_fragments(self) -> dict[str, list[Any]] | None:
        """The fragments' states in the run's checkpoint (for a restarted worker), if any."""
        assert self.run_dir is not None
        path = self.run_dir / checkpoint.CHECKPOINT
        if not path.is_file():
            return None
        return dict(checkpoint.load(path, self.algo_cls.name)["state"]["fragments"])

    # -- loop ------------------------------------------------------------------
    def run(self, resume: bool = False) -> int:
        """Train to `total_steps`; returns the exit code (0, or 130 when interrupted)."""
        from rlkit.progress import ProgressReporter

        cfg, algo = self.config, self.built.algorithm
        saved: dict[str, Any] | None = None
        if resume:
            assert self.run_dir is not None
            saved = checkpoint.load(self.run_dir / checkpoint.CHECKPOINT, self.algo_cls.name)
        else:
            self.run_dir = self.run_dir or new_run_dir(self.algo_cls.name, cfg)
            save_config(self.run_dir, self.algo_cls.name, cfg)
        assert self.run_dir is not None
        print(f"run directory: {self.run_dir}", flush=True)
        print(self.built.placement.table(), flush=True)
        runtime: Runtime = self.built.executor.start(self.built.placement)
        self.runtime = runtime
        runtime.saved_state = self._checkpointed_fragments
        logger: MetricsLogger | None = None
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            algo.begin(runtime)
            if saved is not None:
                try:
                    algo.load_state_dict(saved["state"])
                    self._load_trainer_state(saved["trainer"])
                except (KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError) as e:
                    raise CheckpointError(
                        f"{self.run_dir / checkpoint.CHECKPOINT} does not fit this run's layout "
                        f"({type(e).__name__}: {e}); it was written by another rlkit version or config"
                    ) from None
                if self.step >= cfg.total_steps:
                    print(
                        f"run already complete at step {self.step:,}; "
                        f"extend it with: rlkit resume {self.run_dir} --total-steps N",
                        flush=True,
                    )
            logger = MetricsLogger(
                self.run_dir,
                cfg.to_dict(),
                cfg.wandb,
                cfg.wandb_project,
                resume_step=self.step if resume else None,
            )
            progress = ProgressReporter(cfg.total_steps, self.step)
            t0, start_step = time.perf_counter(), self.step
            try:
                while self.step < cfg.total_steps and not self._stop:
                    result = algo.train_step()
                    check_finite(result.metrics, self.step + result.steps, cfg)  # diverged?
                    self.step += result.steps
                    self.iteration += 1
                    self.returns.extend(result.episodes["return"])
                    self.lengths.extend(result.episodes["length"])
                    self.episodes += len(result.episodes["return"])
                    ret = sum(self.returns) / len(self.returns) if self.returns else math.nan
                    sps = progress.update(self.step, ret)
                    for key, value in result.metrics.items():
                        total, count = self.pending.get(key, (0.0, 0))
                        self.pending[key] = (total + float(value), count + 1)
                    evaluation = (
                        self._evaluate() if cfg.eval_every and self.step >= self.next_eval else {}
                    )
                    if (
                        evaluation
                        or cfg.log_every == 0
                        or self.step >= self.next_log
                        or self.step >= cfg.total_steps
                    ):
                        self._log_row(logger, ret, time.perf_counter() - t0, sps, evaluation)
                    if evaluation.get("eval_return", -math.inf) >= cfg.target_return:
                        print(
                            f"evaluation return {evaluation['eval_return']:.1f} reached "
                            f"--target-return {cfg.target_return:g} at step {self.step:,}",
                            flush=True,
                        )
                        self.reached_target = True
                        break
                    if self.step >= self.next_checkpoint and self.step < cfg.total_steps:
                        self.save_checkpoint()
                        while self.next_checkpoint <= self.step:
                            self.next_checkpoint += cfg.checkpoint_every
            finally:
                progress.close()
            self.save_checkpoint()
            elapsed = time.perf_counter() - t0
            print(
                f"{self.step - start_step:,} steps in {elapsed:,.1f}s "
                f"({(self.step - start_step) / max(elapsed, 1e-9):,.0f} steps/s)",
                flush=True,
            )
            if self._stop:
                print(
                    f"interrupted at step {self.step:,}; checkpoint saved.\n"
                    f"resume with: rlkit resume {self.run_dir}",
                    flush=True,
                )
                return INTERRUPTED
            curve = logger.close()
            logger = None
            print(
                f"done: {self.run_dir}" + (f" (learning curve: {curve})" if curve else ""),
                flush=True,
            )
            return 0
        finally:
            signal.signal(signal.SIGINT, previous)
            if self.eval_env is not None:
                self.eval_env.close()
            if logger is not None:
                logger.close()
            runtime.shutdown()

    def _evaluate(self) -> dict[str, float]:
        """Deterministic episodes with the current policy, on an env of its own (seeded the
        same way every time, so an evaluation does not disturb training or resume)."""
        from rlkit.envs.episodes import run_episodes
        from rlkit.envs.vector import make_env

        algo = self.built.algorithm
        if self.eval_env is None:
            self.eval_env = make_env(algo.env_id)
        returns, _ = run_episodes(
            self.eval_env,
            algo.current_policy(),
            self.config.eval_episodes,
            self.config.seed + 2_000_003,
        )
        while self.next_eval <= self.step:
            self.next_eval += self.config.eval_every
        return {"eval_return": sum(returns) / len(returns), "eval_return_min": min(returns)}

    def _log_row(
        self, logger: MetricsLogger, ret: float, elapsed: float, sps: float, extra: dict[str, float]
    ) -> None:
        """One metrics row: episode stats now, learner metrics averaged since the last row."""
        lengths = sum(self.lengths) / len(self.lengths) if self.lengths else math.nan
        means = {k: total / count for k, (total, count) in self.pending.items()}
        row = {
            "step": self.step,
            "iteration": self.iteration,
            "episode_return": ret,
            "episode_length": lengths,
            "episodes": self.episodes,
            **means,
            **extra,
            "restarts": self.runtime.restarts() if self.runtime is not None else 0,
            "time": elapsed,
            "sps": sps,
        }
        logger.log(row)
        self.pending.clear()
        if self.config.log_every:
            while self.next_log <= self.step:
                self.next_log += self.config.log_every

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._stop:  # second Ctrl-C: stop now, the last checkpoint stays as it was
            raise KeyboardInterrupt
        self._stop = True
        print(
            "\nCtrl-C: finishing this iteration and saving a checkpoint (Ctrl-C again to abort)",
            flush=True,
        )
