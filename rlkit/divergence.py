"""Stopping a run whose training has diverged: a non-finite learner metric (a loss, a Q
value, an entropy coefficient) ends the run at once with one line saying which metric,
when, and what to change. The check is generic (every algorithm's metrics, once per
iteration) and cheap (a few floats); the last checkpoint on disk is left as it was."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from rlkit.config import offered_fields
from rlkit.errors import TrainingError


def check_finite(metrics: Mapping[str, Any], step: int, config: Any) -> None:
    """TrainingError naming the first metric of an iteration that is nan or inf."""
    for name, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(number):
            raise TrainingError(
                f"training diverged: metric {name!r} is {number} at step {step:,}; "
                f"{remedy(config)}; the last checkpoint is intact"
            )


def remedy(config: Any) -> str:
    """What to change: the config's learning rates, and gradient clipping where it has it."""
    names = offered_fields(type(config)) if dataclasses.is_dataclass(config) else []
    rates = [n for n in names if n == "lr" or n.endswith("_lr")]
    flags = [f"--{n.replace('_', '-')} (now {getattr(config, n):g})" for n in rates]
    advice = "lower " + " and ".join(flags) if flags else "lower the learning rate"
    if "max_grad_norm" in names and not getattr(config, "max_grad_norm", 0):
        advice += ", or clip gradients with --max-grad-norm"
    return advice
