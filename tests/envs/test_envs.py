from functools import partial

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rlkit.envs import SHORT_NAMES, make_vector_env, probe_spec, resolve_env_id
from rlkit.envs.vector import get_states, make_env, set_states
from rlkit.errors import EnvError


@pytest.mark.parametrize(
    ("name", "env_id"),
    [
        ("Humanoid", "Humanoid-v5"),
        ("humanoid", "Humanoid-v5"),
        ("CartPole", "CartPole-v1"),
        ("Hopper-v4", "Hopper-v4"),
    ],
)
def test_short_names_and_full_ids(name, env_id):
    assert resolve_env_id(name) == env_id


def test_unknown_env_suggests_names():
    with pytest.raises(EnvError, match="unknown env 'Humanoidd'; did you mean 'Humanoid'"):
        resolve_env_id("Humanoidd")


def test_every_short_name_is_registered_in_gymnasium():
    import gymnasium as gym

    assert [s for s, full in SHORT_NAMES.items() if full not in gym.registry] == []


def test_humanoid_spec():
    env_id, spec = probe_spec("Humanoid")
    assert env_id == "Humanoid-v5" and spec.obs_shape == (348,) and spec.action_dim == 17
    assert not spec.discrete and spec.action_high[0] == pytest.approx(0.4)


@pytest.mark.parametrize("env", ["Humanoid", "CartPole"])
@pytest.mark.parametrize("mode", ["sync", "async", "workers"])
def test_env_state_restores_exactly(env, mode):
    """Save every env's state mid-episode, restore it into fresh envs: same futures."""
    env_id, spec = probe_spec(env)
    a = make_vector_env(env_id, 2, mode)
    b = make_vector_env(env_id, 2, mode)
    rng = np.random.default_rng(0)

    def act():
        if spec.discrete:
            return rng.integers(0, spec.action_dim, 2)
        return rng.uniform(-0.4, 0.4, (2, spec.action_dim))

    a.reset(seed=1)
    b.reset(seed=99)
    for _ in range(7):
        a.step(act())
    set_states(b, get_states(a))
    for _ in range(40):  # CartPole episodes end in here: autoreset RNG must match too
        action = act()
        oa, ra, ta, ua, _ = a.step(action)
        ob, rb, tb, ub, _ = b.step(action)
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(ta | ua, tb | ub)
    a.close()
    b.close()


def test_state_count_mismatch_is_an_error():
    env_id, _ = probe_spec("CartPole")
    a = make_vector_env(env_id, 2)
    a.reset(seed=0)
    b = make_vector_env(env_id, 3)
    with pytest.raises(EnvError, match="holds 2 env states; this run has 3"):
        set_states(b, get_states(a))


@pytest.mark.parametrize("mode", ["sync", "workers"])
@pytest.mark.parametrize("env", ["Humanoid", "CartPole"])
def test_vector_envs_step_exactly_like_gymnasium_sync(env, mode):
    """rlkit's vector envs (the lean sync one, the shared-memory workers) give the same
    trajectories as gymnasium's own SyncVectorEnv, including autoreset (SAME_STEP) and the
    final observations of ended episodes."""
    env_id, spec = probe_spec(env)
    reference = SyncVectorEnv(
        [partial(make_env, env_id, i) for i in range(3)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    ours = make_vector_env(env_id, 3, mode, workers=2)
    rng = np.random.default_rng(0)
    o1, _ = reference.reset(seed=5)
    o2, _ = ours.reset(seed=5)
    np.testing.assert_array_equal(o1, o2)
    ended = 0
    for _ in range(60):
        if spec.discrete:
            action = rng.integers(0, spec.action_dim, 3)
        else:
            action = rng.uniform(-0.4, 0.4, (3, spec.action_dim)).astype(np.float32)
        a, b = reference.step(action), ours.step(action)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype
        done = a[2] | a[3]
        if done.any():
            ended += int(done.sum())
            for i in np.flatnonzero(done):
                np.testing.assert_array_equal(a[4]["final_obs"][i], b[4]["final_obs"][i])
    assert ended > 0
    reference.close()
    ours.close()
