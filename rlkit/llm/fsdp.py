"""FSDP2 for the LLM learner (``--fsdp``): each data-parallel learner holds a shard of
every weight, gradient and optimizer state (`torch.distributed.fsdp.fully_shard`, one
unit per decoder layer and one for the rest), so a model that does not fit one device
fits K. It runs on gloo (CPU) as on nccl and hccl.

Every learner runs the same number of forward passes (the units all-gather inside them):
training shares are equal by the batch arithmetic; evaluation pads the shorter shares
with passes whose results are dropped (`passes`). A checkpoint is each learner's own
shards (FSDP2 shards dimension 0 of every weight, in rank order), written by the learner
itself; `rlkit eval` joins them into one model (`join_shards`); the export gathers the
full weights once, on every learner, and the first writes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist

SHARDS_FILE = "shards.pt"


def shard(model: Any) -> None:
    """Shard `model` in place: each decoder layer (the model's ``_no_split_modules``) a
    unit, then the root (embeddings, norm, head)."""
    from torch.distributed.fsdp import fully_shard

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = set(getattr(inner, "_no_split_modules", None) or ())
    for module in list(model.modules()):
        if type(module).__name__ in layers:
            fully_shard(module)
    fully_shard(model)


def reshard(model: Any) -> None:
    """Back to shards: a forward with no backward after it (evaluation) leaves the root
    unit's weights gathered."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def _local(x: Any) -> Any:
    return x.to_local() if hasattr(x, "to_local") else x


def passes(n: int, device: torch.device) -> int:
    """The most forward passes any learner has to run (every learner must run as many)."""
    count = torch.tensor([n], device=device)
    dist.all_reduce(count, op=dist.ReduceOp.MAX)
    return int(count.item())


def save_shards(model: Any, optimizer: torch.optim.Optimizer, path: Path) -> None:
    """This learner's shards: its part of every weight (by name, with the full shape) and
    of the optimizer's state."""
    reshard(model)
    weights = {n: _local(p.detach()).cpu().clone() for n, p in model.named_parameters()}
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    state = optimizer.state_dict()
    local = {i: {k: _local(v).cpu() for k, v in s.items()} for i, s in state["state"].items()}
    torch.save(
        {"weights": weights, "shapes": shapes, "optimizer": {**state, "state": local}},
        path,
    )


@torch.no_grad()
def load_shards(model: Any, optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Put back what `save_shards` wrote, on the same number of learners."""
    from torch.distributed.tensor import DTensor

    saved = torch.load(path, map_location="cpu", weights_only=False)
    reshard(model)
    params = dict(model.named_parameters())
    for name, p in params.items():
        _local(p).copy_(saved["weights"][name])
    ordered = [p for group in optimizer.param_groups for p in group["params"]]
    state = saved["optimizer"]
    for i, entries in state["state"].items():
        p = ordered[int(i)]
        for k, v in entries.items():
            if isinstance(p, DTensor) and v.dim() > 0:
                entries[k] = DTensor.from_local(
                    v.to(p.device), p.device_mesh, p.placements, shape=p.shape, stride=p.stride()
                )
    optimizer.load_state_dict(state)


def join_shards(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The full weights from every learner's shards (in rank order)."""
    parts = [torch.load(p, map_location="cpu", weights_only=False) for p in paths]
    full = {}
    for name, shape in parts[0]["shapes"].items():
        pieces = [part["weights"][name] for part in parts]
        full[name] = torch.cat(pieces).reshape(shape) if len(shape) else pieces[0]
    return full


def full_weights(model: Any) -> dict[str, torch.Tensor]:
    """Every weight whole, on CPU, on the first learner (a collective: every learner calls
    it; the others get nothing)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return cast(dict[str, torch.Tensor], get_model_state_dict(model, options=options))
