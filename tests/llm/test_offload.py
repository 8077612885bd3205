"""The offload decision of the RL roles (rlkit/llm/offload.py), which CI can check
on CPU: which roles keep their weights in host memory between calls, for each device,
whether the plan shares the device and --offload; and that the plan, not the role,
says whether the device is shared. The device moves themselves need an accelerator
(docs/rlhf.md: GPU-only, not run here)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
import torch

from rlkit.algorithms.rlhf.grpo import GRPO, GRPOConfig
from rlkit.dataflow.executor import Runtime
from rlkit.envs.text import tasks
from rlkit.llm.offload import HOST, Offload, offloads
from rlkit.trainer import build, make_config


class Role(Offload):
    """A role with a model and an optimizer, placed on `device`."""

    def __init__(self, device: str, offload: Literal["auto", "on", "off"]) -> None:
        self.config = GRPOConfig(reward=("m:f",), offload=offload)
        self.device = torch.device(device)
        self.model = torch.nn.Linear(3, 2)
        self.optimizer = torch.optim.AdamW(self.model.parameters())


@pytest.mark.parametrize(
    ("device", "shared", "offload", "expected"),
    [
        ("cpu", True, "auto", False),  # nothing to move on CPU, whatever the flags
        ("cpu", False, "on", False),
        ("cuda", True, "auto", True),  # the hybrid engine: time-share the device
        ("cuda", False, "auto", False),  # own devices: stay resident
        ("cuda", False, "on", True),
        ("cuda", True, "off", False),
    ],
)
def test_which_roles_keep_their_weights_on_the_host(device, shared, offload, expected):
    assert offloads(offload, torch.device(device), shared) is expected
    role = Role(device, offload)
    if shared:  # what the executor does for a role the plan has share its device
        role.shared = True
    assert role.offloads() is expected
    assert role.home() == (HOST if expected else torch.device(device))


def test_on_cpu_the_offload_moves_nothing():
    role = Role("cpu", "on")
    role.share_device()
    role.model(torch.ones(1, 3)).sum().backward()
    role.optimizer.step()
    weight, moment = role.model.weight, role.optimizer.state[role.model.weight]["exp_avg"]
    with role.on_device():
        assert role.model.weight is weight
    assert role.model.weight is weight and role.model.weight.device == HOST
    assert role.optimizer.state[role.model.weight]["exp_avg"] is moment


def started(tmp_path: Path, policy: str, offload: str) -> Runtime:
    prompts = tasks.write_jsonl(tmp_path / "prompts.jsonl", tasks.prompts(8, seed=0))
    fields = {
        "prompts": str(prompts),
        "reward": ("rlkit.envs.text.tasks:sorted_exact",),
        "device": "cpu",
        "policy": policy,
        "offload": offload,
        "prompts_per_step": 2,
        "group_size": 2,
        "micro_batch": 4,
    }
    config = make_config(GRPO, "", None, fields)
    built = build(GRPO, config)
    return built.executor.start(built.placement)


@pytest.mark.parametrize(("policy", "shared"), [("colocate", True), ("local", False)])
@pytest.mark.parametrize("offload", ["auto", "on"])
def test_the_plan_tells_the_roles_whether_they_share_a_device(tmp_path, policy, shared, offload):
    """A colocated plan (the hybrid group: one worker, one device) tells every role of the
    group that it takes turns on its device; the local plan tells none. On CPU no role
    offloads either way, --offload on included: there is nothing to move."""
    runtime = started(tmp_path, policy, offload)
    try:
        roles = {name: g.instances for name, g in runtime.groups.items()}
        assert set(roles) == {"generator", "reference", "reward", "learner"}
        for name, instances in roles.items():
            assert runtime.plan.shares_device(name, 0) is shared
            for role in instances:
                assert role.shared is shared, name
                assert not role.offloads()
        assert all(p.device == HOST for p in roles["learner"][0].model.parameters())
    finally:
        runtime.shutdown()
