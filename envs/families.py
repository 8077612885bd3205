"""Env families: the env libraries rlkit trains in, as registry entries.

The trainer and the CLI know no env library. A family recognizes its env names, probes
an env's spaces into the spec that an algorithm's networks are built from, lists its
short names for `rlkit list`, and runs its own evaluation loop (whole episodes with a
deterministic policy, optionally recorded to video). Vectorization and checkpointing
of env state live with the family's actor-side runner (gymnasium: `envs/runner.py`).

An algorithm declares the families it accepts (`Algorithm.families`, in order of
preference); `select` picks the first that owns the env name. An algorithm that trains
on no env (LLM stages on datasets) declares none and gets no `--env`.

Built in: ``gymnasium`` (here). ``pettingzoo`` (parallel multi-agent envs) registers
itself from `envs/pettingzoo.py` when it is importable; ``text`` (prompt datasets with
their rewards, the RL stages' environments) from `envs/text/family.py`.
"""

from __future__ import annotations

import ast
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rlkit.errors import ConfigError, EnvError
from rlkit.evaluation import Episodes, Playback, Policy
from rlkit.registry import Registry


class EnvFamily(ABC):
    """One env library. Instances are stateless; `FAMILIES` holds one of each."""

    name: ClassVar[str] = ""
    any_id: ClassVar[str] = ""
    """What other names it takes besides its short names, for `rlkit list`."""

    @abstractmethod
    def owns(self, env: str) -> bool:
        """Whether `env` (a short name, a full id or a ``module:factory``) is this family's."""

    @abstractmethod
    def resolve(self, env: str) -> str:
        """The canonical id of `env` (``Humanoid`` -> ``Humanoid-v5``); EnvError with the
        closest names when it is not one of this family's."""

    @abstractmethod
    def probe(self, env_id: str, kwargs: dict[str, Any]) -> Any:
        """The spec of the env's spaces (makes and closes one env)."""

    @abstractmethod
    def names(self) -> dict[str, str]:
        """Short name -> full id, for `rlkit list` and run names."""

    def short_name(self, env_id: str) -> str:
        """The short name of `env_id` (presets and run directories are named by it)."""
        for short, full in self.names().items():
            if full == env_id:
                return short
        return env_id.rsplit(":", 1)[-1]

    @abstractmethod
    def evaluate(
        self,
        env_id: str,
        kwargs: dict[str, Any],
        policy: Policy,
        play: Playback,
    ) -> Episodes:
        """Play `play.episodes` whole episodes with `policy`, on an env of the
        evaluation's own (`Playback`)."""


FAMILIES: Registry[EnvFamily] = Registry("env family")


def parse_env_kwargs(text: str) -> dict[str, Any]:
    """``"N=5,local_ratio=0.5,continuous_actions=true"`` -> keyword arguments; values are
    Python literals where they parse as one (true/false/none in any case too), else strings."""
    out: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in _top_level_split(text))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(
                f"--env-kwargs: {item!r} is not KEY=VALUE (e.g. --env-kwargs N=5,local_ratio=0.5)"
            )
        raw = raw.strip()
        words = {"true": True, "false": False, "none": None}
        if raw.lower() in words:
            out[key] = words[raw.lower()]
            continue
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def _top_level_split(text: str) -> list[str]:
    """`text` split at the commas outside brackets (``shape=(2, 3)`` stays whole)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def _load_optional_families() -> None:
    """Register the families whose libraries may be missing (imported on first use)."""
    for module in ("rlkit.envs.pettingzoo", "rlkit.envs.text.family"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:  # the family's library is not installed
            if not (e.name or "").startswith(("pettingzoo", "mpe2", module)):
                raise


def families() -> Registry[EnvFamily]:
    """Every registered family (the optional ones imported first)."""
    _load_optional_families()
    return FAMILIES


def select(algorithm: str, accepted: tuple[str, ...], env: str) -> EnvFamily:
    """The first of `accepted` families that owns `env`. EnvError when none does: naming
    the family that owns it if the algorithm does not accept that one, else the closest
    names of the accepted families."""
    registry = families()
    for name in accepted:
        if name in registry and registry.get(name).owns(env):
            return registry.get(name)
    for name in registry:
        if name not in accepted and registry.get(name).owns(env):
            raise EnvError(
                f"{algorithm} does not train {name} envs ({env!r}); it takes "
                f"{' or '.join(accepted)} envs (rlkit list shows which algorithm takes which)"
            )
    first = next((registry.get(n) for n in accepted if n in registry), None)
    if first is None:
        missing = ", ".join(accepted)
        raise EnvError(f"{algorithm} needs the {missing} env family, which is not installed")
    first.resolve(env)  # raises with the closest names
    raise EnvError(f"unknown env {env!r} (rlkit list shows the env names)")


@dataclass(frozen=True)
class Env:
    """What an env family gives an algorithm (`EnvAlgorithm`): the env's resolved id, its
    spaces as the family probes them (`SpaceSpec`, `MultiAgentSpec`), the family, and the
    constructor's keyword arguments."""

    id: str
    spec: Any
    family: EnvFamily
    kwargs: dict[str, Any] = field(default_factory=dict)
    """The env constructor's keyword arguments (``--env-kwargs``)."""

    @classmethod
    def of(cls, algorithm: str, accepted: tuple[str, ...], env: str, env_kwargs: str) -> Env:
        """The env `env` (with its constructor's KEY=VALUE,... `env_kwargs`) in the first of
        the `accepted` families that owns it, its spaces read from one env made and closed."""
        family = select(algorithm, accepted, env)
        env_id, kwargs = family.resolve(env), parse_env_kwargs(env_kwargs)
        return cls(env_id, family.probe(env_id, kwargs), family, kwargs)


class Gymnasium(EnvFamily):
    """Single-agent gymnasium envs: short names (Humanoid) or any registered id."""

    name = "gymnasium"
    any_id = "any gymnasium id works too"

    def owns(self, env: str) -> bool:
        try:
            self.resolve(env)
        except EnvError:
            return False
        return True

    def resolve(self, env: str) -> str:
        from rlkit.envs.registry import resolve_env_id

        return resolve_env_id(env)

    def probe(self, env_id: str, kwargs: dict[str, Any]) -> Any:
        from rlkit.envs.vector import make_env, space_spec

        probe = make_env(env_id, **kwargs)
        try:
            return space_spec(probe.observation_space, probe.action_space, env_id)
        finally:
            probe.close()

    def names(self) -> dict[str, str]:
        from rlkit.envs.registry import SHORT_NAMES

        return dict(SHORT_NAMES)

    def evaluate(
        self,
        env_id: str,
        kwargs: dict[str, Any],
        policy: Policy,
        play: Playback,
    ) -> Episodes:
        import gymnasium as gym

        from rlkit.envs.episodes import run_episodes
        from rlkit.envs.vector import make_env

        video_dir = play.video_dir
        env: Any = make_env(env_id, render_mode="rgb_array" if video_dir else None, **kwargs)
        if video_dir is not None:
            from gymnasium.wrappers import RecordVideo

            env = RecordVideo(
                env,
                str(video_dir),
                episode_trigger=lambda i: i == 0,
                name_prefix="eval",
                video_length=play.video_length,
                disable_logger=True,
            )
        try:
            returns, lengths = run_episodes(env, policy, play.episodes, play.seed, play.on_episode)
        except gym.error.DependencyNotInstalled as e:
            raise EnvError(f"rendering {env_id} needs an extra package: {e}") from None
        finally:
            env.close()
        return Episodes(returns, lengths, video=latest_video(video_dir))


def latest_video(video_dir: Path | None) -> Path | None:
    """The newest ``eval*.mp4`` in `video_dir` (what an evaluation just recorded)."""
    if video_dir is None:
        return None
    return max(video_dir.glob("eval*.mp4"), key=lambda p: p.stat().st_mtime, default=None)


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


FAMILIES.add(Gymnasium.name, Gymnasium())
