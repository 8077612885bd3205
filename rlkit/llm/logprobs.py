"""Per-token log-probabilities of target tokens, computing the output layer only where a
target is.

A causal LM predicts token t from position t-1. Prompt and pad positions are no targets,
and the output layer (hidden x vocabulary, the largest matmul of a small model) is
spent on them for nothing when the full logits are computed: here the decoder's hidden
states are taken at the target positions only and the output layer runs on those rows.
Models whose logits are post-processed (soft-capping, a logit scale) and FSDP-sharded
models (whose root unit, embeddings and head, is gathered by the root's own forward)
take the full path.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from rlkit.batch import Batch


def _transformers_model(model: Any) -> Any:
    """The transformers model inside a peft wrapper (LoRA layers injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _fast_path(model: Any) -> bool:
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule):  # its root unit gathers in the root's forward only
        return False
    cfg = model.config
    post = getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None)
    return not post and model.base_model is not model and model.get_output_embeddings() is not None


def target_logits(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For ``input_ids``/``mask``/``loss_mask`` ``[..., T]`` (and ``position_ids`` when
    packed): the logits ``[N, V]`` predicting the N target tokens, those tokens ``[N]``,
    and the flat row (sequence) index of each ``[N]``, rows counted over ``[...]``."""
    ids = batch["input_ids"]
    length = ids.shape[-1]
    ids = ids.reshape(-1, length)
    packed = "position_ids" in batch
    kwargs: dict[str, Any] = {"input_ids": ids, "use_cache": False}
    if packed:  # no attention mask: transformers keeps attention within each example
        kwargs["position_ids"] = batch["position_ids"].reshape(-1, length)
    else:
        kwargs["attention_mask"] = batch["mask"].reshape(-1, length).long()
    where = batch["loss_mask"].reshape(-1, length)[:, 1:]
    rows = torch.arange(ids.shape[0], device=ids.device)[:, None].expand_as(where)[where]
    targets = ids[:, 1:][where]
    inner = _transformers_model(model)
    if _fast_path(inner):
        hidden = inner.base_model(**kwargs).last_hidden_state[:, :-1][where]
        logits = inner.get_output_embeddings()(hidden)
    else:
        logits = model(**kwargs).logits[:, :-1][where]
    return logits.float(), targets, rows


def token_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) ``[N]`` from logits ``[N, V]``."""
    return -F.cross_entropy(logits, targets, reduction="none")


def sequence_logps(model: Any, batch: Batch) -> torch.Tensor:
    """The summed log-probability of each sequence's target tokens, shaped as the batch's
    leading dimensions (``[B]``, or ``[B, 2]`` for pairs)."""
    logits, targets, rows = target_logits(model, batch)
    shape = batch["input_ids"].shape[:-1]
    out = torch.zeros(shape.numel(), device=logits.device, dtype=logits.dtype)
    out.index_add_(0, rows, token_logps(logits, targets))
    return out.view(shape)


@torch.no_grad()
def kept(scores: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Which tokens of each row of `scores` ``[n, V]`` (temperature applied) the sampler
    could draw: top-k, then the nucleus of mass top-p of what is left, as transformers'
    `TopKLogitsWarper` and `TopPLogitsWarper` cut (ascending sort, the tokens whose
    cumulative probability is at most 1 - top_p dropped, the most likely always kept) and
    as vLLM's sampler does before its ``processed_logprobs``. ``[n, V]`` bool."""
    keep = torch.ones_like(scores, dtype=torch.bool)
    if top_k and top_k < scores.shape[-1]:
        keep = scores >= scores.topk(top_k, -1).values[..., -1:]
    if top_p < 1.0:
        ordered, order = scores.masked_fill(~keep, -math.inf).sort(-1)
        dropped = ordered.softmax(-1).cumsum(-1) <= 1 - top_p
        dropped[..., -1] = False
        keep = keep & ~dropped.scatter(-1, order, dropped)
    return keep


def sampled_logps(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    top_k: int,
    top_p: float,
    banned: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(target) ``[n]`` under the distribution the sampler drew from: `logits` ``[n,
    V]`` with the `banned` tokens ``[n, V]`` removed (the stop ids within min new tokens),
    divided by the temperature, cut to top-k / top-p (`kept`) and renormalized; and those
    processed logits ``[n, V]`` (-inf where cut). The target always counts as kept by the
    cut: it was drawn, and float noise between engine and learner at the nucleus' edge
    must not make its probability 0. Without any of these this is the plain log-softmax."""
    scores = logits / temperature
    if banned is not None:
        scores = scores.masked_fill(banned, -math.inf)
    if top_k or top_p < 1.0:
        keep = kept(scores, top_k, top_p)
        keep[torch.arange(len(targets), device=keep.device), targets] = True
        scores = scores.masked_fill(~keep, -math.inf)
    return token_logps(scores, targets), scores
