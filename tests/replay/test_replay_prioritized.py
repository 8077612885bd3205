"""Prioritized replay: sampling frequencies, exact importance weights, priority bookkeeping."""

from __future__ import annotations

import math

import numpy as np

from rlkit.replay import PrioritizedReplayBuffer

FIELDS = {"x": ((), np.int64)}


def filled(n: int, capacity: int | None = None, **kw) -> PrioritizedReplayBuffer:
    rb = PrioritizedReplayBuffer(capacity or n, FIELDS, seed=kw.pop("seed", 0), **kw)
    rb.add({"x": np.arange(n, dtype=np.int64)})
    return rb


def test_frequencies_follow_priorities_and_zero_is_never_sampled():
    alpha = 0.7
    rb = filled(10, alpha=alpha)
    p = np.array([1, 2, 3, 4, 0, 8, 0.5, 1e-3, 5, 0], np.float64)
    rb.update_priorities(np.arange(10), p)
    counts = np.zeros(10)
    draws = 0
    for _ in range(4000):
        s = rb.sample(7)
        np.testing.assert_array_equal(s["x"], s["indices"])
        counts += np.bincount(s["indices"], minlength=10)
        draws += 7
    assert counts[4] == 0 and counts[9] == 0
    expected = p**alpha / (p**alpha).sum()
    freq = counts / draws
    # 28k draws: a binomial std is at most ~0.003; allow 5 of them.
    np.testing.assert_allclose(freq, expected, atol=0.015)
    chi2 = ((counts - draws * expected) ** 2 / np.maximum(draws * expected, 1e-9))[
        expected > 0
    ].sum()
    assert chi2 < 40  # 7 degrees of freedom: p < 1e-5 for a correct sampler


def test_importance_weights_are_exact():
    alpha, beta = 0.6, 0.4
    rb = filled(6, alpha=alpha, beta=beta)
    p = np.array([0.5, 1.0, 2.0, 4.0, 0.0, 3.0])
    rb.update_priorities(np.arange(6), p)
    s = rb.sample(6)
    pa = p**alpha
    prob = pa / pa.sum()
    n = len(rb)
    w = (n * prob[s["indices"]]) ** -beta / ((n * prob[prob > 0].min()) ** -beta)
    np.testing.assert_allclose(s["weights"], w, rtol=1e-6)
    assert s["weights"].max() <= 1.0
    s0 = rb.sample(6, beta=0.0)
    assert np.all(s0["weights"] == 1.0)


def test_new_rows_get_max_priority_and_stale_updates_are_ignored():
    rb = filled(4, alpha=1.0)
    rb.update_priorities([0, 1, 2, 3], [1.0, 2.0, 5.0, 1.0])
    rb.add({"x": np.int64(4)})  # overwrites index 0's slot, at the max priority 5
    prio = rb.state_dict()["core"]["priorities"]
    assert prio[0] == 5.0
    rb.update_priorities([0], [100.0])  # index 0 is gone: ignored
    assert rb.state_dict()["core"]["priorities"][0] == 5.0
    rb.update_priorities([4], [0.25])
    assert rb.state_dict()["core"]["priorities"][0] == 0.25
    assert math.isclose(rb.priority_total, 0.25 + 2 + 5 + 1)


def test_no_drift_over_many_updates():
    rng = np.random.default_rng(0)
    rb = filled(1000, alpha=1.0)
    for _ in range(300):
        idx = rng.integers(0, 1000, 256)
        rb.update_priorities(idx, 10.0 ** rng.uniform(-6, 6, 256))
    rb.update_priorities(np.arange(1000), np.full(1000, 1e-3))
    assert math.isclose(rb.priority_total, 1.0, rel_tol=1e-12)
    leaves = rb.state_dict()["core"]["priorities"]
    assert math.isclose(rb.priority_total, math.fsum(leaves), rel_tol=1e-12)


def test_large_tree_sampling_and_rounding():
    rb = filled(70_000, alpha=1.0, seed=5)
    idx = np.arange(70_000)
    pr = np.where(idx % 7 == 0, 0.0, 1.0 + (idx % 13))
    rb.update_priorities(idx, pr)
    for _ in range(20):
        s = rb.sample(4096)
        assert np.all(pr[s["indices"]] > 0)
    rb.update_priorities(idx, np.where(idx == 69_999, 1e-300, 0.0))
    assert np.all(rb.sample(64)["indices"] == 69_999)
