"""Synthetic LLM tasks with a checkable gold answer, and how to judge a model on them
with plain transformers (independent of the stages' own evaluation code).

    reversal     prompt: a 4-letter word over "abcdef"; response: the word reversed.
                 Chance of a right greedy answer: 1 in 1296.
    letter count preference pairs of 6-letter strings over "abcd": the one with more
                 letters "a" is preferred (the gold reward is the count).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from rlkit.envs.text.tasks import greedy_exact_match, write_jsonl

WORDS = ["".join(p) for p in itertools.product("abcdef", repeat=4)]


def words(seed: int = 0) -> list[str]:
    """Every 4-letter word over "abcdef", in a seeded order (split it for train/held out)."""
    out = list(WORDS)
    random.Random(seed).shuffle(out)
    return out


def reversal_rows(ws: list[str], copy_every: int = 0) -> list[dict[str, str]]:
    """Demonstrations; with `copy_every` k, every k-th response is the word copied instead."""
    return [
        {"prompt": w, "response": w if copy_every and i % copy_every == 0 else w[::-1]}
        for i, w in enumerate(ws)
    ]


def count_pairs(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Preference pairs whose gold reward is the number of letters "a"."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    while len(rows) < n:
        a, b = ("".join(rng.choice("abcd") for _ in range(6)) for _ in range(2))
        if a.count("a") == b.count("a"):
            continue
        chosen, rejected = (a, b) if a.count("a") > b.count("a") else (b, a)
        rows.append(
            {
                "prompt": "".join(rng.choice("abcd") for _ in range(3)),
                "chosen": chosen,
                "rejected": rejected,
            }
        )
    return rows


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The prompt as the stages format it (the tiny tokenizer's chat template)."""
    from rlkit.envs.text.data import Format
    from rlkit.envs.text.data import prompt_ids as ids

    return ids(Format(tokenizer), prompt)


@torch.no_grad()
def response_logps(model_dir: Path, rows: list[dict[str, str]]) -> torch.Tensor:
    """log p(chosen) and log p(rejected) ``[N, 2]`` under the exported model (plain
    transformers), each response formatted as the stages format it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlkit.envs.text.data import Format, pairs

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    data = pairs(rows, Format(tok), "prompt", "chosen", "rejected")
    out = torch.zeros(len(rows), 2)
    for i in range(len(rows)):
        for j, response in enumerate((data.chosen[i], data.rejected[i])):
            ids = torch.tensor([data.prompt[i] + response])
            logits = model(ids).logits[0, :-1].log_softmax(-1)
            targets = ids[0, 1:]
            lp = logits.gather(-1, targets[:, None])[:, 0]
            out[i, j] = lp[len(data.prompt[i]) - 1 :].sum()
    return out


@pytest.fixture
def llm_run(tmp_path: Path) -> Callable[..., Path]:
    """`llm_run(stage, name, data, *flags)`: a finished `rlkit run` of a stage on the tiny
    model (in-process CLI), its run directory."""
    from rlkit.cli import main

    def run(stage: str, name: str, data: Path, *flags: str) -> Path:
        out = tmp_path / "runs"
        args = ["run", stage, "--data", str(data), "--device", "cpu", "--out", str(out)]
        assert main([*args, "--name", name, *flags]) == 0
        return out / name

    return run


BIASED_SORT_SFT = ["--total-steps", "4800", "--micro-batch", "32"]
"""The SFT flags of the biased sort start (on `tasks.biased_demos(4000, seed=1)`): a budget
and a micro-batch (speed), no tuning flag: the tiny preset's learning rate, 3e-3, applies."""


@pytest.fixture(scope="session")
def biased_sort_sft(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of the tiny model SFT'd on a sort teacher right 30% of the time
    (rlkit.envs.text.tasks.biased_demos(4000, seed=1), BIASED_SORT_SFT): the start the GRPO
    and PPO-LLM learning tests both train from. Trained once per session: under
    pytest-xdist the workers share it through the session's common temp dir, the first
    one to ask training it while the others wait on a file lock. The tests only read it
    (--model RUN_DIR)."""
    import fcntl
    import os

    from rlkit.cli import main
    from rlkit.envs.text import tasks as sort

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # <basetemp>/popen-gwN -> the session's, shared by the workers
    where = root / "biased-sort-sft"
    run, done = where / "runs" / "sft", where / "done"
    with open(root / "biased-sort-sft.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            demos = sort.write_jsonl(where / "demos.jsonl", sort.biased_demos(4000, seed=1))
            args = ["run", "sft", "--data", str(demos), "--device", "cpu"]
            args += ["--out", str(run.parent), "--name", run.name, *BIASED_SORT_SFT]
            assert main(args) == 0
            done.write_text("trained\n")
    return run


@pytest.fixture
def tasks() -> Any:
    """The task helpers of this module (fixtures reach test files; imports of a conftest
    do not)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        words=words,
        write_jsonl=write_jsonl,
        reversal_rows=reversal_rows,
        count_pairs=count_pairs,
        prompt_ids=prompt_ids,
        greedy_accuracy=greedy_exact_match,
        response_logps=response_logps,
    )
