"""IPPO (independent PPO, as Yu et al. 2022 compare it with MAPPO; de Witt et al. 2020):
MAPPO with decentralized critics, each agent's value computed from its own observation
(and its id, under parameter sharing) instead of the global state. Everything else,
presets included, is MAPPO's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlkit.algorithms.base import ALGORITHMS
from rlkit.algorithms.mappo import MAPPO, MultiAgentPPOConfig
from rlkit.config import BaseConfig


@dataclass
class IPPOConfig(MultiAgentPPOConfig):
    """IPPO: the multi-agent PPO fields; the critics see each agent's own observation."""

    @property
    def critic(self) -> str:
        """The value function's input: each agent's own observation and id (IPPO's)."""
        return "local"


@ALGORITHMS.register("ippo")
class IPPO(MAPPO):
    config_cls: ClassVar[type[BaseConfig]] = IPPOConfig
