"""MAPPO on mpe2 simple_spread (N=3): rlkit MAPPO and IPPO against the recipe PettingZoo
documents for parameter-shared PPO, Stable-Baselines3 PPO over SuperSuit's
`pettingzoo_env_to_vec_env_v1` + `concat_vec_envs_v1`, plus the raw env-stepping bound.

    python -m benchmarks.mappo_mpe                       # 3 x 20k-step throughput, 1M-step runs
    python -m benchmarks.mappo_mpe --long-steps 300000   # shorter learning runs
    python -m benchmarks.mappo_mpe --quick               # smoke run (a banner says so)

The same settings on every side (`HP`): 16 env copies, 25 steps per env per update (400
env steps, 1,200 agent steps), one minibatch, 10 epochs, 64x64 tanh networks, lr 7e-4,
gamma 0.99, lambda 0.95, clip 0.2, entropy 0.01, value weight 1, gradient norm 10. SB3
sees 48 single-agent envs (16 copies x 3 agents) sharing one policy, with its own value
function per agent observation; rlkit MAPPO adds what the paper has (the centralized
critic on the global state, value normalization, LayerNorm, agent ids), IPPO the same with
decentralized critics. Env steps count steps of the parallel env (all agents at once): SB3's
timesteps / 3.

Every contender runs in its own subprocess, one at a time, alternating within each repeat;
throughput is env steps per wall second of the training loop (rlkit: the trainer's clock in
metrics.csv; SB3: `model.learn`). More rlkit rows spread the same 16 copies over two
Ray actors (8 each, `--executor ray --actors 2`: env stepping in two processes), and one
puts an actor and a learner in each of two workers (`--policy ddp --actors 2 --learners 2`:
stepping and learning both split over two processes, still synchronous). Two raw
bounds, the 16 copies stepped with random actions in one process, no policy: through
rlkit's runner, which steps mpe2 envs natively (`envs/mpe_native.py`, bit-identical to the
wrapper), and through PettingZoo's `parallel_env`, as SB3 over SuperSuit steps them; each
contender's last column is its fraction of the bound of its own env path. The learning
runs record the team return (sum over agents, mpe2's reward) over the last 100 episodes.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import median, provenance, quick_banner, reproduce, table, write_section

SECTION = "mappo_mpe"
REPO = Path(__file__).resolve().parent.parent
IMG = REPO / "docs" / "img" / "mappo_mpe.png"
COPIES, STEPS, AGENTS = 16, 25, 3
HP: dict[str, Any] = dict(
    num_envs=COPIES,
    num_steps=STEPS,
    minibatch_size=0,
    epochs=10,
    lr=7e-4,
    gamma=0.99,
    gae_lambda=0.95,
    clip_coef=0.2,
    ent_coef=0.01,
    vf_coef=1.0,
    max_grad_norm=10.0,
    hidden=(64, 64),
    activation="tanh",
    anneal_lr=False,
    torch_threads=1,
    device="cpu",
)
MARKS = (50_000, 100_000, 200_000, 300_000, 500_000, 750_000, 1_000_000)
LEVELS = (-60.0, -50.0, -40.0, -30.0)


# -- workers (each in its own subprocess) -----------------------------------------------------
def worker_rlkit(
    algo: str, steps: int, seed: int, actors: int = 1, overlap: bool = False, ddp: bool = False
) -> dict[str, Any]:
    """`algo` with the 16 env copies in one process, or spread over `actors` Ray actors
    (a private Ray with a logical CPU per actor and one for the learner: the synchronous
    plan never runs them at once; with `overlap`, PPO's ``--overlap``, the actors collect
    the next rollout while the learner updates on this one, so each rollout comes from the
    weights of one update before; with `ddp`, ``--policy ddp``: as many learners as actors,
    actor i and learner i in one process, gradients all-reduced, still synchronous)."""
    from rlkit.algorithms import ALGORITHMS
    from rlkit.trainer import Trainer, make_config

    overrides: dict[str, Any] = {**HP, "total_steps": steps, "seed": seed, "log_every": 5_000}
    overrides["overlap"] = overlap
    ray_dir = None
    if actors > 1:
        from rlkit.dataflow.ray_executor import init_ray

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray_dir = tempfile.mkdtemp(prefix="rlkit-ray-", dir="/tmp")  # short: socket paths
        init_ray(num_cpus=actors + 1, include_dashboard=False, _temp_dir=ray_dir)
        overrides |= {"executor": "ray", "policy": "multi-actor", "actors": actors}
        if ddp:
            overrides |= {"policy": "ddp", "learners": actors}
        overrides["num_envs"] = COPIES // actors
    try:
        with tempfile.TemporaryDirectory(prefix="bench_mappo_") as out:
            cls = ALGORITHMS.get(algo)
            config = make_config(cls, "simple_spread", None, {**overrides, "out": out})
            assert Trainer(cls, config).run() == 0
            with open(next(Path(out).iterdir()) / "metrics.csv") as f:
                rows = list(csv.DictReader(f))
    finally:
        if ray_dir is not None:
            import ray

            ray.shutdown()
            shutil.rmtree(ray_dir, ignore_errors=True)
    curve = [(int(r["step"]), float(r["episode_return"])) for r in rows]
    last = rows[-1]
    return {"sps": int(last["step"]) / float(last["time"]), "curve": curve}


def worker_sb3(steps: int, seed: int, cpus: int = 0) -> dict[str, Any]:
    """SB3 PPO over SuperSuit; with `cpus` > 0, SuperSuit steps the copies in that many
    subprocesses (`concat_vec_envs_v1(num_cpus=...)`), the policy and learner stay here."""
    import numpy as np
    import supersuit as ss
    import torch
    from mpe2 import simple_spread_v3
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    np.random.seed(seed)  # SuperSuit's ConcatVecEnv has no seed(): SB3 cannot seed it
    env = ss.pettingzoo_env_to_vec_env_v1(simple_spread_v3.parallel_env())
    env = ss.concat_vec_envs_v1(env, COPIES, num_cpus=cpus, base_class="stable_baselines3")

    class TeamReturns(BaseCallback):
        """Team returns of finished episodes (a copy's 3 agent slots end together)."""

        def __init__(self) -> None:
            super().__init__()
            self.running = np.zeros(COPIES * AGENTS)
            self.done: list[float] = []
            self.curve: list[tuple[int, float]] = []
            self.next = 5_000

        def _on_step(self) -> bool:
            dones = np.asarray(self.locals["dones"]).astype(bool)
            self.running += self.locals["rewards"]
            ended = dones.reshape(COPIES, AGENTS).all(1)
            self.done += self.running.reshape(COPIES, AGENTS).sum(1)[ended].tolist()
            self.running[dones] = 0.0
            if self.num_timesteps // AGENTS >= self.next and self.done:
                self.curve.append((self.num_timesteps // AGENTS, float(np.mean(self.done[-100:]))))
                self.next += 5_000
            return True

    model = PPO(
        "MlpPolicy",
        env,
        n_steps=STEPS,
        batch_size=STEPS * COPIES * AGENTS,
        n_epochs=HP["epochs"],
        learning_rate=HP["lr"],
        gamma=HP["gamma"],
        gae_lambda=HP["gae_lambda"],
        clip_range=HP["clip_coef"],
        ent_coef=HP["ent_coef"],
        vf_coef=HP["vf_coef"],
        max_grad_norm=HP["max_grad_norm"],
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=nn.Tanh),
        device="cpu",
        verbose=0,
    )
    log = TeamReturns()
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps * AGENTS, callback=log)
    seconds = time.perf_counter() - t0
    env.close()  # SuperSuit's subprocesses (num_cpus > 0) would hold the exit forever
    return {"sps": model.num_timesteps / AGENTS / seconds, "curve": log.curve}


def worker_raw(steps: int, seed: int) -> dict[str, Any]:
    """16 copies of mpe2's `parallel_env` stepped in turn through PettingZoo's parallel API
    with random actions (drawn beforehand): the env's cost as SB3 over SuperSuit pays it."""
    import numpy as np

    from rlkit.envs.parallel_envs import SHORT_NAMES, make_parallel_env

    envs = [make_parallel_env(SHORT_NAMES["simple_spread"], {}) for _ in range(COPIES)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    actions = np.random.default_rng(seed).integers(0, 5, (steps // COPIES, COPIES, AGENTS))
    names = envs[0].possible_agents
    t0 = time.perf_counter()
    for row in actions:
        for env, acts in zip(envs, row, strict=True):
            env.step({a: int(x) for a, x in zip(names, acts, strict=True)})
            if not env.agents:
                env.reset()
    return {"sps": actions.shape[0] * COPIES / (time.perf_counter() - t0), "curve": []}


def worker_raw_native(steps: int, seed: int) -> dict[str, Any]:
    """rlkit's runner over the same 16 copies, stepped natively (`envs/mpe_native.py`)
    with random actions and no policy: the env's cost as rlkit pays it."""
    import numpy as np

    from rlkit.envs.families import families
    from rlkit.envs.parallel_runner import ParallelEnvRunner

    family = families().get("pettingzoo")
    env_id = family.resolve("simple_spread")
    runner = ParallelEnvRunner(env_id, family.probe(env_id, {}), COPIES, seed)
    assert all(env.native is not None for env in runner.envs)
    actions = np.random.default_rng(seed).integers(0, 5, (steps // COPIES, COPIES, AGENTS))
    t0 = time.perf_counter()
    for row in actions:
        runner.step(row)
    return {"sps": actions.shape[0] * COPIES / (time.perf_counter() - t0), "curve": []}


def worker_parts(steps: int, seed: int) -> dict[str, Any]:
    """Where one rlkit MAPPO process spends its time, per env step, each part timed alone
    with the benchmark's settings: the runner stepping the 16 copies natively, the policy
    acting for them, and the learner's update (10 epochs) on a real rollout of 400 steps."""
    import numpy as np
    import torch

    from rlkit.algorithms.mappo import MAPPO
    from rlkit.algorithms.multi_agent_roles import MultiAgentActor, MultiAgentLearner
    from rlkit.envs.families import families
    from rlkit.trainer import make_config

    torch.set_num_threads(1)
    cls = MAPPO
    config: Any = make_config(cls, "simple_spread", None, {**HP, "seed": seed})
    family = families().get("pettingzoo")
    env_id = family.resolve("simple_spread")
    spec = family.probe(env_id, {})
    actor = MultiAgentActor(env_id, spec, config, algorithm=cls)
    learner = MultiAgentLearner(cls, spec, config)
    rollout = actor.collect(STEPS).data
    runner, policy = actor.runner, actor.policy
    updates = max(2, steps // (COPIES * STEPS) // 4)  # a quarter of a run's updates
    t0 = time.perf_counter()
    for _ in range(updates):
        learner.update(rollout)
    update = (time.perf_counter() - t0) / (updates * COPIES * STEPS)
    actions = np.random.default_rng(seed).integers(0, 5, (steps // COPIES, COPIES, AGENTS))
    t0 = time.perf_counter()
    for row in actions:
        runner.step(row)
    env = (time.perf_counter() - t0) / (len(actions) * COPIES)
    obs, state = torch.from_numpy(runner.obs), torch.from_numpy(runner.state)
    t0 = time.perf_counter()
    for _ in range(len(actions)):
        policy.act(obs, state, None, actor.generator)
    act = (time.perf_counter() - t0) / (len(actions) * COPIES)
    parts = {"env": env * 1e6, "act": act * 1e6, "update": update * 1e6}
    return {"sps": 1.0 / (env + act + update), "curve": [], "parts": parts}


# -- driver -------------------------------------------------------------------------------------
def run_one(kind: str, steps: int, seed: int, tmp: Path) -> dict[str, Any]:
    result = tmp / f"{kind}-{seed}-{steps}.json"
    cmd = [sys.executable, "-m", "benchmarks.mappo_mpe", "--worker", kind]
    cmd += ["--steps", str(steps), "--seed", str(seed), "--result", str(result)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{kind} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(result.read_text())


LABELS = {
    "mappo": "rlkit MAPPO",
    "ippo": "rlkit IPPO",
    "mappo-ray2": "rlkit MAPPO, 2 Ray actors x 8 env copies (`--executor ray --actors 2`)",
    "mappo-ray2-overlap": "the same with `--overlap` (each rollout one update stale)",
    "mappo-ray2-ddp": "rlkit MAPPO, 2 Ray workers, each an actor (8 env copies) and a learner "
    "(`--policy ddp --actors 2 --learners 2`)",
    "sb3": "SB3 PPO over SuperSuit (parameter-shared)",
    "sb3-cpus2": "the same with the copies stepped in 2 subprocesses (SuperSuit's `num_cpus=2`)",
}
BOUNDS = {
    "raw-native": "raw env stepping, rlkit's native mpe2 stepper (16 copies, random actions)",
    "raw": "raw env stepping through PettingZoo's `parallel_env` (the same, as SB3 steps it)",
}
PARTS = {
    "env": "the 16 copies stepped natively by rlkit's runner",
    "act": "the policy acting for them (actors and critics, one call per step)",
    "update": "the learner's update: 10 full-batch epochs per 400 env steps",
}


def at(curve: list[list[float]], step: int) -> float:
    """The team return logged last at or before `step` (nan before the first)."""
    before = [r for s, r in curve if s <= step]
    return before[-1] if before else math.nan


def reached(curve: list[list[float]], level: float) -> str:
    hit = next((s for s, r in curve if r >= level), None)
    return f"{int(hit):,}" if hit is not None else "not reached"


def plot(long: dict[str, dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for kind, res in long.items():
        steps, returns = zip(*res["curve"], strict=True) if res["curve"] else ((), ())
        ax.plot(steps, returns, label=LABELS[kind])
    ax.axhline(-23.3, ls="--", c="gray", label="oracle assignment heuristic (-23.3)")
    ax.axhline(-81.6, ls=":", c="gray", label="random policy (-81.6)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("team return, last 100 episodes")
    ax.set_title("simple_spread (N=3), seed 0")
    ax.legend(fontsize=8)
    IMG.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMG, dpi=100, bbox_inches="tight")


def render(
    fast: dict[str, list[dict[str, Any]]],
    long: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    command: str,
    load: tuple[float, float],
) -> str:
    sps = {k: median([r["sps"] for r in v]) for k, v in fast.items()}
    lines = ["## MAPPO on MPE: rlkit MAPPO and IPPO vs SB3 PPO over SuperSuit", ""]
    lines += quick_banner("tiny runs") if args.quick else []
    lines += [
        f"{provenance('benchmarks/mappo_mpe.py', load)}. simple_spread_v3 (N=3, local_ratio "
        f"0.5, max_cycles 25, discrete); {COPIES} env copies x {STEPS} steps per update, one "
        "minibatch, 10 epochs, 64x64 tanh, lr 7e-4 on every side; env steps are parallel-env "
        "steps (SB3's timesteps / 3). One torch thread per process, one contender at a time. The last "
        "column: rlkit rows as a fraction of the native stepper's raw rate, SB3's of the "
        "`parallel_env` raw rate (the env path each one uses).",
        "",
        f"### Throughput: env steps per second ({args.repeats} runs of {args.steps:,} steps)",
        "",
    ]
    native, wrapped = sps["raw-native"], sps["raw"]
    rows = [
        [
            LABELS[k],
            f"{sps[k]:,.0f}",
            " / ".join(f"{r['sps']:,.0f}" for r in fast[k]),
            f"{sps[k] / sps['sb3']:.2f}x",
            f"{sps[k] / (wrapped if k.startswith('sb3') else native):.0%}",
        ]
        for k in LABELS
    ]
    for k, label in BOUNDS.items():
        runs = " / ".join(f"{r['sps']:,.0f}" for r in fast[k])
        rows.append([label, f"{sps[k]:,.0f}", runs, f"{sps[k] / sps['sb3']:.2f}x", "100%"])
    header = ["", "median", "runs", "vs SB3", "of its env's raw rate"]
    lines += [table(header, rows), ""]
    parts = {k: median([r["parts"][k] for r in fast["parts"]]) for k in PARTS}
    bound = 1e6 / sum(parts.values())
    lines += [
        "### One rlkit MAPPO process, part by part (us per env step, each timed alone)",
        "",
        table(
            ["part", "median", "runs"],
            [
                [
                    label,
                    f"{parts[k]:,.0f}",
                    " / ".join(f"{r['parts'][k]:,.0f}" for r in fast["parts"]),
                ]
                for k, label in PARTS.items()
            ]
            + [
                [
                    "sum: the bound of one synchronous process",
                    f"{sum(parts.values()):,.0f} us = {bound:,.0f} env steps/s",
                    f"{bound / sps['sb3']:.2f}x SB3's median",
                ]
            ],
        ),
        "",
    ]
    if long:
        marks = [m for m in MARKS if m <= args.long_steps]
        lines += [
            f"### Team return (last 100 episodes) at equal env steps, seed {args.seed}",
            "",
            table(
                ["env steps", *(LABELS[k] for k in long)],
                [[f"{m:,}", *(f"{at(long[k]['curve'], m):.1f}" for k in long)] for m in marks],
            ),
            "",
            table(
                ["first reached at env step", *(LABELS[k] for k in long)],
                [[f">= {lv:g}", *(reached(long[k]["curve"], lv) for k in long)] for lv in LEVELS],
            ),
            "",
            f"![team return curves](img/{IMG.name})",
            "",
        ]
    elif not args.quick and (kept := previous_learning()):
        lines += [
            "### Learning runs: kept from the last full run",
            "",
            "A throughput-only run (`--long-steps 0`) keeps the learning tables of the last "
            f"run that made them ({kept[0]}; reproduce with `python -m benchmarks.mappo_mpe`). "
            "They still hold: the native stepper gives bit-identical observations and rewards, "
            "so the same seed trains the same policy.",
            "",
            *kept[1:],
            "",
        ]
    lines += reproduce(command)
    return "\n".join(lines)


def previous_learning() -> list[str]:
    """The date line and the learning tables of this section as the document has them now
    (empty when it has none)."""
    from benchmarks.report import DOC

    text = DOC.read_text() if DOC.exists() else ""
    begin, end = f"<!-- {SECTION}:begin -->", f"<!-- {SECTION}:end -->"
    if begin not in text or end not in text:
        return []
    body = text.split(begin, 1)[1].split(end, 1)[0].splitlines()
    start = next((i for i, line in enumerate(body) if line.startswith("### Team return")), None)
    image = next((i for i, line in enumerate(body) if line.startswith("![team return")), None)
    if start is None or image is None:
        return []
    kept = next((line for line in body if line.startswith("A throughput-only run")), "")
    when = kept.split("made them (", 1)[1].split(";", 1)[0] if kept else ""
    if not when:
        written = next((line for line in body if line.startswith("Written by")), "")
        when = "written " + written.split(" on ", 1)[1].split(" (", 1)[0] if written else "?"
    return [when, *body[start : image + 1]]


def main() -> None:
    p = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--worker", default="")
    p.add_argument("--result", default="")
    p.add_argument("--steps", type=int, default=20_000, help="env steps per throughput run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--long-steps", type=int, default=1_000_000, help="0: no learning runs")
    p.add_argument("--long", default="mappo,sb3", help="contenders of the learning runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.worker:
        if args.worker in ("sb3", "sb3-cpus2"):
            result = worker_sb3(args.steps, args.seed, 2 if args.worker == "sb3-cpus2" else 0)
        elif args.worker == "raw":
            result = worker_raw(args.steps, args.seed)
        elif args.worker == "raw-native":
            result = worker_raw_native(args.steps, args.seed)
        elif args.worker == "parts":
            result = worker_parts(args.steps, args.seed)
        else:
            algo, *options = args.worker.split("-")
            ray = next((int(o[3:]) for o in options if o.startswith("ray")), 1)
            overlap, ddp = "overlap" in options, "ddp" in options
            result = worker_rlkit(algo, args.steps, args.seed, ray, overlap, ddp)
        Path(args.result).write_text(json.dumps(result))
        return
    if args.quick:
        args.steps, args.repeats, args.long_steps = 1_200, 1, 2_000
    load0 = os.getloadavg()[0]
    fast: dict[str, list[dict[str, Any]]] = {k: [] for k in (*LABELS, *BOUNDS, "parts")}
    long: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_mappo_") as tmp:
        for rep in range(args.repeats):
            for kind in fast:
                fast[kind].append(run_one(kind, args.steps, args.seed + rep, Path(tmp)))
                print(f"{kind} run {rep + 1}: {fast[kind][-1]['sps']:,.0f} env steps/s", flush=True)
        for kind in filter(None, args.long.split(",") if args.long_steps else []):
            t0 = time.perf_counter()
            long[kind] = run_one(kind, args.long_steps, args.seed, Path(tmp))
            long[kind]["wall_s"] = time.perf_counter() - t0
            print(f"{kind} {args.long_steps:,} steps in {long[kind]['wall_s']:,.0f}s", flush=True)
    if long:
        plot(long)
    command = "python -m benchmarks.mappo_mpe" + " ".join(
        [""] + [a for a in sys.argv[1:] if not a.startswith("--result")]
    )
    write_section(SECTION, render(fast, long, args, command, (load0, os.getloadavg()[0])))


if __name__ == "__main__":
    main()
