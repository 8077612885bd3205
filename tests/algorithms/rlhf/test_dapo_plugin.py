"""A DAPO-style GRPO variant written as a user would, in one file on the RL-on-prompts
shape (tests/user_algorithms/dapo.py, shown in docs/custom_algorithm.md): its pieces do
what the paper says, and it runs and learns through the CLI as a plugin."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from rlkit.cli import main
from rlkit.envs.text import tasks as sort
from rlkit.plugins import resolve

DAPO_FILE = Path(__file__).resolve().parents[2] / "user_algorithms" / "dapo.py"
DAPO = f"{DAPO_FILE}:DAPO"
SHORTER = """
def shorter(prompts, completions, **columns):
    return [-len(c) / 10 for c in completions]
"""


def test_overlong_shaping_filter_and_clip_higher():
    dapo = resolve(DAPO)
    module = __import__(dapo.__module__, fromlist=["overlong_penalty"])
    cfg = dapo.config_cls()
    cfg.max_new_tokens, cfg.overlong_buffer, cfg.overlong_penalty, cfg.group_size = 8, 4, 1.0, 2
    lengths = torch.tensor([2, 4, 5, 6, 8])
    assert module.overlong_penalty(cfg, lengths).tolist() == [0.0, 0.0, -0.25, -0.5, -1.0]
    assert cfg.clip_bounds() == (0.2, 0.28) and cfg.kl_coef == 0.0
    batch = {
        "reward": torch.tensor([1.0, 1.0, 0.0, 1.0]),  # group 0 all right: nothing to learn
        "response_length": torch.tensor([3, 3, 3, 3]),
        "loss_mask": torch.ones(4, 3),
    }
    out = dapo.advantages(cfg, batch, 0.0)
    assert out["units"].tolist() == [0.0, 0.0, 3.0, 3.0]
    assert out["advantages"][:2].abs().sum() == 0 and out["advantages"][2:].abs().sum() > 0
    assert out["token_weight"][:2].sum() == 0


@pytest.mark.slow
def test_dapo_runs_as_a_plugin_and_learns_short_answers(tmp_path: Path):
    """Reward -len(text)/10 on the tiny model (8 prompts x 8 samples, 8 new tokens at
    most, lr 1e-3, 20 steps, seed 0): the mean response length of the last 5 steps is at
    least 2 tokens below that of the first 5 (measured 6.88 -> 2.24)."""
    fn = tmp_path / "shorter.py"
    fn.write_text(SHORTER)
    prompts = sort.write_jsonl(tmp_path / "digits.jsonl", sort.prompts(64, seed=0))
    args = ["run", DAPO, "--prompts", str(prompts), "--reward", f"{fn}:shorter"]
    args += ["--prompts-per-step", "8", "--group-size", "8", "--max-new-tokens", "8"]
    args += ["--lr", "1e-3", "--total-steps", "1280", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path), "--name", "dapo"]) == 0
    with open(tmp_path / "dapo" / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    assert len(logged) == 20
    lengths = [float(r["response_length"]) for r in logged]
    first, last = sum(lengths[:5]) / 5, sum(lengths[-5:]) / 5
    print(f"response length {first:.2f} -> {last:.2f}")
    assert last <= first - 2, (first, last)
    assert (tmp_path / "dapo" / "model").is_dir()
