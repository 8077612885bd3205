"""What a hostile user does to the LLM stages (#25), one test per cause, through the CLI:
the exit code, the one line on stderr, and nothing already saved changed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlkit.cli import main

REWARDS = """
import math, os, signal, sys, time

def nan_third(prompts, completions, tags, **columns):
    # records the list-valued column it was given, then appends to it
    with open(os.environ["RLKIT_TEST_SEEN"], "a") as f:
        f.write(f"{len(tags[0])}\\n")
    for t in tags:
        t.append("x")
    calls = sum(1 for _ in open(os.environ["RLKIT_TEST_SEEN"]))
    return [math.nan if calls == 3 and i == 1 else 0.0 for i in range(len(completions))]

def sleeps(prompts, completions, **columns):
    time.sleep(600)

def exits(prompts, completions, **columns):
    sys.exit(3)

def ctrl_c_then_sleeps(prompts, completions, **columns):
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(600)
"""


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def grpo_args(tmp_path: Path) -> list[str]:
    """A GRPO run as small as it gets: 4 prompts (one step an epoch), 2 samples each, 2
    new tokens; the reward functions above in a file."""
    prompts = [{"prompt": p, "tags": ["a"]} for p in ("12", "34", "56", "78")]
    data = write_rows(tmp_path / "prompts.jsonl", prompts)
    (tmp_path / "rewards.py").write_text(REWARDS)
    flags = ["--prompts", str(data), "--prompts-per-step", "4", "--group-size", "2"]
    return ["run", "grpo", *flags, "--max-new-tokens", "2", "--out", str(tmp_path / "runs")]


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_reward_function_cannot_corrupt_the_data_or_hide_nan(
    tmp_path, grpo_args, capsys, monkeypatch
):
    """A reward function that appends to a list column sees the dataset's value every
    epoch (1, 1, 1: not 1, 3, 5); its nan in the third epoch stops the run with one line
    naming it and the sample (not a silent 0); the prompts file is untouched."""
    seen = tmp_path / "seen.txt"
    monkeypatch.setenv("RLKIT_TEST_SEEN", str(seen))
    before = (tmp_path / "prompts.jsonl").read_bytes()
    reward = f"{tmp_path / 'rewards.py'}:nan_third"
    assert main([*grpo_args, "--reward", reward, "--epochs", "3"]) == 2
    line = one_line(capsys)
    assert f"--reward {reward} returned nan for sample 1" in line, line
    assert seen.read_text().split() == ["1", "1", "1"]
    assert (tmp_path / "prompts.jsonl").read_bytes() == before


def test_a_reward_function_cannot_stall_or_end_the_run(tmp_path, grpo_args, capsys):
    """One that sleeps is stopped by --reward-timeout, or at once by one Ctrl-C; one that
    calls sys.exit(3) ends the run with rlkit's exit code and a line naming it."""
    spec = f"{tmp_path / 'rewards.py'}"
    cases = [
        ("sleeps", ["--reward-timeout", "0.5"], 2, "did not return within --reward-timeout 0.5"),
        ("exits", [], 2, "called sys.exit(3)"),
        ("ctrl_c_then_sleeps", [], 130, "aborted"),
    ]
    for fn, flags, code, said in cases:
        assert main([*grpo_args, "--reward", f"{spec}:{fn}", *flags]) == code, fn
        line = one_line(capsys)
        assert said in line, line
        if code == 2:
            assert f"--reward {spec}:{fn}" in line, line


def test_inputs_that_cannot_work_are_refused_before_anything_is_written(tmp_path, capsys):
    """Each is refused with exit 2, one line naming the flag given, and no run directory:
    lengths past the tiny model's 1,024 positions, a group of one sample, pairs with no
    preference, a model of the wrong kind or without weights, flag abbreviations, chat
    content that is not a string; and messages that point the right way (the flag that
    named a missing column; no assistant turn is not blamed on --max-length)."""
    from rlkit.llm.models import load_model, load_tokenizer

    for head, name in (("reward", "classifier"), ("causal", "lm"), ("causal", "no-weights")):
        load_model("tiny", head, 0, None).save_pretrained(tmp_path / name)
        load_tokenizer("tiny").save_pretrained(tmp_path / name)
    for weights in (tmp_path / "no-weights").glob("*.safetensors"):
        weights.unlink()
    mappo_run = tmp_path / "mappo-run"  # what rlkit run mappo records, no model/
    mappo_run.mkdir()
    (mappo_run / "config.yaml").write_text("algorithm: mappo\nconfig: {env: simple_spread}\n")
    unknown = tmp_path / "unknown-type"
    unknown.mkdir()
    (unknown / "config.json").write_text('{"model_type": "nonsense"}')
    (unknown / "model.safetensors").write_bytes(b"")
    sft = write_rows(tmp_path / "sft.jsonl", [{"prompt": "ab", "response": "ba"}] * 4)
    same = write_rows(tmp_path / "same.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "b"}])
    chat = write_rows(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": 7}]}])
    turn = write_rows(tmp_path / "turn.jsonl", [{"messages": [{"role": "user", "content": "a"}]}])
    prompts = write_rows(tmp_path / "p.jsonl", [{"prompt": "12"}])
    out = tmp_path / "runs"
    grpo = ["grpo", "--prompts", str(prompts), "--reward", "rlkit.envs.text.tasks:sorted_exact"]
    cases = [
        (["sft", "--data", str(sft), "--max-length", "8192"], "--max-length 8192: the model"),
        (["sft", "--data", str(sft), "--max-length", "1048576"], "use --max-length 1024"),
        ([*grpo, "--max-new-tokens", "2000"], "--max-new-tokens 2000: with the longest prompt"),
        ([*grpo, "--group-size", "1"], "--group-size: --advantage grpo compares"),
        (["dpo", "--data", str(same)], "column 'chosen' equals column 'rejected'"),
        (["rm", "--data", str(same)], "there is no preference to learn"),
        (["sft", "--data", str(sft), "--model", str(tmp_path / "classifier")], "a reward model"),
        ([*grpo, "--reward-model", str(tmp_path / "lm")], "--reward-model"),
        ([*grpo, "--reward-model", str(tmp_path / "no-weights")], "no weights"),
        ([*grpo, "--reward-model", str(tmp_path / "nothing")], "--reward-model"),
        (["grpo", "--data", str(prompts)], "--data does not apply to grpo; give --prompts"),
        ([*grpo, "--temp", "0.5"], "did you mean --temperature?"),
        (["sft", "--data", str(chat)], "message 1 has a content of type int"),
        (["sft", "--data", str(sft), "--response-column", "answer"], "with --response-column"),
        (["sft", "--data", str(turn)], "no example has an assistant turn"),
        (["sft", "--data", str(sft), "--model", str(unknown)], "model_type 'nonsense'"),
        (["sft", "--data", str(sft), "--model", str(mappo_run)], "with no language model"),
    ]
    for args, said in cases:
        assert main(["run", *args, "--out", str(out)]) == 2, args
        line = one_line(capsys)
        assert said in line, (args, line)
        if "--reward-model" in args:  # named as given, not as --model
            assert line.startswith("rlkit: error: --reward-model"), line
        assert not out.exists(), args


KILL_IN_EXPORT = """
import os, shutil, signal, sys
from pathlib import Path

def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)

rename, rmtree = os.rename, shutil.rmtree

def rename_then_kill(src, dst, *args, **kwargs):
    rename(src, dst, *args, **kwargs)
    if Path(src).name == "model":  # model/ moved away: the window of a two-step swap
        kill()

def kill_before_cleanup(path, *args, **kwargs):
    if Path(path).name.startswith(".model."):  # the swap is done, the old copy not removed
        kill()
    rmtree(path, *args, **kwargs)

os.rename, shutil.rmtree = rename_then_kill, kill_before_cleanup
from rlkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def tiny_sft_run(tmp_path: Path) -> Path:
    """A finished SFT run of one optimizer step (4 samples): a checkpoint and a model/."""
    rows = [{"prompt": w, "response": w[::-1]} for w in ("ab", "cd", "ef", "gh")]
    data = write_rows(tmp_path / "sft.jsonl", rows)
    flags = ["--samples-per-step", "4", "--micro-batch", "4", "--total-steps", "4"]
    args = ["run", "sft", "--data", str(data), "--out", str(tmp_path), "--name", "r"]
    assert main([*args, *flags]) == 0
    return tmp_path / "r"


def test_a_kill_during_the_export_leaves_a_loadable_model(tmp_path, capsys):
    """The second export of a run (its resume) is killed between its rename steps, as
    SIGKILL would: ``model/`` still loads, and is the new one."""
    import transformers

    run = tiny_sft_run(tmp_path)
    first = hashlib.sha256((run / "model" / "model.safetensors").read_bytes()).hexdigest()
    resume = ["resume", str(run), "--total-steps", "8"]
    # cwd: not the repository, whose unbuilt rlkit/ would shadow the installed package
    done = subprocess.run(
        [sys.executable, "-c", KILL_IN_EXPORT, *resume], capture_output=True, cwd=tmp_path
    )
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    model = transformers.AutoModelForCausalLM.from_pretrained(run / "model")
    assert model.num_parameters() > 0
    now = hashlib.sha256((run / "model" / "model.safetensors").read_bytes()).hexdigest()
    assert now != first  # the swap happened before the kill


def test_a_corrupt_checkpoint_is_one_line_on_resume(tmp_path, capsys):
    """A zeroed weights file in the checkpoint: resume says which file, in one line, and
    leaves the run as it was (the exported model/ untouched)."""
    run = tiny_sft_run(tmp_path)
    (weights,) = (run / "checkpoint-files").glob("*/*/model/model.safetensors")
    weights.write_bytes(bytes(weights.stat().st_size))
    exported = (run / "model" / "model.safetensors").read_bytes()
    assert main(["resume", str(run), "--total-steps", "8"]) == 2
    line = one_line(capsys)
    assert f"{weights} is corrupt" in line, line
    assert (run / "model" / "model.safetensors").read_bytes() == exported
