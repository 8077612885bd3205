"""Where a GRPO step's CPU time goes, for `benchmarks/grpo_trl.py`: the parts of rlkit's
and TRL's steps, timed inside their own training runs, and the bound those parts have
when done bare with plain transformers and torch.

Parts (process CPU time per step, one thread):

    generation         sampling the step's completions (rlkit: with their log-probs)
    reference          the frozen reference model's per-token log-probs
    rewards            the rule reward
    update             the policy's forward, backward and optimizer step (rlkit: the
                       learner's whole `learn`, advantages and clipping included; TRL:
                       `compute_loss` + backward + `optimizer.step`)
    weights            the new weights into the generator (rlkit: a second model copy;
                       TRL samples from the model it trains)
    everything else    the step's time outside the parts above

Bare parts (`bare_parts`): the same batch (8 prompts x 8 samples, 16 new tokens) through
plain transformers: `model.generate`; the model's own forward calls of one generation
alone (prefill and 15 one-token steps with its KV cache, no sampling: the floor of any
engine built on the HF model); one reference forward; one policy forward, backward and
fused AdamW step (the floor and the reference forward under `torch.inference_mode`).
The bound of a step is the sum of the floor of generation, the reference forward and the
update.
"""

from __future__ import annotations

import functools
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARTS = ("generation", "reference", "rewards", "update", "weights")
BARE = ("model.generate", "generation floor", "reference forward", "update")


class Parts:
    """CPU seconds spent in each part, summed; `snapshot` at every step's end."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.depth: dict[str, int] = defaultdict(int)
        self.marks: list[dict[str, float]] = []

    def time(self, owner: Any, method: str, part: Callable[[], str | None] | str) -> None:
        """Count the CPU time of `owner.method` (patched on the class) to `part` (a name,
        or a function naming it at call time; None counts nothing)."""
        inner = getattr(owner, method)

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            name = part() if callable(part) else part
            self.depth[method] += 1
            start = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.depth[method] -= 1
                if name is not None:
                    self.spent[name] += time.process_time() - start

        setattr(owner, method, timed)

    def snapshot(self) -> None:
        self.marks.append(dict(self.spent))

    def per_step(self) -> dict[str, float]:
        """CPU seconds per step of each part between the first and the last snapshot."""
        first, last = self.marks[0], self.marks[-1]
        steps = max(1, len(self.marks) - 1)
        return {k: (last.get(k, 0.0) - first.get(k, 0.0)) / steps for k in PARTS}


def instrument_rlkit(parts: Parts) -> None:
    from rlkit.algorithms.rlhf.rl_roles import PolicyLearner, TokenReference
    from rlkit.envs.text.rewards import RewardScorer
    from rlkit.llm.generator import HFGenerator

    parts.time(HFGenerator, "generate", "generation")
    parts.time(TokenReference, "score", "reference")
    parts.time(RewardScorer, "score", "rewards")
    parts.time(PolicyLearner, "learn", "update")
    parts.time(HFGenerator, "set_weights", "weights")


def instrument_trl(parts: Parts) -> None:
    import torch
    from trl import GRPOTrainer

    def logps_part() -> str | None:  # inside compute_loss it is the update's forward
        return None if parts.depth["compute_loss"] else "reference"

    parts.time(GRPOTrainer, "_generate", "generation")
    parts.time(GRPOTrainer, "_get_per_token_logps_and_entropies", logps_part)
    parts.time(GRPOTrainer, "_calculate_rewards", "rewards")
    parts.time(GRPOTrainer, "compute_loss", "update")
    parts.time(torch.Tensor, "backward", "update")
    parts.time(torch.optim.AdamW, "step", "update")


def bare_parts(work: Path, steps: int, prompts: int, group: int, new_tokens: int) -> dict:
    """Each bare part `steps` times on one step's batch (after one warm-up): the median
    CPU seconds of each."""
    import statistics

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(work / "model")
    model = AutoModelForCausalLM.from_pretrained(work / "model").eval()
    policy = AutoModelForCausalLM.from_pretrained(work / "model").train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6, fused=True)
    with open(work / "prompts.jsonl") as f:
        texts = [json.loads(line)["prompt"] for line in f][:prompts]
    enc = tok(texts, return_tensors="pt", padding=True, padding_side="left")
    kwargs = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": True}
    kwargs.update(num_return_sequences=group, pad_token_id=tok.pad_token_id, top_k=0)
    with torch.no_grad():
        sequences = model.generate(**enc, **kwargs)
    length = enc["input_ids"].shape[1]
    mask = torch.ones_like(sequences)

    def generate() -> None:
        with torch.no_grad():
            model.generate(**enc, **kwargs)

    def floor() -> None:  # the model's forwards of one generation, the sampled tokens fed
        with torch.inference_mode():
            cache = DynamicCache(config=model.config)
            model(input_ids=sequences[:, :length], cache=cache, logits_to_keep=1)
            for t in range(length, sequences.shape[1] - 1):
                model(input_ids=sequences[:, t : t + 1], cache=cache, logits_to_keep=1)

    def reference() -> None:
        with torch.inference_mode():
            model(input_ids=sequences, attention_mask=mask)

    def update() -> None:
        logits = policy(input_ids=sequences, attention_mask=mask).logits[:, length - 1 : -1]
        logps = torch.log_softmax(logits, -1).gather(-1, sequences[:, length:, None])
        (-logps.mean()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    out: dict[str, float] = {}
    for name, part in zip(BARE, (generate, floor, reference, update), strict=True):
        times = []
        for _ in range(steps + 1):
            start = time.process_time()
            part()
            times.append(time.process_time() - start)
        out[name] = statistics.median(times[1:])
    return out
