import numpy as np

from rlkit.envs import ObsNormalizer, RewardScaler, RunningMeanStd


def test_running_stats_equal_the_stats_of_everything_seen():
    rng = np.random.default_rng(0)
    parts = [rng.normal(3.0, 2.0, (n, 5)) for n in (1, 7, 64, 3)]
    rms = RunningMeanStd((5,))
    for p in parts:
        rms.update(p)
    allx = np.concatenate(parts)
    np.testing.assert_allclose(rms.mean, allx.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var, allx.var(0), rtol=1e-3)


def test_obs_normalizer_standardizes_and_clips():
    norm = ObsNormalizer((2,), clip=3.0)
    rng = np.random.default_rng(1)
    for _ in range(50):
        norm(rng.normal([10.0, -5.0], [2.0, 0.5], (32, 2)))
    out = norm(np.array([[10.0, -5.0], [1000.0, -5.0]]), update=False)
    np.testing.assert_allclose(out[0], 0.0, atol=0.1)
    assert out[1, 0] == 3.0 and out.dtype == np.float32


def test_reward_scaler_divides_by_return_std_and_resets_on_done():
    scaler = RewardScaler(num_envs=2, gamma=0.9)
    r = scaler(np.array([1.0, 1.0]), np.array([True, False]))
    assert scaler.returns[0] == 0.0 and scaler.returns[1] == 1.0
    assert r.shape == (2,) and np.isfinite(r).all()
    state = scaler.state_dict()
    other = RewardScaler(2, 0.9)
    other.load_state_dict(state)
    np.testing.assert_array_equal(
        other(np.array([2.0, 0.5]), np.array([False, False])),
        scaler(np.array([2.0, 0.5]), np.array([False, False])),
    )
