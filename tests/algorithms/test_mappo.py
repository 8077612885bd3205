"""MAPPO on real mpe2 envs and the tests' small PettingZoo envs: the loss, value
normalization and PopArt, parameter sharing and agent groups, masks for agents that end
early (exactly no gradient from their dead steps), action masks, continuous actions,
heterogeneous agents, a learning test, exact resume after Ctrl-C, and the same metrics
under local and Ray (multi-actor; dp-learner to float tolerance; ddp as dp-learner)."""

from __future__ import annotations

import csv
import math
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from rlkit import checkpoint
from rlkit.algorithms import MAPPO, MAPPOConfig
from rlkit.algorithms.mappo import value_loss
from rlkit.algorithms.multi_agent_networks import MultiAgentPolicy
from rlkit.algorithms.multi_agent_roles import MultiAgentActor, MultiAgentLearner
from rlkit.algorithms.value_norm import ValueNorm
from rlkit.dataflow.collectives import DataParallel
from rlkit.envs.families import families
from rlkit.trainer import Trainer, make_config

ENVS = Path(__file__).resolve().parents[1] / "envs" / "multi_agent_envs.py"
EARLY_EXIT, MASKED = f"{ENVS}:early_exit", f"{ENVS}:masked"
FAMILY = families().get("pettingzoo")
UNTIMED = ("time", "sps")


def probe(env: str, **kwargs):
    env_id = FAMILY.resolve(env)
    return env_id, FAMILY.probe(env_id, kwargs)


def config(env_id: str, **overrides) -> MAPPOConfig:
    values = {"num_envs": 2, "num_steps": 20, "epochs": 1, "hidden": (16,), "device": "cpu"}
    return MAPPOConfig(env=env_id, **{**values, **overrides})


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in UNTIMED} for r in csv.DictReader(f)]


def test_parameter_sharing_and_agent_ids():
    _, spec = probe("simple_spread")
    shared = MultiAgentPolicy(spec, (16,))
    assert len(shared.actors) == 1 and shared.actors[0].body[0].in_features == 18 + 3  # obs + id
    assert shared.critics[0].body[0].in_features == 54 + 3  # the global state + id
    apart = MultiAgentPolicy(spec, (16,), share_params=False)
    assert len(apart.actors) == 3 and apart.actors[0].body[0].in_features == 18 + 1
    obs, state = torch.randn(4, 3, 18), torch.randn(4, 54)
    _, _, values = shared.act(obs, state)
    assert values.shape == (4, 3) and not torch.allclose(values[:, 0], values[:, 1])  # ids


def test_at_the_rollout_policy_the_surrogate_is_minus_the_mean_live_advantage():
    _, spec = probe("simple_spread")
    policy = MultiAgentPolicy(spec, (16,))
    g = torch.Generator().manual_seed(0)
    obs, state = torch.randn(8, 3, 18, generator=g), torch.randn(8, 54, generator=g)
    actions, log_probs, values = policy.act(obs, state, generator=g)
    mask = torch.rand(8, 3, generator=g) > 0.3
    batch = {
        "obs": obs,
        "state": state,
        "actions": actions,
        "log_probs": log_probs,
        "values": values,
        "advantages": torch.randn(8, 3, generator=g),
        "returns": torch.randn(8, 3, generator=g),
        "mask": mask,
    }
    cfg = MAPPOConfig(ent_coef=0.0, vf_coef=0.0)
    loss, stats = MAPPO.loss(cfg, policy, batch)
    torch.testing.assert_close(stats["policy_loss"], -batch["advantages"][mask].mean())
    assert stats["approx_kl"].abs() < 1e-6 and stats["clip_fraction"] == 0
    torch.testing.assert_close(loss, stats["policy_loss"])


def test_the_value_loss_is_huber_and_clipped():
    values = torch.tensor([0.0, 0.0, 1.0])
    batch = {"returns": torch.tensor([1.0, 30.0, 1.0]), "values": torch.tensor([0.0, 0.0, 5.0])}
    plain = value_loss(MAPPOConfig(clip_vloss=False, huber_delta=10.0), values, batch)
    torch.testing.assert_close(plain, torch.tensor([0.5, 10 * (30 - 5.0), 0.0]))
    squared = value_loss(MAPPOConfig(clip_vloss=False, huber_delta=0.0), values, batch)
    torch.testing.assert_close(squared, torch.tensor([0.5, 450.0, 0.0]))
    # the rollout's value was 5: the update to 1 is clipped to 4.8, whose error is larger
    clipped = value_loss(MAPPOConfig(clip_vloss=True, clip_coef=0.2), values, batch)
    torch.testing.assert_close(clipped[2], torch.tensor(0.5 * 3.8**2))


def test_value_norm_tracks_the_returns_and_popart_preserves_the_outputs():
    _, spec = probe("simple_speaker_listener")
    policy = MultiAgentPolicy(spec, (16,))
    norm = ValueNorm(policy.group_index)
    dp = DataParallel(0, 1, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    obs, state = torch.randn(64, 2, 11, generator=g), torch.randn(64, 14, generator=g)
    returns = torch.stack([torch.randn(64, generator=g) * 3 - 10, torch.randn(64, generator=g)], 1)
    before = norm.denormalize(policy.value(obs, state)).detach()
    norm.update(returns, torch.ones_like(returns, dtype=torch.bool), dp, policy.critic_heads())
    mean, std = norm.stats()
    torch.testing.assert_close(mean.float(), returns.mean(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(std.float(), returns.std(0, unbiased=False), rtol=1e-4, atol=1e-4)
    after = norm.denormalize(policy.value(obs, state)).detach()
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)  # PopArt: unchanged
    assert torch.allclose(norm.normalize(norm.denormalize(returns)), returns, atol=1e-5)


def test_dead_steps_contribute_exactly_no_gradient():
    """early_exit's quitter leaves after 3 of 8 steps: what the rollout holds for it on
    steps 4-8 (observations, actions, log-probs, values, rewards) is replaced by garbage,
    and one update from the same initial learner ends with bitwise the same parameters;
    the same garbage on a live step changes them."""
    env_id, spec = probe(EARLY_EXIT)
    cfg = config(env_id, epochs=2, seed=3)
    rollout, _ = MultiAgentActor(env_id, spec, cfg, algorithm=MAPPO).collect(24)
    dead = ~rollout["mask"]
    assert dead[:, :, 1].sum() == 2 * 3 * 5 and not dead[:, :, 0].any()  # 5 of 8 steps x 3

    def garbage(where: torch.Tensor) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(7)
        out = {k: v.clone() for k, v in rollout.items()}
        out["obs"][where] = torch.randn(out["obs"][where].shape, generator=g) * 5
        out["actions"][where] = torch.randint(0, 3, out["actions"][where].shape, generator=g)
        for key in ("log_probs", "values", "next_values", "rewards"):
            out[key][where] = torch.randn(out[key][where].shape, generator=g) * 5
        return out

    def updated(batch) -> torch.Tensor:
        learner = MultiAgentLearner(MAPPO, spec, cfg)
        learner.update(batch)
        return learner.flat.get()

    flat, _, _ = MultiAgentLearner(MAPPO, spec, cfg).samples(rollout)
    advantages, returns = flat["scalars"][..., 2], flat["scalars"][..., 3]
    dead_rows = dead.reshape(-1, 2)
    assert (advantages[dead_rows] == 0).all() and (returns[dead_rows] == 0).all()
    assert (advantages[~dead_rows] != 0).all()
    expected = updated(rollout)
    assert torch.equal(updated(garbage(dead)), expected)
    live = torch.zeros_like(dead)
    live[0, 0, 0] = True
    assert not torch.equal(updated(garbage(live)), expected)


def test_action_masks_are_honored():
    env_id, spec = probe(MASKED)
    cfg = config(env_id, num_envs=3)
    actor = MultiAgentActor(env_id, spec, cfg, algorithm=MAPPO)
    rollout, episodes = actor.collect(30)  # the env raises on a masked action
    assert set(rollout["actions"].unique().tolist()) == {1, 3}
    assert rollout["action_masks"].shape == (3, 30, 1, 5) and len(episodes["return"]) == 9
    learner = MultiAgentLearner(MAPPO, spec, cfg)
    assert math.isfinite(learner.update(rollout)["loss"])


def test_continuous_actions_collect_and_update():
    env_id, spec = probe("simple_spread", continuous_actions=True)
    cfg = config(env_id, env_kwargs="continuous_actions=true", num_steps=25)
    rollout, episodes = MultiAgentActor(env_id, spec, cfg, algorithm=MAPPO).collect(25)
    assert rollout["actions"].shape == (2, 25, 3, 5) and rollout["actions"].dtype == torch.float32
    assert episodes["length"] == [25.0, 25.0]
    metrics = MultiAgentLearner(MAPPO, spec, cfg).update(rollout)
    assert math.isfinite(metrics["loss"]) and metrics["entropy"] > 0


def tiny(env: str, tmp_path: Path, name: str, **overrides):
    values = {
        "total_steps": 400,
        "num_envs": 4,
        "num_steps": 25,
        "epochs": 2,
        "hidden": (16,),
        "device": "cpu",
        "out": str(tmp_path),
        "name": name,
    }
    return make_config(MAPPO, env, None, {**values, **overrides})


def test_heterogeneous_agents_train_separate_networks(tmp_path):
    """simple_speaker_listener: a speaker (obs 3, 3 actions) and a listener (obs 11, 5
    actions) get a network each; both learn, and their returns are logged apart."""
    trainer = Trainer(MAPPO, tiny("simple_speaker_listener", tmp_path, "sl"))
    assert trainer.run() == 0
    state = checkpoint.load(tmp_path / "sl" / "checkpoint.pt", "mappo")["state"]
    (entry,) = state["fragments"]["actor"]  # the envs' states in a file of the actor's own
    assert (Path(entry[checkpoint.FILES]) / "envs.pkl").is_file()
    actor = entry["state"]["policy"]
    assert actor["actors.0.body.0.weight"].shape[1] == 3 + 1
    assert actor["actors.1.body.0.weight"].shape[1] == 11 + 1
    before = MultiAgentPolicy(trainer.built.algorithm.spec, (16,)).state_dict()
    assert not torch.allclose(before["actors.1.body.0.weight"], actor["actors.1.body.0.weight"])
    last = rows(tmp_path / "sl")[-1]
    assert {"episode_return_speaker_0", "episode_return_listener_0"} <= set(last)
    assert float(last["episode_return_speaker_0"]) == float(last["episode_return_listener_0"])


@pytest.mark.slow
def test_mappo_learns_simple_spread(tmp_path, stop_at_bar):
    """Learning bar: the team return over the last 100 episodes reaches -50 within 400k
    env steps (seed 0, simple_spread N=3, the preset but 16 envs x 25 steps per update,
    gamma 0.95, time limits bootstrapped, lr annealed over the 400k), where a random
    policy scores -81.6 and doing nothing -74.7. The run stops at the first row that meets
    the bar (stop_at_bar: the lr schedule is still the 400k one). Measured: -49.4 first at
    180k (the 400k run of docs/multi_agent.md's table, an earlier version: first at 260k,
    best -46.0). With the paper's gamma 0.99 and truncations ending the return, the same
    run is at -64.6 by 300k:
    docs/multi_agent.md ("How fast it learns here") has the settings tried and their
    curves."""
    overrides = {
        "seed": 0,
        "total_steps": 400_000,
        "num_envs": 16,
        "gamma": 0.95,
        "proper_time_limits": True,
        "anneal_lr": True,
        "device": "cpu",
        "out": str(tmp_path),
        "name": "spread",
        "log_every": 5_000,
        "checkpoint_every": 1_000_000,
    }
    cfg = make_config(MAPPO, "simple_spread", None, overrides)
    watch = stop_at_bar("episode_return", -50)
    assert Trainer(MAPPO, cfg).run() == watch.exit_code()
    returns = [float(r["episode_return"]) for r in rows(tmp_path / "spread")]
    steps = int(rows(tmp_path / "spread")[-1]["step"])
    assert steps <= 400_000
    assert max(returns) >= -50, f"best team return over 100 episodes: {max(returns):.1f}"


CUT_ARGS = [
    "run",
    "mappo",
    "--env",
    "simple_spread",
    "--total-steps",
    "1200",
    "--num-envs",
    "4",
    "--num-steps",
    "10",
    "--epochs",
    "2",
    "--hidden",
    "32,32",
    "--checkpoint-every",
    "1000000",
]
"""30 iterations of 4 envs x 10 steps: mpe2 episodes are 25 steps, so a cut after k
iterations is mid-episode unless k is a multiple of 5."""


@pytest.mark.slow
def test_ctrl_c_then_resume_gives_the_same_metrics_and_eval_records_video(
    rlkit_cmd, cli_env, tmp_path
):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*rlkit_cmd, *args], env=cli_env, capture_output=True, text=True, timeout=300
        )

    full = cli(*CUT_ARGS, "--out", str(tmp_path), "--name", "full")
    assert full.returncode == 0, full.stderr
    proc = subprocess.Popen(
        [*rlkit_cmd, *CUT_ARGS, "--out", str(tmp_path), "--name", "cut"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "cut" / "metrics.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 6:  # mid-episode
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    stopped = checkpoint.load(tmp_path / "cut" / "checkpoint.pt", "mappo")["trainer"]["step"]
    assert 0 < stopped < 1200
    resumed = cli("resume", str(tmp_path / "cut"))
    assert resumed.returncode == 0, resumed.stderr
    assert rows(tmp_path / "cut") == rows(tmp_path / "full")
    assert len(rows(tmp_path / "full")) == 30

    ev = cli("eval", str(tmp_path / "cut"), "--episodes", "2", "--video", "--video-length", "10")
    assert ev.returncode == 0, ev.stderr
    assert "return_agent_0:" in ev.stdout and "return_onpolicy:" in ev.stdout
    assert (tmp_path / "cut" / "videos" / "eval-episode-0.mp4").stat().st_size > 1000


RAY_RUN = {"total_steps": 800, "num_envs": 2, "actors": 2, "epochs": 2, "hidden": (16,)}


@pytest.mark.slow
def test_the_same_metrics_under_local_and_ray(ray_local, tmp_path):
    import rlkit.dataflow.ray_executor  # noqa: F401  (registers executor "ray")

    local = tiny("simple_spread", tmp_path, "local", **RAY_RUN)
    assert Trainer(MAPPO, local).run() == 0
    ray = tiny("simple_spread", tmp_path, "ray", executor="ray", policy="multi-actor", **RAY_RUN)
    trainer = Trainer(MAPPO, ray)
    assert [w.name for w in trainer.built.placement.plan.workers] == [
        "actor-0",
        "actor-1",
        "learner",
    ]
    assert trainer.run() == 0
    expected = rows(tmp_path / "local")
    assert len(expected) == 8 and rows(tmp_path / "ray") == expected  # 2 x 2 envs x 25

    dp = tiny("simple_spread", tmp_path, "dp", executor="ray", learners=2, **RAY_RUN)
    dp_trainer = Trainer(MAPPO, dp)
    assert dp_trainer.built.placement.plan.policy == "dp-learner"
    assert dp_trainer.run() == 0
    for got, want in zip(rows(tmp_path / "dp"), expected, strict=True):
        assert got.keys() == want.keys()
        for key in ("step", "episodes", "episode_return", "episode_return_agent_0"):
            assert got[key] == want[key]  # the first rollouts are the same envs' steps
        # (explained_variance is each learner's over its half, averaged: not comparable)
        for key in ("loss", "policy_loss", "value_loss", "entropy", "approx_kl"):
            assert float(got[key]) == pytest.approx(float(want[key]), rel=1e-3, abs=1e-5), key

    # ddp: actor i and learner i in one worker; the same routing, so dp-learner's rows
    ddp = tiny(
        "simple_spread", tmp_path, "ddp", executor="ray", policy="ddp", learners=2, **RAY_RUN
    )
    ddp_trainer = Trainer(MAPPO, ddp)
    assert [w.members for w in ddp_trainer.built.placement.plan.workers] == [
        [("actor", 0), ("learner", 0)],
        [("actor", 1), ("learner", 1)],
    ]
    assert ddp_trainer.run() == 0
    assert rows(tmp_path / "ddp") == rows(tmp_path / "dp")
