"""Hypothesis: the C++ buffer against a pure-Python reference (ring, n-step, share_obs)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rlkit.replay import ReplayBuffer

FIELDS = {
    "obs": ((2,), np.float32),
    "action": ((), np.int64),
    "reward": ((), np.float32),
    "next_obs": ((2,), np.float32),
    "terminated": ((), np.bool_),
    "truncated": ((), np.bool_),
}


class Reference:
    """Dict of rows by index; the oldest dropped beyond capacity."""

    def __init__(self, capacity: int, n_step: int, gamma: float, stride: int) -> None:
        self.capacity, self.n_step, self.gamma, self.stride = capacity, n_step, gamma, stride
        self.rows: dict[int, dict] = {}
        self.total = 0

    def add(self, rows: list[dict]) -> None:
        for r in rows:
            self.rows[self.total] = r
            self.total += 1
            self.rows.pop(self.total - self.capacity - 1, None)

    def expected(self, i: int) -> dict:
        ret, disc, last = 0.0, 1.0, i
        for k in range(self.n_step):
            j = i + k * self.stride
            if k > 0 and j >= self.total:
                break
            r = self.rows[j]
            ret += disc * float(r["reward"])
            disc *= self.gamma
            last = j
            if r["terminated"] or r["truncated"]:
                break
        out = dict(self.rows[i])
        end = self.rows[last]
        out.update(
            reward=ret,
            next_obs=end["next_obs"],
            terminated=end["terminated"],
            truncated=end["truncated"],
            discount=disc,
        )
        return out


def episodes(draw, stride: int, steps: int) -> list[dict]:
    """`steps` vector-env steps of `stride` envs, rows step-major, with consistent obs."""
    counter = [0.0]

    def fresh() -> np.ndarray:
        counter[0] += 1
        return np.array([counter[0], -counter[0]], np.float32)

    obs = [fresh() for _ in range(stride)]
    rows = []
    for t in range(steps):
        for e in range(stride):
            end = draw(st.sampled_from(["none"] * 4 + ["terminated", "truncated"]))
            nxt = fresh()
            rows.append(
                {
                    "obs": obs[e],
                    "action": np.int64(t * 100 + e),
                    "reward": np.float32(draw(st.integers(-3, 3))),
                    "next_obs": nxt,
                    "terminated": np.bool_(end == "terminated"),
                    "truncated": np.bool_(end == "truncated"),
                }
            )
            obs[e] = fresh() if end != "none" else nxt
    return rows


@st.composite
def scenarios(draw):
    stride = draw(st.integers(1, 3))
    steps = draw(st.integers(1, 14))
    rows = episodes(draw, stride, steps)
    cuts, i = [], 0  # group whole steps into adds
    while i < steps:
        k = draw(st.integers(1, 5))
        cuts.append((i * stride, min(steps, i + k) * stride))
        i += k
    single = draw(st.booleans())
    return {
        "capacity": draw(st.integers(1, 9)),
        "n_step": draw(st.integers(1, 4)),
        "stride": stride,
        "share_obs": draw(st.booleans()),
        "rows": rows,
        "adds": cuts,
        "single": single and stride == 1,
    }


@settings(max_examples=120, deadline=None)
@given(scenarios())
def test_matches_reference(sc):
    gamma = 0.5
    rb = ReplayBuffer(
        sc["capacity"],
        FIELDS,
        seed=1,
        n_step=sc["n_step"],
        gamma=gamma,
        num_envs=sc["stride"],
        share_obs=sc["share_obs"],
    )
    ref = Reference(sc["capacity"], sc["n_step"], gamma, sc["stride"])
    for lo, hi in sc["adds"]:
        chunk = sc["rows"][lo:hi]
        if sc["single"]:
            for r in chunk:
                rb.add(r)
        else:
            rb.add({k: np.stack([r[k] for r in chunk]) for k in FIELDS})
        ref.add(chunk)
        assert len(rb) == len(ref.rows) == min(ref.total, sc["capacity"])
        assert rb.total == ref.total
        # Stored contents by slot.
        state = rb.state_dict()["core"]["fields"]
        for i, r in ref.rows.items():
            np.testing.assert_array_equal(state["obs"][i % sc["capacity"]], r["obs"])
            assert state["action"][i % sc["capacity"]] == r["action"]
        # Every sampled row is the reference's n-step row for its index.
        s = rb.sample(len(rb))
        for q, i in enumerate(s["indices"].tolist()):
            want = ref.expected(i)
            for k in ("obs", "action", "next_obs", "terminated", "truncated"):
                np.testing.assert_array_equal(s[k][q], want[k], err_msg=f"{k} of row {i}")
            np.testing.assert_allclose(s["reward"][q], want["reward"], rtol=1e-6)
            np.testing.assert_allclose(s["discount"][q], want["discount"], rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 40), st.integers(0, 2**32))
def test_uniform_sample_covers_exactly_the_stored_window(capacity, n, seed):
    rb = ReplayBuffer(capacity, {"x": ((), np.int64)}, seed=seed)
    rb.add({"x": np.arange(n, dtype=np.int64)})
    seen = set()
    for _ in range(20):
        s = rb.sample(len(rb))
        np.testing.assert_array_equal(s["x"], s["indices"])
        seen |= set(s["indices"].tolist())
    assert seen <= set(range(max(0, n - capacity), n))
