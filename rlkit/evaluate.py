"""Evaluate a run's latest checkpoint: deterministic episodes, optional MP4 video."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from rlkit import checkpoint
from rlkit.envs.episodes import run_episodes
from rlkit.envs.vector import make_env, probe_spec
from rlkit.errors import CheckpointError, EnvError
from rlkit.trainer import load_run


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    video: Path | None

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))


def evaluate(
    run_dir: Path,
    episodes: int = 10,
    video: bool = False,
    video_length: int = 500,
    seed: int | None = None,
) -> EvalResult:
    """Run `episodes` deterministic episodes with the checkpointed policy.

    With `video`, the first episode is recorded (up to `video_length` frames) into
    ``RUN_DIR/videos/`` with gymnasium's RecordVideo; MuJoCo renders headless through EGL.
    """
    run_dir = Path(run_dir)
    algo_cls, config = load_run(run_dir)
    state = checkpoint.load(run_dir / checkpoint.CHECKPOINT, algo_cls.name)
    env_id, spec = probe_spec(config.env)
    try:
        act = algo_cls.eval_policy(state["state"], config, spec)
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise CheckpointError(
            f"{run_dir / checkpoint.CHECKPOINT} does not fit this run's layout ({type(e).__name__}: {e})"
        ) from None
    env = make_env(env_id, render_mode="rgb_array" if video else None)
    video_dir = run_dir / "videos"
    if video:
        from gymnasium.wrappers import RecordVideo

        env = RecordVideo(
            env,
            str(video_dir),
            episode_trigger=lambda i: i == 0,
            name_prefix="eval",
            video_length=video_length,
            disable_logger=True,
        )
    base = config.seed + 1_000_003 if seed is None else seed
    try:
        returns, lengths = run_episodes(env, act, episodes, base)
    except gym.error.DependencyNotInstalled as e:
        raise EnvError(f"rendering {env_id} needs an extra package: {e}") from None
    finally:
        env.close()
    clip = (
        max(video_dir.glob("eval*.mp4"), key=lambda p: p.stat().st_mtime, default=None)
        if video
        else None
    )
    result = EvalResult(returns, lengths, clip)
    (run_dir / "eval.json").write_text(
        json.dumps(
            {
                "episodes": episodes,
                "mean": result.mean,
                "std": result.std,
                "returns": returns,
                "lengths": lengths,
                "video": str(clip) if clip else None,
            },
            indent=2,
        )
    )
    return result
