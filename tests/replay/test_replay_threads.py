"""Several writer threads and one sampler at once: no lost rows, no torn rows.

Rows are big enough that adds and samples release the GIL, so the C++ really runs
concurrently; a small capacity makes writers lap the ring while rows are copied out.
scripts/sanitize_replay.sh runs this file under ASan+UBSan and TSan.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from rlkit.replay import PrioritizedReplayBuffer, ReplayBuffer

DIM = 512
FIELDS = {
    "obs": ((DIM,), np.float32),
    "next_obs": ((DIM,), np.float32),
    "tag": ((), np.int64),
    "reward": ((), np.float32),
    "terminated": ((), np.bool_),
}
WRITERS = 3
ROWS = int(os.environ.get("RLKIT_STRESS_ROWS", "12000"))  # per writer


def rows(tags: np.ndarray) -> dict[str, np.ndarray]:
    v = tags.astype(np.float32)
    return {
        "obs": np.repeat(v[:, None], DIM, axis=1),
        "next_obs": np.repeat(v[:, None] + 0.5, DIM, axis=1),
        "tag": tags,
        "reward": v,
        "terminated": (tags % 97) == 0,
    }


def check_consistent(s: dict[str, np.ndarray]) -> None:
    v = s["tag"].astype(np.float32)
    assert np.all(s["obs"] == v[:, None]), "torn row: obs does not match its tag"
    assert np.all(s["next_obs"] == v[:, None] + 0.5), "torn row: next_obs does not match its tag"
    assert np.all(s["reward"] == v) and np.all(s["terminated"] == ((s["tag"] % 97) == 0))


def run(rb: ReplayBuffer, per: bool) -> list[np.ndarray]:
    written: list[np.ndarray] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(w: int) -> None:
        try:
            rng = np.random.default_rng(w)
            k = 0
            while k < ROWS:
                n = int(min(ROWS - k, rng.choice([1, 3, 40, 150, 400])))
                tags = w * 1_000_000 + np.arange(k, k + n, dtype=np.int64)
                if n == 1:
                    rb.add({key: a[0] for key, a in rows(tags).items()})
                else:
                    rb.add(rows(tags))
                written.append(tags)
                k += n
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def sampler() -> None:
        try:
            rng = np.random.default_rng(99)
            while not stop.is_set():
                if len(rb) < 256:
                    continue
                s = rb.sample(256)
                check_consistent(s)
                if per:
                    assert isinstance(rb, PrioritizedReplayBuffer)
                    rb.update_priorities(s["indices"], rng.uniform(0.1, 2.0, 256))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    reader = threading.Thread(target=sampler)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    reader.join()
    if errors:
        raise errors[0]
    return written


@pytest.mark.parametrize("per", [False, True])
def test_writers_and_sampler_lapping_the_ring(per):
    cls = PrioritizedReplayBuffer if per else ReplayBuffer
    rb = cls(3000, FIELDS, seed=0)
    run(rb, per)
    assert rb.total == WRITERS * ROWS
    assert len(rb) == 3000
    state = rb.state_dict()["core"]["fields"]
    check_consistent(state)
    assert len(np.unique(state["tag"])) == 3000
    check_consistent(rb.sample(3000))


def test_no_row_lost_without_wrap():
    rb = ReplayBuffer(WRITERS * ROWS, FIELDS, seed=0, share_obs=False)
    written = np.sort(np.concatenate(run(rb, False)))
    state = rb.state_dict()["core"]["fields"]
    assert len(rb) == rb.total == WRITERS * ROWS
    np.testing.assert_array_equal(np.sort(state["tag"]), written)
    check_consistent(state)
