"""What a reward function receives: TRL's GRPOTrainer convention, so that a reward file
written for TRL runs here unchanged (and one written here runs under TRL).

Keyword arguments, one entry per sample where it is a list:

    prompts          the prompt as the data holds it: a string, or a list of messages
    completions      the response: a string for plain prompts; for conversational ones a
                     list holding one ``{"role": "assistant", "content": ...}`` message
                     (its content prefixed by the prompt's last message when that one is
                     an assistant turn the model continues)
    completion_ids   the response's token ids
    <column>         every other column of the prompt data (``answer=``, ``tests=`` ...) but
                     a ``completion`` column (the sampled one replaces it, as in TRL)
    trainer_state    `TrainerState`: the step, the budget and the epoch, for shaping by progress
    log_metric       ``log_metric(name, value)``: a scalar, averaged into the step's metrics
    log_extra        ``log_extra(column, values)``: one value per sample; numbers are
                     averaged into the step's metrics under the column's name

The call itself (errors, the return value) is `rewards.call`'s; this module only builds
the arguments, so the two can change apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from rlkit.batch import Batch


@dataclass(frozen=True)
class TrainerState:
    """Progress as a reward function sees it (the fields of TRL's `TrainerState` that
    reward shaping reads). A step is one generate-score-learn round of the RL stage."""

    global_step: int = 0
    """Steps done before this one's samples were drawn."""
    max_steps: int = 0
    """Steps of the budget (0 outside a run, e.g. ``rlkit eval``)."""
    epoch: float = 0.0
    """Passes over the prompts so far (fractional)."""
    samples: int = 0
    """Samples trained on so far (rlkit's unit of --total-steps)."""


@dataclass
class RewardLog:
    """What reward functions logged during one scoring: scalars by name (averaged) and
    per-sample columns (numbers averaged)."""

    metrics: dict[str, list[float]] = field(default_factory=dict)

    def log_metric(self, name: str, value: float) -> None:
        """TRL's ``log_metric``: one scalar for this batch, averaged per logged row."""
        self.metrics.setdefault(str(name), []).append(float(value))

    def log_extra(self, column: str, values: list[Any]) -> None:
        """TRL's ``log_extra``: a column of per-sample values; numbers land in the metrics
        as their mean, other values (text) are not kept."""
        if values and all(isinstance(v, (int, float)) for v in values):
            mean = math.fsum(map(float, values)) / len(values)
            self.metrics.setdefault(str(column), []).append(mean)

    def fields(self, n: int) -> Batch:
        """The logged means as batch fields ``metric/NAME`` ``[n]`` (the value repeated), so
        they travel with the scores through gathers and joins."""
        return {
            f"{METRIC}{k}": torch.full((n,), math.fsum(v) / len(v)) for k, v in self.metrics.items()
        }


METRIC = "metric/"
"""Prefix of the scorer's batch fields that carry what reward functions logged."""


def logged_metrics(scores: Batch) -> dict[str, float]:
    """The metrics reward functions logged (`RewardLog.fields`), by name."""
    return {k[len(METRIC) :]: float(v.mean()) for k, v in scores.items() if k.startswith(METRIC)}


def conversational(prompt: Any) -> bool:
    """Whether a prompt is a conversation (a list of messages), as TRL decides."""
    return isinstance(prompt, list) and all(isinstance(m, dict) and "role" in m for m in prompt)


def completions(prompts: list[Any], texts: list[str]) -> list[Any]:
    """Each response as a reward function gets it: the text for a plain prompt; for a
    conversation one assistant message, continuing the prompt's assistant turn if it ends
    with one (a prefilled answer)."""
    out: list[Any] = []
    for prompt, text in zip(prompts, texts, strict=True):
        if not conversational(prompt):
            out.append(text)
            continue
        last = prompt[-1] if prompt else {}
        start = str(last.get("content", "")) if last.get("role") == "assistant" else ""
        out.append([{"role": "assistant", "content": start + text}])
    return out


NOT_PASSED = ("completion", "completion_ids")
"""Data columns a reward function does not get (TRL's rule: the sampled completion
replaces a prompt/completion dataset's own)."""


def arguments(
    batch: Batch, ids: list[list[int]], state: TrainerState, log: RewardLog
) -> dict[str, Any]:
    """The keyword arguments of every reward function for `batch` (see the module
    docstring); `ids`: each response's token ids."""
    columns: dict[str, list[Any]] = {}
    for row in batch["columns"]:
        for k in row:
            if k not in NOT_PASSED:
                columns.setdefault(k, [])
    for k in columns:
        columns[k] = [row.get(k) for row in batch["columns"]]
    prompts: Any = batch["prompt"]  # lists in the batch (`collate_prompts`), not tensors
    texts: Any = batch["completion"]
    return {
        **columns,
        "prompts": list(prompts),
        "completions": completions(prompts, texts),
        "completion_ids": ids,
        "trainer_state": state,
        "log_metric": log.log_metric,
        "log_extra": log.log_extra,
    }
