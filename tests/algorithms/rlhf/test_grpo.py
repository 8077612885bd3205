"""GRPO (algorithms/rlhf/grpo.py): it fixes a deliberately biased SFT start on a task with
a checkable answer, logs the signals that show progress, prints its batch arithmetic,
resumes exactly, and refuses bad input with one line."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlkit.cli import main
from rlkit.envs.text import tasks as sort

REWARD = "rlkit.envs.text.tasks:sorted_exact"


def rl_run(out: Path, stage: str, name: str, prompts: Path, *flags: str) -> Path:
    args = ["run", stage, "--prompts", str(prompts), "--device", "cpu", "--out", str(out)]
    assert main([*args, "--name", name, *flags]) == 0
    return out / name


def rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_grpo_fixes_a_biased_sft_start(tmp_path, tasks, biased_sort_sft):
    """Sort 4 digits. SFT on a teacher right 30% of the time (else it swaps the last two)
    leaves greedy exact match <= 0.45 on 200 held-out prompts; GRPO (16 prompts x 8
    samples, k3 KL 0.02, 100 steps = 12,800 samples, seed 0) takes it to >= 0.8, with the
    mean per-token KL to the SFT model <= 0.5 over the last 10 steps. Neither stage gets
    a tuning flag: the tiny preset's learning rates (and GRPO's KL and schedule) apply,
    the SFT run descending from the tiny model; only budgets and batch sizes are given.
    (The SFT run is the session's, shared with the PPO-LLM test: biased_sort_sft.)"""
    train = sort.write_jsonl(tmp_path / "prompts.jsonl", sort.prompts(2000, seed=2))
    held = sort.prompts(200, seed=3)
    sft = biased_sort_sft
    prompts, answers = [r["prompt"] for r in held], [r["answer"] for r in held]
    start = tasks.greedy_accuracy(sft / "model", prompts, answers)
    assert start <= 0.45

    flags = ["--model", str(sft), "--reward", REWARD, "--gold-reward", REWARD]
    flags += ["--max-new-tokens", "8", "--micro-batch", "64", "--total-steps", "12800"]
    run = rl_run(tmp_path / "runs", "grpo", "grpo", train, *flags)
    end = tasks.greedy_accuracy(run / "model", prompts, answers)
    print(f"greedy exact match {start:.3f} -> {end:.3f}")
    assert end >= 0.8, (start, end)
    logged = rows(run)
    assert len(logged) == 100
    for signal in ("reward", "gold_reward", "kl", "entropy", "response_length"):
        assert signal in logged[0]
    for signal in ("clip_fraction", "zero_variance_groups", "truncated_fraction"):
        assert signal in logged[0]
    assert "loss" not in logged[0]  # the GRPO loss is ~0 by construction: no progress signal
    kl = [float(r["kl"]) for r in logged[-10:]]
    print(f"mean token KL, last 10 steps: {sum(kl) / len(kl):.3f}")
    assert sum(kl) / len(kl) <= 0.5, kl


def digits(tmp_path: Path, n: int = 32) -> Path:
    return sort.write_jsonl(tmp_path / "digits.jsonl", sort.prompts(n, seed=0))


SMALL = ["--reward", REWARD, "--prompts-per-step", "4", "--group-size", "4"]
SMALL += ["--max-new-tokens", "6", "--lr", "1e-3", "--checkpoint-every", "32"]


def test_plan_prints_the_batch_vocabulary(tmp_path, capsys):
    args = ["plan", "grpo", "--prompts", str(digits(tmp_path)), *SMALL]
    assert main([*args, "--minibatch-size", "8", "--micro-batch", "4", "--ppo-epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "prompts_per_step 4 x group_size 4 = samples_per_step 16" in out
    assert "minibatch_size 8 samples = micro_batch 4 x accumulation 2 x learners 1" in out
    assert "2 minibatches x ppo_epochs 2 = 4" in out
    assert "budget: 128 samples (epochs 1 x 32 prompts x 4) = 8 steps = 32 optimizer steps" in out
    assert "engine: hf generate (transformers, KV cache) in each generator's process" in out


SHORTER = """
def shorter(prompts, completions, **columns):
    return [-len(c) / 10 for c in completions]
"""


def interrupted_and_resumed(
    tmp_path: Path, algo: str, flags: list[str], ctrl_c_in_step, k: int, monkeypatch, capsys
):
    """The run of `flags` whole, and the same run with Ctrl-C in step `k`, then resumed
    with ``rlkit resume`` from another working directory: their run directories. Both are
    started in `tmp_path` with relative paths (prompts, reward file, out), which the run's
    config must store so that the resume finds them. The reward (shorter is better)
    differs between samples, so every step moves the weights."""
    from rlkit.algorithms import ALGORITHMS
    from rlkit.trainer import Trainer, make_config

    monkeypatch.chdir(tmp_path)
    Path("shorter.py").write_text(SHORTER)
    algo_cls = ALGORITHMS.get(algo)
    fields = {"reward": "shorter.py:shorter", "out": "runs", "device": "cpu"}
    for i in range(0, len(flags), 2):
        fields[flags[i].removeprefix("--").replace("-", "_")] = flags[i + 1]
    whole = make_config(algo_cls, "", None, {**fields, "name": "whole"})
    assert Trainer(algo_cls, whole).run() == 0
    cut = make_config(algo_cls, "", None, {**fields, "name": "cut"})
    assert Trainer(ctrl_c_in_step(algo_cls, k), cut).run() == 130
    before = rows(tmp_path / "runs" / "cut")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = str(Path("..") / "runs" / "cut")
    capsys.readouterr()
    assert main(["resume", run, "--lr", "0.1", "--torch-threads", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lr cannot change on resume" in err[0], err
    assert main(["resume", run, "--torch-threads", "1", "--checkpoint-every", "48"]) == 0
    after = rows(tmp_path / "runs" / "cut")
    assert float(after[len(before)]["time"]) >= float(before[-1]["time"])  # time goes on
    saved = (tmp_path / "runs" / "cut" / "config.yaml").read_text()
    assert f"prompts: {tmp_path / 'digits.jsonl'}" in saved and "checkpoint_every: 48" in saved
    return tmp_path / "runs" / "whole", tmp_path / "runs" / "cut"


def same_runs(a: Path, b: Path) -> None:
    """Every metrics row (but the timings) and the final weights are the same."""

    def table(run: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k not in ("time", "sps")} for r in rows(run)]

    assert table(a) == table(b)
    samples = [(run / "samples.jsonl").read_text() for run in (a, b)]
    assert samples[0] == samples[1]  # the sample table too: the resume dropped nothing twice
    wa, wb = (load_file(run / "model" / "model.safetensors") for run in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ctrl_c_and_resume_continue_exactly_with_the_prompt_stream(
    tmp_path, ctrl_c_in_step, monkeypatch, capsys
):
    """16 prompts, 4 held out, 4 a step (3 steps an epoch), 2 epochs, eval every 32
    samples; Ctrl-C in step 4 (one prompt batch into the second epoch's shuffled order).
    Resumed from another working directory (`interrupted_and_resumed`), with a runtime
    setting changed and a training one refused, it is the run that was never interrupted:
    every row and the final weights."""
    digits(tmp_path, 16)
    flags = ["--prompts", "digits.jsonl", "--prompts-per-step", "4", "--group-size", "4"]
    flags += ["--max-new-tokens", "6", "--lr", "1e-3", "--epochs", "2", "--eval-fraction", "0.25"]
    flags += ["--eval-every", "32", "--checkpoint-every", "1000"]
    whole, cut = interrupted_and_resumed(
        tmp_path, "grpo", flags, ctrl_c_in_step, 4, monkeypatch, capsys
    )
    assert len(rows(whole)) == 6 and all(float(r["grad_norm"]) > 0 for r in rows(whole))
    assert sum(bool(r["eval_reward"]) for r in rows(whole)) == 3
    same_runs(whole, cut)
    capsys.readouterr()
    assert main(["eval", str(whole), "--show", "2"]) == 0  # held-out prompts, answers, rewards
    shown = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in shown[:3]] == ["[1] prompt", "    answer", shown[2]]
    assert (
        shown[2].startswith("    reward ")
        and "(shorter " in shown[2]
        and shown[3].startswith("[2]")
    )


BAD_REWARDS = {
    "import": ("no_such_module_xyz:fn", "cannot import 'no_such_module_xyz'"),
    "name": ("rlkit.envs.text.tasks:nope", "has no function 'nope'"),
    "file": ("missing_rewards.py:fn", "no such file"),
}


@pytest.mark.parametrize("case", list(BAD_REWARDS))
def test_a_reward_that_cannot_be_had_is_one_line_before_anything_starts(tmp_path, capsys, case):
    spec, message = BAD_REWARDS[case]
    out = tmp_path / "runs"
    args = ["run", "grpo", "--prompts", str(digits(tmp_path)), "--reward", spec, "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "--reward" in err[0], err
    assert not out.exists()


BROKEN = """
import os
def reward(prompts, completions, **columns):
    if os.path.exists(os.environ["RLKIT_TEST_FLAG"]):
        {body}
    return [1.0] * len(completions)
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("raise KeyError('answer_column')", "raised KeyError: 'answer_column'"),
        ("return [1.0]", "returned 1 values for 16 completions"),
        ("return 'yes'", "returned str for 16 completions"),
    ],
)
def test_a_reward_that_breaks_mid_run_is_one_line_and_keeps_the_checkpoint(
    tmp_path, capsys, monkeypatch, body, message
):
    flag = tmp_path / "break-now"
    monkeypatch.setenv("RLKIT_TEST_FLAG", str(flag))
    fn = tmp_path / "rewards.py"
    fn.write_text(BROKEN.format(body=body))
    flags = [*SMALL[2:], "--reward", str(fn), "--total-steps", "32"]
    run = rl_run(tmp_path, "grpo", "r", digits(tmp_path), *flags)
    saved = (run / "checkpoint.pt").read_bytes()
    flag.touch()
    capsys.readouterr()
    assert main(["resume", str(run), "--total-steps", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(fn) in err[0], err
    assert (run / "checkpoint.pt").read_bytes() == saved


def test_a_missing_column_and_a_model_that_is_not_one_are_one_line(tmp_path, capsys):
    data = digits(tmp_path)
    base = ["run", "grpo", "--prompts", str(data), "--reward", REWARD, "--out", str(tmp_path / "o")]
    assert main([*base, "--prompt-column", "question"]) == 2
    assert "no column 'question'" in capsys.readouterr().err
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    assert main([*base, "--model", str(not_a_model)]) == 2
    assert "not a model" in capsys.readouterr().err
    assert main(["run", "grpo", "--prompts", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "give a reward" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_several_generators_share_the_prompts_and_are_tagged(tmp_path, capsys):
    """Two generator replicas each sample their half of a step's prompts (whole groups)
    from their own streams; their samples are gathered into one step."""
    flags = [*SMALL, "--generators", "2", "--total-steps", "32"]
    run = rl_run(tmp_path, "grpo", "two", digits(tmp_path), *flags)
    assert "generator[0], generator[1]" in capsys.readouterr().out
    logged = rows(run)
    assert len(logged) == 2 and all(float(r["policy_lag"]) == 0.0 for r in logged)
    data = ["--prompts", str(digits(tmp_path)), *SMALL, "--generators", "3"]
    assert main(["plan", "grpo", *data]) == 2
    assert "cannot be shared by --generators 3" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags",
    [
        ["--advantage", "rloo"],
        ["--advantage", "reinforce++", "--loss-aggregation", "sequence-mean"],
        ["--loss-aggregation", "dr-grpo", "--scale-rewards", "false", "--kl-estimator", "k1"],
    ],
    ids=["rloo", "reinforce++", "dr-grpo"],
)
def test_the_advantage_and_aggregation_registries_run_with_the_grpo_loss(tmp_path, flags):
    fn = tmp_path / "shorter.py"
    fn.write_text(SHORTER)
    args = [*SMALL[2:], "--reward", f"{fn}:shorter", "--total-steps", "32", *flags]
    run = rl_run(tmp_path, "grpo", "r", digits(tmp_path), *args)
    logged = rows(run)
    assert len(logged) == 2 and float(logged[-1]["grad_norm"]) > 0
    config = (run / "config.yaml").read_text()
    assert all(f"{f.removeprefix('--').replace('-', '_')}: " in config for f in flags[::2])


def test_the_vllm_engine_without_vllm_is_one_line_that_says_how_to_install_it(
    tmp_path, capsys, monkeypatch
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(  # the main environment has no vllm; this holds wherever it runs
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a)
    )
    out = tmp_path / "o"
    args = ["run", "grpo", "--prompts", str(digits(tmp_path)), "--reward", REWARD]
    assert main([*args, "--generator", "vllm", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'rlkit[vllm]'" in err[0], err
    assert "scripts/vllm_venv.sh" in err[0] and not out.exists()


def test_a_missing_prompts_file_is_named_by_its_flag(tmp_path, capsys):
    """The RL stages read --prompts (and --eval-prompts), not --data: the message says so."""
    missing = str(tmp_path / "nope.jsonl")
    assert main(["plan", "grpo", "--prompts", missing, *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rlkit: error: --prompts {missing}: no such file or directory", err
    args = ["plan", "grpo", "--prompts", str(digits(tmp_path)), "--eval-prompts", missing]
    assert main([*args, *SMALL]) == 2
    assert f"--eval-prompts {missing}: no such file" in capsys.readouterr().err
