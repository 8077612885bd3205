"""The offload decision of the RL roles (rlkit/llm/offload.py), which CI can check
on CPU: which roles keep their weights in host memory between calls, for each device,
--policy and --offload. The device moves themselves need an accelerator (docs/rlhf.md:
GPU-only, not run here)."""

from __future__ import annotations

from typing import Literal

import pytest
import torch

from rlkit.algorithms.rlhf.grpo import GRPOConfig
from rlkit.llm.offload import HOST, Offload


class Role(Offload):
    """A role with a model and an optimizer, placed on `device`."""

    def __init__(self, device: str, policy: str, offload: Literal["auto", "on", "off"]) -> None:
        self.config = GRPOConfig(reward=("m:f",), policy=policy, offload=offload)
        self.device = torch.device(device)
        self.model = torch.nn.Linear(3, 2)
        self.optimizer = torch.optim.AdamW(self.model.parameters())


@pytest.mark.parametrize(
    ("device", "policy", "offload", "expected"),
    [
        ("cpu", "colocate", "auto", False),  # nothing to move on CPU, whatever the flags
        ("cpu", "local", "on", False),
        ("cuda", "colocate", "auto", True),  # the hybrid engine: time-share the device
        ("cuda", "multi-actor", "auto", False),  # own devices: stay resident
        ("cuda", "local", "on", True),
        ("cuda", "colocate", "off", False),
    ],
)
def test_which_roles_keep_their_weights_on_the_host(device, policy, offload, expected):
    role = Role(device, policy, offload)
    assert role.offloads() is expected
    assert role.home() == (HOST if expected else torch.device(device))


def test_on_cpu_the_offload_moves_nothing():
    role = Role("cpu", "colocate", "on")
    role.model(torch.ones(1, 3)).sum().backward()
    role.optimizer.step()
    weight, moment = role.model.weight, role.optimizer.state[role.model.weight]["exp_avg"]
    with role.on_device():
        assert role.model.weight is weight
    assert role.model.weight is weight and role.model.weight.device == HOST
    assert role.optimizer.state[role.model.weight]["exp_avg"] is moment
