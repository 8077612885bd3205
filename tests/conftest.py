"""Shared fixtures. Tests run on CPU with one torch thread, headless, offline."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

# tests/vllm run in the vLLM environment (scripts/vllm_venv.sh; its own CI stage): they
# need vllm, which the main environment cannot hold beside its transformers.
collect_ignore = [] if importlib.util.find_spec("vllm") else ["vllm"]


def rlkit_command() -> list[str]:
    """The installed `rlkit` console script beside this interpreter (the real CLI)."""
    script = Path(sys.executable).parent / "rlkit"
    if script.exists():
        return [str(script)]
    found = shutil.which("rlkit")
    return [found] if found else [sys.executable, "-m", "rlkit.cli"]


@pytest.fixture(scope="session")
def rlkit_cmd() -> list[str]:
    return rlkit_command()


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for CLI subprocesses: offline wandb under tmp, headless MuJoCo."""
    env = dict(os.environ)
    env.update(
        MUJOCO_GL="egl",
        WANDB_MODE="offline",
        WANDB_DIR=str(tmp_path / "wandb"),
        WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"),
        PYTHONUNBUFFERED="1",
    )
    return env


TEST_ENVS: dict[str, tuple[str, ...]] = {
    "gymnasium": ("CartPole", "Pendulum"),
    "pettingzoo": ("simple_adversary",),
}
"""Per env family, the small envs a test run of any algorithm of that family may use."""


def _jsonl_args(columns: tuple[str, ...]) -> Callable[[Path], list[str]]:
    """A tiny synthetic dataset for an LLM stage (64 rows of 4-letter words; responses
    are the reversal and a copy) and the flags of a short run of the tiny model on it."""

    def write(directory: Path) -> list[str]:
        import json
        import random

        rng = random.Random(0)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{'-'.join(columns)}.jsonl"
        with open(path, "w") as f:
            for _ in range(64):
                w = "".join(rng.choice("abcdef") for _ in range(4))
                f.write(json.dumps(dict(zip(columns, (w, w[::-1], w), strict=False))) + "\n")
        # --model is the embedded tiny model by default
        return ["--data", str(path), "--eval-fraction", "0.25", "--samples-per-step", "16"]

    return write


DATA_ARGS: dict[str, Callable[[Path], list[str]]] = {
    "sft": _jsonl_args(("prompt", "response")),
    "rm": _jsonl_args(("prompt", "chosen", "rejected")),
    "dpo": _jsonl_args(("prompt", "chosen", "rejected")),
}
"""Algorithms on data (no env family): algorithm name -> a function writing a tiny dataset
(and model) under the directory it is given and returning the `rlkit run` flags for them."""


SORT_REWARD = """
def exact(prompts, completions, answer, **columns):
    return [float(c == a) for c, a in zip(completions, answer)]
"""


def _rl_args(*extra: str) -> Callable[[Path], list[str]]:
    """Tiny prompts for an RL stage (4 digits to sort, the sorted answer in a column), an
    exact-match reward file, and the flags of a short run of the tiny model on them."""

    def write(directory: Path) -> list[str]:
        import json
        import random

        rng = random.Random(0)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "digits.jsonl"
        with open(path, "w") as f:
            for _ in range(64):
                d = "".join(rng.choice("0123456789") for _ in range(4))
                f.write(json.dumps({"prompt": d, "answer": "".join(sorted(d))}) + "\n")
        reward = directory / "sort_reward.py"
        reward.write_text(SORT_REWARD)
        flags = ["--prompts", str(path), "--reward", f"{reward}:exact", "--eval-fraction", "0.25"]
        return [
            *flags,
            "--prompts-per-step",
            "8",
            "--group-size",
            "4",
            "--max-new-tokens",
            "6",
            *extra,
        ]

    return write


DATA_ARGS["grpo"] = _rl_args()
DATA_ARGS["rlhf-ppo"] = _rl_args()


@pytest.fixture
def ctrl_c_in_step() -> Callable[[type, int], type]:
    """`ctrl_c_in_step(algo_cls, k)`: the algorithm, receiving a real SIGINT (Ctrl-C) in its
    k-th driver step (the run under the same name, so that `resume` continues it)."""
    import signal

    def make(algo_cls: type, k: int) -> type:
        class Interrupted(algo_cls):  # type: ignore[misc, valid-type]
            name = algo_cls.name
            steps_done = 0

            def train_step(self) -> Any:
                result = super().train_step()
                self.steps_done += 1
                if self.steps_done == k:
                    signal.raise_signal(signal.SIGINT)
                return result

        return Interrupted

    return make


class BarWatch:
    """What `stop_at_bar` saw: the step of the first logged row at or above the bar."""

    def __init__(self, column: str, bar: float) -> None:
        self.column, self.bar = column, bar
        self.reached_at: int | None = None

    def exit_code(self) -> int:
        """What `Trainer.run` returns: 130 (stopped as Ctrl-C stops) once the bar was
        reached, else 0 (the whole budget spent)."""
        return 130 if self.reached_at is not None else 0


@pytest.fixture
def stop_at_bar(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, float], BarWatch]:
    """`stop_at_bar(column, bar)`: a run in this test stops, as Ctrl-C stops it (the
    iteration finished, a checkpoint saved, exit code 130), right after it logs a metrics
    row whose `column` is >= `bar`. For a learning test whose bar is "reaches X within N
    steps" on a logged training metric (what --target-return does for evaluations): the
    run is the same (same seed, same budget, so the same schedules) up to the row that
    meets the bar, and the steps after it, which cannot change the verdict, are not
    spent. A run that never gets there still spends its whole budget and fails."""
    import signal

    from rlkit.metrics import MetricsLogger

    original = MetricsLogger.log

    def make(column: str, bar: float) -> BarWatch:
        watch = BarWatch(column, bar)

        def log(self: MetricsLogger, row: dict[str, float]) -> None:
            original(self, row)
            value = row.get(column)
            if watch.reached_at is None and value is not None and float(value) >= bar:
                watch.reached_at = int(row["step"])
                signal.raise_signal(signal.SIGINT)

        monkeypatch.setattr(MetricsLogger, "log", log)
        return watch

    return make


def env_for(algo: str) -> str:
    """The first test env of the algorithm's families whose spaces it accepts."""
    from rlkit.algorithms import ALGORITHMS
    from rlkit.envs.families import select
    from rlkit.errors import EnvError

    algo_cls = ALGORITHMS.get(algo)
    tried = []
    for family in algo_cls.families:
        for env in TEST_ENVS.get(family, ()):
            tried.append(env)
            chosen = select(algo_cls.name, algo_cls.families, env)
            env_id = chosen.resolve(env)
            try:
                algo_cls.check_env(env_id, chosen.probe(env_id, {}))
                return env
            except EnvError:
                continue
    raise AssertionError(f"{algo} accepts none of the test envs {tried}: add one to TEST_ENVS")


def what_to_train(algo: str, data_dir: Path) -> list[str]:
    """``--env ENV`` (a test env of its family), or an algorithm on data's tiny dataset
    and model flags (written under `data_dir`)."""
    from rlkit.algorithms import ALGORITHMS

    algo_cls = ALGORITHMS.get(algo)
    if algo_cls.families:
        return ["--env", env_for(algo)]
    if algo_cls.name not in DATA_ARGS:
        raise AssertionError(f"{algo} trains on data: add its test data to DATA_ARGS")
    return DATA_ARGS[algo_cls.name](data_dir)


@pytest.fixture
def train_args(tmp_path: Path) -> Callable[[str], list[str]]:
    """`what_to_train` with the test's own data directory."""
    return lambda algo: what_to_train(algo, tmp_path / "data")


def tiny_args(
    algo: str, total_steps: int = 256, checkpoint_every: int = 128, data_dir: Path | None = None
) -> list[str]:
    """`rlkit run` arguments for a run of seconds, built from the fields the config has, so
    any registered algorithm gets one (an algorithm on data writes its tiny dataset under
    `data_dir`)."""
    import tempfile

    from rlkit.algorithms import ALGORITHMS
    from rlkit.config import offered_fields

    algo_cls = ALGORITHMS.get(algo)
    names = set(offered_fields(algo_cls.config_cls))
    where = data_dir or Path(tempfile.mkdtemp(prefix=f"rlkit-{algo}-"))
    args = ["run", algo, *what_to_train(algo, where)]
    if "total_steps" in names:
        args += ["--total-steps", str(total_steps)]
    args += ["--checkpoint-every", str(checkpoint_every)]
    optional = {
        "num_steps": "64",
        "minibatch_size": "32",
        "learning_starts": "64",
        "batch_size": "32",
        "hidden": "16,16",
        "log_every": "32",
    }
    for name, value in optional.items():
        if name in names:
            args += [f"--{name.replace('_', '-')}", value]
    return args


@pytest.fixture
def tiny_run(tmp_path: Path):
    """Make a finished tiny run of `algo` in tmp_path/runs/NAME (in-process CLI)."""
    from rlkit.cli import main

    def make(algo: str, name: str = "r", *extra: str, total_steps: int = 256) -> Path:
        out = tmp_path / "runs"
        args = tiny_args(algo, total_steps, data_dir=tmp_path / "data")
        code = main([*args, "--out", str(out), "--name", name, *extra])
        assert code == 0
        return out / name

    return make


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (relative path -> bytes), to show nothing changed."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def dir_snapshot():
    return snapshot


@pytest.fixture
def run_args():
    return tiny_args


# -- Ray: one Ray at a time, started once per session (for every test directory) --
# Ray for the dataflow tests: one Ray at a time, started once per session.
#
# `ray_local` is a single-node Ray with 4 logical CPUs (a PPO plan with 2 actors and a
# learner asks for 3). `ray_nodes` is a `ray.cluster_utils.Cluster` of a head and two
# nodes declaring GPU and NPU resources (compute stays on CPU). Asking for one shuts the
# other down first, so module order does not matter; each starts at most once if the
# modules asking for it run together (pytest runs them in file order).
# Ray's files (sockets, logs, the address file that `--address auto` reads) live in a
# private directory, not in the machine-wide /tmp/ray.


RAY_CPUS = 4
GPU_NODE = {"num_cpus": 4, "num_gpus": 2}
NPU_NODE = {"num_cpus": 2, "resources": {"NPU": 2}}


class RayState:
    """Which Ray is up in this test process: None, "local" or "nodes"."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.cluster: Any = None
        self.root = tempfile.mkdtemp(prefix="rlkit-rt-", dir="/tmp")

    def stop(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None
        self.kind = None

    def local(self) -> None:
        import ray

        if self.kind == "local" and ray.is_initialized():
            return
        self.stop()
        # imported here: the sanitizer runs tests/replay with only rlkit.replay staged
        from rlkit.dataflow.ray_executor import init_ray

        init_ray(
            num_cpus=RAY_CPUS,
            include_dashboard=False,
            logging_level="WARNING",
            _temp_dir=os.path.join(self.root, "local"),
        )
        self.kind = "local"

    def nodes(self) -> Any:
        import ray
        from ray.cluster_utils import Cluster

        if self.kind == "nodes" and ray.is_initialized():
            return self.cluster
        self.stop()
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 2, "include_dashboard": False},
        )
        self.cluster.add_node(**GPU_NODE)
        self.cluster.add_node(**NPU_NODE)
        self.cluster.wait_for_nodes()
        from rlkit.dataflow.ray_executor import init_ray

        init_ray(address=self.cluster.address, logging_level="WARNING")
        self.kind = "nodes"
        return self.cluster


@pytest.fixture(scope="session")
def ray_state() -> Iterator[RayState]:
    pytest.importorskip("ray")
    old = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_TMPDIR")}
    state = RayState()
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_TMPDIR"] = state.root  # Cluster writes its address file under here
    yield state
    state.stop()
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(state.root, ignore_errors=True)


@pytest.fixture
def ray_local(ray_state: RayState) -> RayState:
    """A single-node Ray with RAY_CPUS logical CPUs is up in this process."""
    ray_state.local()
    return ray_state


@pytest.fixture
def ray_nodes(ray_state: RayState) -> Any:
    """A three-node Ray (head; GPU node; NPU node) is up; returns the Cluster."""
    return ray_state.nodes()


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`--dist loadgroup`, the default in pyproject.toml), every test
    that needs Ray runs in one worker, so that Ray starts once per session, not once per
    worker; the rest are spread over the workers. The tests on the three-node Ray
    (`ray_nodes`) run after every one on the single-node Ray (`ray_local`): each switch
    between the two shuts one Ray down and starts the other, so this order starts each
    once (their files sit between single-node ones in file order)."""
    for item in items:
        if "ray_state" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("ray"))
    items.sort(key=lambda item: "ray_nodes" in getattr(item, "fixturenames", ()))  # stable
