"""Evolution strategies (Salimans et al. 2017, OpenAI-ES), written as a user outside rlkit
would, on no template: the driver is the source of both edges.

    rlkit run tests/user_algorithms/es.py:ES --env CartPole [--actors N]

Each iteration the driver draws `population` noise seeds and scatters them across the
workers; a worker rebuilds each seed's Gaussian noise, plays one episode with the
parameters plus and one with them minus `sigma` times it (antithetic pairs), and returns
the returns. The driver turns the centered ranks of the returns into a gradient estimate,
takes an Adam step and broadcasts the new parameters. Only seeds and returns travel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from rlkit.algorithms import EnvAlgorithm, StepResult
from rlkit.config import BaseConfig, EnvConfig, check
from rlkit.dataflow.carry import Output
from rlkit.dataflow.graph import Fragment, LogicalGraph, Pattern, Resources, from_driver
from rlkit.envs.vector import SpaceSpec, make_env
from rlkit.errors import EnvError
from rlkit.roles import Role


@dataclass
class ESConfig(EnvConfig):
    """OpenAI-ES: antithetic Gaussian perturbations of a linear policy, centered ranks."""

    population: int = 16
    """Noise seeds per iteration; each is played twice (+ and -), so 2x episodes."""
    sigma: float = 0.1
    """Std of the parameter perturbations."""
    lr: float = 0.05
    """Adam learning rate of the driver's update."""
    weight_decay: float = 0.005
    """L2 coefficient of the update (OpenAI-ES's)."""
    max_episode_steps: int = 500
    """Cut an evaluation episode after this many steps."""

    def validate(self) -> None:
        super().validate()
        check(self.population >= 1, "population", "must be at least 1")
        check(self.sigma > 0, "sigma", "must be positive")
        check(self.lr > 0, "lr", "must be positive")
        check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        check(self.max_episode_steps >= 1, "max_episode_steps", "must be at least 1")


def num_params(spec: SpaceSpec) -> int:
    return (math.prod(spec.obs_shape) + 1) * spec.action_dim


def linear_policy(params: np.ndarray, spec: SpaceSpec) -> Callable[[np.ndarray], np.ndarray]:
    """``obs [B, obs_dim] -> argmax of a linear layer [B]``: params are W then b."""
    obs_dim = math.prod(spec.obs_shape)
    w = params[: obs_dim * spec.action_dim].reshape(obs_dim, spec.action_dim)
    b = params[obs_dim * spec.action_dim :]
    return lambda obs: (np.asarray(obs, np.float64).reshape(len(obs), -1) @ w + b).argmax(-1)


def noise_of(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


class Worker(Role):
    """Plays episodes with perturbed parameters on an env of its own."""

    def __init__(self, env_id: str, spec: SpaceSpec, config: ESConfig, replica: int = 0) -> None:
        self.env = make_env(env_id, index=replica)
        self.spec, self.config = spec, config
        self.params = np.zeros(num_params(spec))

    def set_params(self, params: torch.Tensor) -> None:
        self.params = params.detach().double().numpy().copy()

    def episode(self, params: np.ndarray, seed: int) -> tuple[float, int]:
        act = linear_policy(params, self.spec)
        obs, _ = self.env.reset(seed=seed)  # seeded by the noise: the same on any worker
        total, steps = 0.0, 0
        while steps < self.config.max_episode_steps:
            obs, reward, terminated, truncated, _ = self.env.step(int(act(obs[None])[0]))
            total, steps = total + float(reward), steps + 1
            if terminated or truncated:
                break
        return total, steps

    def evaluate(self, seeds: list[int]) -> Output:
        """For each seed: the return with params + sigma noise and with params - sigma noise
        ("plus", "minus"); as the info, the stats of every episode played ("return",
        "length"), which the driver reads with `delivery.episodes()`."""
        out: dict[str, list[float]] = {"plus": [], "minus": [], "return": [], "length": []}
        sigma = self.config.sigma
        for seed in seeds:
            eps = noise_of(seed, len(self.params))
            for key, sign in (("plus", 1.0), ("minus", -1.0)):
                ret, steps = self.episode(self.params + sign * sigma * eps, seed % 2**31)
                out[key].append(ret)
                out["return"].append(ret)
                out["length"].append(steps)
        episodes = {"return": out.pop("return"), "length": out.pop("length")}
        return Output(out, episodes)

    def state_dict(self) -> dict[str, Any]:
        return {"params": self.params.copy()}  # an episode starts from its seed: nothing else

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.params = np.asarray(state["params"]).copy()

    def close(self) -> None:
        self.env.close()


SEEDS = from_driver("seeds", "worker", Pattern.SCATTER, Worker.evaluate)
"""The iteration's noise seeds, split across the workers; each returns its returns."""
PARAMS = from_driver("params", "worker", Pattern.BROADCAST, Worker.set_params)
"""The driver's parameters to every worker."""


def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of `x` scaled to [-0.5, 0.5] (robust to the scale of the returns)."""
    ranks = np.empty(len(x))
    ranks[x.argsort(kind="stable")] = np.arange(len(x))
    return ranks / max(len(x) - 1, 1) - 0.5


class ES(EnvAlgorithm):
    name = "es"
    config_cls: ClassVar[type[BaseConfig]] = ESConfig
    config: ESConfig

    @classmethod
    def check_env(cls, env_id: str, spec: SpaceSpec) -> None:
        if not spec.discrete:
            raise EnvError(f"ES here plays discrete actions and {env_id} has continuous ones")

    def graph(self) -> LogicalGraph:
        cfg = self.config
        g = LogicalGraph(self.name)
        g.add(
            Fragment(
                "worker",
                Worker,
                {"env_id": self.env_id, "spec": self.spec, "config": cfg},
                Resources("cpu", cpus=cfg.actor_cpus),
                replicas=cfg.actors,
            )
        )
        g.add_edge(SEEDS)
        g.add_edge(PARAMS)
        return g

    def start(self) -> None:
        cfg = self.config
        self.params = torch.nn.Parameter(torch.zeros(num_params(self.spec), dtype=torch.float64))
        self.optimizer = torch.optim.Adam([self.params], lr=cfg.lr)
        self.rng = np.random.default_rng(cfg.seed)
        self.iteration = 0
        self.runtime.carry(PARAMS, self.params.detach())

    def train_step(self) -> StepResult:
        cfg = self.config
        seeds = [int(s) for s in self.rng.integers(0, 2**63 - 1, cfg.population)]
        sent = self.runtime.carry(SEEDS, seeds)
        plus = np.array([r for res in sent.results for r in res.data["plus"]])
        minus = np.array([r for res in sent.results for r in res.data["minus"]])
        ranks = centered_ranks(np.concatenate([plus, minus]))
        weights = ranks[: len(seeds)] - ranks[len(seeds) :]
        n = self.params.numel()
        grad = sum(w * noise_of(s, n) for w, s in zip(weights, seeds, strict=True))
        grad = grad / (len(seeds) * cfg.sigma)
        self.params.grad = torch.from_numpy(-grad + cfg.weight_decay * self.params.detach().numpy())
        self.optimizer.step()
        self.iteration += 1
        self.runtime.carry(PARAMS, self.params.detach())
        episodes = sent.episodes()
        returns, lengths = episodes["return"], episodes["length"]
        metrics = {
            "population_return": float(np.mean(returns)),
            "population_return_max": float(np.max(returns)),
            "grad_norm": float(np.linalg.norm(grad)),
            "param_norm": float(self.params.detach().norm()),
        }
        return StepResult(int(sum(lengths)), metrics, episodes)

    def driver_state(self) -> dict[str, Any]:
        return {
            "params": self.params.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "iteration": self.iteration,
        }

    def load_driver_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.params.copy_(state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.iteration = state["iteration"]

    @classmethod
    def eval_policy(
        cls, state: dict[str, Any], config: BaseConfig, spec: SpaceSpec
    ) -> Callable[[np.ndarray], np.ndarray]:
        return linear_policy(state["driver"]["params"].double().numpy(), spec)
