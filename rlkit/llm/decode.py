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
    """What `decode` samples: the meaning of `generate`'s arguments of the same names."""

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
    """What `decode` drew: the new tokens ``[N, T]`` (pad after a row's stop id), the raw
    logits that chose them ``[N, T, V]`` float32, and each token's log-probability under
    the processed distribution it was drawn from ``[N, T]`` (min new tokens, temperature,
    top-k, top-p applied: the sampler's own, the pi_old of the importance ratio)."""

    tokens: torch.Tensor
    logits: torch.Tensor
    logps: torch.Tensor


@torch.no_grad()
def decode(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    sampling: Sampling,
    copies: int = 1,
    stop: Stop | None = None,
) -> Decoded:
    """`copies` continuations of each left-padded prompt ``[P, L]`` (rows ``i * copies`` to
    ``(i + 1) * copies - 1`` continue prompt i), N = P * copies rows, T <= max_new_tokens
    (fewer once every row has stopped): see `Decoded`."""
    real = attention_mask.long()
    positions = (real.cumsum(-1) - 1).masked_fill(real == 0, 0)
    ids = input_ids.repeat_interleave(copies, 0)
    positions = positions.repeat_interleave(copies, 0)
    padded = not bool((real == 1).all())
    mask: torch.Tensor | None = (
        attention_mask.long().repeat_interleave(copies, 0) if padded else None
    )
    device, n, length = ids.device, ids.shape[0], ids.shape[1]
    processors = sampling.processors(length, device)
    stops = torch.tensor(sampling.stop_ids, device=device) if sampling.stop_ids else None
    unfinished = torch.ones(n, dtype=torch.long, device=device)
    kwargs = forward_arguments(model)
    step_ids, step_positions = ids, positions
    logits: list[torch.Tensor] = []
    logps: list[torch.Tensor] = []
    while True:
        if mask is not None:
            kwargs["attention_mask"] = mask
        out = model(
            input_ids=step_ids,
            position_ids=step_positions,
            use_cache=True,
            return_dict=True,
            **kwargs,
        )
        raw = out.logits[:, -1].to(copy=True, dtype=torch.float32)
        scores = processors(ids, raw)  # type: ignore[arg-type]  # a LongTensor
        if sampling.do_sample:
            tokens = torch.multinomial(torch.softmax(scores, -1), num_samples=1).squeeze(1)
        else:
            tokens = torch.argmax(scores, -1)
        if stops is not None:
            tokens = tokens * unfinished + sampling.pad_id * (1 - unfinished)
        ids = torch.cat([ids, tokens[:, None]], -1)
        logits.append(raw)
        logps.append(torch.log_softmax(scores, -1).gather(-1, tokens[:, None])[:, 0])
        if stops is not None:
            unfinished = unfinished & ~torch.isin(tokens, stops)
        if stop is not None:
            unfinished = unfinished & ~stop(ids)
        if len(logits) >= sampling.max_new_tokens or int(unfinished.max()) == 0:
            break
        step_ids = tokens[:, None]
        step_positions = step_positions[:, -1:] + 1
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones((n, 1))], -1)
    return Decoded(ids[:, length:], torch.stack(logits, 1), torch.stack(logps, 1))
