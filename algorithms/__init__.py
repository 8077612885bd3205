"""Algorithms: templates (OnPolicy, ...) and the algorithms built on them.

Importing this package registers every built-in algorithm in `ALGORITHMS`.
"""

from rlkit.algorithms.base import ALGORITHMS, Algorithm, StepResult
from rlkit.algorithms.on_policy import OnPolicy, OnPolicyConfig
from rlkit.algorithms.ppo import PPO, PPOConfig

__all__ = [
    "ALGORITHMS",
    "PPO",
    "Algorithm",
    "OnPolicy",
    "OnPolicyConfig",
    "PPOConfig",
    "StepResult",
]
