"""The pettingzoo env family on real mpe2 envs and small PettingZoo envs of the tests':
names, the multi-agent spec, AEC envs, the vectorized runner and its masks for agents
that end early, the exact env state, the evaluation loop and video, and bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from rlkit.cli import main
from rlkit.envs.families import families, select
from rlkit.envs.mpe_native import native_core
from rlkit.envs.parallel_envs import MPE2, SHORT_NAMES, make_parallel_env
from rlkit.envs.parallel_runner import ParallelEnvRunner
from rlkit.errors import EnvError
from rlkit.evaluation import Playback

ENVS = Path(__file__).resolve().parent / "multi_agent_envs.py"
EARLY_EXIT, MASKED, TURN_BASED = (f"{ENVS}:{f}" for f in ("early_exit", "masked", "turn_based"))
FAMILY = families().get("pettingzoo")


def probe(env: str, **kwargs):
    env_id = FAMILY.resolve(env)
    return env_id, FAMILY.probe(env_id, kwargs)


def test_short_names_module_names_and_factories_resolve():
    assert FAMILY.resolve("simple_spread") == "mpe2.simple_spread_v3:parallel_env"
    assert FAMILY.resolve("Simple_Spread_v3") == "mpe2.simple_spread_v3:parallel_env"
    assert set(SHORT_NAMES) == set(MPE2) and len(SHORT_NAMES) == 8
    assert FAMILY.short_name(FAMILY.resolve("simple_tag")) == "simple_tag"
    assert FAMILY.short_name("pettingzoo.butterfly.pistonball_v6:parallel_env") == "pistonball_v6"
    assert select("mappo", ("pettingzoo",), "simple_adversary") is FAMILY
    with pytest.raises(EnvError, match="unknown env 'simple_sprad'; did you mean 'simple_spread'"):
        FAMILY.resolve("simple_sprad")
    with pytest.raises(EnvError, match="ppo does not train pettingzoo envs"):
        select("ppo", ("gymnasium",), "simple_spread")


def test_spread_spec_is_one_group_with_a_state():
    _, spec = probe("simple_spread")
    assert spec.agents == ("agent_0", "agent_1", "agent_2")
    assert [(g.name, g.agents) for g in spec.groups] == [("agent", (0, 1, 2))]
    assert spec.groups[0].spec.obs_shape == (18,) and spec.groups[0].spec.action_dim == 5
    assert spec.state_shape == (54,) and spec.discrete and not spec.action_masks
    # mpe2's state() is the observations concatenated: taken from them (see the next test)
    assert not spec.state_from_env


@pytest.mark.parametrize("short", list(SHORT_NAMES))
def test_mpe2_states_are_the_concatenated_observations(short):
    env_id, spec = probe(short)
    runner = ParallelEnvRunner(env_id, spec, 2, seed=4)
    rng = np.random.default_rng(0)
    for _ in range(30):  # through an episode end and a reset
        runner.step(random_actions(rng, spec, 2))
        for e, env in enumerate(runner.envs):
            np.testing.assert_array_equal(runner.state[e], env.env.state())


@pytest.mark.parametrize(
    ("env", "groups"),
    [
        ("simple_speaker_listener", [("speaker", (0,), 3, 3), ("listener", (1,), 11, 5)]),
        ("simple_tag", [("adversary", (0, 1, 2), 16, 5), ("agent", (3,), 14, 5)]),
        ("simple_crypto", [("eve", (0,), 4, 4), ("bob+alice", (1, 2), 8, 4)]),
    ],
)
def test_agents_with_different_spaces_form_groups(env, groups):
    _, spec = probe(env)
    got = [(g.name, g.agents, g.obs_dim, g.spec.action_dim) for g in spec.groups]
    assert got == groups


def test_continuous_actions_and_the_aec_factory():
    _, spec = probe("simple_spread", continuous_actions=True)
    assert spec.continuous and spec.groups[0].spec.action_low == (0.0,) * 5
    # mpe2's AEC factory is parallelizable: converted by PettingZoo's aec_to_parallel
    _, aec = probe("mpe2.simple_spread_v3:env")
    assert aec == probe("simple_spread")[1]


def test_a_turn_based_aec_env_is_refused():
    with pytest.raises(EnvError, match="turn-based PettingZoo AEC env .* parallel factory"):
        probe(TURN_BASED)


def test_an_env_without_state_uses_the_concatenated_observations():
    _, spec = probe(EARLY_EXIT)
    assert not spec.state_from_env and spec.state_shape == (8,)
    runner = ParallelEnvRunner(EARLY_EXIT, spec, 1, seed=0)
    np.testing.assert_array_equal(runner.state[0], runner.obs[0].reshape(-1))


def test_agents_that_end_early_are_masked_until_the_episode_ends():
    env_id, spec = probe(EARLY_EXIT, quit_at=3, length=8)
    runner = ParallelEnvRunner(env_id, spec, 2, seed=0, kwargs={"quit_at": 3, "length": 8})
    alive, acted, done = [], [], []
    for _ in range(10):
        alive.append(runner.alive.copy())
        step = runner.step(np.ones((2, 2), np.int64))  # action 1 earns 1 each step
        acted.append(step.acted.copy())
        done.append(step.done.copy())
        assert (step.reward[~step.acted] == 0).all()
        dead = ~runner.alive
        assert (runner.obs[dead] == 0).all()  # absent agents' rows are zeros
    quitter = np.array([a[0, 1] for a in acted])
    assert quitter.tolist() == [True] * 3 + [False] * 5 + [True] * 2  # steps 4-8 absent
    assert np.array([d[0, 1] for d in done]).tolist()[:3] == [False, False, True]
    episodes = runner.pop_episodes()
    assert episodes["length"] == [8.0, 8.0]
    assert episodes["return_stayer"] == [8.0, 8.0] and episodes["return_quitter"] == [3.0, 3.0]
    assert episodes["return"] == [11.0, 11.0]  # the team return sums the agents'


def test_action_masks_are_read_from_dict_observations():
    env_id, spec = probe(MASKED)
    assert spec.action_masks and spec.groups[0].spec.obs_shape == (2,)
    runner = ParallelEnvRunner(env_id, spec, 1, seed=0)
    assert runner.masks is not None
    assert runner.masks[0, 0].tolist() == [False, True, False, True, False]


def random_actions(rng, spec, envs):
    agents = len(spec.agents)
    if spec.discrete:
        highs = np.array([spec.groups[g].spec.action_dim for g in spec.group_of()])
        return (rng.random((envs, agents)) * highs).astype(np.int64)
    return rng.random((envs, agents, spec.action_dim)).astype(np.float32)


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("short", list(SHORT_NAMES))
def test_the_native_mpe2_step_is_bit_identical_to_the_parallel_wrapper(short, continuous):
    """mpe2 envs are stepped natively (their world once per step for all agents); the
    same seeds and actions through PettingZoo's parallel wrapper give bitwise the same
    observations, states, rewards, terminations, truncations and final observations,
    through two episode ends and resets. Continuous actions are drawn partly out of bounds
    (both paths clip them)."""
    kwargs = {"continuous_actions": True} if continuous else {}
    env_id, spec = probe(short, **kwargs)
    native = ParallelEnvRunner(env_id, spec, 2, seed=5, kwargs=kwargs)
    wrapped = ParallelEnvRunner(env_id, spec, 2, seed=5, kwargs=kwargs, native=False)
    assert all(e.native is not None for e in native.envs)
    assert all(e.native is None for e in wrapped.envs)
    rng = np.random.default_rng(1)
    for _ in range(55):
        actions = random_actions(rng, spec, 2)
        if continuous:
            actions = actions * 1.4 - 0.2
        a, b = native.step(actions), wrapped.step(actions)
        for field in ("reward", "terminated", "truncated", "acted", "final_obs", "final_state"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None) == (y is None), field
            if x is not None:
                np.testing.assert_array_equal(x, y, err_msg=field)
        np.testing.assert_array_equal(native.obs, wrapped.obs)
        np.testing.assert_array_equal(native.state, wrapped.state)
        np.testing.assert_array_equal(native.alive, wrapped.alive)
    assert native.pop_episodes() == wrapped.pop_episodes()


def test_only_mpe2_envs_as_mpe2_wraps_them_are_stepped_natively():
    """A rendering mpe2 env and any other PettingZoo env go through the parallel API."""
    env_id, _ = probe("simple_spread")
    assert native_core(make_parallel_env(env_id, {})) is not None
    assert native_core(make_parallel_env("mpe2.simple_spread_v3:env", {})) is not None
    assert native_core(make_parallel_env(env_id, {}, render_mode="rgb_array")) is None
    assert native_core(make_parallel_env(EARLY_EXIT, {})) is None


@pytest.mark.parametrize("short", list(SHORT_NAMES))
def test_a_restored_env_continues_identically(short):
    """State saved mid-episode and loaded into fresh envs (made with another seed): the
    same observations, states and rewards, through the episode's end and the next reset
    (whose positions come from the restored RNG)."""
    env_id, spec = probe(short)
    a = ParallelEnvRunner(env_id, spec, 2, seed=1)
    b = ParallelEnvRunner(env_id, spec, 2, seed=99)
    rng = np.random.default_rng(0)
    for _ in range(17):
        a.step(random_actions(rng, spec, 2))
    b.load_state_dict(pickle.loads(pickle.dumps(a.state_dict())))
    for _ in range(30):  # past max_cycles 25: a reset from the env's own RNG
        actions = random_actions(rng, spec, 2)
        sa, sb = a.step(actions), b.step(actions)
        np.testing.assert_array_equal(sa.reward, sb.reward)
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.state, b.state)
    assert a.pop_episodes() == b.pop_episodes()


def test_pickling_an_mpe2_env_loses_its_state():
    """Why the runner saves world, RNG and step counter: mpe2 envs pickle as their
    constructor arguments, so an unpickled env is a fresh one at step 0."""
    env = make_parallel_env(SHORT_NAMES["simple_spread"], {})
    env.reset(seed=3)
    for _ in range(5):
        env.step({a: 1 for a in env.agents})
    copy = pickle.loads(pickle.dumps(env))
    assert copy.unwrapped.steps == 0 and env.unwrapped.steps == 5
    assert not hasattr(copy.unwrapped, "rewards")  # never reset: not even an episode


def test_evaluation_is_deterministic_with_per_agent_returns_and_video(tmp_path):
    env_id, spec = probe("simple_spread")

    def toward_first_landmark(view):  # a fixed policy: move along the landmark's offset
        rel = view["obs"][0, :, 4:6]
        horizontal = np.where(rel[:, 0] > 0, 2, 1)
        vertical = np.where(rel[:, 1] > 0, 4, 3)
        return np.where(np.abs(rel[:, 0]) > np.abs(rel[:, 1]), horizontal, vertical)[None]

    told: list[tuple[int, float, int]] = []
    first = FAMILY.evaluate(env_id, {}, toward_first_landmark, Playback(3, seed=5))
    again = FAMILY.evaluate(
        env_id, {}, toward_first_landmark, Playback(3, 5, on_episode=lambda *e: told.append(e))
    )
    assert first.returns == again.returns and first.lengths == [25, 25, 25]
    assert told == list(zip(range(3), first.returns, first.lengths, strict=True))  # as they end
    per_agent = [first.extra[f"return_{a}"] for a in spec.agents]
    assert np.mean(first.returns) == pytest.approx(sum(per_agent))
    assert first.extra["return_onpolicy"] == pytest.approx(2 * np.mean(first.returns) - 3 * 25)
    video = FAMILY.evaluate(env_id, {}, toward_first_landmark, Playback(1, 5, tmp_path, 10))
    assert video.video == tmp_path / "eval-episode-0.mp4" and video.video.stat().st_size > 1000
    assert video.returns == first.returns[:1]


def one_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlkit: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--env", "simple_sprd"], ["unknown env 'simple_sprd'", "did you mean 'simple_spread'"]),
        (["--env", "no_such_module:parallel_env"], ["cannot import 'no_such_module'"]),
        (["--env", "mpe2.simple_spread_v3:paralel_env"], ["did you mean", ":parallel_env"]),
        (
            ["--env", "simple_spread", "--env-kwargs", "M=5"],
            ["--env-kwargs M=5: simple_spread refuses them", "it takes N, local_ratio"],
        ),
        (["--env", "simple_spread", "--env-kwargs", "N"], ["'N' is not KEY=VALUE"]),
        (["--env", str(TURN_BASED)], ["turn-based PettingZoo AEC env"]),
        (
            ["--env", "simple_spread", "--env-kwargs", "continuous_actions=true"]
            + ["--action-masks", "on"],
            ["--action-masks on", "continuous actions"],
        ),
        (["--env", "simple_spread", "--action-masks", "on"], ["gives no action masks"]),
        (["--env", "CartPole"], ["mappo does not train gymnasium envs"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragments, capsys, tmp_path):
    out = tmp_path / "runs"
    assert main(["run", "mappo", *args, "--out", str(out)]) == 2
    line = one_line(capsys)
    for fragment in fragments:
        assert fragment in line, line
    assert not out.exists()


def test_rlkit_list_names_the_multi_agent_envs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "pettingzoo environments" in out
    assert "simple_speaker_listener  mpe2.simple_speaker_listener_v4:parallel_env" in out
    assert "mappo    on pettingzoo; presets: simple_spread" in out


def test_a_misbehaving_parallel_env_stops_the_run_with_one_line(tmp_path, capsys, monkeypatch):
    """What an env may do wrong, each one line naming the env and the agent (never a
    traceback, never silently learned from), exit 2, and no run directory for what is
    known before training (a factory that raises, a removed import path)."""
    hostile = f"{ENVS}:hostile"
    monkeypatch.setenv("RLKIT_ENV_FACTORY_TIMEOUT", "0.5")
    cases = [
        ("partial_reset", "reset returned observations for 1 of its 2 agents (none for b)"),
        ("new_agent", "agent 'c' appeared mid-episode"),
        ("shape", "agent 'a' observed 5 values, its observation space has 3"),
        ("nan", "agent 'a' observed a non-finite value (nan)"),
        ("raises", "its factory raised RuntimeError: no license server"),
        ("hangs", "its factory did not return within RLKIT_ENV_FACTORY_TIMEOUT 0.5 seconds"),
    ]
    base = ["run", "mappo", "--total-steps", "32", "--num-envs", "1", "--num-steps", "16"]
    for mode, said in cases:
        out = tmp_path / mode
        args = [*base, "--env", hostile, "--env-kwargs", f"mode={mode}", "--out", str(out)]
        assert main(args) == 2, mode
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and said in err, (mode, err)
        assert mode not in ("raises", "hangs") or not out.exists()
    moved = ["run", "mappo", "--env", "pettingzoo.mpe.simple_spread_v3:parallel_env"]
    assert main([*moved, "--out", str(tmp_path / "moved")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--env simple_spread" in err, err
    assert not (tmp_path / "moved").exists()
