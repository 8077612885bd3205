"""IPPO (independent PPO, as Yu et al. 2022 compare it with MAPPO; de Witt et al. 2020):
MAPPO with decentralized critics, each agent's value computed from its own observation
(and its id, under parameter sharing) instead of the global state. Everything else,
presets included, is MAPPO's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from rlkit.algorithms.base import ALGORITHMS
from rlkit.algorithms.mappo import MAPPO, MAPPOConfig
from rlkit.config import BaseConfig


@dataclass
class IPPOConfig(MAPPOConfig):
    """IPPO: MAPPO's fields; the critics see each agent's own observation."""

    dropped = (*MAPPOConfig.dropped, "critic")

    critic: Literal["central", "local"] = "local"
    """Value function input: each agent's own observation and id (fixed for IPPO)."""


@ALGORITHMS.register("ippo")
class IPPO(MAPPO):
    config_cls: ClassVar[type[BaseConfig]] = IPPOConfig
