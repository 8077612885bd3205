"""A synthetic task with a checkable answer, for the RLHF pipeline example, the tests and a
first run on CPU: sort 4 digits.

    prompt   4 digits, e.g. "3142"            answer  the digits sorted: "1234"

A deliberately biased teacher (`biased_demos`) answers right only some of the time and
otherwise swaps the last two digits, so SFT on it starts RL from a policy with something
to fix; `preferences` pairs the right answer (chosen) with that swap or another wrong
order (rejected), for a reward model. `sorted_exact` is the gold (rule) reward:
``--reward rlkit.algorithms.rlhf.tasks:sorted_exact``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

DIGITS = "0123456789"


def answer(prompt: str) -> str:
    """The right answer to a prompt: its digits sorted."""
    return "".join(sorted(prompt))


def swapped(prompt: str) -> str:
    """The biased teacher's mistake: the sorted digits with the last two swapped."""
    s = answer(prompt)
    return s[:-2] + s[-1] + s[-2]


def prompts(n: int, seed: int, digits: int = 4) -> list[dict[str, str]]:
    """`n` prompts (random digit strings) with their ``answer`` column."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p = "".join(rng.choice(DIGITS) for _ in range(digits))
        out.append({"prompt": p, "answer": answer(p)})
    return out


def biased_demos(n: int, seed: int, correct: float = 0.3) -> list[dict[str, str]]:
    """Demonstrations of a teacher that sorts right with probability `correct` and
    otherwise swaps the last two digits."""
    rng = random.Random(seed + 1)
    return [
        {**row, "response": row["answer"] if rng.random() < correct else swapped(row["prompt"])}
        for row in prompts(n, seed)
    ]


def preferences(n: int, seed: int) -> list[dict[str, str]]:
    """Preference pairs: the sorted digits over a wrong answer, one of three kinds in equal
    parts: the teacher's swap, a shuffle that is not sorted, or sorted digits with one
    changed (so that a reward model must look at which digits the prompt holds)."""
    rng = random.Random(seed + 2)
    rows = []
    for row in prompts(4 * n, seed):
        right = row["answer"]
        kind = rng.randrange(3)
        if kind == 0:
            wrong = swapped(row["prompt"])
        elif kind == 1:
            wrong = _shuffled(right, rng)
        else:
            changed = list(right)
            changed[rng.randrange(len(changed))] = rng.choice(DIGITS)
            wrong = "".join(sorted(changed))
        if wrong != right:
            rows.append({"prompt": row["prompt"], "chosen": right, "rejected": wrong})
        if len(rows) == n:
            break
    return rows


def _shuffled(text: str, rng: random.Random) -> str:
    chars = list(text)
    rng.shuffle(chars)
    return "".join(chars)


def sorted_exact(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
    """1.0 where the completion is the prompt's digits sorted, else 0.0 (the gold reward)."""
    return [float(c == answer(str(p))) for p, c in zip(prompts, completions, strict=True)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path
