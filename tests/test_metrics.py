"""metrics.csv on resume: cut back to the checkpoint atomically (a SIGKILL at any moment
loses no row up to the checkpoint), a row cut short by a kill is dropped, garbage refused."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rlkit import checkpoint
from rlkit.errors import CheckpointError
from rlkit.metrics import CSV_NAME, MetricsLogger, read_rows


def rows_up_to(path: Path, step: int) -> list[list[str]]:
    with open(path, newline="") as f:
        body = list(csv.reader(f))[1:]
    return [r for r in body if float(r[0]) <= step]


def test_a_sigkill_during_the_restore_of_a_long_csv_loses_no_row(
    tiny_run, rlkit_cmd, cli_env, tmp_path
):
    run_dir = tiny_run("ppo", total_steps=256)
    step = checkpoint.load(run_dir / "checkpoint.pt", "ppo")["trainer"]["step"]
    header = (run_dir / CSV_NAME).read_text().splitlines()[0]
    width = len(header.split(","))
    # a long history: 60,000 rows up to the checkpoint, then rows the resume must drop
    with open(run_dir / CSV_NAME, "w") as f:
        f.write(header + "\n")
        filler = ",".join(["0.5"] * (width - 1))
        for i in range(60_000):
            f.write(f"{1 + i * step // 60_000},{filler}\n")
        for i in range(1000):
            f.write(f"{step + 1 + i},{filler}\n")
    expected = rows_up_to(run_dir / CSV_NAME, step)
    temp = run_dir / ".metrics.csv.tmp-"
    killed_during_restore = False
    for _ in range(3):
        proc = subprocess.Popen(
            # a budget past the checkpoint: a finished run is left as it is, unrestored
            [*rlkit_cmd, "resume", str(run_dir), "--total-steps", str(step + 512)],
            env=cli_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if Path(f"{temp}{proc.pid}").exists():  # the rewrite is under way: kill it now
                os.kill(proc.pid, signal.SIGKILL)
                killed_during_restore = True
                break
            time.sleep(0.001)
        proc.wait(timeout=60)
        assert rows_up_to(run_dir / CSV_NAME, step) == expected
        if killed_during_restore:
            break
    assert killed_during_restore, "the resume never reached the metrics.csv restore"
    # the next start removes the dead writer's temp file and resumes with every row
    from rlkit.cli import main

    assert main(["resume", str(run_dir), "--total-steps", "512"]) == 0
    assert rows_up_to(run_dir / CSV_NAME, step) == expected
    assert not list(run_dir.glob(".*.tmp-*"))


def test_a_row_cut_short_by_a_kill_is_dropped(tmp_path: Path):
    path = tmp_path / CSV_NAME
    path.write_text("step,loss\n1,0.5\n2,0.25\n3,0.1")  # the last append never finished
    header, body = read_rows(path)
    assert header == ["step", "loss"] and [s for s, _ in body] == [1.0, 2.0]


@pytest.mark.parametrize("garbage", ["\x00\x01,\x02\n", "abc,0.5\n", "1,2,3,4\n", "nan,1\n"])
def test_a_garbage_row_is_refused_with_its_line(tmp_path: Path, garbage: str):
    path = tmp_path / CSV_NAME
    path.write_text("step,loss\n1,0.5\n" + garbage)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=f"{CSV_NAME} line 3"):
        MetricsLogger(tmp_path, {}, resume_step=1)
    assert path.read_bytes() == before


def test_resume_keeps_rows_up_to_the_step(tmp_path: Path):
    path = tmp_path / CSV_NAME
    path.write_text("step,loss\n1,0.5\n2,0.25\n3,0.1\n")
    logger = MetricsLogger(tmp_path, {}, resume_step=2)
    logger.log({"step": 3, "loss": 0.2, "new": 1.0})  # a new column: an atomic rewrite too
    logger.tb.close()
    assert path.read_text().splitlines() == ["step,loss,new", "1,0.5,", "2,0.25,", "3,0.2,1.0"]
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_an_llm_stage_s_curve_plots_what_it_optimizes(tmp_path: Path, monkeypatch):
    """Reward, gold, KL and loss against samples (no episode return in an LLM stage)."""
    import matplotlib.axes

    from rlkit.metrics import plot_learning_curve

    csv_path = tmp_path / CSV_NAME
    csv_path.write_text(
        "step,reward,gold_reward,kl,objective,time\n64,0.1,0.2,0.0,0.0,1\n128,0.3,0.4,0.1,0.0,2\n"
    )
    plotted: list[str] = []
    original = matplotlib.axes.Axes.plot

    def plot(self, *args, label=None, **kwargs):
        plotted.append(label)
        return original(self, *args, label=label, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    assert plot_learning_curve(csv_path, tmp_path / "curve.png") == tmp_path / "curve.png"
    assert plotted == ["reward", "gold_reward", "objective", "kl"]
