"""The text env family (envs/text/family.py): a prompt dataset with its rewards is an
env in the same registry as gymnasium and PettingZoo; the RL stages receive theirs from
it, typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlkit.algorithms import ALGORITHMS
from rlkit.envs.families import Env, families, select
from rlkit.envs.text import tasks
from rlkit.envs.text.family import TextSpec
from rlkit.errors import EnvError
from rlkit.evaluation import Playback
from rlkit.trainer import make_config

REWARD = "rlkit.envs.text.tasks:sorted_exact"


def prompts(tmp_path: Path, n: int = 6) -> Path:
    return tasks.write_jsonl(tmp_path / "prompts.jsonl", tasks.prompts(n, seed=0))


def test_a_prompt_dataset_is_a_text_env_with_its_rows(tmp_path):
    path = prompts(tmp_path)
    env = Env.of("grpo", ("text",), str(path), "")
    assert env.family is families().get("text") and env.id == str(path.resolve())
    assert isinstance(env.spec, TextSpec) and len(env.spec.rows) == 6
    assert env.spec.columns == ["prompt", "answer"]
    assert env.family.short_name(env.id) == "prompts"


def test_other_families_refuse_it_by_name(tmp_path):
    with pytest.raises(EnvError, match="ppo does not train text envs"):
        select("ppo", ("gymnasium",), str(prompts(tmp_path)))
    with pytest.raises(EnvError, match="missing.jsonl: no such file or directory"):
        Env.of("grpo", ("text",), str(tmp_path / "missing.jsonl"), "")


def test_evaluation_plays_one_episode_per_prompt(tmp_path):
    """The right answers get the gold reward 1 each, the prompts echoed back 0."""
    text = families().get("text")
    env_id = text.resolve(str(prompts(tmp_path)))
    seen: list[tuple[int, float, int]] = []
    play = Playback(4, 0, on_episode=lambda i, r, n: seen.append((i, r, n)))
    right = text.evaluate(
        env_id, {"reward": REWARD}, lambda ps: [tasks.answer(p) for p in ps], play
    )
    assert right.returns == [1.0] * 4 and [s[0] for s in seen] == [0, 1, 2, 3]
    echoed = text.evaluate(env_id, {"reward": REWARD}, lambda ps: list(ps), Playback(4, 0))
    assert echoed.returns == [0.0] * 4


def test_the_rl_stages_receive_their_text_env(tmp_path):
    path = prompts(tmp_path)
    for name in ("grpo", "rlhf-ppo"):
        algo = ALGORITHMS.get(name)
        cfg = make_config(algo, "", None, {"prompts": str(path), "reward": (REWARD,)})
        cfg.validate()
        stage = algo.create(cfg)
        assert stage.env.family.name == "text" and len(stage.train) == 6
