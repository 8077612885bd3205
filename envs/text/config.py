"""The config groups of the text environment family (`rlkit.config.Group`): where the
rows come from and how they become tokens; for RL on prompts, the prompts and their
rewards. An LLM algorithm composes the ones it needs (`docs/concepts.md`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlkit.config import PATH, Group
from rlkit.limits import FINITE, NON_NEGATIVE


@dataclass
class TextFields(Group):
    """How a dataset's rows become token sequences, and the passes over them."""

    section = "data"

    data_split: str = "train"
    """Split of a datasets directory or name to train on."""
    eval_fraction: float = 0.0
    """Fraction of the training rows held out for evaluation when no held-out file is given
    (0: none)."""
    prompt_column: str = "prompt"
    """Column of the prompt (text, or chat messages)."""
    chat_template: Literal["auto", "on", "off"] = "auto"
    """Render texts with the tokenizer's chat template: auto (chat data always, plain text
    when the tokenizer has a template), on (always; an error without one), off (never)."""
    max_length: int = 512
    """Tokens per example at most (prompt and response together)."""
    truncation_side: Literal["right", "left"] = "right"
    """Where an over-long example is cut: right (the response's end) or left (the prompt's start)."""
    shuffle: bool = True
    """Draw each epoch's examples in a fresh order (from the seed)."""
    epochs: int = 1
    """Passes over the training split (the budget, unless --total-steps is given)."""


@dataclass
class DataFields(Group):
    """A dataset of examples to train on (SFT, reward model, DPO)."""

    section = "data"

    data: str = field(default="", metadata=PATH)
    """Training data: a .jsonl/.json, .parquet or .csv file, a datasets save_to_disk
    directory, or a name datasets.load_dataset takes."""
    eval_data: str = field(default="", metadata=PATH)
    """Held-out data (same format as --data); empty: --eval-fraction of --data."""


@dataclass
class PromptFields(Group):
    """The text environment of RL on prompts: prompts, and the rewards of a response."""

    section = "environment"

    prompts: str = field(default="", metadata=PATH)
    """Prompts: a .jsonl/.json, .parquet or .csv file, a datasets directory or name; its
    other columns reach the reward functions."""
    eval_prompts: str = field(default="", metadata=PATH)
    """Held-out prompts for --eval-every (same format); empty: --eval-fraction of --prompts."""
    reward: tuple[str, ...] = field(default=(), metadata={"metavar": "MODULE:FUNCTION,..."})
    """Rule rewards, comma separated: module:function or path.py[:function], called with
    prompts, completions, completion_ids and the data's other columns; one float or None each."""
    reward_model: str = field(default="", metadata=PATH)
    """A learned reward: an rm run directory or a Hugging Face one-label classifier."""
    reward_weights: tuple[float, ...] = field(default=(), metadata={"range": FINITE})
    """Weight of each reward (the --reward functions, then --reward-model); empty: all 1."""
    gold_reward: str = ""
    """A rule function logged as gold_reward and never trained on (over-optimization shows)."""
    reward_timeout: float = field(default=300.0, metadata={"range": NON_NEGATIVE})
    """Seconds a call of a --reward or --gold-reward function may take before the run stops
    with a message naming it (0: no limit)."""
