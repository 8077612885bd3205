"""GRPO step time: rlkit `grpo` vs TRL's GRPOTrainer, and rlkit's generator vs a bare
`model.generate` loop, on the same model, prompts, group size, new tokens, batch and
precision (fp32, one torch thread, CPU).

    python -m benchmarks.grpo_trl             # 3 repeats of 20 steps each
    python -m benchmarks.grpo_trl --quick     # smoke run: 1 repeat of 6 steps
    python -m benchmarks.grpo_trl --model smollm2   # SmolLM2-135M: full and LoRA, TRL's
                                                    # gradient checkpointing off and on
                                                    # (benchmarks/grpo_trl_smollm2.py)

The model: rlkit's embedded tiny Llama (hidden 128, 2 layers, 0.34M parameters) and its
character tokenizer, saved to a directory (TRL takes a path). A step: 8 prompts (4-digit
strings) x 8 samples = 64 completions of exactly 16 new tokens (`min_new_tokens` 16 on
both sides, so that both generate the same number of tokens), one optimizer step on them
(AdamW 1e-6 constant), KL to a frozen reference with beta 0.04 (so both run a reference
model), the same rule reward (a Python function: digits in the completion). No chat
template on either side.

Timed: steps 2 to N of the training loop (the first step's warm-up left out on both
sides), in wall time and in the process's CPU time (one thread: CPU time is the wall time
of an idle machine, and it does not count the time other work on a shared machine takes);
generated tokens per CPU second = completion tokens / CPU time. Each contender runs in
its own subprocess, one at a time, the order rotating over the repeats. The generation
rows time one step's sampling alone (64 samples x 16 tokens): rlkit's
`HFGenerator.generate` (its decode loop over the HF model and KV cache, its log-probs and
layout) against a bare `model.generate` call on the same left-padded batch. Inside the
two training runs the parts of each step are timed too, and a last contender does the
unavoidable parts bare, for the bound (`benchmarks/grpo_parts.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.grpo_parts import PARTS, Parts, bare_parts, instrument_rlkit, instrument_trl
from benchmarks.report import (
    DOC,
    median,
    provenance,
    quick_banner,
    reproduce,
    run_child,
    table,
    write_section,
)

SECTION = "grpo"
REPO = Path(__file__).resolve().parent.parent
PROMPTS, GROUP, NEW_TOKENS, LR, BETA = 8, 8, 16, 1e-6, 0.04


def reward(prompts: list[Any], completions: list[str], **columns: Any) -> list[float | None]:
    """Digits in the completion (the same rule reward for both trainers)."""
    return [float(sum(ch.isdigit() for ch in str(c))) for c in completions]


def prepare(work: Path, n: int, spec: str = "tiny") -> dict[str, Any]:
    """The model directory (`spec` as a plain HF directory: TRL takes a path) and the
    prompts, written once for every contender."""
    from rlkit.llm.models import load_model, load_tokenizer

    tok = load_tokenizer(spec)
    model = load_model(spec, "causal", 0, tok.pad_token_id)
    model.save_pretrained(work / "model")
    tok.save_pretrained(work / "model")
    rng = random.Random(0)
    with open(work / "prompts.jsonl", "w") as f:
        for _ in range(n):
            f.write(
                json.dumps({"prompt": "".join(rng.choice("0123456789") for _ in range(4))}) + "\n"
            )
    return {"params": sum(p.numel() for p in model.parameters())}


# -- contenders (each in its own process) ----------------------------------------------
class Clock:
    """Wall and process CPU time at the end of each step (the window excludes step 1's
    warm-up, for both trainers; CPU time is robust to other load on a shared machine)."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []
        self.parts = Parts()

    def tick(self) -> None:
        self.marks.append((time.perf_counter(), time.process_time()))
        self.parts.snapshot()

    def result(self, tokens: float, steps: int) -> dict[str, float]:
        (w0, c0), (w1, c1) = self.marks[0], self.marks[-1]
        timed = len(self.marks) - 1
        parts = self.parts.per_step() if self.parts.spent else {}
        return {
            "seconds": w1 - w0,
            "cpu_seconds": c1 - c0,
            "tokens": tokens * timed / steps,
            "steps": timed,
            **{f"part {k}": v for k, v in parts.items()},
        }


def rlkit_overrides(work: Path, steps: int, shape: tuple[int, int, int]) -> dict[str, Any]:
    """rlkit's settings of a step of `shape` (prompts, group, new tokens), for `steps` steps."""
    prompts, group, new_tokens = shape
    return {
        "model": str(work / "model"),
        "prompts": str(work / "prompts.jsonl"),
        "reward": "benchmarks.grpo_trl:reward",
        "chat_template": "off",
        "prompts_per_step": prompts,
        "group_size": group,
        "micro_batch": prompts * group,
        "max_new_tokens": new_tokens,
        "min_new_tokens": new_tokens,
        "kl_coef": BETA,
        "lr": LR,
        "lr_schedule": "constant",
        "total_steps": steps * prompts * group,
        "device": "cpu",
        "torch_threads": 1,
        "checkpoint_every": 10**9,
        "out": str(work / "runs"),
        "name": f"grpo-{time.time_ns()}",
    }


def trl_config(out: Path, steps: int, shape: tuple[int, int, int], **extra: Any) -> Any:
    """TRL's GRPOConfig of the same step (`rlkit_overrides`), writing to `out`."""
    from trl import GRPOConfig

    prompts, group, new_tokens = shape
    settings: dict[str, Any] = {
        "per_device_train_batch_size": prompts * group,
        "num_generations": group,
        "max_completion_length": new_tokens,
        "generation_kwargs": {"min_new_tokens": new_tokens},
        "beta": BETA,
        "learning_rate": LR,
        "lr_scheduler_type": "constant",
        "max_steps": steps,
        "use_cpu": True,
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 1,
        "dataloader_num_workers": 0,
        "bf16": False,
    }
    return GRPOConfig(output_dir=str(out), **{**settings, **extra})


def rlkit_run(work: Path, steps: int) -> dict[str, float]:
    import csv

    from rlkit.algorithms.base import StepResult
    from rlkit.algorithms.rlhf.grpo import GRPO
    from rlkit.trainer import Trainer, make_config

    clock = Clock()
    instrument_rlkit(clock.parts)

    class Clocked(GRPO):
        name = "grpo"

        def train_step(self) -> StepResult:
            result = super().train_step()
            clock.tick()
            return result

    overrides = rlkit_overrides(work, steps, (PROMPTS, GROUP, NEW_TOKENS))
    config = make_config(Clocked, "", None, overrides)
    assert Trainer(Clocked, config).run() == 0
    with open(Path(config.out) / config.name / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    tokens = sum(float(r["response_length"]) * PROMPTS * GROUP for r in rows)
    return clock.result(tokens, len(rows))


def trl_trainer(work: Path, args: Any, peft_config: Any = None) -> Any:
    """TRL's GRPOTrainer on the work directory's model and prompts, one torch thread."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(work / "model")
    tok.chat_template = None  # plain prompts, as rlkit's --chat-template off
    with open(work / "prompts.jsonl") as f:
        rows = [json.loads(line) for line in f]
    return GRPOTrainer(
        model=str(work / "model"),
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=peft_config,
    )


def trl_run(work: Path, steps: int) -> dict[str, float]:
    trainer = trl_trainer(work, trl_config(work / "trl", steps, (PROMPTS, GROUP, NEW_TOKENS)))
    from transformers import TrainerCallback

    clock = Clock()
    instrument_trl(clock.parts)

    class Tick(TrainerCallback):
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            clock.tick()

    trainer.add_callback(Tick())
    trainer.train()
    history = trainer.state.log_history
    lengths = [h["completions/mean_length"] for h in history if "completions/mean_length" in h]
    return clock.result(sum(lengths) * PROMPTS * GROUP, len(lengths))


def generation_run(work: Path, steps: int, engine: str) -> dict[str, float]:
    """One step's sampling, `steps` times: rlkit's generator or a bare `model.generate`."""
    import torch

    from rlkit.algorithms.rlhf.grpo import GRPOConfig
    from rlkit.envs.text.data import Format
    from rlkit.envs.text.prompts import collate_prompts, prompts
    from rlkit.llm.generator import HFGenerator, left_padded

    torch.set_num_threads(1)
    cfg = GRPOConfig(
        model=str(work / "model"),
        group_size=GROUP,
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
    )
    gen = HFGenerator(cfg)
    with open(work / "prompts.jsonl") as f:
        rows = [json.loads(line) for line in f][:PROMPTS]
    data = prompts(rows, Format(gen.tokenizer, chat_template="off"), "prompt")
    batch = collate_prompts(data, torch.arange(PROMPTS), gen.pad())
    ids, mask = left_padded(batch["prompt_ids"], batch["prompt_mask"], gen.pad())
    kwargs = {"do_sample": True, "max_new_tokens": NEW_TOKENS, "min_new_tokens": NEW_TOKENS}
    kwargs.update(num_return_sequences=GROUP, pad_token_id=gen.pad(), use_cache=True)
    clock = Clock()
    for _ in range(steps + 1):  # the first is a warm-up
        with torch.no_grad():
            if engine == "rlkit":
                gen.generate(batch)
            else:
                gen.model.generate(input_ids=ids, attention_mask=mask.long(), **kwargs)
        clock.tick()
    return clock.result((steps + 1) * PROMPTS * GROUP * NEW_TOKENS, steps + 1)


CONTENDERS = {
    "rlkit grpo": lambda w, s: rlkit_run(w, s),
    "TRL GRPOTrainer": lambda w, s: trl_run(w, s),
    "rlkit generator": lambda w, s: generation_run(w, s, "rlkit"),
    "bare model.generate": lambda w, s: generation_run(w, s, "bare"),
    "bare parts": lambda w, s: bare_parts(w, s, PROMPTS, GROUP, NEW_TOKENS),
}
STEPS = ("rlkit grpo", "TRL GRPOTrainer", "rlkit generator", "bare model.generate")
"""The contenders of the step table (the bare parts have a table of their own)."""
PEER = {
    "rlkit grpo": "TRL GRPOTrainer",
    "TRL GRPOTrainer": "TRL GRPOTrainer",
    "rlkit generator": "bare model.generate",
    "bare model.generate": "bare model.generate",
}


def child(name: str, work: Path, steps: int, model: str, launched: float) -> None:
    os.environ.update(HF_HUB_OFFLINE="1", WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false")
    if model == "smollm2":
        from benchmarks.grpo_trl_smollm2 import contender

        result = contender(name, work, steps, launched)
    else:
        result = CONTENDERS[name](work, steps)
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def measure(name: str, work: Path, steps: int) -> dict[str, float]:
    args = ["--child", name, "--work", str(work), "--steps", str(steps)]
    return run_child("benchmarks.grpo_trl", args, REPO)


def main() -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None, help="3 (smollm2: 1)")
    parser.add_argument("--steps", type=int, default=None, help="20 (smollm2: 3)")
    parser.add_argument("--child", default=None)
    parser.add_argument("--work", default=None)
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    parser.add_argument("--launched", type=float, default=0.0)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.work), args.steps, args.model, args.launched)
        return
    if args.model == "smollm2":
        from benchmarks import grpo_trl_smollm2

        grpo_trl_smollm2.main(args.quick, args.steps or 3, args.repeats or 1)
        return
    repeats, steps = (1, 6) if args.quick else (args.repeats or 3, args.steps or 20)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rlkit-grpo-bench-") as tmp:
        work = Path(tmp)
        info = prepare(work, 4 * PROMPTS * steps)
        names = list(CONTENDERS)  # the order rotates over the repeats
        results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                results[name].append(measure(name, work, steps))
                print(f"repeat {r + 1}: {name}: {results[name][-1]}", flush=True)
    write_section(
        SECTION, report(info, results, args.quick, repeats, steps, (load0, os.getloadavg()[0]))
    )
    print(f"wrote the {SECTION} section of {DOC}")


def report(
    info: dict[str, Any],
    results: dict[str, list[dict[str, float]]],
    quick: bool,
    repeats: int,
    steps: int,
    load: tuple[float, float],
) -> str:
    import transformers
    import trl

    def step_s(name: str, key: str = "seconds") -> float:
        return median([x[key] / x["steps"] for x in results[name]])

    def rate(name: str) -> float:
        return median([x["tokens"] / x["cpu_seconds"] for x in results[name]])

    rows = []
    for name in STEPS:
        peer = PEER[name]
        peak = median([x["peak_mib"] for x in results[name]])
        cpu = step_s(name, "cpu_seconds")
        rows.append(
            [
                name,
                f"{cpu:.3f}",
                f"{step_s(name):.3f}",
                f"{rate(name):,.0f}",
                f"{cpu / step_s(peer, 'cpu_seconds'):.2f}x",
                f"{step_s(name) / step_s(peer):.2f}x",
                f"{peak:,.0f}",
            ]
        )
    parts, bound, sentence = breakdown(results, step_s)
    lines = [
        "## GRPO: rlkit vs TRL's GRPOTrainer, and the generator vs bare `model.generate`",
        "",
        *(quick_banner(f"1 repeat of {steps} steps") if quick else []),
        provenance(
            "python -m benchmarks.grpo_trl",
            load,
            f"transformers {transformers.__version__}, TRL {trl.__version__}",
        )
        + f". Medians of {repeats} repeats of {steps} steps.",
        "",
        f"Model: rlkit's tiny Llama (hidden 128, 2 layers, {info['params'] / 1e6:.2f}M parameters, "
        f"character tokenizer), fp32, one torch thread, CPU. A step: {PROMPTS} prompts x "
        f"{GROUP} samples = {PROMPTS * GROUP} completions of {NEW_TOKENS} new tokens, one "
        f"optimizer step (AdamW {LR:g}), KL beta {BETA} to a frozen reference, one rule reward.",
        "",
        table(
            [
                "contender",
                "CPU s per step",
                "wall s per step",
                "tokens per CPU s",
                "CPU time vs peer",
                "wall time vs peer",
                "peak RSS MiB",
            ],
            rows,
        ),
        "",
        "Peers: rlkit grpo against TRL GRPOTrainer (whole steps: sampling, reference and "
        "policy log-probs, rewards, the update); the rlkit generator (its decode loop over the "
        "HF model and KV cache, plus its per-token log-probs and the right-padded layout) "
        "against a bare `model.generate` call on the same batch. Target: rlkit's step time "
        "<= 0.5x TRL's. On a shared machine read the CPU-time columns (wall time counts other "
        "work's time slices); repeats still vary by about 20%.",
        "",
        "### Where the step's CPU time goes",
        "",
        "CPU ms per step, medians over the repeats, each side timed inside its own runs "
        "above (`benchmarks/grpo_parts.py` says what each part holds); the bare column is "
        "the same batch through plain transformers and torch in a process of its own. Each "
        "row is its own median, so the rows need not sum to the step.",
        "",
        table(["part", "rlkit grpo", "TRL GRPOTrainer", "bare (plain transformers, torch)"], parts),
        "",
        bound,
        "",
        sentence,
        "",
        *reproduce("python -m benchmarks.grpo_trl"),
    ]
    return "\n".join(lines)


def breakdown(
    results: dict[str, list[dict[str, float]]], step_s: Any
) -> tuple[list[list[str]], str, str]:
    """The parts table's rows, the bound's paragraph and the verdict on the target."""

    def part(name: str, key: str) -> float:
        return median([x[f"part {key}"] for x in results[name]]) * 1000

    def bare(key: str) -> float:
        return median([x[key] for x in results["bare parts"]]) * 1000

    def rest(name: str) -> float:  # per repeat, then the median (not a difference of medians)
        return 1000 * median(
            [
                x["cpu_seconds"] / x["steps"] - sum(x[f"part {k}"] for k in PARTS)
                for x in results[name]
            ]
        )

    sides = ("rlkit grpo", "TRL GRPOTrainer")
    step = {n: step_s(n, "cpu_seconds") * 1000 for n in sides}
    floor, ref, update = bare("generation floor"), bare("reference forward"), bare("update")
    bound = floor + ref + update
    labels = {
        "generation": "generation (sampling + log-probs)",
        "reference": "reference log-probs (one forward)",
        "rewards": "rewards (rule function)",
        "update": "policy forward + backward + optimizer step",
        "weights": "weights into the generator",
    }
    bare_cells = {
        "generation": f"{bare('model.generate'):.1f} `model.generate`; {floor:.1f} the model's "
        "forwards alone (the floor)",
        "reference": f"{ref:.1f}",
        "rewards": "",
        "update": f"{update:.1f}",
        "weights": "",
    }
    rows = [[labels[k], *(f"{part(n, k):.1f}" for n in sides), bare_cells[k]] for k in PARTS]
    rows.append(["everything else", *(f"{rest(n):.1f}" for n in sides), ""])
    rows.append(
        ["**step**", *(f"**{step[n]:.1f}**" for n in sides), f"**{bound:.1f}** (the bound)"]
    )
    trl = step["TRL GRPOTrainer"]
    ratio = step["rlkit grpo"] / trl
    paragraph = (
        f"The bound: the unavoidable parts done bare, the floor of generation ({floor:.1f} ms: "
        f"the HF model's own forward calls with its KV cache, nothing else), one reference "
        f"forward ({ref:.1f} ms) and one policy forward + backward + AdamW step ({update:.1f} "
        f"ms), sum to {bound:.1f} ms = {bound / trl:.2f}x TRL's step; rlkit's step is "
        f"{step['rlkit grpo'] / bound:.2f}x the bound."
    )
    if ratio <= 0.5:
        verdict = f"**Target met:** rlkit's step is {ratio:.2f}x TRL's (<= 0.5x)."
    elif bound / trl > 0.5:
        verdict = (
            f"**Target not met:** rlkit's step is {ratio:.2f}x TRL's, and 0.5x is out of reach "
            f"for any trainer that runs this HF model eagerly (fp32, one thread) here: the "
            f"unavoidable parts alone cost {bound / 1000:.3f} s = {bound / trl:.2f}x TRL's "
            f"step ({trl / 1000:.3f} s)."
        )
    else:
        verdict = (
            f"**Target not met:** rlkit's step is {ratio:.2f}x TRL's; the bound "
            f"({bound / trl:.2f}x) leaves room."
        )
    return rows, paragraph, verdict


if __name__ == "__main__":
    main()
