"""The text environment's rewards (envs/text/rewards.py): functions get the samples and
the data's other columns, None counts nothing, several rewards are weighed, the gold one
is kept apart."""

from __future__ import annotations

import pytest
import torch

from rlkit.algorithms.rlhf.grpo import GRPOConfig
from rlkit.envs.text.rewards import RewardScorer, absolute, call, load_function
from rlkit.errors import ConfigError

FUNCTIONS = """
def length(prompts, completions, **columns):
    return [float(len(c)) for c in completions]


def answer_seen(prompts, completions, answer, level, **columns):
    return [None if lv == "skip" else float(a in c) for c, a, lv in zip(completions, answer, level)]


def reward(prompts, completions, completion_ids, **columns):
    return [float(len(ids)) for ids in completion_ids]
"""


def batch() -> dict:
    completions = ["12", "x", "abc"]
    return {
        "completion": completions,
        "prompt": ["p1", "p2", "p3"],
        "columns": [
            {"answer": "1", "level": "easy"},
            {"answer": "1", "level": "skip"},
            {"answer": "b", "level": "hard"},
        ],
        "input_ids": torch.tensor([[5, 6, 0, 0], [5, 7, 8, 0], [5, 9, 9, 9]]),
        "loss_mask": torch.tensor([[0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1]], dtype=torch.bool),
    }


def test_rewards_are_weighed_none_counts_nothing_and_gold_stays_apart(tmp_path):
    f = tmp_path / "rw.py"
    f.write_text(FUNCTIONS)
    specs = (f"{f}:length", f"{f}:answer_seen", str(f))  # the file alone: its `reward`
    cfg = GRPOConfig(reward=specs, reward_weights=(0.5, 2.0, -1.0), gold_reward=f"{f}:length")
    out = RewardScorer(cfg).score(batch())
    lengths, seen, ids = [2.0, 1.0, 3.0], [1.0, float("nan"), 1.0], [1.0, 2.0, 3.0]
    torch.testing.assert_close(out["rewards"], torch.tensor([lengths, seen, ids]).T, equal_nan=True)
    want = [0.5 * a + 2.0 * b - c for a, b, c in zip(lengths, [1.0, 0.0, 1.0], ids, strict=True)]
    torch.testing.assert_close(out["reward"], torch.tensor(want))
    torch.testing.assert_close(out["gold"], torch.tensor(lengths))


def test_reward_functions_get_each_response_s_token_ids():
    got: list[list[int]] = []

    def fn(prompts, completions, completion_ids, **columns):
        got.extend(completion_ids)
        return [0.0] * len(completions)

    call(fn, "test:fn", batch())
    assert got == [[6], [7, 8], [9, 9, 9]]


def test_specs_name_modules_or_files(tmp_path, monkeypatch):
    assert load_function("rlkit.envs.text.tasks:sorted_exact")(["31"], ["13"]) == [1.0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(FUNCTIONS)
    assert absolute("mine.py:length") == f"{tmp_path / 'mine.py'}:length"
    assert absolute("pkg.mod:fn") == "pkg.mod:fn"
    with pytest.raises(ConfigError, match="give module:function"):
        load_function("just_a_name")
    (tmp_path / "broken.py").write_text("import no_such_thing_here\n")
    with pytest.raises(ConfigError, match="importing .*broken.py failed .*ModuleNotFoundError"):
        load_function("broken.py:fn")
