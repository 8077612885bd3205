"""The HF engine's decode loop: Hugging Face `generate`'s sampling, written out as a plain
loop over the model's own forward and KV cache.

For the GRPO benchmark's batch on the tiny model, `generate`'s per-token machinery (input
preparation, kwargs updates, generic processor and criteria lists, output bookkeeping)
adds about 45% to the time of the model's own forward calls; this loop, with the
generator's log-probs and layout, about 30% (docs/benchmarks.md, section grpo). It makes the calls into the model that `generate` makes, with the same arguments
(position ids from the attention mask, the mask dropped when nothing is padded, a
`DynamicCache`, the logits of the last position only), processes the logits with the
same transformers processors in the same order (min new tokens, then temperature, top-k,
top-p), draws from the same global random stream with the same `multinomial` call, and
stops where `generate` stops (every row at a stop id, a stop string, or the length
limit): the same tokens and logits, bit for bit, for the same seed
(tests/algorithms/rlhf/test_decode.py holds it to that).

Only the sampling fields of the RL config are applied; a model's own
`generation_config` extras (a repetition penalty, say) are not, so the samples follow
the distribution whose log-probs the learner computes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

if TYPE_CHECKING:
    from transformers.generation import LogitsProcessorList

Stop = Callable[[torch.Tensor], torch.Tensor]
"""An extra stop criterion: the sequences so far ``[N, L + t]`` -> whether each ends ``[N]``."""


@dataclass(frozen=True)
class Sampling:
    """What a `Decoding` samples: the meaning of `generate`'s arguments of the same names."""

    max_new_tokens: int
    min_new_tokens: int = 0
    do_sample: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    stop_ids: tuple[int, ...] = ()
    pad_id: int = 0

    def processors(self, prompt_length: int, device: torch.device) -> LogitsProcessorList:
        """`generate`'s logits processors for these fields, in its order."""
        from transformers.generation import (  # the rlhf extra: imported where it is used
            LogitsProcessorList,
            MinNewTokensLengthLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        out = LogitsProcessorList()
        if self.min_new_tokens > 0 and self.stop_ids:
            stops = torch.tensor(self.stop_ids, device=device)
            out.append(
                MinNewTokensLengthLogitsProcessor(
                    prompt_length, self.min_new_tokens, stops, device=str(device)
                )
            )
        if self.do_sample:
            if self.temperature != 1.0:
                out.append(TemperatureLogitsWarper(self.temperature))
            if self.top_k:
                out.append(TopKLogitsWarper(top_k=self.top_k, min_tokens_to_keep=1))
            if self.top_p < 1.0:
                out.append(TopPLogitsWarper(top_p=self.top_p, min_tokens_to_keep=1))
        return out


def forward_arguments(model: Any) -> dict[str, Any]:
    """The fixed arguments of each call: the KV cache under the name the model's forward
    takes it by (transformers renamed it), and the last position's logits only where the
    forward can be told so (as `generate` asks)."""
    from transformers import DynamicCache

    params = inspect.signature(model.forward).parameters
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    out: dict[str, Any] = {"cache" if "cache" in params else "past_key_values": cache}
    if "logits_to_keep" in params:
        out["logits_to_keep"] = 1
    return out


class Decoded(NamedTuple):
    """What a `Decoding` drew (`Decoding.run`): the new tokens ``[N, T]`` (pad after a
    row's stop id), the raw logits that chose them ``[N, T, V]`` float32, and each token's log-probability under
    the processed distribution it was drawn from ``[N, T]`` (min new tokens, temperature,
    top-k, top-p applied: the sampler's own, the pi_old of the importance ratio)."""

    tokens: torch.Tensor
    logits: torch.Tensor
    logps: torch.Tensor


class Decoding:
    """The decode loop as a value: the state of one batch of requests between decode steps,
    so that a driver can advance it a few tokens at a time, hand the engine new weights in
    between (in-flight weight updates: a response may span policy versions), and checkpoint
    it mid-way (`state_dict`: the tokens so far; the KV cache is rebuilt by one forward on
    load). Advanced to the end in one go (`run`) it is the whole decode."""

    def __init__(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        sampling: Sampling,
        copies: int = 1,
        stop: Stop | None = None,
    ) -> None:
        real = attention_mask.long()
        positions = (real.cumsum(-1) - 1).masked_fill(real == 0, 0)
        self.ids = input_ids.repeat_interleave(copies, 0)
        self.positions = positions.repeat_interleave(copies, 0)
        padded = not bool((real == 1).all())
        self.mask: torch.Tensor | None = (
            attention_mask.long().repeat_interleave(copies, 0) if padded else None
        )
        self.model, self.sampling, self.stop = model, sampling, stop
        self.length = self.ids.shape[1]
        device, n = self.ids.device, self.ids.shape[0]
        self.processors = sampling.processors(self.length, device)
        self.stops = torch.tensor(sampling.stop_ids, device=device) if sampling.stop_ids else None
        self.unfinished = torch.ones(n, dtype=torch.long, device=device)
        self.kwargs = forward_arguments(model)
        self.step_ids, self.step_positions = self.ids, self.positions
        self.logits: list[torch.Tensor] = []
        self.logps: list[torch.Tensor] = []
        """Each token's log-probability under the processed distribution it was drawn from."""
        self.done = False

    @torch.no_grad()
    def step(self) -> None:
        """One token for every row (pad for rows that have stopped)."""
        sampling = self.sampling
        if self.mask is not None:
            self.kwargs["attention_mask"] = self.mask
        out = self.model(
            input_ids=self.step_ids,
            position_ids=self.step_positions,
            use_cache=True,
            return_dict=True,
            **self.kwargs,
        )
        raw = out.logits[:, -1].to(copy=True, dtype=torch.float32)
        scores = self.processors(self.ids, raw)  # type: ignore[arg-type]  # a LongTensor
        if sampling.do_sample:
            tokens = torch.multinomial(torch.softmax(scores, -1), num_samples=1).squeeze(1)
        else:
            tokens = torch.argmax(scores, -1)
        if self.stops is not None:
            tokens = tokens * self.unfinished + sampling.pad_id * (1 - self.unfinished)
        self.ids = torch.cat([self.ids, tokens[:, None]], -1)
        self.logits.append(raw)
        self.logps.append(torch.log_softmax(scores, -1).gather(-1, tokens[:, None])[:, 0])
        if self.stops is not None:
            self.unfinished = self.unfinished & ~torch.isin(tokens, self.stops)
        if self.stop is not None:
            self.unfinished = self.unfinished & ~self.stop(self.ids)
        if len(self.logits) >= sampling.max_new_tokens or int(self.unfinished.max()) == 0:
            self.done = True
            return
        self.step_ids = tokens[:, None]
        self.step_positions = self.step_positions[:, -1:] + 1
        if self.mask is not None:
            self.mask = torch.cat([self.mask, self.mask.new_ones((len(tokens), 1))], -1)

    @torch.no_grad()
    def run(self) -> Decoded:
        """Advanced to the end: `copies` continuations of each left-padded
        prompt ``[P, L]`` (rows ``i * copies`` to ``(i + 1) * copies - 1`` continue prompt
        i), N = P * copies rows, T <= max_new_tokens (fewer once every row has stopped)."""
        while not self.done:
            self.step()
        return self.result()

    def result(self) -> Decoded:
        """The new tokens ``[N, t]``, the raw logits that chose them and their log-probs."""
        return Decoded(
            self.ids[:, self.length :], torch.stack(self.logits, 1), torch.stack(self.logps, 1)
        )

    def state_dict(self) -> dict[str, Any]:
        """The tokens so far and what the next step needs (no KV cache: see `load_state_dict`)."""
        return {
            "ids": self.ids.cpu(),
            "mask": None if self.mask is None else self.mask.cpu(),
            "positions": self.step_positions.cpu(),
            "unfinished": self.unfinished.cpu(),
            "logits": [x.cpu() for x in self.logits],
            "logps": [x.cpu() for x in self.logps],
            "done": self.done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict`: the next step feeds the whole sequence so far (its
        KV cache rebuilt under the weights the engine holds now) and samples on from there."""
        device = self.ids.device
        self.ids = state["ids"].to(device)
        self.mask = None if state["mask"] is None else state["mask"].to(device)
        self.unfinished = state["unfinished"].to(device)
        self.logits = [x.to(device) for x in state["logits"]]
        self.logps = [x.to(device) for x in state["logps"]]
        self.done = bool(state["done"])
        if self.logits and not self.done:
            last = state["positions"].to(device)
            width = self.ids.shape[1]
            self.step_ids = self.ids
            self.step_positions = (
                torch.cat(
                    [self.positions, last - torch.arange(width - self.length - 1, -1, -1)[None]], -1
                )
                if width > self.length
                else self.positions
            )
