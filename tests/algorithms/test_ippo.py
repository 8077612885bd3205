"""IPPO: MAPPO with decentralized critics (each agent's value from its own observation),
on real mpe2 envs: the critic's input, the field it fixes, presets inherited from MAPPO,
and a run on heterogeneous agents (speaker and listener, a network each)."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from rlkit import checkpoint
from rlkit.algorithms import IPPO, MAPPO, IPPOConfig, MAPPOConfig
from rlkit.algorithms.multi_agent_roles import make_agents_policy
from rlkit.cli import main
from rlkit.envs.families import families
from rlkit.trainer import Trainer, make_config

FAMILY = families().get("pettingzoo")


def spec_of(env: str):
    env_id = FAMILY.resolve(env)
    return FAMILY.probe(env_id, {})


def test_the_critics_see_each_agents_own_observation():
    spec = spec_of("simple_speaker_listener")
    policy = make_agents_policy(IPPOConfig(hidden=(16,)), spec)
    assert [c.body[0].in_features for c in policy.critics] == [3 + 1, 11 + 1]
    central = make_agents_policy(MAPPOConfig(hidden=(16,), critic="central"), spec)
    assert [c.body[0].in_features for c in central.critics] == [14 + 1, 14 + 1]
    # a listener's value depends on its observation only, not on the speaker's
    obs, state = torch.randn(5, 2, 11), torch.randn(5, 14)
    values = policy.value(obs, state)
    other = obs.clone()
    other[:, 0] += 1.0
    assert torch.equal(policy.value(other, torch.randn(5, 14))[:, 1], values[:, 1])


def test_ippo_fixes_its_critic_and_inherits_mappos_presets(capsys):
    assert IPPO.presets()["simple_spread"] == MAPPO.presets()["simple_spread"]
    assert main(["plan", "ippo", "--env", "simple_spread", "--critic", "central"]) == 2
    assert "--critic does not apply to ippo" in capsys.readouterr().err
    assert main(["plan", "ippo", "--env", "simple_spread"]) == 0
    assert "critic input: own obs, plus the agent id" in capsys.readouterr().out


def test_ippo_trains_speaker_and_listener(tmp_path):
    overrides = {
        "total_steps": 400,
        "num_envs": 4,
        "epochs": 2,
        "hidden": (16,),
        "device": "cpu",
        "out": str(tmp_path),
        "name": "sl",
    }
    cfg = make_config(IPPO, "simple_speaker_listener", None, overrides)
    assert cfg.critic == "local" and cfg.epochs == 2 and cfg.num_steps == 25
    assert Trainer(IPPO, cfg).run() == 0
    policy = checkpoint.load(tmp_path / "sl" / "checkpoint.pt", "ippo")["state"]["fragments"]
    weights = policy["learner"][0]["policy"]
    assert weights["critics.0.body.0.weight"].shape[1] == 3 + 1
    assert weights["critics.1.body.0.weight"].shape[1] == 11 + 1
    with open(tmp_path / "sl" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(math.isfinite(float(r["loss"])) for r in rows)
    assert float(rows[-1]["episode_return"]) == pytest.approx(
        float(rows[-1]["episode_return_speaker_0"]) + float(rows[-1]["episode_return_listener_0"])
    )
