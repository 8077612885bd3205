"""The text environment's rewards (envs/text/rewards.py): functions get the samples and
the data's other columns, None counts nothing, several rewards are weighed, the gold one
is kept apart."""

from __future__ import annotations

import pytest
import torch

from rlkit.algorithms.rlhf.grpo import GRPOConfig
from rlkit.envs.text.reward_args import RewardLog, TrainerState, arguments, logged_metrics
from rlkit.envs.text.rewards import (
    RewardScorer,
    absolute,
    call,
    completion_ids,
    load_function,
    reward_names,
    spec_of,
)
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

    b = batch()
    call(fn, "test:fn", arguments(b, completion_ids(b), TrainerState(), RewardLog()), b)
    assert got == [[6], [7, 8], [9, 9, 9]]


def test_conversational_prompts_give_message_completions_and_trl_s_extras():
    """TRL's convention: a conversation's completion is one assistant message (continuing
    a prefilled assistant turn), plain prompts keep strings; trainer_state and the logging
    callbacks are passed, and what is logged lands in the scorer's output."""
    seen: dict = {}

    def fn(prompts, completions, completion_ids, trainer_state, log_metric, log_extra, **cols):
        seen.update(prompts=prompts, completions=completions, state=trainer_state, cols=cols)
        log_metric("mean_len", sum(len(ids) for ids in completion_ids) / len(completion_ids))
        log_extra("is_long", [len(ids) > 1 for ids in completion_ids])
        log_extra("note", ["a", "b", "c"])  # text: not a metric
        return [1.0, None, 0.0]

    chat = [{"role": "user", "content": "hi"}]
    prefilled = [*chat, {"role": "assistant", "content": "The answer: "}]
    b = {**batch(), "prompt": [chat, prefilled, "plain"]}
    kwargs = arguments(b, completion_ids(b), TrainerState(global_step=3, max_steps=9), RewardLog())
    log = kwargs["log_metric"].__self__
    out = call(fn, "test:fn", kwargs, b)
    assert seen["completions"] == [
        [{"role": "assistant", "content": "12"}],
        [{"role": "assistant", "content": "The answer: x"}],
        "abc",
    ]
    assert seen["prompts"] == [chat, prefilled, "plain"] and seen["state"].global_step == 3
    assert seen["cols"] == {"answer": ["1", "1", "b"], "level": ["easy", "skip", "hard"]}
    assert torch.isnan(out[1]) and out[0] == 1.0
    assert logged_metrics(log.fields(3)) == pytest.approx({"mean_len": 2.0, "is_long": 2 / 3})


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


def test_callables_become_specs_a_resume_can_find():
    """An importable function is stored as module:function; a script's own (a closure
    here) is kept for this process, and its name gives the metric column."""
    from rlkit.envs.text import tasks

    assert spec_of(tasks.sorted_exact) == "rlkit.envs.text.tasks:sorted_exact"

    def correct(prompts, completions, **kw):
        return [1.0] * len(completions)

    spec = spec_of(correct)
    assert load_function(spec) is correct
    assert reward_names((spec, "a.py", "m:correct"), True) == [
        "correct",
        "reward",
        "correct_2",
        "model",
    ]
    with pytest.raises(ConfigError, match="move it into a module"):
        load_function("__main__:gone")
