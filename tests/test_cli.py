"""The real `rlkit` command in a subprocess: bad input, an end-to-end Humanoid run with
checkpoint, resume and video, and Ctrl-C followed by an exact resume."""

from __future__ import annotations

import csv
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rlkit import checkpoint


def run(
    cmd: list[str], env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=timeout)


def rows(run_dir: Path, drop: tuple[str, ...] = ("time", "sps")) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def assert_usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlkit: error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "ppoo", "--env", "CartPole"], ["unknown algorithm 'ppoo'", "did you mean 'ppo'"]),
        (
            ["run", "ppo", "--env", "Humanoidd"],
            ["unknown env 'Humanoidd'", "did you mean 'Humanoid'"],
        ),
        (
            ["run", "ppo", "--env", "CartPole", "--lrr", "1e-3"],
            ["unknown option '--lrr'", "did you mean --lr"],
        ),
        (
            ["run", "ppo", "--env", "CartPole", "--lr", "fast"],
            ["--lr: expected a number, got 'fast'"],
        ),
        (
            ["run", "ppo", "--env", "CartPole", "--gamma", "1.5"],
            ["--gamma: must be a finite number in [0, 1], got 1.5"],
        ),
        (
            ["run", "ppo", "--env", "CartPole", "--total-steps", "0"],
            ["--total-steps: must be an integer in [1, ", "got 0"],
        ),
        (
            ["run", "ppo", "--env", "CartPole", "--total-steps", "-5"],
            ["--total-steps: must be an integer in [1, ", "got -5"],
        ),
        (
            ["run", "ppo", "--env", "CartPole", "--device", "cuda"],
            ["--device cuda: this machine has no CUDA GPU"],
        ),
        (["run", "ppo", "--env", "CartPole", "--preset", "Nope"], ["no preset 'Nope'"]),
        (["run", "ppo"], ["--env is required"]),
        (["eval", "/nonexistent/run"], ["no run directory at /nonexistent/run"]),
        (["resume", "/nonexistent/run"], ["no run directory at /nonexistent/run"]),
        (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(rlkit_cmd, cli_env, args, fragments):
    assert_usage_error(run(rlkit_cmd, cli_env, *args), *fragments)


@pytest.fixture(scope="module")
def humanoid_run(tmp_path_factory, rlkit_cmd) -> Path:
    """A short real Humanoid run through the CLI, with --wandb (offline)."""
    import os

    out = tmp_path_factory.mktemp("runs")
    env = dict(
        os.environ, WANDB_MODE="offline", WANDB_DIR=str(out), WANDB_CONFIG_DIR=str(out / "wcfg")
    )
    result = run(
        rlkit_cmd,
        env,
        "run",
        "ppo",
        "--env",
        "Humanoid",
        "--total-steps",
        "2048",
        "--num-steps",
        "256",
        "--num-envs",
        "2",
        "--checkpoint-every",
        "1024",
        "--out",
        str(out),
        "--name",
        "h",
        "--wandb",
    )
    assert result.returncode == 0, result.stderr
    assert f"run directory: {out / 'h'}" in result.stdout
    return out / "h"


def test_run_directory_holds_everything(humanoid_run: Path):
    for name in ("config.yaml", "metrics.csv", "checkpoint.pt", "learning_curve.png"):
        assert (humanoid_run / name).is_file(), name
    assert [r["step"] for r in rows(humanoid_run)] == ["512", "1024", "1536", "2048"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(humanoid_run / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [512, 1024, 1536, 2048]
    assert list(humanoid_run.glob("wandb/offline-run-*")), "wandb offline run missing"
    import yaml

    saved = yaml.safe_load((humanoid_run / "config.yaml").read_text())
    assert saved["algorithm"] == "ppo" and saved["config"]["env"] == "Humanoid"
    assert saved["config"]["norm_obs"] is True  # from the Humanoid preset


def test_resume_continues_and_eval_records_video(humanoid_run: Path, rlkit_cmd, cli_env):
    result = run(rlkit_cmd, cli_env, "resume", str(humanoid_run), "--total-steps", "3072")
    assert result.returncode == 0, result.stderr
    assert [r["step"] for r in rows(humanoid_run)][-3:] == ["2048", "2560", "3072"]
    state = checkpoint.load(humanoid_run / "checkpoint.pt", "ppo")
    assert state["trainer"]["step"] == 3072

    result = run(
        rlkit_cmd,
        cli_env,
        "eval",
        str(humanoid_run),
        "--episodes",
        "2",
        "--video",
        "--video-length",
        "40",
    )
    assert result.returncode == 0, result.stderr
    assert "2 episodes: return" in result.stdout
    videos = list((humanoid_run / "videos").glob("*.mp4"))
    assert len(videos) == 1
    from moviepy import VideoFileClip

    clip = VideoFileClip(str(videos[0]))
    assert clip.reader.n_frames >= 10
    frame = clip.get_frame(0)
    assert frame.shape[2] == 3 and frame.std() > 0  # a rendered picture, not a blank frame
    clip.close()


def test_checkpoint_of_another_algorithm_and_corrupt_files(
    humanoid_run: Path, rlkit_cmd, cli_env, tmp_path
):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(humanoid_run, other)
    checkpoint.save(other / "checkpoint.pt", "dqn", {})
    assert_usage_error(
        run(rlkit_cmd, cli_env, "resume", str(other)), "is a 'dqn' checkpoint, not 'ppo'"
    )
    (other / "checkpoint.pt").write_bytes(b"\x00not a checkpoint")
    assert_usage_error(run(rlkit_cmd, cli_env, "eval", str(other)), "corrupt")
    (other / "config.yaml").write_text("algorithm: [unclosed")
    assert_usage_error(run(rlkit_cmd, cli_env, "resume", str(other)), "config.yaml is corrupt")
    (other / "config.yaml").unlink()
    assert_usage_error(run(rlkit_cmd, cli_env, "eval", str(other)), "is not a run directory")


CTRL_C_RUNS = {
    # algorithm, env, extra flags, total steps, rows before Ctrl-C, rows in a full run
    # (PPO on CartPole: a row per 256-step iteration; the cut after row 4 leaves 28 to go)
    "ppo": (["ppo", "--env", "CartPole"], 8192, 4, 32),
    # shared-memory env workers, two groups pipelined: env states come back from 2 processes
    # --overlap: the rollout in flight at the checkpoint is saved and consumed on resume
    "ppo-overlap": (["ppo", "--env", "CartPole", "--overlap"], 8192, 4, 32),
    "ppo-workers": (
        ["ppo", "--env", "CartPole", "--vector", "workers", "--env-workers", "2"],
        8192,
        4,
        32,
    ),
    # off-policy: interrupted after learning started, so the replay contents, the buffer's
    # sampling RNG and the optimizer must all come back for the rows to match (the CartPole
    # preset learns from step 1,000, 128 gradient steps every 256 env steps: the cut after
    # row 4 at 2,048 is 4 update rounds in, with 8 more to the end)
    "dqn": (["dqn", "--env", "CartPole", "--log-every", "512"], 4096, 4, 8),
    # (SAC makes one update per env step after learning starts: 1,000 steps, rows every
    # 125, the cut after row 4 at 500, is 200 updates in before the cut and 500 after)
    "sac": (
        ["sac", "--env", "Pendulum", "--learning-starts", "300", "--log-every", "125"],
        1000,
        4,
        8,
    ),
    # bf16 learner arithmetic is as deterministic on CPU as fp32
    "sac-bf16": (
        [
            "sac",
            "--env",
            "Pendulum",
            "--learning-starts",
            "300",
            "--log-every",
            "125",
            "--precision",
            "bf16",
        ],
        1000,
        4,
        8,
    ),
    # async-actor (in one process here): the chunks in flight at the checkpoint come back
    "dqn-async": (
        ["dqn", "--env", "CartPole", "--policy", "async-actor", "--log-every", "512"],
        4096,
        4,
        8,
    ),
}


@pytest.mark.parametrize("algo", list(CTRL_C_RUNS))
def test_ctrl_c_saves_and_resume_is_exact(rlkit_cmd, cli_env, tmp_path, algo):
    args, total, cut_after, full_rows = CTRL_C_RUNS[algo]
    common = [
        "run",
        *args,
        "--total-steps",
        str(total),
        "--checkpoint-every",
        "1000000",
        "--out",
        str(tmp_path),
    ]
    full = run(rlkit_cmd, cli_env, *common, "--name", "full")
    assert full.returncode == 0, full.stderr

    proc = subprocess.Popen(
        [*rlkit_cmd, *common, "--name", "cut"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    csv_path = tmp_path / "cut" / "metrics.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if csv_path.exists() and len(csv_path.read_text().splitlines()) >= cut_after + 1:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert f"resume with: rlkit resume {tmp_path / 'cut'}" in out
    stopped_at = checkpoint.load(tmp_path / "cut" / "checkpoint.pt", args[0])["trainer"]["step"]
    assert 0 < stopped_at < total

    resumed = run(rlkit_cmd, cli_env, "resume", str(tmp_path / "cut"))
    assert resumed.returncode == 0, resumed.stderr
    assert rows(tmp_path / "cut") == rows(tmp_path / "full")
    assert len(rows(tmp_path / "full")) == full_rows


def test_plan_prints_graph_plan_and_placement(rlkit_cmd, cli_env):
    result = run(rlkit_cmd, cli_env, "plan", "ppo", "--env", "Humanoid", "--actors", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "actor --gather--> learner" in out and "learner --broadcast--> actor" in out
    assert "OnPolicyActor x2" in out
    assert "actor[0], actor[1], learner[0]" in out


def test_list_shows_algorithms_envs_and_presets(rlkit_cmd, cli_env):
    result = run(rlkit_cmd, cli_env, "list")
    assert result.returncode == 0
    assert "ppo" in result.stdout and "Humanoid                 Humanoid-v5" in result.stdout
    assert "presets: CartPole" in result.stdout


def test_output_to_a_closed_pipe_is_not_an_error(rlkit_cmd, cli_env):
    result = subprocess.run(
        " ".join(rlkit_cmd) + " list | head -1",
        shell=True,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.startswith("algorithms:")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


@pytest.mark.parametrize(
    ("algo", "env", "flags"),
    [
        ("dqn", "CartPole", ["--learning-starts", "256", "--total-steps", "1024"]),
        (
            "sac",
            "Pendulum",
            ["--learning-starts", "128", "--total-steps", "400", "--log-every", "200"],
        ),
    ],
)
def test_off_policy_run_eval_video_and_plan(rlkit_cmd, cli_env, tmp_path, algo, env, flags):
    result = run(
        rlkit_cmd, cli_env, "run", algo, "--env", env, *flags, "--out", str(tmp_path), "--name", "r"
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "learning_curve.png").is_file()
    assert "critic_loss" in rows(tmp_path / "r")[-1] or "loss" in rows(tmp_path / "r")[-1]
    state = checkpoint.load(tmp_path / "r" / "checkpoint.pt", algo)
    saved = state["state"]["fragments"]["replay"][0]["buffer"]["core"]
    assert saved["total"] == state["trainer"]["step"]  # every transition is in the checkpoint
    result = run(
        rlkit_cmd,
        cli_env,
        "eval",
        str(tmp_path / "r"),
        "--episodes",
        "1",
        "--video",
        "--video-length",
        "20",
    )
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "r" / "videos").glob("*.mp4"))
    result = run(rlkit_cmd, cli_env, "plan", algo, "--env", env)
    assert (
        "actor --queue--> replay" in result.stdout and "replay --gather--> learner" in result.stdout
    )


def test_wrong_action_space_is_refused_with_a_suggestion(rlkit_cmd, cli_env):
    assert_usage_error(
        run(rlkit_cmd, cli_env, "run", "dqn", "--env", "Pendulum"),
        "DQN needs discrete actions",
        "use SAC",
    )
    assert_usage_error(
        run(rlkit_cmd, cli_env, "run", "sac", "--env", "CartPole"),
        "SAC needs continuous actions",
        "use DQN",
    )


@pytest.mark.parametrize("algo", ["ppo", "dqn", "sac"])
def test_run_help_lists_every_field(rlkit_cmd, cli_env, algo):
    from rlkit.algorithms import ALGORITHMS

    result = run(rlkit_cmd, cli_env, "run", algo, "--help")
    assert result.returncode == 0, result.stderr
    fields = ALGORITHMS.get(algo).config_cls.__dataclass_fields__
    for name in fields:
        assert f"--{name.replace('_', '-')}" in result.stdout


# -- help texts and messages, in-process -------------------------------------------------
def help_text(capsys, *args: str) -> str:
    """`rlkit ARGS --help` in-process, its lines joined (argparse wraps long helps)."""
    from rlkit.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([*args, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("algo", "metavars"),
    [
        (
            "grpo",
            [
                "--reward MODULE:FUNCTION,...",
                "--reward-weights FLOAT,FLOAT,...",
                "--stop-strings STR,STR,...",
                "--stop-token-ids INT,INT,...",
            ],
        ),
        ("rlhf-ppo", ["--reward MODULE:FUNCTION,...", "--reward-weights FLOAT,FLOAT,..."]),
        ("ppo", ["--hidden INT,INT,..."]),
        ("sac", ["--hidden INT,INT,..."]),
    ],
)
def test_help_metavars_name_what_a_list_flag_takes(capsys, algo, metavars):
    text = help_text(capsys, "run", algo)
    for metavar in metavars:
        assert f" {metavar} " in text, metavar


def test_every_tuple_field_gets_the_metavar_of_its_items():
    import dataclasses
    import typing

    from rlkit.algorithms import ALGORITHMS
    from rlkit.cli import _type_name

    for name in ALGORITHMS:
        config_cls = ALGORITHMS.get(name).config_cls
        for f in dataclasses.fields(config_cls):
            annotation = typing.get_type_hints(config_cls)[f.name]
            if typing.get_origin(annotation) is not tuple:
                continue
            item = typing.get_args(annotation)[0].__name__.upper()
            metavar = _type_name(annotation, f.metadata)
            assert metavar == f.metadata.get("metavar", f"{item},{item},..."), (name, f.name)


@pytest.mark.parametrize("algo", ["ppo", "mappo", "sft", "rm", "dpo", "grpo", "rlhf-ppo"])
def test_help_says_a_preset_may_set_a_field_only_where_one_does(capsys, algo):
    from rlkit.algorithms import ALGORITHMS
    from rlkit.config import offered_fields

    algo_cls = ALGORITHMS.get(algo)
    text = help_text(capsys, "run", algo)
    preset = {k.replace("-", "_") for fields in algo_cls.presets().values() for k in fields}
    set_by_presets = preset & set(offered_fields(algo_cls.config_cls))
    kind, other = ("an env", "a model") if algo_cls.families else ("a model", "an env")
    assert text.count(f"; {kind} preset may set it)") == len(set_by_presets)
    assert f"{other} preset may set it" not in text
    if algo == "ppo":  # Humanoid's preset sets the budget; no preset sets the estimator
        assert "(default: 100000; an env preset may set it)" in text
        assert "(default: gae)" in text


@pytest.mark.parametrize("algo", ["grpo", "rlhf-ppo"])
def test_rl_stages_name_their_own_flags_in_help_and_errors(capsys, algo):
    import re

    from rlkit.cli import main

    text = help_text(capsys, "run", algo)
    eval_fraction = text.split("--eval-fraction FLOAT ", 1)[1].split(" --", 1)[0]
    assert not re.search(r"--(eval-)?data\b(?!-)", eval_fraction), eval_fraction
    for command in ("plan", "run"):
        assert main([command, algo]) == 2
        err = capsys.readouterr().err
        assert err == f"rlkit: error: {algo}: --prompts is required (a .jsonl file, ...)\n"


def test_eval_shows_each_episode_and_the_video_as_it_goes(tiny_run, capsys):
    from rlkit.cli import main

    run_dir = tiny_run("ppo")
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "3", "--video", "--video-length", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"recording video of the first episode (up to 20 frames) into {run_dir / 'videos'} ..."
    )
    assert [line.split(":")[0] for line in lines[1:4]] == [
        "episode 1/3",
        "episode 2/3",
        "episode 3/3",
    ]
    assert lines[1].split(": ", 1)[1].startswith("return ")
    assert lines[4].startswith("3 episodes: return ")
