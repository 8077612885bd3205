"""Named exceptions. Each says what was wrong and what to do; the CLI turns them into one
line on stderr and exit code 2."""

from __future__ import annotations


class RLKitError(Exception):
    """Base class of every error rlkit raises on purpose (bad input, not a bug)."""


class ConfigError(RLKitError, ValueError):
    """A config field, override or preset is unknown, of the wrong type, or out of range."""


class RegistryError(RLKitError, KeyError):
    """A name (algorithm, env, policy, preset) is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class EnvError(RLKitError, ValueError):
    """An environment cannot be made or does not fit the algorithm."""


class CheckpointError(RLKitError):
    """A run directory or checkpoint is missing, corrupt, or from another algorithm."""


class DeviceError(RLKitError):
    """A device was asked for that this machine does not have."""


class PlacementError(RLKitError):
    """A plan cannot be placed on the available resources."""


class BufferError(RLKitError, ValueError):  # noqa: A001 - shadows the builtin on purpose
    """Bad input to a replay buffer: wrong field, shape, dtype, size or priority."""


class TrainingError(RLKitError):
    """Training cannot go on (e.g. a NaN loss); the last checkpoint stays intact."""
