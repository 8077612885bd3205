"""The RLHF pipeline end to end on CPU: SFT, then a reward model, then PPO, on a synthetic
task with a checkable answer (sort 4 digits), with the embedded tiny model.

    python examples/rlhf_pipeline.py [--out DIR] [--smoke]    (DIR: runs/rlhf-pipeline)

The SFT teacher is deliberately biased (right 30% of the time, otherwise it swaps the
last two digits), so the SFT model has something left to fix. The reward model learns
from preference pairs (the sorted answer over a wrong one) and PPO optimizes it, with the
exact-match rule logged as the gold reward beside the learned one. The three stages are
the Python API's three lines (`rlkit.rlhf`): each returns its run directory, and the
next stage takes it. About a minute on 2 CPU cores; ``--smoke`` runs each stage for a
few steps only (about 20 seconds: a check that the pipeline runs, not that it learns).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from rlkit import rlhf
from rlkit.envs.text import tasks
from rlkit.errors import RLKitError

GOLD = "rlkit.envs.text.tasks:sorted_exact"


def write_data(directory: Path) -> tuple[Path, Path, Path]:
    demos = tasks.write_jsonl(directory / "demos.jsonl", tasks.biased_demos(4000, seed=1))
    prefs = tasks.write_jsonl(directory / "prefs.jsonl", tasks.preferences(4000, seed=4))
    prompts = tasks.write_jsonl(directory / "prompts.jsonl", tasks.prompts(2000, seed=2))
    return demos, prefs, prompts


def gold(run: Path) -> tuple[float, float]:
    """The gold reward of the first step's samples and of the best 5-step window."""
    with open(run / "metrics.csv") as f:
        values = [float(r["gold_reward"]) for r in csv.DictReader(f)]
    size = min(5, len(values))
    best = max(sum(values[i : i + size]) / size for i in range(len(values) - size + 1))
    return values[0], best


def main() -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--out",
        default=str(Path("runs") / "rlhf-pipeline"),
        help="directory of the data and the three run directories (default: %(default)s)",
    )
    parser.add_argument("--smoke", action="store_true", help="a few steps per stage")
    args = parser.parse_args()
    out = Path(args.out)
    demos, prefs, prompts = write_data(out / "rlhf-data")
    scale = 0.02 if args.smoke else 1.0
    common = {"out": out, "device": "cpu", "micro_batch": 32}

    sft = rlhf.sft(
        demos, total_steps=int(4800 * scale) or 32, lr=3e-3, samples_per_step=32, **common
    )
    rm = rlhf.reward_model(
        prefs,
        model=sft,
        total_steps=int(8000 * scale) or 32,
        lr=1e-3,
        samples_per_step=32,
        **common,
    )
    ppo = rlhf.ppo(
        prompts,
        model=sft,
        reward_model=rm,
        gold_reward=GOLD,
        kl_coef=0.1,
        lr=1e-4,
        critic_lr=1e-3,
        lr_schedule="constant",
        prompts_per_step=64,
        max_new_tokens=8,
        total_steps=max(128, int(2560 * scale)),
        **{**common, "micro_batch": 64},
    )
    start, best = gold(ppo)
    print(f"wrote the data to {demos.parent} and the runs to {out}:")
    print(f"sft: {sft}\nrm:  {rm}\nppo: {ppo}")
    print(
        f"gold reward (exact sorts) of PPO's samples: {start:.3f} at the start, {best:.3f} at its best"
    )


def cli() -> int:
    """`main` with the CLI's manners: bad input (a bad --out, a stage that refuses) is one
    line on stderr and exit 2; Ctrl-C stops with 130 (each finished stage's run stays)."""
    try:
        main()
    except RLKitError as e:
        print("rlhf_pipeline: error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    except OSError as e:  # the data files: --out unwritable, or under a file
        print(f"rlhf_pipeline: error: --out: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nrlhf_pipeline: aborted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli())
