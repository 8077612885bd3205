"""The progress line (rlkit/progress.py): the count never shows past the total."""

from __future__ import annotations

import io
import math

from rich.console import Console

from rlkit import progress
from rlkit.progress import ProgressReporter

# MAPPO's simple_spread preset collects 128 envs x 25 steps = 3,200 env steps per driver
# step: a budget of 20,000 ends after 7 of them, at 22,400.
BUDGET, STEP = 20_000, 3_200


def test_the_plain_line_total_grows_to_a_last_step_past_the_budget(capsys):
    reporter = ProgressReporter(BUDGET, every=0.0)
    for step in range(STEP, 7 * STEP + 1, STEP):
        reporter.update(step, math.nan)
    reporter.close()
    lines = capsys.readouterr().out.splitlines()
    counts = [line.split()[1].split("/") for line in lines]
    assert all(int(done.replace(",", "")) <= int(total.replace(",", "")) for done, total in counts)
    assert lines[0].startswith("step 3,200/20,000 ")
    assert lines[-1].startswith("step 22,400/22,400 ")


def test_the_bar_total_grows_to_a_last_step_past_the_budget(monkeypatch):
    screen = Console(file=io.StringIO(), force_terminal=True, width=120)
    monkeypatch.setattr(progress, "Console", lambda file: screen)
    reporter = ProgressReporter(BUDGET)
    assert reporter.bar is not None
    reporter.update(STEP, math.nan)
    assert reporter.bar.tasks[0].total == BUDGET
    reporter.update(7 * STEP, math.nan)
    reporter.close()
    task = reporter.bar.tasks[0]
    assert task.completed == task.total == 7 * STEP


def test_slow_rates_are_not_shown_as_zero():
    """An LLM stage's 0.4 samples/s shows as such, not "0"."""
    from rlkit.progress import rate_text

    assert [rate_text(r) for r in (0.4, 0.0423, 12.5, 1234.4)] == ["0.4", "0.0423", "12.5", "1,234"]


def test_more_threads_than_free_cores_is_warned_about():
    from rlkit.trainer import thread_warning

    assert thread_warning(1, 0.2) is None and thread_warning(2, 1.8) is None
    warning = thread_warning(4, 1.2)
    assert (
        warning is not None
        and "--torch-threads 4" in warning
        and "use --torch-threads 1" in warning
    )
