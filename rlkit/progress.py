"""The live progress line: steps, steps/s, recent episode return, ETA.

On a terminal it is a rich progress bar; otherwise (CI, pipes, logs) a plain line is
printed every `every` seconds so logs stay readable.
"""

from __future__ import annotations

import math
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


def rate_text(rate: float) -> str:
    """A rate for people: whole numbers from 100 up, three significant digits below (an
    LLM stage's 0.4 samples/s is not "0")."""
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


class ProgressReporter:
    def __init__(
        self,
        total: int,
        start: int = 0,
        unit: str = "steps",
        label: str = "return",
        every: float = 10.0,
    ) -> None:
        self.total, self.start, self.unit, self.label = total, start, unit, label
        self.t0 = time.perf_counter()
        self.last_print = self.t0
        self.every = every
        self.console = Console(file=sys.stdout)
        self.bar: Progress | None = None
        if self.console.is_terminal:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,}/{task.total:,} " + unit),
                TextColumn("{task.fields[rate]:>7} " + unit + "/s"),
                TextColumn(label + " {task.fields[ret]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.bar.add_task(
                "training", total=total, completed=start, rate="-", ret="-"
            )
            self.bar.start()

    def update(self, step: int, episode_return: float) -> float:
        """Show progress at `step`; returns steps/s since start (or resume)."""
        now = time.perf_counter()
        # A driver step collects whole rollouts, so the last one may pass the budget (MAPPO:
        # 7 steps of 3,200 for 20,000). Those steps were trained and logged: the total
        # grows to them (22,400/22,400) rather than the count being clamped to the budget.
        self.total = max(self.total, step)
        sps = (step - self.start) / max(now - self.t0, 1e-9)
        ret = (
            "-"
            if math.isnan(episode_return)
            else f"{episode_return:.{1 if self.unit == 'steps' else 3}f}"
        )
        if self.bar is not None:
            self.bar.update(
                self.task, total=self.total, completed=step, rate=rate_text(sps), ret=ret
            )
        elif now - self.last_print >= self.every or step >= self.total:
            self.last_print = now
            eta = max(0.0, (self.total - step) / sps) if sps > 0 else float("inf")
            print(
                f"{self.unit.removesuffix('s')} {step:,}/{self.total:,}  {rate_text(sps)} {self.unit}/s  "
                f"{self.label} {ret}  eta {eta:,.0f}s",
                flush=True,
            )
        return sps

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
