"""Parameters of a module as views into one flat tensor, gradients likewise.

With one flat parameter, Adam (fused) and gradient clipping are single kernels instead of
a loop over tensors, and weights travel to actors as one buffer rather than one message
per parameter (what MSRL did). The module keeps working as before: its parameters are
views, so `forward`, `state_dict` and `load_state_dict` are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from rlkit.errors import ConfigError


class FlatParameters:
    def __init__(self, module: nn.Module) -> None:
        params = list(module.parameters())
        if not params:
            raise ValueError("module has no parameters")
        device, dtype = params[0].device, params[0].dtype
        total = sum(p.numel() for p in params)
        self.param = nn.Parameter(torch.empty(total, device=device, dtype=dtype))
        self.param.grad = torch.zeros_like(self.param)
        offset = 0
        with torch.no_grad():
            for p in params:
                n = p.numel()
                self.param[offset : offset + n].copy_(p.flatten())
                p.data = self.param.data[offset : offset + n].view_as(p)
                # autograd accumulates into an existing .grad in place: into the flat one
                p.grad = self.param.grad[offset : offset + n].view_as(p)
                offset += n

    @property
    def grad(self) -> torch.Tensor:
        """The flat gradient (every parameter's .grad is a view into it)."""
        assert self.param.grad is not None
        return self.param.grad

    def zero_grad(self) -> None:
        assert self.param.grad is not None
        self.param.grad.zero_()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Scale the gradient to norm <= max_norm; returns the norm before clipping."""
        assert self.param.grad is not None
        norm = self.param.grad.norm()
        self.param.grad.mul_((max_norm / (norm + 1e-6)).clamp(max=1.0))
        return norm

    def get(self) -> torch.Tensor:
        """A CPU copy of all parameters (what actors need)."""
        return self.param.detach().to("cpu", copy=True)

    @torch.no_grad()
    def set(self, flat: torch.Tensor) -> None:
        if flat.shape != self.param.shape:
            raise ConfigError(
                f"weights of {flat.numel():,} values do not fit a network of "
                f"{self.param.numel():,} parameters: the module an actor acts with "
                "(make_actor_policy / make_policy) must have the parameters of the network "
                "whose get_weights the learner sends, in the same order"
            )
        self.param.copy_(flat)
