"""Environments: short names, vector envs, normalization, checkpointable env state."""

from rlkit.envs.normalize import ObsNormalizer, RewardScaler, RunningMeanStd
from rlkit.envs.registry import SHORT_NAMES, resolve_env_id, short_name
from rlkit.envs.vector import SpaceSpec, make_env, make_vector_env, probe_spec, space_spec

__all__ = [
    "SHORT_NAMES",
    "ObsNormalizer",
    "RewardScaler",
    "RunningMeanStd",
    "SpaceSpec",
    "make_env",
    "make_vector_env",
    "probe_spec",
    "resolve_env_id",
    "short_name",
    "space_spec",
]
