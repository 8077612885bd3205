"""The sample table: what a step's rollouts were, for a person to read.

An algorithm on prompts returns, with each step, one row per sample
(`StepResult.samples`): prompt, response, reward and each reward source's, gold,
length, staleness (policy versions the sample lags the learner; 0 when synchronous),
truncated. The trainer appends them to ``RUN_DIR/samples.jsonl`` (one JSON object a line,
``step`` first), to TensorBoard as a text table (tag ``samples``) and to W&B as a table;
``rlkit samples RUN [--step N]`` prints a step's table. A resume drops the rows written
after the checkpoint it resumes, as the metrics CSV does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlkit.checkpoint import atomic_write
from rlkit.errors import ConfigError

SAMPLES_NAME = "samples.jsonl"
COLUMNS = ("prompt", "response", "reward", "rewards", "gold", "length", "staleness", "truncated")
"""The table's columns, in order (``step`` comes first)."""


def append(run_dir: Path, step: int, rows: Sequence[dict[str, Any]]) -> None:
    """Append a step's rows to the run's table."""
    with open(Path(run_dir) / SAMPLES_NAME, "a") as f:
        for row in rows:
            f.write(json.dumps({"step": step, **row}) + "\n")


def keep_until(run_dir: Path, step: int) -> None:
    """Drop the rows of steps after `step` (a resume from its checkpoint), atomically; a
    last line a kill cut short is dropped too."""
    path = Path(run_dir) / SAMPLES_NAME
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines(keepends=True):
        if line.endswith("\n") and json.loads(line)["step"] <= step:
            kept.append(line)
    atomic_write(path, lambda tmp: tmp.write_text("".join(kept)))


def read(run_dir: Path, step: int | None = None) -> tuple[int, list[dict[str, Any]]]:
    """The rows of `step` (None: the last step written) and that step; a run without a
    table, or a step it has no rows for, refused naming what there is."""
    path = Path(run_dir) / SAMPLES_NAME
    if not Path(run_dir).is_dir():
        raise ConfigError(f"rlkit samples: no run directory at {run_dir}")
    if not path.exists():
        raise ConfigError(
            f"rlkit samples: {run_dir} has no {SAMPLES_NAME} (only RL stages on prompts "
            "write one: rlkit run grpo ...)"
        )
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps = sorted({r["step"] for r in rows})
    if not steps:
        raise ConfigError(f"rlkit samples: {path} holds no rows yet")
    chosen = steps[-1] if step is None else step
    if chosen not in steps:
        raise ConfigError(
            f"rlkit samples: --step {step} has no rows; steps written: "
            f"{steps[0]}..{steps[-1]} ({len(steps)} steps, e.g. --step {steps[-1]})"
        )
    return chosen, [r for r in rows if r["step"] == chosen]


def cell(value: Any, width: int = 0) -> str:
    """A value as table text: floats to 4 digits, dicts as k=v, newlines shown as ⏎."""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, dict):
        text = " ".join(f"{k}={cell(v)}" for k, v in value.items())
    else:
        text = "" if value is None else str(value)
    text = text.replace("\n", "⏎")
    return text[: width - 1] + "…" if width and len(text) > width else text


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a markdown table (TensorBoard's text plugin renders it)."""
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    body = (
        "| " + " | ".join(cell(r.get(c)).replace("|", "\\|") for c in COLUMNS) + " |" for r in rows
    )
    return head + "\n".join(body)


def text(step: int, rows: Sequence[dict[str, Any]], width: int = 40) -> str:
    """The rows as a plain table for a terminal (long prompts and responses cut)."""
    table = [list(COLUMNS)] + [[cell(r.get(c), width) for c in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in table]
    return f"step {step}: {len(rows)} samples\n" + "\n".join(line.rstrip() for line in lines)
