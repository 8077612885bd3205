"""DAPO as flags of GRPO through the CLI (algorithms/rlhf/dynamic.py, losses.py, packing.py):
dynamic sampling drops the groups whose rewards are all equal and draws more prompts until
the step is full, so the learner never trains a zero-variance group, and it logs what it
drew; with DAPO's loss, clip-higher, overlong shaping and token-budget micro-batches."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rlkit.cli import main
from rlkit.envs.text import tasks as sort

MIXED = """
def mixed(prompts, completions, **columns):
    # prompts whose answer's digit sum is odd always get 0 (a zero-variance group);
    # the others get the parity of the response's length (groups that usually vary)
    odd = [sum(int(d) for d in a) % 2 for a in columns["answer"]]
    return [0.0 if o else float(len(c) % 2) for o, c in zip(odd, completions)]
"""


def test_dynamic_sampling_never_trains_a_zero_variance_group(tmp_path: Path):
    fn = tmp_path / "mixed.py"
    fn.write_text(MIXED)
    prompts = sort.write_jsonl(tmp_path / "p.jsonl", sort.prompts(64, seed=0))
    flags = ["--prompts", str(prompts), "--reward", f"{fn}:mixed", "--device", "cpu"]
    flags += ["--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "6"]
    flags += ["--total-steps", "16", "--lr", "1e-3", "--checkpoint-every", "1000"]
    flags += ["--dynamic-sampling", "true", "--sampling-rounds", "8", "--loss-type", "dapo"]
    flags += ["--clip-high", "0.28", "--overlong-buffer", "2"]
    flags += ["--max-tokens-per-micro-batch", "64", "--kl-coef", "0"]
    out = tmp_path / "runs"
    assert main(["run", "grpo", *flags, "--out", str(out), "--name", "d"]) == 0
    with open(out / "d" / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    assert len(logged) == 2
    drawn = [float(r["groups_drawn"]) for r in logged]
    assert all(d >= 2 for d in drawn) and sum(drawn) > 4  # it had to draw more
    assert all(float(r["drawn_zero_variance_groups"]) > 0 for r in logged)
    assert all(float(r["zero_variance_groups"]) == 0 for r in logged)
    assert all(float(r["grad_norm"]) > 0 for r in logged)
    rows = [json.loads(line) for line in (out / "d" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 8  # the trained samples, a full step each time
    for start in range(0, len(rows), 4):
        group = rows[start : start + 4]
        assert len({r["prompt"] for r in group}) == 1
        assert len({r["reward"] for r in group}) > 1, group  # never a zero-variance group
