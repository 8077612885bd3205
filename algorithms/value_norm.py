"""Value normalization (Yu et al. 2022, section 4): the critic learns standardized returns.

Targets are standardized with running estimates of their mean and standard deviation,
as the on-policy repository's ValueNorm keeps them: exponential moving averages of the
mean and of the mean square with `beta` close to 1 (0.99999), debiased by the sum of the
weights (so early on they are the plain average of the batches seen). The critic's
outputs are in that standardized scale; `denormalize` turns them back into returns for
GAE. With PopArt (van Hasselt et al. 2016) each update of the statistics also rescales
the critic's output layer so that its unnormalized outputs are unchanged.

Statistics are kept per agent group (a speaker's returns and an adversary's are not
alike). Tensors are agent-major ``[..., A]``; `group_index` maps each agent to its group.
Data-parallel learners update with the moments of every replica's share (one
all-reduce), so their statistics stay identical.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rlkit.dataflow.collectives import DataParallel

VAR_FLOOR = 1e-2
"""The smallest variance used to standardize (ValueNorm's clamp): returns that barely vary
are not blown up."""


class ValueNorm:
    def __init__(self, group_index: list[int], beta: float = 0.99999, eps: float = 1e-5) -> None:
        groups = max(group_index) + 1
        self.group_index = torch.tensor(group_index)
        self.beta, self.eps = beta, eps
        self.mean = torch.zeros(groups, dtype=torch.float64)
        self.mean_sq = torch.zeros(groups, dtype=torch.float64)
        self.weight = torch.zeros(groups, dtype=torch.float64)
        """Sum of the EMA weights so far (the debiasing term)."""

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-group mean and std ``[G]`` (0 and 1 before any update)."""
        seen = self.weight > 0
        denom = self.weight.clamp(min=self.eps)
        mean = torch.where(seen, self.mean / denom, 0.0)
        var = torch.where(seen, (self.mean_sq / denom - mean**2).clamp(min=VAR_FLOOR), 1.0)
        return mean, var.sqrt()

    def _per_agent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = self.stats()
        idx = self.group_index.to(mean.device)
        return mean[idx].to(x), std[idx].to(x)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Returns ``[..., A]`` -> the critic's standardized scale."""
        mean, std = self._per_agent(x)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The critic's outputs ``[..., A]`` -> returns."""
        mean, std = self._per_agent(x)
        return x * std + mean

    def update(
        self,
        returns: torch.Tensor,
        mask: torch.Tensor,
        dp: DataParallel,
        heads: list[nn.Linear] | None = None,
    ) -> None:
        """Fold in the returns ``[..., A]`` where `mask` is True (over every data-parallel
        replica); with `heads` (PopArt), rescale each group's output layer to match."""
        groups = self.mean.numel()
        idx = self.group_index.to(returns.device).expand_as(returns)[mask]
        x = returns[mask].double()
        moments = torch.zeros(3, groups, dtype=torch.float64, device=returns.device)
        moments[0].index_add_(0, idx, torch.ones_like(x))
        moments[1].index_add_(0, idx, x)
        moments[2].index_add_(0, idx, x.square())
        dp.average_(moments)  # a mean of sums: the ratios below are those of the union
        count, total, squares = moments.cpu().unbind()
        seen = count > 0
        old_mean, old_std = self.stats()
        b = torch.where(seen, torch.tensor(self.beta, dtype=torch.float64), 1.0)
        safe = count.clamp(min=1)
        self.mean = b * self.mean + (1 - b) * total / safe
        self.mean_sq = b * self.mean_sq + (1 - b) * squares / safe
        self.weight = b * self.weight + (1 - b)
        if heads is not None:
            new_mean, new_std = self.stats()
            preserve_outputs(heads, old_mean, old_std, new_mean, new_std)

    def state_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean.clone(),
            "mean_sq": self.mean_sq.clone(),
            "weight": self.weight.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.mean_sq = state["mean"].clone(), state["mean_sq"].clone()
        self.weight = state["weight"].clone()


@torch.no_grad()
def preserve_outputs(
    heads: list[nn.Linear],
    old_mean: torch.Tensor,
    old_std: torch.Tensor,
    new_mean: torch.Tensor,
    new_std: torch.Tensor,
) -> None:
    """PopArt: ``w' = w * s / s'``, ``b' = (s * b + m - m') / s'`` per group, so that
    ``s' * (w' h + b') + m' == s * (w h + b) + m`` for every input h."""
    for g, head in enumerate(heads):
        s, s_new = float(old_std[g]), float(new_std[g])
        m, m_new = float(old_mean[g]), float(new_mean[g])
        head.weight.mul_(s / s_new)
        head.bias.mul_(s).add_(m - m_new).div_(s_new)
