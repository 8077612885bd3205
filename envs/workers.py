"""WorkerVectorEnv: `num_envs` environments stepped by `workers` processes, each owning a
contiguous slice, exchanging observations, rewards and actions through shared memory.

Gymnasium's AsyncVectorEnv runs one process per env, so every step costs one pipe round
trip per env (about 80 us here) and, with more envs than cores, context switches. Here a
step costs one short message per worker; the arrays never pass through a pipe. The
interface is what rlkit's EnvRunner uses of a gymnasium vector env: `reset`, `step`
(SAME_STEP autoreset, ``info["final_obs"]``), `call`, `close`, `num_envs`, the spaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit.errors import EnvError

EnvFn = Callable[[], gym.Env]
Step = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]


class _Arrays:
    """Named numpy arrays over one shared-memory block."""

    def __init__(
        self, specs: dict[str, tuple[tuple[int, ...], Any]], name: str | None = None
    ) -> None:
        sizes = {k: int(np.prod(shape)) * np.dtype(dt).itemsize for k, (shape, dt) in specs.items()}
        total = sum(-(-s // 64) * 64 for s in sizes.values())  # each array 64-byte aligned
        self.shm = SharedMemory(name=name, create=name is None, size=max(total, 1))
        self.arrays: dict[str, np.ndarray] = {}
        offset = 0
        for k, (shape, dt) in specs.items():
            self.arrays[k] = np.ndarray(shape, dt, buffer=self.shm.buf, offset=offset)
            offset += -(-sizes[k] // 64) * 64

    def close(self, unlink: bool) -> None:
        self.arrays.clear()
        self.shm.close()
        if unlink:
            self.shm.unlink()


_PR_SET_PDEATHSIG = 1
PARENT_CHECK_S = 1.0
"""How often an idle worker checks that the process that started it is still alive."""


def _die_with_parent(parent: int, main_thread: bool) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (when the parent forked it
    from its main thread: the signal follows the forking *thread*), and exit now if the
    parent is already gone. Elsewhere the idle loop's `getppid` check does the job."""
    if main_thread and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


def _next_command(conn: Connection, parent: int) -> Any:
    """The parent's next message; None once the parent has died (pipe closed, or this
    process re-parented), so an orphaned worker never lives on."""
    while not conn.poll(PARENT_CHECK_S):
        if os.getppid() != parent:
            return None
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


def _worker(
    fns: Sequence[EnvFn],
    lo: int,
    specs: dict[str, Any],
    shm_name: str,
    conn: Connection,
    parent: int,
    main_thread: bool,
    inherited: Sequence[Connection],
) -> None:
    _die_with_parent(parent, main_thread)
    for c in inherited:  # other workers' pipe ends: holding them would hide the parent's death
        c.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the trainer
    shared = _Arrays(specs, shm_name)
    a = shared.arrays
    envs = [fn() for fn in fns]
    hi = lo + len(envs)
    try:
        while True:
            message = _next_command(conn, parent)
            if message is None:
                break
            cmd, arg = message
            if cmd == "step":
                for i, env in enumerate(envs, lo):
                    obs, reward, term, trunc, _ = env.step(a["action"][i])
                    a["reward"][i], a["terminated"][i], a["truncated"][i] = reward, term, trunc
                    if term or trunc:
                        a["final_obs"][i] = obs
                        obs, _ = env.reset()
                    a["obs"][i] = obs
                conn.send(("ok", None))
            elif cmd == "reset":
                for i, env in enumerate(envs, lo):
                    a["obs"][i], _ = env.reset(seed=None if arg is None else arg + i)
                a["terminated"][lo:hi] = a["truncated"][lo:hi] = False
                conn.send(("ok", None))
            elif cmd == "call":
                name, args = arg
                conn.send(("ok", [getattr(env, name)(*args) for env in envs]))
            elif cmd == "close":
                conn.send(("ok", None))
                break
    except Exception as e:  # report, don't hang the trainer
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
    finally:
        for env in envs:
            env.close()
        shared.close(unlink=False)


class WorkerVectorEnv:
    def __init__(self, env_fns: Sequence[EnvFn], workers: int = 2) -> None:
        if not env_fns:
            raise EnvError("a vector env needs at least one environment")
        probe = env_fns[0]()
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        probe.close()
        self.num_envs = n = len(env_fns)
        obs_shape = self.single_observation_space.shape or ()
        act = self.single_action_space
        self.specs: dict[str, tuple[tuple[int, ...], Any]] = {
            "obs": ((n, *obs_shape), self.single_observation_space.dtype),
            "final_obs": ((n, *obs_shape), self.single_observation_space.dtype),
            "action": ((n, *(act.shape or ())), act.dtype),
            "reward": ((n,), np.float64),
            "terminated": ((n,), np.bool_),
            "truncated": ((n,), np.bool_),
        }
        self.shared = _Arrays(self.specs)
        ctx = mp.get_context("fork")
        bounds = np.linspace(0, n, min(workers, n) + 1).astype(int)
        self.groups = [
            slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        """The env slice of each worker; `step_async` / `step_wait` address one of them."""
        self.conns: list[Connection] = []
        self.procs = []
        me, main = os.getpid(), threading.current_thread() is threading.main_thread()
        for sl in self.groups:
            parent, child = ctx.Pipe()
            inherited = [*self.conns, parent]
            args = (
                env_fns[sl],
                sl.start,
                self.specs,
                self.shared.shm.name,
                child,
                me,
                main,
                inherited,
            )
            p = ctx.Process(target=_worker, args=args, daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)
        self.closed = False

    @staticmethod
    def _recv(conn: Connection) -> Any:
        try:
            status, value = conn.recv()
        except EOFError:
            raise EnvError("an environment worker process died; see its error above") from None
        if status == "error":
            raise EnvError(f"an environment worker failed: {value}")
        return value

    def _all(self, cmd: str, arg: Any = None) -> list[Any]:
        for c in self.conns:
            c.send((cmd, arg))
        return [self._recv(c) for c in self.conns]

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        self._all("reset", seed)
        return self.shared.arrays["obs"].copy(), {}

    def step_async(self, group: int, actions: np.ndarray) -> None:
        """Start stepping the envs of `group` (one worker) with that slice's `actions`."""
        self.shared.arrays["action"][self.groups[group]] = actions
        self.conns[group].send(("step", None))

    def step_wait(self, group: int) -> Step:
        """Finish the step of `group`; the arrays cover that group's envs only."""
        self._recv(self.conns[group])
        a, sl = self.shared.arrays, self.groups[group]
        term, trunc = a["terminated"][sl].copy(), a["truncated"][sl].copy()
        info: dict[str, Any] = {}
        if (term | trunc).any():
            info["final_obs"] = a["final_obs"][sl].copy()
        return a["obs"][sl].copy(), a["reward"][sl].copy(), term, trunc, info

    def step(self, actions: np.ndarray) -> Step:
        for g, sl in enumerate(self.groups):
            self.step_async(g, actions[sl])
        for g in range(len(self.groups)):
            self._recv(self.conns[g])
        a = self.shared.arrays
        term, trunc = a["terminated"].copy(), a["truncated"].copy()
        info: dict[str, Any] = {}
        if (term | trunc).any():
            info["final_obs"] = a["final_obs"].copy()
        return a["obs"].copy(), a["reward"].copy(), term, trunc, info

    def call(self, name: str, *args: Any) -> tuple[Any, ...]:
        return tuple(x for part in self._all("call", (name, args)) for x in part)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(EnvError, BrokenPipeError, OSError):
            self._all("close")
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
        self.shared.close(unlink=True)
