"""RL on prompts under --policy async (algorithms/rlhf/in_flight.py): a bound of 0 is the
synchronous run exactly; a bound of 2 learns the GRPO task as the synchronous test does,
never beyond its bound; a run killed (SIGKILL) or interrupted (SIGINT) mid-flight and
resumed trains on every prompt of the epoch exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rlkit import checkpoint
from rlkit.cli import main
from rlkit.envs.text import tasks as sort

from .test_grpo import REWARD, rl_run, rows

SMALL = ["--reward", REWARD, "--prompts-per-step", "4", "--group-size", "4"]
SMALL += ["--max-new-tokens", "6", "--lr", "1e-3", "--checkpoint-every", "1000"]


def digits(tmp_path: Path, n: int) -> Path:
    return sort.write_jsonl(tmp_path / "digits.jsonl", sort.prompts(n, seed=0))


def trained_counts(run: Path) -> torch.Tensor:
    """How often the run trained on each prompt (its checkpoint's count)."""
    state = checkpoint.load(run / checkpoint.CHECKPOINT, "grpo")["state"]
    return state["driver"]["in_flight"]["trained"]


def test_a_bound_of_0_is_the_synchronous_run_and_2_runs_ahead(tmp_path):
    """16 prompts, 4 steps of 4 x 4 samples. --max-staleness 0: every row of the synchronous
    run (the async metrics besides), and the same final weights. --max-staleness 2 with
    2-token decode chunks: tokens sampled by older weights than the learner's, responses
    that span versions, and never a sample more than 2 versions behind."""
    data = digits(tmp_path, 16)
    sync = rl_run(tmp_path / "runs", "grpo", "sync", data, *SMALL)
    zero = rl_run(
        tmp_path / "runs", "grpo", "k0", data, *SMALL, "--policy", "async", "--max-staleness", "0"
    )
    a, b = rows(sync), rows(zero)
    assert len(a) == len(b) == 4
    for ra, rb in zip(a, b, strict=True):
        assert {k: v for k, v in ra.items() if k not in ("time", "sps")} == {
            k: rb[k] for k in ra if k not in ("time", "sps")
        }
        assert float(rb["staleness_max"]) == 0 and float(rb["off_policy_tokens"]) == 0
    two = rl_run(
        tmp_path / "runs",
        "grpo",
        "k2",
        data,
        *SMALL,
        "--policy",
        "async",
        "--max-staleness",
        "2",
        "--decode-chunk",
        "2",
    )
    logged = rows(two)
    assert max(float(r["staleness_max"]) for r in logged) == 2
    assert all(float(r["staleness_max"]) <= 2 for r in logged)
    assert any(0 < float(r["off_policy_tokens"]) < 1 for r in logged)  # spans versions
    assert all(float(r["mismatch_kl"]) >= 0 for r in logged)
    assert all(abs(sum(float(r[f"staleness_{k}"]) for k in range(3)) - 1) < 1e-6 for r in logged)


@pytest.mark.slow
def test_async_grpo_fixes_the_biased_sft_start_as_the_synchronous_run_does(
    tmp_path, tasks, biased_sort_sft, stop_at_bar
):
    """The synchronous learning test's task, start, flags and bar (test_grpo.py: greedy exact
    match >= 0.8 on its 200 held-out prompts, from <= 0.45, within 12,800 samples) under
    --policy async --max-staleness 2: the bar within 12,800 + 25% = 16,000 samples (the run
    stops at the bar: stop_at_bar on the held-out greedy reward, evaluated every 1,280),
    no sample ever more than 2 versions behind."""
    train = sort.write_jsonl(tmp_path / "prompts.jsonl", sort.prompts(2000, seed=2))
    held = sort.prompts(200, seed=3)
    evals = sort.write_jsonl(tmp_path / "held.jsonl", held)
    watch = stop_at_bar("eval_reward", 0.8)
    flags = ["--model", str(biased_sort_sft), "--reward", REWARD, "--gold-reward", REWARD]
    flags += ["--max-new-tokens", "8", "--micro-batch", "64", "--total-steps", "16000"]
    flags += ["--policy", "async", "--max-staleness", "2", "--eval-prompts", str(evals)]
    flags += ["--eval-every", "1280"]
    out = tmp_path / "runs"
    args = ["run", "grpo", "--prompts", str(train), "--device", "cpu", "--out", str(out)]
    assert main([*args, "--name", "async", *flags]) == watch.exit_code()
    assert watch.reached_at is not None and watch.reached_at <= 16000, watch.reached_at
    prompts, answers = [r["prompt"] for r in held], [r["answer"] for r in held]
    end = tasks.greedy_accuracy(out / "async" / "model", prompts, answers)
    print(f"async K=2: bar at {watch.reached_at} samples, greedy exact match {end:.3f}")
    assert end >= 0.8
    logged = rows(out / "async")
    assert max(float(r["staleness_max"]) for r in logged) <= 2
    assert max(float(r["staleness_max"]) for r in logged) >= 1


ASYNC = [*SMALL, "--policy", "async", "--max-staleness", "2", "--decode-chunk", "2"]
ASYNC += ["--epochs", "1"]


def test_sigint_mid_flight_then_resume_trains_every_prompt_once(tmp_path, ctrl_c_in_step):
    """16 prompts, 4 steps of 4, K = 2: Ctrl-C in step 2 leaves requests in flight (or
    finished and untrained) in the checkpoint; resumed, every prompt is trained once."""
    from rlkit.algorithms import ALGORITHMS
    from rlkit.trainer import Trainer, make_config

    data = digits(tmp_path, 16)
    algo = ALGORITHMS.get("grpo")
    fields = {"prompts": str(data), "out": str(tmp_path), "device": "cpu", "name": "cut"}
    for i in range(0, len(ASYNC), 2):
        fields[ASYNC[i].removeprefix("--").replace("-", "_")] = ASYNC[i + 1]
    cut = make_config(algo, "", None, fields)
    assert Trainer(ctrl_c_in_step(algo, 2), cut).run() == 130
    state = checkpoint.load(tmp_path / "cut" / checkpoint.CHECKPOINT, "grpo")["state"]
    held = state["driver"]["in_flight"]
    assert sorted(held["prompts"]) == [2, 3]  # the next step's and the one after, started
    flying = {r["ticket"] for r in state["fragments"]["generator"][0]["requests"]}
    done = {t for t, parts in held["finished"].items() if all(p is not None for p in parts)}
    assert flying | done == {2, 3} and flying  # each held: in flight, or finished
    assert int(trained_counts(tmp_path / "cut").sum()) == 8
    assert Trainer(algo, cut, tmp_path / "cut").run(resume=True) == 0
    assert trained_counts(tmp_path / "cut").tolist() == [1] * 16


def test_requests_a_generator_lost_are_started_again(tmp_path):
    """A generator that no longer holds its requests (as a restarted Ray worker, back at
    its initial state) after step 2: the driver starts them again from the prompts it
    kept, and every prompt is still trained exactly once."""
    from rlkit.algorithms import ALGORITHMS
    from rlkit.trainer import Trainer, make_config

    grpo = ALGORITHMS.get("grpo")

    class Forgetful(grpo):  # type: ignore[misc, valid-type]
        name = grpo.name

        def train_step(self):
            out = super().train_step()
            if self.version == 2:
                generator = self.runtime.groups["generator"].instances[0]
                assert generator.requests  # there was something to lose
                generator.requests.clear()
            return out

    fields = {"prompts": str(digits(tmp_path, 16)), "out": str(tmp_path), "device": "cpu"}
    for i in range(0, len(ASYNC), 2):
        fields[ASYNC[i].removeprefix("--").replace("-", "_")] = ASYNC[i + 1]
    config = make_config(Forgetful, "", None, {**fields, "name": "lost"})
    assert Trainer(Forgetful, config).run() == 0
    assert trained_counts(tmp_path / "lost").tolist() == [1] * 16


def test_sigkill_mid_flight_then_resume_trains_every_prompt_once(tmp_path):
    """The same run as a process, killed (SIGKILL) right after its first periodic
    checkpoint (every step), then `rlkit resume`: every prompt trained exactly once."""
    data = digits(tmp_path, 16)
    out = tmp_path / "runs"
    flags = [a if a != "1000" else "16" for a in ASYNC]
    args = ["run", "grpo", "--prompts", str(data), "--device", "cpu", "--out", str(out)]
    cmd = [sys.executable, "-m", "rlkit.cli", *args, "--name", "k", *flags]
    # cwd: not the repository, whose unbuilt rlkit/ would shadow the installed package
    err = open(tmp_path / "stderr.txt", "wb")  # noqa: SIM115 - the child writes it
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path)
    saved = out / "k" / checkpoint.CHECKPOINT
    deadline = time.monotonic() + 120
    while not saved.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    err.close()
    assert saved.exists(), "no checkpoint before the kill"
    before = trained_counts(out / "k")
    assert 0 < int(before.sum()) < 16, before
    assert main(["resume", str(out / "k")]) == 0
    assert trained_counts(out / "k").tolist() == [1] * 16
