"""Does a refactor cost anything? The same short CLI runs of every built-in algorithm
with two installs of rlkit (before and after), interleaved, 3 repeats each, on one
machine: the steps/s (or samples/s) each run prints, medians and the after/before ratio.

    python benchmarks/move_cost.py BEFORE/bin/rlkit AFTER/bin/rlkit

(#26's move: before = a44c0fa, after = the move; docs/benchmarks.md.)"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(tempfile.mkdtemp()) / "data"
RUNS = {
    "ppo Humanoid 16k": ["run", "ppo", "--env", "Humanoid", "--total-steps", "16384"],
    "sac Pendulum 2k": ["run", "sac", "--env", "Pendulum", "--total-steps", "2000"],
    "dqn CartPole 10k": ["run", "dqn", "--env", "CartPole", "--total-steps", "10000"],
    "mappo simple_spread 32k": [
        "run", "mappo", "--env", "simple_spread", "--total-steps", "32000",
        "--preset", "simple_spread_fast",
    ],
    "sft 1024": ["run", "sft", "--data", f"{DATA}/sft.jsonl", "--total-steps", "1024"],
    "grpo 512": [
        "run", "grpo", "--prompts", f"{DATA}/prompts.jsonl", "--total-steps", "512",
        "--reward", "rlkit.envs.text.tasks:sorted_exact", "--prompts-per-step", "8",
        "--group-size", "8", "--max-new-tokens", "8",
    ],
}  # fmt: skip
RATE = re.compile(r"in [\d.]+s \(([\d,.]+) (?:steps|samples)/s\)")


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    trees = {"before": sys.argv[1], "after": sys.argv[2]}
    subprocess.run(
        [trees["after"], "data", "example", "all", str(DATA)], check=True, capture_output=True
    )
    rates: dict[tuple[str, str], list[float]] = {}
    for rep in range(3):
        for name, args in RUNS.items():
            for tree, exe in trees.items():
                out = Path(tempfile.mkdtemp())
                run = subprocess.run(
                    [exe, *args, "--device", "cpu", "--out", str(out)],
                    capture_output=True,
                    text=True,
                )
                m = RATE.search(run.stdout)
                if run.returncode or not m:
                    sys.exit(
                        f"{tree} {name}: rc {run.returncode}\n{run.stdout[-500:]}{run.stderr[-1500:]}"
                    )
                rates.setdefault((name, tree), []).append(float(m.group(1).replace(",", "")))
                print(rep, name, tree, rates[(name, tree)][-1], flush=True)
    print("\n| run | before (repeats) | after (repeats) | after / before |\n|---|---|---|---|")
    for name in RUNS:
        b, a = rates[(name, "before")], rates[(name, "after")]
        ratio = statistics.median(a) / statistics.median(b)
        print(
            f"| {name} | {statistics.median(b):,.0f} ({', '.join(f'{x:,.0f}' for x in b)}) | "
            f"{statistics.median(a):,.0f} ({', '.join(f'{x:,.0f}' for x in a)}) | {ratio:.2f} |"
        )


if __name__ == "__main__":
    main()
