"""The "pettingzoo" env family: PettingZoo parallel envs (mpe2 by short name).

    rlkit run mappo --env simple_spread                          # mpe2's simple_spread_v3
    rlkit run mappo --env simple_spread --env-kwargs N=5,local_ratio=0.5
    rlkit run ippo  --env pettingzoo.butterfly.pistonball_v6:parallel_env
    rlkit run mappo --env path/to/my_env.py:parallel_env

Names and env making are in `parallel_envs.py` (AEC envs: converted with PettingZoo's
`aec_to_parallel` when parallelizable, refused otherwise), the spec probe in
`multi_agent_spec.py`, vectorization and masks in `parallel_runner.py`, the exact env
state in `parallel_state.py`. Here: the registry entry and the evaluation loop.
Importing this module registers the family (`rlkit.envs.families` imports it on first use).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pettingzoo  # noqa: F401  (the family is registered only where PettingZoo is installed)

from rlkit.envs import parallel_envs
from rlkit.envs.families import FAMILIES, EnvFamily
from rlkit.envs.multi_agent_spec import MultiAgentSpec, Observation, spec_of
from rlkit.envs.parallel_runner import AgentEnv
from rlkit.errors import EnvError
from rlkit.evaluation import EpisodeDone, Episodes, Playback, Policy


class PettingZoo(EnvFamily):
    """Multi-agent PettingZoo parallel envs: mpe2 short names or any ``module:factory``."""

    name = "pettingzoo"
    any_id = "any PettingZoo parallel env works too, as module:factory or path/file.py:factory"

    def owns(self, env: str) -> bool:
        return env.lower() in {n.lower() for n in self._all_names()} or (
            parallel_envs.is_factory_spec(env)
        )

    @staticmethod
    def _all_names() -> list[str]:
        return [*parallel_envs.SHORT_NAMES, *parallel_envs.MPE2.values()]

    def resolve(self, env: str) -> str:
        return parallel_envs.resolve(env)

    def probe(self, env_id: str, kwargs: dict[str, Any]) -> MultiAgentSpec:
        env = parallel_envs.make_parallel_env(env_id, kwargs)
        try:
            _, infos = env.reset(seed=0)
            return spec_of(env, parallel_envs.short_name(env_id), infos)
        finally:
            env.close()

    def names(self) -> dict[str, str]:
        return dict(parallel_envs.SHORT_NAMES)

    def short_name(self, env_id: str) -> str:
        return parallel_envs.short_name(env_id)

    def evaluate(
        self,
        env_id: str,
        kwargs: dict[str, Any],
        policy: Policy,
        playback: Playback,
    ) -> Episodes:
        """Deterministic episodes (reset seeds seed, seed+1, ...) with the team return as
        "return" and, as the extra means, each agent's return (and the on-policy
        convention where it follows); the first episode recorded as MP4 if asked."""
        video_dir, seed = playback.video_dir, playback.seed
        env = parallel_envs.make_parallel_env(
            env_id, kwargs, render_mode="rgb_array" if video_dir else None
        )
        try:
            _, infos = env.reset(seed=seed)
            spec = spec_of(env, env_id, infos)
            record = playback.video_length if video_dir else 0
            played = play(env, spec, policy, playback.episodes, seed, record, playback.on_episode)
        finally:
            env.close()
        returns, lengths, per_agent, frames = played
        extra = {f"return_{a}": float(np.mean(per_agent[:, i])) for i, a in enumerate(spec.agents)}
        derived = parallel_envs.derived_return(env_id, kwargs)
        if derived is not None:
            conv = [derived(r, n, len(spec.agents)) for r, n in zip(returns, lengths, strict=True)]
            extra["return_onpolicy"] = float(np.mean(conv))
        video = None
        if video_dir is not None:
            fps = int(env.metadata.get("render_fps", 10) or 10)
            video = write_video(frames, video_dir / "eval-episode-0.mp4", fps)
        return Episodes(returns, lengths, extra, video)


def play(
    env: Any,
    spec: MultiAgentSpec,
    policy: Callable[[Observation], np.ndarray],
    episodes: int,
    seed: int,
    record: int = 0,
    on_episode: EpisodeDone | None = None,
) -> tuple[list[float], list[int], np.ndarray, list[np.ndarray]]:
    """`episodes` episodes of `policy` on one env: team returns, lengths, per-agent
    returns ``[episodes, A]`` and up to `record` frames of the first episode;
    `on_episode(index, team return, length)` is called as each one ends."""
    agents = len(spec.agents)
    obs = np.zeros((1, agents, spec.obs_dim), np.float32)
    state = np.zeros((1, *spec.state_shape), np.float32)
    alive = np.zeros((1, agents), bool)
    masks = np.ones((1, agents, spec.action_dim), bool) if spec.action_masks else None
    one = AgentEnv(env, spec, obs[0], state[0], alive[0], None if masks is None else masks[0])
    returns: list[float] = []
    lengths: list[int] = []
    frames: list[np.ndarray] = []
    per_agent = np.zeros((episodes, agents))
    for k in range(episodes):
        one.reset(seed=seed + k)
        length, over = 0, False
        while not over:
            if k == 0 and len(frames) < record:
                frames.append(np.asarray(env.render()))
            view: Observation = {"obs": obs, "state": state, "alive": alive}
            if masks is not None:
                view["action_masks"] = masks
            reward, _, _, _, over = one.step(np.asarray(policy(view))[0])
            one.clear_dead()
            per_agent[k] += reward
            length += 1
        returns.append(float(per_agent[k].sum()))
        lengths.append(length)
        if on_episode is not None:
            on_episode(k, returns[-1], length)
    return returns, lengths, per_agent, frames


def write_video(frames: list[np.ndarray], path: Path, fps: int) -> Path | None:
    """The frames as an MP4 at `path` (moviepy, as gymnasium's RecordVideo uses)."""
    if not frames:
        return None
    try:
        from moviepy import ImageSequenceClip
    except ImportError as e:
        raise EnvError(f"recording a video needs moviepy: pip install moviepy ({e})") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    clip = ImageSequenceClip(frames, fps=fps)
    clip.write_videofile(str(path), logger=None)
    clip.close()
    return path


FAMILIES.add(PettingZoo.name, PettingZoo())
