"""Evaluate a run's latest checkpoint: deterministic episodes, optional MP4 video."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlkit import checkpoint, evaluation
from rlkit.errors import CheckpointError, ConfigError
from rlkit.evaluation import EpisodeDone, Playback
from rlkit.trainer import load_run


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    video: Path | None
    extra: dict[str, float] = field(default_factory=dict)
    """The family's or algorithm's own means (per-agent returns; held-out loss on data)."""

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    @property
    def std(self) -> float:
        return float(np.std(self.returns)) if self.returns else float("nan")


def evaluate(
    run_dir: Path,
    episodes: int = 10,
    video: bool = False,
    video_length: int = 500,
    seed: int | None = None,
    on_episode: EpisodeDone | None = None,
) -> EvalResult:
    """Run `episodes` deterministic episodes with the checkpointed policy.

    The evaluation service plays them in the env family's loop (`rlkit.evaluation`,
    which periodic evaluation uses too; an algorithm on data evaluates its held-out split
    instead). With `video`, the first
    episode is recorded (up to `video_length` frames) into ``RUN_DIR/videos/``; MuJoCo
    renders headless through EGL. `on_episode(index, return, length)` is called as each
    episode ends (an algorithm on data plays none).
    """
    run_dir = Path(run_dir)
    algo_cls, config = load_run(run_dir)
    state = checkpoint.load(run_dir / checkpoint.CHECKPOINT, algo_cls.name)
    base = config.seed + 1_000_003 if seed is None else seed
    video_dir = run_dir / "videos" if video else None
    try:
        play = Playback(episodes, base, video_dir, video_length, on_episode)
        played = evaluation.of_checkpoint(algo_cls, state["state"], config, play)
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise CheckpointError(
            f"{run_dir / checkpoint.CHECKPOINT} does not fit this run's layout ({type(e).__name__}: {e})"
        ) from None
    returns, lengths, clip = played.returns, played.lengths, played.video
    result = EvalResult(returns, lengths, clip, played.extra)
    (run_dir / "eval.json").write_text(
        json.dumps(
            {
                "episodes": episodes,
                "mean": result.mean,
                "std": result.std,
                "returns": returns,
                "lengths": lengths,
                "video": str(clip) if clip else None,
                **result.extra,
            },
            indent=2,
        )
    )
    return result


def show(run_dir: Path, n: int) -> list[Any]:
    """`rlkit eval RUN --show N`: the first `n` held-out prompts of an RL stage's run, the
    checkpoint's greedy answers and their rewards (`RLStage.answers`)."""
    from rlkit.algorithms.rlhf.rl_template import RLStage

    run_dir = Path(run_dir)
    algo_cls, config = load_run(run_dir)
    if not issubclass(algo_cls, RLStage):
        raise ConfigError(
            f"--show: {algo_cls.name} has no rewards to show; it applies to the RL stages "
            "on prompts (grpo, rlhf-ppo)"
        )
    state = checkpoint.load(run_dir / checkpoint.CHECKPOINT, algo_cls.name)
    algorithm = algo_cls.create(config)
    assert isinstance(algorithm, RLStage)
    return list(algorithm.answers(state["state"], n))
