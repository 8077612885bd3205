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

import dataclasses
import math
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from rlkit import checkpoint, evaluation, user_code
from rlkit.algorithms.base import Algorithm
from rlkit.config import BaseConfig
from rlkit.dataflow.executor import EXECUTORS, Executor, Runtime
from rlkit.dataflow.policies import POLICIES, PolicyOptions
from rlkit.dataflow.scheduler import Placement, place
from rlkit.divergence import check_finite
from rlkit.errors import CheckpointError, ConfigError, RegistryError
from rlkit.extras import require
from rlkit.metrics import CSV_NAME, MetricsLogger, read_rows
from rlkit.plugins import resolve
from rlkit.progress import rate_text
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
    check_extras(algo_cls)
    for extra, flag in config.extras().items():
        require(extra, flag)
    config.validate()
    executor = EXECUTORS.get(config.executor)(config)
    if config.learners > 1 and config.executor == "local":
        raise ConfigError("--learners > 1 needs learners in parallel processes: use --executor ray")
    executor.check_device(config.device)
    algorithm = algo_cls.create(config)
    options = PolicyOptions(config.actor_replicas(), config.learners, config.executor)
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


def check_extras(algo_cls: type[Algorithm]) -> None:
    """One line with the install command when an extra the algorithm needs is missing."""
    for extra in algo_cls.extras:
        require(extra, algo_cls.name)


def preset_in_force(
    algo_cls: type[Algorithm], env: str, preset: str | None, overrides: dict[str, Any]
) -> str:
    """The preset a run starts from: the one named, else the algorithm's default for
    `env` (or, on data, for its model's family)."""
    return preset or algo_cls.default_preset(env, overrides)


def make_config(
    algo_cls: type[Algorithm], env: str, preset: str | None, overrides: dict[str, Any]
) -> BaseConfig:
    """Defaults, then the env's preset (or the named one; "none" for no preset; "default"
    for an algorithm on no env), then overrides."""
    from rlkit.config import apply_overrides

    check_extras(algo_cls)
    cfg = algo_cls.config_cls()
    presets = {k.lower(): v for k, v in algo_cls.presets().items()}
    key = preset_in_force(algo_cls, env, preset, overrides).lower()
    if preset is not None and key != "none" and key not in presets:
        raise ConfigError(
            f"--preset: {algo_cls.name} has no preset {preset!r}; known: {', '.join(presets) or 'none'}"
        )
    if key in presets:
        apply_overrides(cfg, presets[key])
    apply_overrides(cfg, {"env": env, **overrides} if algo_cls.families else overrides)
    return cfg


def new_run_dir(algo_cls: type[Algorithm], config: BaseConfig) -> Path:
    label = algo_cls.run_label(config).replace("/", "_").replace(":", "_")
    parts = [algo_cls.name, label, f"s{config.seed}", f"{datetime.now():%Y%m%d-%H%M%S}"]
    return create_run_dir(config.out, config.name or "-".join(p for p in parts if p))


def save_config(run_dir: Path, algo: str, config: BaseConfig) -> None:
    """The run's `config.yaml`, its local paths absolute (`absolute_paths`), so that
    ``rlkit resume`` and ``rlkit eval`` work from any working directory."""
    from rlkit.plugins import SOURCES

    values = {k: list(v) if isinstance(v, tuple) else v for k, v in config.to_dict().items()}
    values.update(absolute_paths(config))
    record: dict[str, Any] = {"algorithm": algo}
    if algo.lower() in SOURCES:  # a plugin: where resume and eval find it again
        record["source"] = SOURCES[algo.lower()]
    text = yaml.safe_dump({**record, "config": values}, sort_keys=False)
    checkpoint.atomic_write(run_dir / CONFIG_NAME, lambda tmp: tmp.write_text(text))


def absolute_paths(config: BaseConfig) -> dict[str, str]:
    """The config's path fields (``metadata={"path": True}``: --model, --data, --prompts
    ...) that name a file or directory here, made absolute; names (``tiny``, a hub id)
    and absolute paths stay as they are."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not f.metadata.get("path") or not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if not path.is_absolute() and path.exists():
            out[f.name] = str(path.resolve())
    return out


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


def free_cores() -> float:
    """Cores this process may use that the machine's load (1-minute average) leaves free."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0.0, (cores or 1) - os.getloadavg()[0])


def thread_warning(threads: int, free: float) -> str | None:
    """A line when ``--torch-threads`` asks for more threads than there are free cores:
    torch's threads then wait on each other and a step gets several times slower."""
    if threads <= 1 or threads <= free + 0.5:
        return None
    return (
        f"--torch-threads {threads} but only {free:.1f} cores are free (the load takes the "
        "rest): threads will wait on each other and steps slow down several times; "
        f"use --torch-threads {max(1, int(free + 0.5))}"
    )


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
        self.windows: dict[str, deque[float]] = {}
        """The last 100 episodes' values per key of `StepResult.episodes` ("return", ...)."""
        self.episodes = 0
        self.next_log = config.log_every
        self.next_eval = config.eval_every
        self.reached_target = False
        self.runtime: Runtime | None = None
        self.pending: dict[str, tuple[float, int]] = {}  # metric (sum, count) since the last row
        self._stop = False
        self.time_before = 0.0
        """Seconds trained before this process (a resumed run's ``time`` continues)."""
        self.t0 = time.perf_counter()

    # -- state -----------------------------------------------------------------
    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "iteration": self.iteration,
            "next_checkpoint": self.next_checkpoint,
            "windows": {k: list(v) for k, v in self.windows.items()},
            "episodes": self.episodes,
            "next_log": self.next_log,
            "next_eval": self.next_eval,
            "pending": dict(self.pending),
            "time": self.elapsed(),
        }

    def _load_trainer_state(self, s: dict[str, Any]) -> None:
        self.step, self.iteration, self.next_checkpoint = (
            s["step"],
            s["iteration"],
            s["next_checkpoint"],
        )
        for key, values in s["windows"].items():
            self.window(key).extend(values)
        self.episodes = s["episodes"]
        self.next_log, self.pending = s["next_log"], dict(s["pending"])
        self.next_eval = s["next_eval"]
        self.time_before = float(s.get("time", 0.0))  # absent in older checkpoints

    def elapsed(self) -> float:
        """Seconds of training, across resumes (the metrics' ``time``)."""
        return self.time_before + time.perf_counter() - self.t0

    def window(self, key: str) -> deque[float]:
        return self.windows.setdefault(key, deque(maxlen=100))

    def recent(self, key: str) -> float:
        """The mean of the last 100 episodes' `key` (nan before any ended)."""
        values = self.windows.get(key)
        return sum(values) / len(values) if values else math.nan

    def save_checkpoint(self) -> None:
        assert self.run_dir is not None
        # the next periodic checkpoint lies after this one (a resume must not save again at once)
        while self.next_checkpoint <= self.step:
            self.next_checkpoint += self.config.checkpoint_every
        checkpoint.remove_stale_temps(self.run_dir)
        files = checkpoint.new_files_dir(self.run_dir, self.step)
        state = {
            "trainer": self._trainer_state(),
            "state": self.built.algorithm.state_dict(files),
        }
        if not any(files.iterdir()):  # no role wrote files: the manifest is everything
            files.rmdir()
        kept = files.name if files.exists() else None
        checkpoint.save(
            self.run_dir / checkpoint.CHECKPOINT, self.algo_cls.name, {**state, "files": kept}
        )
        checkpoint.prune_files(self.run_dir, kept)  # the previous checkpoint's, now superseded

    def _checkpointed_fragments(self) -> dict[str, list[Any]] | None:
        """The fragments' states in the run's checkpoint (for a restarted worker), if any."""
        assert self.run_dir is not None
        path = self.run_dir / checkpoint.CHECKPOINT
        if not path.is_file():
            return None
        return dict(checkpoint.load(path, self.algo_cls.name)["state"]["fragments"])

    # -- loop ------------------------------------------------------------------
    def _open_run_dir(self, resume: bool) -> dict[str, Any] | None:
        """A new run's directory with its config, or a resumed run's checkpoint (None when
        it has nothing left to train; a killed write's files pruned)."""
        if not resume:
            self.run_dir = self.run_dir or new_run_dir(self.algo_cls, self.config)
            save_config(self.run_dir, self.algo_cls.name, self.config)
            return None
        assert self.run_dir is not None
        saved = checkpoint.load(self.run_dir / checkpoint.CHECKPOINT, self.algo_cls.name)
        if self._finished(saved):
            return None
        checkpoint.prune_files(self.run_dir, saved.get("files"))
        return saved

    def run(self, resume: bool = False) -> int:
        """Train to the algorithm's budget (`total_steps`, or what an algorithm on data
        derives from its epochs); returns the exit code (0, or 130 when interrupted)."""
        cfg, algo = self.config, self.built.algorithm
        saved = self._open_run_dir(resume)
        if resume and saved is None:  # nothing to train: the run directory stays as it is
            return 0
        assert self.run_dir is not None
        print(f"run directory: {self.run_dir}", flush=True)
        warning = thread_warning(getattr(cfg, "torch_threads", 1), free_cores())
        if warning:
            print(f"rlkit: warning: {warning}", file=sys.stderr, flush=True)
        print(self.built.placement.table(), flush=True)
        runtime: Runtime = self.built.executor.start(self.built.placement)
        self.runtime = runtime
        runtime.saved_state = self._checkpointed_fragments
        logger: MetricsLogger | None = None
        user_code.INTERRUPT.clear()
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            algo.begin(runtime)
            if saved is not None:
                self._restore(saved)
            logger = MetricsLogger(
                self.run_dir,
                cfg.to_dict(),
                cfg.wandb,
                cfg.wandb_project,
                resume_step=self.step if resume else None,
            )
            self.t0, start_step = time.perf_counter(), self.step
            self._loop(logger)
            self.save_checkpoint()
            algo.export(self.run_dir)
            self._print_throughput(self.step - start_step, time.perf_counter() - self.t0)
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
            if logger is not None:
                logger.close()
            runtime.shutdown()

    def _print_throughput(self, done: int, elapsed: float) -> None:
        unit = self.built.algorithm.unit
        print(
            f"{done:,} {unit} in {elapsed:,.1f}s ({rate_text(done / max(elapsed, 1e-9))} {unit}/s)",
            flush=True,
        )

    def _restore(self, saved: dict[str, Any]) -> None:
        """The algorithm's and the trainer's state from a checkpoint, once the plan runs."""
        algo, path = self.built.algorithm, Path(self.run_dir or ".") / checkpoint.CHECKPOINT
        try:
            algo.load_state_dict(saved["state"])
            self._load_trainer_state(saved["trainer"])
        except (KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError) as e:
            raise CheckpointError(
                f"{path} does not fit this run's layout ({type(e).__name__}: {e}); "
                "it was written by another rlkit version or config"
            ) from None

    def _finished(self, saved: dict[str, Any]) -> bool:
        """Whether the checkpoint `saved` already spent the budget; if so, says so in one
        line with the command that raises it."""
        algo = self.built.algorithm
        trainer = saved.get("trainer")
        step = trainer.get("step", 0) if isinstance(trainer, dict) else 0  # _restore checks it
        budget = algo.budget()
        if step < budget:
            return False
        if self.run_dir is not None and (self.run_dir / CSV_NAME).exists():
            read_rows(self.run_dir / CSV_NAME)  # a corrupt metrics.csv is refused all the same
        print(
            f"rlkit: {self.run_dir} already finished its budget of {budget:,} {algo.unit}; "
            f"raise it with rlkit resume {self.run_dir} --total-steps {2 * max(budget, step)}",
            flush=True,
        )
        return True

    def _loop(self, logger: MetricsLogger) -> None:
        """Driver steps until the budget is spent, Ctrl-C, or --target-return: each one
        checked for divergence, counted, shown, logged, evaluated and checkpointed when due."""
        from rlkit.progress import ProgressReporter

        cfg, algo = self.config, self.built.algorithm
        budget = algo.budget()
        progress = ProgressReporter(budget, self.step, algo.unit, algo.progress_metric)
        try:
            while self.step < budget and not self._stop:
                result = algo.train_step()
                check_finite(result.metrics, self.step + result.steps, cfg)  # diverged?
                self.step += result.steps
                self.iteration += 1
                if result.samples:
                    logger.log_samples(self.step, result.samples)
                for key, values in result.episodes.items():
                    self.window(key).extend(values)
                self.episodes += len(result.episodes.get("return", ()))
                shown = (
                    self.recent("return")
                    if algo.progress_metric == "return"
                    else float(result.metrics.get(algo.progress_metric, math.nan))
                )
                sps = progress.update(self.step, shown)
                for key, value in result.metrics.items():
                    total, count = self.pending.get(key, (0.0, 0))
                    self.pending[key] = (total + float(value), count + 1)
                due = cfg.eval_every and self.step >= self.next_eval
                evaluation = self._evaluate() if due else {}
                if evaluation or not cfg.log_every or self.step >= min(self.next_log, budget):
                    self._log_row(logger, self.elapsed(), sps, evaluation)
                if evaluation.get("eval_return", -math.inf) >= cfg.early_stop():
                    print(
                        f"evaluation return {evaluation['eval_return']:.1f} reached "
                        f"--target-return {cfg.early_stop():g} at step {self.step:,}",
                        flush=True,
                    )
                    self.reached_target = True
                    break
                if self.step >= self.next_checkpoint and self.step < budget:
                    self.save_checkpoint()
        finally:
            progress.close()

    def _evaluate(self) -> dict[str, float]:
        """Deterministic episodes with the current policy, on an env of its own (seeded the
        same way every time, so an evaluation does not disturb training or resume)."""
        algo = self.built.algorithm
        result = evaluation.during_run(algo, self.config.eval_size(), self.config.seed + 2_000_003)
        while self.next_eval <= self.step:
            self.next_eval += self.config.eval_every
        return result

    def _log_row(
        self, logger: MetricsLogger, elapsed: float, sps: float, extra: dict[str, float]
    ) -> None:
        """One metrics row: episode stats now, learner metrics averaged since the last row."""
        means = {k: total / count for k, (total, count) in self.pending.items()}
        episodes = (
            {f"episode_{k}": self.recent(k) for k in ("return", "length", *self.windows)}
            if self.built.algorithm.families
            else {}
        )
        row = {
            "step": self.step,
            "iteration": self.iteration,
            **episodes,
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
        user_code.INTERRUPT.set()  # user code that is running now is not waited for
        print(
            "\nCtrl-C: finishing this iteration and saving a checkpoint (Ctrl-C again to abort)",
            flush=True,
        )
