"""The policy losses of GRPO, registered by name (``--loss-type``, TRL's ``loss_type``
names where TRL has them).

Each is the per-token policy term of the objective, from the log-probs of the policy
being trained (log pi, with gradient) and of the policy that sampled (log pi_old), the
advantage A of each token, and the sample each token belongs to; with ratio r = pi /
pi_old and the clip range [1 - low, 1 + high] (``--clip-low``/``--clip-high``, both
``--clip-coef`` unless given):

    grpo    max(-A r, -A clip(r, 1 - low, 1 + high))              Shao et al. 2024
    dapo    the same, token-level (every token of the step once),
            clip-higher: high > low                                Yu et al. 2025
    dr_grpo the same, token sums over samples x max_new_tokens     Liu et al. 2025
    gspo    max(-A s, -A clip(s, 1 - low, 1 + high)) with s = sg(s_i) pi / sg(pi), s_i =
            exp(mean over the sample's tokens of log r): one ratio and one clip per
            sample, averaged over its tokens                       Zheng et al. 2025
    cispo   -sg(clip(r, 1 - low, 1 + high)) A log pi: the IS weight clipped and
            detached, so every token keeps its gradient           MiniMax 2025 (M1)

An entry also says how the tokens' terms make the step's loss (``aggregation``); None
leaves it to ``--loss-aggregation``. A user's loss is one more `POLICY_LOSSES.add`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from rlkit.registry import Registry


class PolicyInputs(NamedTuple):
    """What a policy loss sees, one entry per target token ``[n]``."""

    logp: torch.Tensor
    """log pi(token) under the policy being trained (with gradient)."""
    old_logp: torch.Tensor
    """log pi_old(token): the policy that sampled it (no gradient)."""
    advantages: torch.Tensor
    sample: torch.Tensor
    """The index of the sample (response) each token belongs to, int64, 0..S-1."""
    low: float
    high: float


class PolicyTerm(NamedTuple):
    """A policy loss's per-token term ``[n]``, the ratio it used (a token's, or its
    sample's for a sequence-level loss) and whether the clip bound it ``[n]``."""

    loss: torch.Tensor
    ratio: torch.Tensor
    clipped: torch.Tensor


@dataclass(frozen=True)
class PolicyLoss:
    """A registered policy loss: its per-token term and how its tokens make the loss."""

    term: Callable[[PolicyInputs], PolicyTerm]
    aggregation: str | None = None
    """token-mean, sequence-mean or dr-grpo; None: ``--loss-aggregation``."""


POLICY_LOSSES: Registry[PolicyLoss] = Registry("policy loss")


def clipped_surrogate(ratio: torch.Tensor, x: PolicyInputs) -> PolicyTerm:
    """PPO's pessimistic clipped term of `ratio` ``[n]``."""
    bounded = ratio.clamp(1 - x.low, 1 + x.high)
    loss = torch.max(-x.advantages * ratio, -x.advantages * bounded)
    clipped = torch.where(ratio > 1, ratio - 1 > x.high, 1 - ratio > x.low)
    return PolicyTerm(loss, ratio.detach(), clipped)


def token_ratio(x: PolicyInputs) -> PolicyTerm:
    return clipped_surrogate((x.logp - x.old_logp).exp(), x)


def sequence_ratio(x: PolicyInputs) -> PolicyTerm:
    """GSPO-token: every token of sample i carries s_i's value; the gradient of each is
    that of its own log pi, scaled by s_i."""
    count = torch.zeros(int(x.sample.max()) + 1 if len(x.sample) else 0, device=x.logp.device)
    count = count.index_add(0, x.sample, torch.ones_like(x.logp))
    log_ratio = torch.zeros_like(count).index_add(0, x.sample, (x.logp - x.old_logp).detach())
    s = (log_ratio / count.clamp(min=1)).exp()[x.sample]
    return clipped_surrogate(s * (x.logp - x.logp.detach()).exp(), x)


def clipped_weight(x: PolicyInputs) -> PolicyTerm:
    ratio = (x.logp - x.old_logp).exp().detach()
    weight = ratio.clamp(1 - x.low, 1 + x.high)
    clipped = (ratio > 1 + x.high) | (ratio < 1 - x.low)
    return PolicyTerm(-weight * x.advantages * x.logp, ratio, clipped)


POLICY_LOSSES.add("grpo", PolicyLoss(token_ratio))
POLICY_LOSSES.add("dapo", PolicyLoss(token_ratio, "token-mean"))
POLICY_LOSSES.add("dr_grpo", PolicyLoss(token_ratio, "dr-grpo"))
POLICY_LOSSES.add("gspo", PolicyLoss(sequence_ratio, "sequence-mean"))
POLICY_LOSSES.add("cispo", PolicyLoss(clipped_weight, "token-mean"))
