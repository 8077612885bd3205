"""`--prompts`: the prompts an RL stage generates from, with the dataset's other columns.

Each row's prompt column is formatted as training formatted it (`data.prompt_ids`: the
chat template's assistant turn opened when the tokenizer has one) and cut to its last
``--max-length`` tokens. The other columns (a reference answer, a test case) stay with
the prompt and reach the reward functions as keyword arguments.

A step's prompts as a batch (`collate_prompts`), ``P`` prompts of at most ``L`` tokens:

    prompt_ids   [P, L] int64   the prompt's ids, right padded
    prompt_mask  [P, L] bool    True on real tokens
    prompt       list[P]        the prompt as written in the data (text or messages)
    columns      list[P]        the row's other columns (a dict per prompt)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from rlkit.batch import Batch
from rlkit.envs.text.data import Format, Rows, _text, prompt_ids
from rlkit.errors import ConfigError


@dataclass
class Prompts:
    """Prompts as token ids, with their rows."""

    ids: list[list[int]] = field(default_factory=list)
    prompt: list[Any] = field(default_factory=list)
    """The prompt column of each row (text or chat messages)."""
    columns: list[dict[str, Any]] = field(default_factory=list)
    """The other columns of each row."""
    cut: int = 0
    """Prompts longer than --max-length, cut to their last tokens."""

    def __len__(self) -> int:
        return len(self.ids)


def prompts(rows: Rows, fmt: Format, column: str) -> Prompts:
    """The prompts of `rows` (column `column`), formatted by `fmt`."""
    out = Prompts()
    for number, row in enumerate(rows, 1):
        text = _text(row, column, fmt.where, number, "prompt")
        ids = prompt_ids(fmt, text)
        if not ids:
            raise ConfigError(f"{fmt.where} row {number}: column {column!r} is empty")
        if len(ids) > fmt.max_length:
            ids, out.cut = ids[-fmt.max_length :], out.cut + 1
        out.ids.append(ids)
        out.prompt.append(text)
        out.columns.append({k: v for k, v in row.items() if k != column})
    return out


def collate_prompts(data: Prompts, idx: torch.Tensor, pad_id: int) -> Batch:
    """Prompts `idx` of `data` as a batch (see the module docstring)."""
    rows = idx.tolist()
    ids = [data.ids[i] for i in rows]
    length = max(len(r) for r in ids)
    out = torch.full((len(rows), length), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, r in enumerate(ids):
        out[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = True
    batch: dict[str, Any] = {
        "prompt_ids": out,
        "prompt_mask": mask,
        "prompt": [data.prompt[i] for i in rows],
        "columns": [data.columns[i] for i in rows],
    }
    return batch
