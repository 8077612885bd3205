"""The template of the LLM stages on data (SFT, reward model, DPO): a driver that owns
the dataset and feeds token batches to data-parallel learners.

Logical graph::

    driver --batches(scatter)--> learner xK        (one optimizer step per step)
    driver --held_out(scatter)--> learner xK       (periodic evaluation: sums back)
    learner <--gradients(allreduce)--> learner

The budget is counted in samples (``unit = "samples"``): ``--epochs`` passes over the
training split, or ``--total-steps`` samples when given. One vocabulary for batch sizes:
``--samples-per-step`` samples make one optimizer step, split over ``--learners``, each
learner's share in micro-batches of ``--micro-batch``; the gradient accumulation is
derived (samples_per_step / (micro_batch x learners)), so it is never a third free number.

A stage supplies the model head it trains, how rows become examples and batches
(`examples`, `collate`), its loss and its evaluation sums (`loss`, `units`, `eval_sums`,
`eval_metrics`), each in one short file (`sft.py`, `reward_model.py`, `dpo.py`).
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import torch

from rlkit import checkpoint
from rlkit.algorithms.base import Algorithm, StepResult
from rlkit.algorithms.rlhf.batches import EpochSampler
from rlkit.algorithms.rlhf.roles import LLMLearner, export_dir
from rlkit.batch import Batch
from rlkit.config import BaseConfig, Group, check
from rlkit.dataflow.collectives import GRADIENTS
from rlkit.dataflow.graph import Fragment, LogicalGraph, Pattern, Resources, from_driver
from rlkit.envs.text.config import DataFields, TextFields
from rlkit.envs.text.data import Format, read_rows
from rlkit.errors import ConfigError
from rlkit.limits import STEPS_MAX, Range
from rlkit.llm import fsdp
from rlkit.llm.config import LoRAFields, ModelFields, ShardFields
from rlkit.llm.models import check_model, load_tokenizer, model_preset, positions

L = TypeVar("L", bound=LLMLearner)
"""A learner class (`LLMAlgorithm.restored`)."""


@dataclass
class OptimFields(Group):
    """The learner's optimizer and its micro-batches."""

    section = "optimization"

    lr: float = 2e-5
    """AdamW learning rate."""
    lr_schedule: Literal["constant", "linear", "cosine"] = "linear"
    """Decay of the learning rate over the run (after the warm-up)."""
    warmup_steps: int = 0
    """Optimizer steps of linear learning-rate warm-up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm (0 disables)."""
    micro_batch: int = 8
    """Samples per forward/backward pass on one learner; the gradient accumulation is
    samples per optimizer step / (micro_batch x learners) and must be a whole number."""


@dataclass
class LLMBase(OptimFields, TextFields, ModelFields, BaseConfig, ABC):
    """Fields of every LLM algorithm (on data, or RL on prompts): the model, how text
    becomes tokens, the optimizer, and a budget counted in samples."""

    total_steps: int = field(default=0, metadata={"range": Range(low=0, high=STEPS_MAX)})
    """Samples to train for; 0: --epochs passes over the training split."""
    checkpoint_every: int = 50_000
    """Save a checkpoint every this many samples (and at the end)."""
    log_every: int = 0
    """Write a metrics row every this many samples; 0 means every optimizer step."""
    eval_every: int = 0
    """Evaluate on the held-out split every this many samples (0: never; rlkit eval any time)."""

    @abstractmethod
    def update_samples(self) -> int:
        """Samples per optimizer step (over all learners)."""

    def accumulation(self) -> int:
        """Micro-batches per learner per optimizer step."""
        return self.update_samples() // (self.micro_batch * self.learners)


@dataclass
class LLMConfig(ShardFields, LoRAFields, DataFields, LLMBase):
    """Fields of every LLM stage on data."""

    samples_per_step: int = 32
    """Samples per optimizer step, over all learners."""

    def validate(self) -> None:
        super().validate()
        per_pass = self.micro_batch * self.learners
        check(
            self.samples_per_step % per_pass == 0,
            "samples_per_step",
            f"{self.samples_per_step} is not a multiple of --micro-batch {self.micro_batch} x "
            f"--learners {self.learners} = {per_pass}, so the gradient accumulation "
            f"(samples_per_step / (micro_batch x learners)) is no whole number; use "
            f"--samples-per-step {max(per_pass, self.samples_per_step // per_pass * per_pass)}"
            " or another --micro-batch",
        )
        check(not self.fsdp or self.learners > 1, "fsdp", "shards over --learners 2 or more")
        check(not (self.fsdp and self.lora_rank), "fsdp", "does not combine with --lora-rank")

    def update_samples(self) -> int:
        return self.samples_per_step


BATCHES = from_driver("batches", "learner", Pattern.SCATTER, LLMLearner.update)
"""A step's samples, split across the learners; each takes one optimizer step."""
HELD_OUT = from_driver("held_out", "learner", Pattern.SCATTER, LLMLearner.evaluate)
"""The held-out split, split across the learners; each returns its sums."""


class LLMAlgorithm(Algorithm):
    """What every LLM algorithm shares (on data, `LLMStage`; RL on prompts, `RLStage`):
    a tokenizer, a training split and a held-out one read from the config's sources, a
    seeded epoch sampler, a learner fragment, and the exported model."""

    extras: ClassVar[tuple[str, ...]] = ("rlhf",)
    unit: ClassVar[str] = "samples"
    head: ClassVar[str] = "causal"
    """The model head trained: causal (a language model) or reward (one scalar per text)."""
    data_flags: ClassVar[tuple[str, str]] = ("--data", "--eval-data")
    """The flags of the training rows and of the held-out ones (the RL stages: prompts)."""
    config: LLMBase

    def __init__(self, config: BaseConfig) -> None:
        super().__init__(config)
        cfg = self.config
        if not self.sources()[0]:
            # no command in the message: `rlkit run`, `rlkit plan` and `rlkit.rlhf` get here
            raise ConfigError(f"{self.name}: {self.data_flags[0]} is required (a .jsonl file, ...)")
        check_model(cfg.model, self.head if self.head == "causal" else "any")
        self.check_budget()
        self.tokenizer = load_tokenizer(cfg.model)
        self.train, self.held_out = self.load_splits()
        self.check_positions(positions(cfg.model))
        if self.held_out is not None and len(self.held_out) < cfg.learners:
            raise ConfigError(
                f"the held-out split has {len(self.held_out)} examples, fewer than "
                f"--learners {cfg.learners}; hold out more (--eval-fraction, "
                f"{self.data_flags[1]})"
            )
        self.sampler = EpochSampler(len(self.train), cfg.seed, cfg.shuffle)

    @classmethod
    def default_preset(cls, env: str, overrides: dict[str, Any]) -> str:
        """The model family's preset (`models.model_preset`): the embedded tiny model,
        randomly initialized, needs learning rates far above a pretrained model's."""
        default = cls.config_cls()
        assert isinstance(default, LLMBase)
        return model_preset(str(overrides.get("model", default.model)))

    def check_budget(self) -> None:
        """ConfigError for settings under which the stage cannot learn (checked before
        the data is read: GRPO's group of one sample)."""

    def check_positions(self, limit: int | None) -> None:
        """ConfigError when an example may be longer than the model's `limit` positions
        (None: unknown): a stage on data, --max-length."""
        cfg = self.config
        if limit is not None and cfg.max_length > limit:
            raise ConfigError(
                f"--max-length {cfg.max_length}: the model {cfg.model} has {limit} token "
                f"positions; use --max-length {limit} or less"
            )

    @abstractmethod
    def sources(self) -> tuple[str, str]:
        """Where the training rows and the held-out rows come from ("": none held out)."""

    @abstractmethod
    def updates(self) -> int:
        """Optimizer steps in the budget."""

    def training_rows(self) -> list[dict[str, Any]]:
        """The rows of the training source (`sources()`), its ``--data-split``."""
        return read_rows(self.sources()[0], self.config.data_split, self.data_flags[0])

    # -- what a stage supplies -----------------------------------------------------------
    @abstractmethod
    def examples(self, rows: list[dict[str, Any]], fmt: Format) -> Any:
        """Rows as the stage's examples (`data.Sequences`, `data.Pairs`)."""

    @abstractmethod
    def collate(self, data: Any, idx: torch.Tensor) -> Batch:
        """Examples `idx` of `data` as a batch (`batches.collate_*`)."""

    @staticmethod
    @abstractmethod
    def loss(config: Any, model: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss summed over the micro-batch's units and the sums of what to log
        (the learner divides both by the step's units)."""

    @staticmethod
    @abstractmethod
    def units(batch: Batch) -> torch.Tensor:
        """What the loss is a mean over, counted in `batch` (0-d): tokens, or pairs."""

    # -- data ----------------------------------------------------------------------------
    def format(self, where: str) -> Format:
        cfg = self.config
        return Format(self.tokenizer, cfg.chat_template, cfg.max_length, cfg.truncation_side, where)

    def load_splits(self) -> tuple[Any, Any]:
        """The training split and the held-out one (None without one)."""
        cfg = self.config
        data, eval_data = self.sources()
        rows = self.training_rows()
        if eval_data:
            held = read_rows(eval_data, cfg.data_split, self.data_flags[1])
            return self.examples(rows, self.format(data)), self.examples(
                held, self.format(eval_data)
            )
        n_held = int(len(rows) * cfg.eval_fraction)
        if cfg.eval_fraction and not 0 < n_held < len(rows):
            raise ConfigError(
                f"--eval-fraction {cfg.eval_fraction}: holds out {n_held} of the {len(rows)} rows "
                f"of {data}; it must leave at least one on each side"
            )
        order = (
            np.random.default_rng(cfg.seed).permutation(len(rows)) if n_held else range(len(rows))
        )
        train = [rows[i] for i in order[n_held:]]
        held = [rows[i] for i in order[:n_held]]
        fmt = self.format(data)
        return self.examples(train, fmt), (self.examples(held, fmt) if held else None)

    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def learner_fragment(self) -> Fragment:
        cfg = self.config
        kwargs = {
            "algorithm": type(self),
            "config": cfg,
            "pad_token_id": self.pad_id(),
            "total_updates": self.updates(),
        }
        return Fragment(
            "learner", LLMLearner, kwargs, Resources.for_device(cfg.device), replicas=cfg.learners
        )

    def driver_state(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_driver_state(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])

    def export(self, run_dir: Path) -> None:
        """``RUN_DIR/model``: the model (`save_pretrained`) and its tokenizer, written
        beside it and swapped in (`checkpoint.replace_dir`), so that a loadable ``model/``
        stands at every instant, even when the export is killed."""
        tmp, target = export_dir(run_dir)
        for stale in [*Path(run_dir).glob(".model.tmp-*"), *Path(run_dir).glob(".model.old-*")]:
            shutil.rmtree(stale, ignore_errors=True)  # of an export that was killed
        self.runtime.group("learner", LLMLearner).call(LLMLearner.export, tmp)
        self.tokenizer.save_pretrained(tmp)
        share_weights(run_dir, tmp)
        checkpoint.replace_dir(tmp, target)

    # -- evaluation: what the service (rlkit.evaluation) asks -------------------
    def eval_batch(self, split: str) -> Batch | None:
        """The whole ``held_out`` or ``train`` split as one batch (None: nothing held out)."""
        data = self.held_out if split == "held_out" else self.train
        return None if data is None else self.collate(data, torch.arange(len(data)))

    def restored(self, role: type[L], state: dict[str, Any]) -> L:
        """A learner of class `role` in this process, with the checkpoint's learner state."""
        learner = role(type(self), self.config, self.pad_id(), self.updates())
        restore(learner, state["fragments"]["learner"])
        return learner


class LLMStage(LLMAlgorithm):
    """Template of a stage on data: see the module docstring for what a stage supplies."""

    progress_metric = "loss"
    config_cls: ClassVar[type[BaseConfig]] = LLMConfig
    config: LLMConfig

    def sources(self) -> tuple[str, str]:
        return self.config.data, self.config.eval_data

    @staticmethod
    @abstractmethod
    def eval_sums(config: Any, model: Any, batch: Batch) -> dict[str, torch.Tensor]:
        """Held-out sums of one micro-batch (0-d tensors; added over micro-batches and learners)."""

    @staticmethod
    @abstractmethod
    def eval_metrics(sums: dict[str, float]) -> dict[str, float]:
        """The ``eval_*`` metrics from the held-out sums."""

    # -- the algorithm -------------------------------------------------------------------
    def budget(self) -> int:
        return self.config.total_steps or self.config.epochs * len(self.train)

    def updates(self) -> int:
        """Optimizer steps in the budget."""
        return -(-self.budget() // self.config.samples_per_step)

    def graph(self) -> LogicalGraph:
        g = LogicalGraph(self.name)
        g.add(self.learner_fragment())
        g.add_edge(BATCHES)
        g.add_edge(HELD_OUT)
        g.add_edge(GRADIENTS)
        return g

    def next_batch(self) -> Batch:
        return self.collate(self.train, self.sampler.take(self.config.samples_per_step))

    def train_step(self) -> StepResult:
        sent = self.runtime.carry(BATCHES, self.next_batch())
        return StepResult(self.config.samples_per_step, sent.mean())

    def held_out_sums(self, batch: Batch) -> list[dict[str, float]]:
        """Each learner's sums over its share of the held-out `batch`."""
        return self.runtime.carry(HELD_OUT, batch).results

    def plan_notes(self) -> str:
        cfg = self.config
        held = len(self.held_out) if self.held_out is not None else 0
        return "\n".join(
            [
                "batch sizes",
                f"  samples_per_step {cfg.samples_per_step} = micro_batch {cfg.micro_batch} x "
                f"accumulation {cfg.accumulation()} x learners {cfg.learners}",
                f"  data: {len(self.train):,} training examples, {held:,} held out",
                f"  budget: {self.budget():,} samples"
                + ("" if cfg.total_steps else f" (epochs {cfg.epochs} x {len(self.train):,})")
                + f" = {self.updates():,} optimizer steps",
            ]
        )

    # -- evaluation: what the service (rlkit.evaluation) asks of a stage ------------
    def judge(self, state: dict[str, Any] | None) -> Callable[[Batch], dict[str, float]]:
        """The ``eval_*`` metrics of a batch from its held-out sums: the running learners'
        (`state` None), or one learner's restored from a checkpoint's `state`."""
        if state is None:
            return lambda batch: self.eval_metrics(add(self.held_out_sums(batch)))
        learner = self.restored(LLMLearner, state)
        return lambda batch: self.eval_metrics(learner.evaluate(self.offline_batch(batch)))

    def offline_batch(self, batch: Batch) -> Batch:
        """What a held-out batch needs besides its tokens outside a run (DPO: reference
        log-probs)."""
        return batch


def share_weights(run_dir: Path, export: Path) -> int:
    """The export's weight files that equal the last checkpoint's (a stage that ends with a
    checkpoint, then exports the same weights) become hard links to them: a run directory
    holds each model once. The bytes saved."""
    from rlkit import checkpoint

    return checkpoint.share_equal_files(export, Path(run_dir) / checkpoint.FILES_DIR)


def add(parts: list[dict[str, float]]) -> dict[str, float]:
    """Sums of several learners, key by key."""
    return {k: sum(p[k] for p in parts) for k in parts[0]}


def restore(learner: LLMLearner, entries: list[Any]) -> None:
    """Give a learner (one, in this process) the checkpointed state of a run's learners:
    the files replica 0 wrote, the shards of every replica joined (an FSDP run), or an
    inline state."""
    calls = [checkpoint.restore_call(e) for e in entries]
    method, args = calls[0]
    if method != "load_checkpoint":
        learner.load_state_dict(*args)
        return
    shards = [Path(a[0]) / fsdp.SHARDS_FILE for _, a in calls]
    if shards[0].is_file():  # an FSDP run: its learners' shards make the model
        learner.load_weights(fsdp.join_shards(shards))
        learner.updates = int(args[1]["updates"])
        return
    learner.load_checkpoint(*args)
