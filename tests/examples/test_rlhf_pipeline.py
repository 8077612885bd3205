"""examples/rlhf_pipeline.py runs end to end (a few steps per stage: that it runs, not
that it learns; test_ppo_llm.py holds the learning test of the same recipe), and the
Python API chains the stages by their run directories."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "rlhf_pipeline.py"


@pytest.mark.slow
def test_the_pipeline_script_runs_sft_then_rm_then_ppo(tmp_path, cli_env):
    done = subprocess.run(  # no --out: under runs/rlhf-pipeline of the working directory
        [sys.executable, str(SCRIPT), "--smoke"],
        cwd=tmp_path,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "runs" / "rlhf-pipeline"
    assert f"wrote the data to {Path('runs/rlhf-pipeline/rlhf-data')}" in done.stdout
    assert (out / "rlhf-data" / "prompts.jsonl").is_file()
    # the reward model's and the critic's new value heads are expected: no load report
    assert "LOAD REPORT" not in done.stdout + done.stderr
    lines = dict(
        line.split(":", 1)
        for line in done.stdout.splitlines()
        if line[:4] in ("sft:", "rm: ", "ppo:")
    )
    runs = {k.strip(): Path(v.strip()) for k, v in lines.items()}
    assert set(runs) == {"sft", "rm", "ppo"}
    assert all(run.parent == Path("runs/rlhf-pipeline") for run in runs.values())
    for run in runs.values():  # printed relative to the working directory
        run = tmp_path / run
        assert (run / "model" / "config.json").is_file() and (run / "checkpoint.pt").is_file()
    # configs record paths absolute (a run directory resumes from any directory)
    sft, rm = (str((tmp_path / runs[k]).resolve()) for k in ("sft", "rm"))
    assert f"model: {sft}" in (tmp_path / runs["rm"] / "config.yaml").read_text()
    ppo_config = (tmp_path / runs["ppo"] / "config.yaml").read_text()
    assert f"reward_model: {rm}" in ppo_config and f"model: {sft}" in ppo_config
    assert "gold reward (exact sorts) of PPO's samples" in done.stdout


def test_a_bad_out_and_ctrl_c_end_the_script_as_the_cli_ends(tmp_path, cli_env):
    """--out under a file: one line naming --out, exit 2, the file unchanged; Ctrl-C (a
    SIGINT once the script is under way): exit 130 with one line, no traceback."""
    import signal
    import time

    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(blocker / "runs")],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2, bad.stderr[-2000:]
    assert bad.stderr.strip().count("\n") == 0 and "--out" in bad.stderr, bad.stderr
    assert blocker.read_text() == "keep me"
    run = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path / "runs")],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.stdout is not None
    for line in run.stdout:  # under way: the SFT stage has its run directory
        if line.lower().startswith("run directory:"):
            break
    time.sleep(1.0)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 130, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
