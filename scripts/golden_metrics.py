"""Golden metrics: short fixed-seed runs of every built-in algorithm, their metric rows
written to one JSON file, so that a refactor can show it changed no number.

    python scripts/golden_metrics.py OUT.json            # run them all (a few minutes)
    python scripts/golden_metrics.py --compare A.json B.json

Each run is a few hundred steps (or samples) through the real CLI, in a scratch
directory, with explicit learning rates (so the comparison does not depend on presets).
Wall-clock columns (``time``, ``sps`` and the like) are dropped: everything else must be
equal to the last digit between two trees for a move that only moves code.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path

SORT = "rlkit.envs.text.tasks"
RUNS: dict[str, list[str]] = {
    "ppo": ["run", "ppo", "--env", "CartPole", "--total-steps", "2048"],
    "dqn": ["run", "dqn", "--env", "CartPole", "--total-steps", "1500", "--log-every", "250"],
    "sac": ["run", "sac", "--env", "Pendulum", "--total-steps", "600", "--log-every", "100"],
    "mappo": ["run", "mappo", "--env", "simple_spread", "--total-steps", "3200", "--preset", "simple_spread_fast"],
    "sft": ["run", "sft", "--data", "{data}/sft.jsonl", "--total-steps", "256", "--lr", "3e-3"],
    "dpo": ["run", "dpo", "--data", "{data}/prefs.jsonl", "--total-steps", "256", "--lr", "3e-4"],
    "grpo": [
        "run", "grpo", "--prompts", "{data}/prompts.jsonl", "--reward", f"{SORT}:sorted_exact",
        "--total-steps", "256", "--prompts-per-step", "8", "--group-size", "4",
        "--max-new-tokens", "6", "--lr", "1e-3", "--lr-schedule", "linear", "--kl-coef", "0.04",
    ],
    "rlhf-ppo": [
        "run", "rlhf-ppo", "--prompts", "{data}/prompts.jsonl", "--reward", f"{SORT}:sorted_exact",
        "--total-steps", "256", "--prompts-per-step", "8", "--group-size", "4",
        "--max-new-tokens", "6", "--lr", "1e-3", "--lr-schedule", "linear", "--kl-coef", "0.04",
        "--critic-lr", "1e-5",
    ],
}  # fmt: skip
WALL_CLOCK = ("time", "sps")


def rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return [
            {k: v for k, v in r.items() if not any(w in k for w in WALL_CLOCK)}
            for r in csv.DictReader(f)
        ]


def record(out: Path) -> None:
    from rlkit.cli import main
    from rlkit.envs.text import tasks

    results: dict[str, list[dict[str, str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        tasks.write_jsonl(data / "sft.jsonl", tasks.biased_demos(4000, seed=1))
        tasks.write_jsonl(data / "prefs.jsonl", tasks.preferences(2000, seed=4))
        tasks.write_jsonl(data / "prompts.jsonl", tasks.prompts(2000, seed=2))
        for algo, argv in RUNS.items():
            args = [a.replace("{data}", str(data)) for a in argv]
            code = main([*args, "--out", str(Path(tmp) / "runs"), "--name", algo])
            if code != 0:
                sys.exit(f"{algo}: exit {code}")
            results[algo] = rows(Path(tmp) / "runs" / algo)
    out.write_text(json.dumps(results, indent=1))
    print(f"{out}: {', '.join(f'{a} {len(r)} rows' for a, r in results.items())}")


def compare(a: Path, b: Path) -> int:
    left, right = json.loads(a.read_text()), json.loads(b.read_text())
    differ = 0
    for algo in sorted(set(left) | set(right)):
        if left.get(algo) != right.get(algo):
            differ += 1
            print(f"{algo}: the rows differ")
        else:
            print(f"{algo}: {len(left[algo])} rows identical")
    return 1 if differ else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    record(Path(sys.argv[1]))
