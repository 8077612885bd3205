"""Algorithms: templates (OnPolicy, OffPolicy) and the algorithms built on them.

Importing this package registers every built-in algorithm in `ALGORITHMS`.
"""

from rlkit.algorithms.base import ALGORITHMS, Algorithm, EnvAlgorithm, StepResult
from rlkit.algorithms.dqn import DQN, DQNConfig
from rlkit.algorithms.ippo import IPPO, IPPOConfig
from rlkit.algorithms.mappo import MAPPO, MAPPOConfig
from rlkit.algorithms.off_policy import OffPolicy, OffPolicyConfig
from rlkit.algorithms.on_policy import OnPolicy, OnPolicyConfig
from rlkit.algorithms.ppo import PPO, PPOConfig
from rlkit.algorithms.rlhf import DPO, SFT, DPOConfig, RewardModel, RewardModelConfig, SFTConfig
from rlkit.algorithms.sac import SAC, SACConfig

__all__ = [
    "ALGORITHMS",
    "DPO",
    "DQN",
    "IPPO",
    "MAPPO",
    "PPO",
    "SAC",
    "SFT",
    "Algorithm",
    "DPOConfig",
    "DQNConfig",
    "EnvAlgorithm",
    "IPPOConfig",
    "MAPPOConfig",
    "OffPolicy",
    "OffPolicyConfig",
    "OnPolicy",
    "OnPolicyConfig",
    "PPOConfig",
    "RewardModel",
    "RewardModelConfig",
    "SACConfig",
    "SFTConfig",
    "StepResult",
]
