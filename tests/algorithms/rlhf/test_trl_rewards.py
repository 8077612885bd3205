"""A reward file written for TRL runs unchanged under rlkit's grpo and under TRL's own
GRPOTrainer (real TRL, the same tiny model, one step each): plain prompts give string
completions, conversational prompts message lists, both frameworks pass the same keyword
arguments, and `log_metric` lands in the metrics of each (envs/text/reward_args.py)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from rlkit import rlhf
from rlkit.envs.text.rewards import load_function

REWARDS = '''
CALLS = []


def digits(completions, **kwargs):
    """A plain-prompt reward: completions are strings."""
    CALLS.append(("digits", type(completions[0]).__name__, sorted(kwargs)))
    return [float(sum(ch.isdigit() for ch in c)) for c in completions]


def length(completion_ids, **kwargs):
    return [float(len(ids)) for ids in completion_ids]


def chat_digits(prompts, completions, answer, trainer_state, log_metric, **kwargs):
    """A conversational reward: prompts and completions are message lists."""
    texts = [c[0]["content"] for c in completions]
    log_metric("answer_seen", sum(a in t for a, t in zip(answer, texts)) / len(texts))
    CALLS.append(("chat_digits", type(prompts[0]).__name__, trainer_state.global_step))
    return [float(sum(ch.isdigit() for ch in t)) for t in texts]
'''

PROMPTS = ["3142", "9051", "7263", "4830"]


def datasets_of() -> dict[str, list[dict[str, Any]]]:
    plain = [{"prompt": p, "answer": "".join(sorted(p))} for p in PROMPTS]
    chat = [{**r, "prompt": [{"role": "user", "content": r["prompt"]}]} for r in plain]
    return {"plain": plain, "chat": chat}


def run_trl(model: Path, rows: list[dict[str, Any]], rewards: list[Any], out: Path) -> list[dict]:
    """One TRL GRPO step; its log history."""
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=4,
        max_steps=1,
        logging_steps=1,
        beta=0.0,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=str(model),
        reward_funcs=rewards,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
    )
    trainer.train()
    return list(trainer.state.log_history)


def run_rlkit(model: Path, rows: list[dict[str, Any]], rewards: list[Any], out: Path) -> dict:
    """One rlkit GRPO step from Python, the rewards given as callables; its metrics row."""
    import json

    data = out / "prompts.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = rlhf.grpo(
        data,
        model=model,
        reward=rewards,
        prompts_per_step=2,
        group_size=2,
        micro_batch=4,
        max_new_tokens=4,
        total_steps=4,
        out=out,
        name="run",
        device="cpu",
    )
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))[-1]


def tiny_model(directory: Path) -> Path:
    """rlkit's tiny model and its tokenizer (with a chat template) saved as TRL takes them."""
    from rlkit.llm.models import load_model, load_tokenizer

    tok = load_tokenizer("tiny")
    load_model("tiny", "causal", 0, tok.pad_token_id).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def test_a_trl_reward_file_runs_unchanged_in_both(tmp_path):
    model = tiny_model(tmp_path / "model")
    path = tmp_path / "trl_rewards.py"
    path.write_text(REWARDS)
    digits, length, chat = (
        load_function(f"{path}:{n}") for n in ("digits", "length", "chat_digits")
    )
    module = __import__("sys").modules[digits.__module__]
    data = datasets_of()

    row = run_rlkit(model, data["plain"], [digits, length], tmp_path / "rlkit-plain")
    assert {"reward_digits", "reward_length"} <= set(row)
    ours = [c for c in module.CALLS if c[0] == "digits"]
    row = run_rlkit(model, data["chat"], [chat], tmp_path / "rlkit-chat")
    assert 0.0 <= float(row["answer_seen"]) <= 1.0  # log_metric's value, in rlkit's metrics
    assert ("chat_digits", "list", 0) in module.CALLS

    module.CALLS.clear()
    run_trl(model, data["plain"], [digits, length], tmp_path / "trl-plain")
    theirs = [c for c in module.CALLS if c[0] == "digits"]
    history = run_trl(model, data["chat"], [chat], tmp_path / "trl-chat")
    assert any("answer_seen" in h for h in history)
    assert ("chat_digits", "list", 0) in module.CALLS
    # the same keyword arguments in both, completions as strings for plain prompts
    assert ours[0] == theirs[0] == ("digits", "str", ours[0][2])
    assert {"answer", "trainer_state", "log_metric", "log_extra", "prompts"} <= set(ours[0][2])
