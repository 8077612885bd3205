"""PPO on Humanoid-v5: env-steps/s with one process, and with 1..N Ray actors.

    python -m benchmarks.scaling                  # default: 10 updates per actor, 3 repeats
    python -m benchmarks.scaling --quick          # smoke run: 2 updates per actor, 1 repeat
    python -m benchmarks.scaling --actors-max 4   # more actors, on a machine with more cores

Rows: `--executor local` (one process); `--executor ray --policy multi-actor --actors N`
for N = 1..--actors-max; and the same Ray rows with `--overlap` (the actors collect rollout
k+1 while the learner updates on k). Every run trains 10 updates of 2,048 env steps *per
actor* (4 envs x 512 steps each, rlkit's Humanoid preset, as in benchmarks/ppo_humanoid.py),
so the learner's work per env step is the same in every row.

As in benchmarks/ppo_humanoid.py, each run is its own subprocess, one at a time, the rows
alternating within each repeat; throughput is env-steps per wall second of the training
loop only (the Trainer's own clock: `time` and `step` of the last row of metrics.csv);
process wall time is reported too. Per-update phase costs are timed on the driver: waiting
for rollouts (`collect`), the learner's `update`, and the weight sync (`get_weights` +
`set_weights`); `rest` is the remainder of the loop (batching, logging).

Ray: each Ray run starts its own private Ray (in its worker subprocess, before the Trainer,
which then uses it as is) with `max(os.cpu_count(), actors + 1)` logical CPUs. The plan asks
one CPU per actor and one for the learner; the Trainer's own `ray.init` would offer only
`os.cpu_count()` and refuse 2 actors on a 2-core machine. The synchronous plan never runs
actors and learner at once (collect, then update, then sync), so one logical CPU of
oversubscription is what it needs; the overlap plan does run them at once, so its rows with
more busy processes than cores measure contention, not scaling.

The section "scaling" of docs/benchmarks.md is written through `benchmarks.report.write_section`.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks.ppo_humanoid import HP, PER_UPDATE, fmt
from benchmarks.report import median, provenance, quick_banner, reproduce, table, write_section

SECTION = "scaling"
DEFAULT_UPDATES, QUICK_UPDATES = 10, 2
REPO = Path(__file__).resolve().parent.parent
PHASES = ("collect", "update", "weights", "rest")


def ray_cpus(actors: int) -> int:
    return max(os.cpu_count() or 1, actors + 1)


# -- worker (runs in its own subprocess) -------------------------------------------------------
def _instrument(group: Any, spent: dict[str, float]) -> None:
    """Add the driver's wall time in each role method called through `group` to `spent`
    (for `call_async`, the submission plus the later `wait()`)."""
    for name in ("call", "one", "call_async"):
        original = getattr(group, name)

        def timed(method: str, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            result = _original(method, *args, **kwargs)
            spent[method] += time.perf_counter() - t0
            wait = getattr(result, "wait", None)
            if wait is not None:

                def timed_wait(_wait: Any = wait, _method: str = method) -> Any:
                    t1 = time.perf_counter()
                    out = _wait()
                    spent[_method] += time.perf_counter() - t1
                    return out

                result.wait = timed_wait
            return result

        setattr(group, name, timed)


def worker(executor: str, actors: int, overlap: bool, updates: int, seed: int) -> dict[str, Any]:
    import torch

    from rlkit.algorithms import PPO
    from rlkit.trainer import Trainer, make_config

    torch.set_num_threads(1)
    ray_dir = None
    if executor == "ray":  # a private Ray with room for the plan (see the module docstring)
        from rlkit.dataflow.ray_executor import init_ray

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray_dir = tempfile.mkdtemp(prefix="rlkit-ray-", dir="/tmp")  # short: socket paths
        init_ray(
            num_cpus=ray_cpus(actors),
            include_dashboard=False,
            logging_level=logging.WARNING,
            _temp_dir=ray_dir,
        )
    try:
        with tempfile.TemporaryDirectory(prefix="bench_scaling_") as out:
            overrides: dict[str, Any] = {
                "total_steps": updates * PER_UPDATE * actors,
                "out": out,
                "name": "run",
                "seed": seed,
                "torch_threads": 1,
                "executor": executor,
            }
            if executor == "ray":
                overrides |= {"policy": "multi-actor", "actors": actors, "overlap": overlap}
            cfg = make_config(PPO, "Humanoid", None, overrides)
            for (
                key,
                value,
            ) in HP.items():  # the preset must still be what benchmarks/ppo_humanoid.py uses
                assert getattr(cfg, key) == value, (
                    f"rlkit preset changed: {key}={getattr(cfg, key)!r}"
                )
            trainer = Trainer(PPO, cfg)
            algorithm = trainer.built.algorithm
            spent: dict[str, float] = defaultdict(float)
            done: dict[str, float] = defaultdict(float)  # `spent` at the end of the last update
            train_step, started = algorithm.train_step, [False]

            def timed_train_step() -> Any:
                if not started[
                    0
                ]:  # the first update: the runtime is up, time its groups from here on
                    started[0] = True
                    for fragment in ("actor", "learner"):
                        _instrument(algorithm.runtime[fragment], spent)
                result = train_step()
                done.update(
                    spent
                )  # not the final checkpoint's wait for an --overlap rollout in flight
                return result

            algorithm.train_step = timed_train_step  # type: ignore[method-assign]
            code = trainer.run()
            assert code == 0, f"rlkit run exited with {code}"
            with open(Path(out) / "run" / "metrics.csv") as f:
                rows = list(csv.DictReader(f))
    finally:
        if ray_dir is not None:
            import ray

            ray.shutdown()
            shutil.rmtree(ray_dir, ignore_errors=True)
    last = rows[-1]
    steps, loop_s, n = int(last["step"]), float(last["time"]), int(last["iteration"])
    phases = {
        "collect": done["collect"],
        "update": done["update"],
        "weights": done["get_weights"] + done["set_weights"],
    }
    phases["rest"] = loop_s - sum(phases.values())
    return {
        "steps": steps,
        "loop_s": loop_s,
        "sps": steps / loop_s,
        "return": float(last["episode_return"]),
        "phase_ms": {k: 1000 * v / n for k, v in phases.items()},
    }


# -- driver ------------------------------------------------------------------------------------
def run_one(kind: str, actors: int, updates: int, seed: int, tmp: Path) -> dict[str, Any]:
    result = tmp / f"{kind}-{actors}-{seed}.json"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.scaling",
        "--worker",
        kind,
        "--actors",
        str(actors),
        "--updates",
        str(updates),
        "--seed",
        str(seed),
        "--result",
        str(result),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        sys.exit(
            f"{kind} x{actors} failed (exit {proc.returncode}):\n{proc.stderr.decode(errors='replace')[-3000:]}"
        )
    out: dict[str, Any] = json.loads(result.read_text())
    out["process_s"] = time.perf_counter() - t0
    return out


def contenders(actors_max: int) -> list[tuple[str, int]]:
    rows = [("local", 1)]
    for n in range(1, actors_max + 1):
        rows += [("ray", n), ("overlap", n)]
    return rows


LABELS = {
    "local": "`--executor local`",
    "ray": "`--executor ray --policy multi-actor`",
    "overlap": "`--executor ray --policy multi-actor --overlap`",
}


def render(
    results: dict[tuple[str, int], list[dict[str, Any]]],
    updates: int,
    repeats: int,
    quick: bool,
    command: str,
    load: tuple[float, float],
) -> tuple[str, list[str]]:
    sps = {k: median([r["sps"] for r in v]) for k, v in results.items()}
    phase = {
        k: {p: median([r["phase_ms"][p] for r in v]) for p in PHASES} for k, v in results.items()
    }
    cores = os.cpu_count() or 1
    rows = []
    for (kind, n), runs in results.items():
        eff = sps[(kind, n)] / (n * sps[(kind, 1)]) if kind != "local" else 1.0
        rows.append(
            [
                LABELS[kind],
                n,
                ray_cpus(n) if kind != "local" else "-",
                fmt(sps[(kind, n)]),
                " / ".join(fmt(r["sps"]) for r in runs),
                f"{sps[(kind, n)] / sps[('local', 1)]:.2f}x",
                f"{eff:.2f}" if kind != "local" else "-",
                " / ".join(f"{phase[(kind, n)][p]:.0f}" for p in PHASES),
                f"{median([r['process_s'] for r in runs]):.1f}",
                fmt(median([r["return"] for r in runs])),
            ]
        )
    overhead = 1 - sps[("ray", 1)] / sps[("local", 1)]
    findings = [
        f"Ray overhead at 1 actor (synchronous) = 1 - ray1/local = {overhead:.1%}; target <= 15%: "
        f"{'met' if overhead <= 0.15 else 'not met'}."
    ]
    for kind in ("ray", "overlap"):
        for n in range(2, max(k[1] for k in results) + 1):
            eff = sps[(kind, n)] / (n * sps[(kind, 1)])
            findings.append(
                f"Scaling efficiency, {kind}, {n} actors = sps({n}) / ({n} x sps(1)) = {eff:.2f}; "
                f"target >= 0.8: {'met' if eff >= 0.8 else 'not met'}"
                + (
                    f" (oversubscribed: {n + 1} busy processes on {cores} cores)."
                    if kind == "overlap" and n + 1 > cores
                    else "."
                )
            )
    ph = phase[("ray", 1)]
    c = ph["collect"] / sum(ph.values())  # Amdahl: only collection is split across the actors
    bounds = ", ".join(
        f"{1 / (c / n + 1 - c) / n:.2f} at {n}" for n in range(2, max(k[1] for k in results) + 1)
    )
    findings.append(
        f"At 1 actor, collection is {c:.0%} of the synchronous loop; the rest (update, weight "
        f"sync, logging) is serial and grows with the batch, so by Amdahl's law the synchronous "
        f"plan's efficiency is at most {bounds} actors, on enough cores."
    )
    lines = ["## PPO on Humanoid-v5: scaling with Ray actors", ""]
    if quick:
        lines += quick_banner("one repeat of a few PPO updates on a shared machine")
    lines += [
        provenance("benchmarks/scaling.py", load, f"Ray {version('ray')}")
        + f". Each run trains {updates} PPO updates of "
        f"{PER_UPDATE:,} env steps per actor (rlkit's Humanoid preset: 4 envs x 512 steps per actor, "
        "minibatch 64, 10 epochs; so the learner's work per env step is the same in every row); "
        f"{repeats} repeat(s); runs one at a time, each in its own subprocess, alternating the rows within "
        "each repeat. Throughput is env-steps per wall second of the training loop (the Trainer's clock, "
        "start-up and end-of-run artifacts excluded), median of the repeats, the repeats beside it. "
        "Efficiency is sps(N) / (N x sps(1)) within the same schedule. Phases are the driver's wall time "
        "per update, in ms: waiting for rollouts / learner update / weight sync / the rest of the loop "
        "(under `--overlap` the weight push queues behind the rollout in flight on each actor, so the "
        "weights column includes the part of collection k+1 that the update did not hide).",
        "",
        table(
            [
                "plan",
                "actors",
                "Ray logical CPUs",
                "steps/s (median)",
                "repeats",
                "vs local",
                "efficiency",
                "collect / update / weights / rest (ms per update)",
                "process wall s",
                "return",
            ],
            rows,
        ),
        "",
        *[f"- {f}" for f in findings],
        "",
        f"Each Ray run starts its own private Ray with max(cores, actors + 1) logical CPUs, because the plan "
        f"asks one CPU per actor plus one for the learner, and a Ray with only the {cores} cores would "
        "refuse the plan's placement when actors + 1 exceeds them. The synchronous plan never runs actors "
        "and learner at once (collect, then update, then weight sync), so one logical CPU of "
        "oversubscription is exactly what it needs, not contention. The overlap plan runs them at once "
        "(rollout k+1 is collected with weights one version stale while the learner updates on k), so its "
        "rows with more than cores - 1 actors share the cores and measure contention, not scaling; "
        "it is the plan that can use more cores.",
        "",
        *reproduce(command),
    ]
    return "\n".join(lines), findings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m benchmarks.scaling",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_UPDATES} updates per actor, 1 repeat",
    )
    p.add_argument("--updates", type=int, help=f"PPO updates per run (default {DEFAULT_UPDATES})")
    p.add_argument("--repeats", type=int, help="repeats of each row (default 3)")
    p.add_argument("--actors-max", type=int, default=2, help="Ray rows for 1..N actors (default 2)")
    p.add_argument("--worker", choices=list(LABELS), help=argparse.SUPPRESS)
    p.add_argument("--actors", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    updates = a.updates or (QUICK_UPDATES if a.quick else DEFAULT_UPDATES)

    if a.worker:
        executor = "local" if a.worker == "local" else "ray"
        out = worker(executor, a.actors, a.worker == "overlap", updates, a.seed)
        a.result.write_text(json.dumps(out))
        return 0

    repeats = a.repeats or (1 if a.quick else 3)
    command = "python -m benchmarks.scaling" + (" --quick" if a.quick else "")
    for flag, value in (("--updates", a.updates), ("--repeats", a.repeats)):
        command += f" {flag} {value}" if value else ""
    command += f" --actors-max {a.actors_max}" if a.actors_max != 2 else ""
    print(
        f"Ray runs start a private Ray with max({os.cpu_count()} cores, actors + 1) logical CPUs: the "
        "synchronous plan never runs actors and learner at once, so one logical CPU of oversubscription "
        "is what it needs; overlap rows with actors + 1 > cores are truly oversubscribed.",
        flush=True,
    )
    results: dict[tuple[str, int], list[dict[str, Any]]] = {k: [] for k in contenders(a.actors_max)}
    t_start, load_start = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as d:
        for rep in range(repeats):
            for kind, n in results:
                r = run_one(kind, n, updates, rep, Path(d))
                results[(kind, n)].append(r)
                ph = " / ".join(f"{r['phase_ms'][q]:.0f}" for q in PHASES)
                print(
                    f"[{rep + 1}/{repeats}] {kind:<7} x{n} {r['sps']:,.0f} steps/s ({r['steps']:,} steps in "
                    f"{r['loop_s']:.1f}s; collect/update/weights/rest {ph} ms per update; process "
                    f"{r['process_s']:.1f}s; load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    body, findings = render(
        results, updates, repeats, a.quick, command, (load_start, os.getloadavg()[0])
    )
    write_section(SECTION, body)
    print("\n".join(findings))
    print(
        f"benchmark took {time.perf_counter() - t_start:,.0f}s; wrote section {SECTION!r} of docs/benchmarks.md"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
