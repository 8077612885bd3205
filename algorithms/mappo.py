"""MAPPO (Yu et al. 2022, "The Surprising Effectiveness of PPO in Cooperative Multi-Agent
Games"): PPO for the agents of a PettingZoo parallel env, with a centralized critic.

Everything but the loss comes from the on-policy template (rollouts, GAE, epochs,
minibatches, the graph); the multi-agent roles (`multi_agent_roles.py`) carry agent-major
rollouts, value normalization (`value_norm.py`: running mean/std, or PopArt) and masks
for agents that end early. The loss below is the paper's: the clipped surrogate, a
clipped value loss (Huber, on standardized targets) and an entropy bonus, each averaged
over the agents alive at a step. Presets (``presets/mappo.yaml``) hold the paper's MPE
hyperparameters. IPPO (`ippo.py`) is the same with decentralized critics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from rlkit import checkpoint
from rlkit.algorithms.base import ALGORITHMS
from rlkit.algorithms.multi_agent_roles import (
    MultiAgentActor,
    MultiAgentLearner,
    make_agents_policy,
    uses_masks,
)
from rlkit.algorithms.on_policy import EpochFields, OnPolicy, OnPolicyBase, OverlapFields
from rlkit.algorithms.ppo import PPOFields
from rlkit.batch import Batch
from rlkit.config import BaseConfig, Group
from rlkit.envs.families import Env
from rlkit.envs.multi_agent_spec import MultiAgentSpec, Observation
from rlkit.errors import EnvError


@dataclass
class MultiAgentPPOConfig(PPOFields, OverlapFields, EpochFields, OnPolicyBase):
    """PPO's fields and the multi-agent ones (no vector env: a PettingZoo parallel env
    steps all its agents); defaults as the on-policy repository's. IPPO's config."""

    def central_critic(self) -> bool:
        """Whether the critics see the global state (`MAPPOConfig.critic`); IPPO's: never."""
        return False

    num_envs: int = 8
    """Parallel environments per actor, each with all its agents (the MPE presets: 128)."""
    num_steps: int = 25
    """Steps per environment per rollout (an mpe2 episode is 25)."""
    lr: float = 5e-4
    """Adam learning rate (actors and critics)."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the run."""
    epochs: int = 15
    """Passes over each rollout."""
    minibatch_size: int = 0
    """Env steps (each with all its agents) per gradient step; 0: the whole rollout."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    vf_coef: float = 1.0
    """Value loss weight."""
    max_grad_norm: float = 10.0
    """Clip the actors' and the critics' gradients, each, to this norm (0 disables)."""
    activation: str = "relu"
    """Hidden activation: tanh, relu or elu."""
    clip_vloss: bool = True
    """Clip the value update around the rollout's values (by clip_coef)."""
    value_norm: Literal["running", "popart", "off"] = "running"
    """Standardize value targets: running mean/std, popart (also rescales the critic's
    output layer so its unnormalized outputs stay), or off."""
    value_norm_beta: float = 0.99999
    """Weight of the past in the running value statistics (debiased moving averages)."""
    proper_time_limits: bool = False
    """Bootstrap from the last observation when an episode is cut by its time limit; off
    (the paper's runs, the on-policy repository's default), a truncation ends the return."""
    huber_delta: float = 10.0
    """Huber loss threshold of the value loss; 0 means the squared error."""
    layer_norm: bool = True
    """LayerNorm on the networks' inputs and after each hidden layer (the on-policy
    repository's feature normalization and MLP)."""
    share_params: bool = True
    """One network per group of agents with identical spaces (the agent id appended to
    its input); false: one per agent."""
    action_masks: Literal["auto", "on", "off"] = "auto"
    """The env's action masks (discrete actions): auto (honored when the env gives them),
    on (required: refused for an env without them or with continuous actions), off."""


@dataclass
class CriticFields(Group):
    """The input of MAPPO's critics."""

    critic: Literal["central", "local"] = "central"
    """Value function input: central (the global state, env.state() or the concatenated
    observations, and the agent's id) or local (the agent's own observation and id)."""

    def central_critic(self) -> bool:
        return self.critic == "central"


@dataclass
class MAPPOConfig(CriticFields, MultiAgentPPOConfig):
    """MAPPO: the multi-agent PPO fields and a choice of the critic's input."""


def value_loss(config: MultiAgentPPOConfig, values: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Per-entry value loss ``[B, A]``: Huber (or half squared) error to the standardized
    returns, the larger of the unclipped and the clipped update's when `clip_vloss`."""

    def error(v: torch.Tensor) -> torch.Tensor:
        e = v - batch["returns"]
        if config.huber_delta <= 0:
            return 0.5 * e.square()
        a, d = e.abs(), config.huber_delta
        return torch.where(a <= d, 0.5 * e.square(), d * (a - 0.5 * d))

    loss = error(values)
    if config.clip_vloss:
        old = batch["values"]
        clipped = old + (values - old).clamp(-config.clip_coef, config.clip_coef)
        loss = torch.max(loss, error(clipped))
    return loss


@ALGORITHMS.register("mappo")
class MAPPO(OnPolicy):
    config_cls: ClassVar[type[BaseConfig]] = MAPPOConfig
    families: ClassVar[tuple[str, ...]] = ("pettingzoo",)
    extras: ClassVar[tuple[str, ...]] = ("marl",)
    actor_cls = MultiAgentActor
    learner_cls = MultiAgentLearner
    config: MultiAgentPPOConfig

    def __init__(self, config: BaseConfig, env: Env) -> None:
        super().__init__(config, env)
        assert isinstance(config, MultiAgentPPOConfig)
        check_action_masks(config, env.spec, env.id)

    @classmethod
    def check_env(cls, env_id: str, spec: Any) -> None:
        if not isinstance(spec, MultiAgentSpec):
            raise EnvError(f"{cls.name} trains multi-agent PettingZoo envs; {env_id} is not one")
        if not (spec.discrete or spec.continuous):
            raise EnvError(
                f"{env_id} mixes agents with discrete and continuous actions; {cls.name} "
                "needs them all of one kind"
            )

    @staticmethod
    def make_policy(config: Any, spec: Any) -> Any:
        """A `MultiAgentPolicy` (the template's hook is typed for single-agent networks)."""
        return make_agents_policy(config, spec)

    @staticmethod
    def loss(
        config: Any, policy: Any, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The MAPPO objective on a minibatch of agent-major samples (each ``[B, A]``, plus
        obs, state, actions, action masks), averaged over the live agents (`mask`)."""
        mask = batch["mask"].to(batch["advantages"].dtype)
        n = mask.sum().clamp(min=1.0)
        log_probs, entropy, values = policy.evaluate(
            batch["obs"], batch["state"], batch["actions"], batch.get("action_masks")
        )
        log_ratio = (log_probs - batch["log_probs"]) * mask
        ratio = log_ratio.exp()
        adv = batch["advantages"]
        clipped = ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
        policy_loss = -(torch.min(ratio * adv, clipped * adv) * mask).sum() / n
        v_loss = (value_loss(config, values, batch) * mask).sum() / n
        mean_entropy = (entropy * mask).sum() / n
        loss = policy_loss - config.ent_coef * mean_entropy + config.vf_coef * v_loss
        with torch.no_grad():
            stats = {
                "policy_loss": policy_loss,
                "value_loss": v_loss,
                "entropy": mean_entropy,
                "approx_kl": (((ratio - 1) - log_ratio) * mask).sum() / n,
                "clip_fraction": (((ratio - 1).abs() > config.clip_coef) * mask).sum() / n,
            }
        return loss, stats

    @classmethod
    def eval_policy(
        cls, state: dict[str, Any], config: BaseConfig, spec: Any
    ) -> Callable[[Any], np.ndarray]:
        """Deterministic joint actions ``[B, A(, d)]`` for an `Observation` of B envs."""
        actor = state["fragments"]["actor"][0]
        actor = actor["state"] if checkpoint.FILES in actor else actor  # envs in a file
        policy = cls.make_policy(config, spec)
        policy.load_state_dict(actor["policy"])
        masked = uses_masks(config, spec)

        def act(view: Observation) -> np.ndarray:
            masks = torch.from_numpy(view["action_masks"]) if masked else None
            obs, global_state = torch.from_numpy(view["obs"]), torch.from_numpy(view["state"])
            actions, _, _ = policy.act(obs, global_state, masks, deterministic=True)
            return np.asarray(actions.numpy())

        return act

    def plan_notes(self) -> str:
        """The agent groups, the critic's input and the batch arithmetic."""
        spec, cfg = self.spec, self.config
        assert isinstance(spec, MultiAgentSpec)
        lines = [f"agents ({len(spec.agents)}), one network per group:"]
        for g in spec.groups:
            names = ", ".join(spec.agents[i] for i in g.agents)
            kind = (
                f"Discrete({g.spec.action_dim})" if g.spec.discrete else f"Box({g.spec.action_dim})"
            )
            lines.append(f"  {g.name:<12} {names}: obs {g.obs_dim}, actions {kind}")
        source = "env.state()" if spec.state_from_env else "the concatenated observations"
        critic = f"state {spec.state_shape} from {source}" if cfg.central_critic() else "own obs"
        envs = cfg.num_envs * cfg.actors
        lines.append(f"critic input: {critic}, plus the agent id")
        lines.append(
            f"per update: {envs} envs x {cfg.num_steps} steps = {envs * cfg.num_steps:,} env "
            f"steps ({envs * cfg.num_steps * len(spec.agents):,} agent steps), "
            f"{cfg.epochs} epochs"
        )
        return "\n".join(lines)


def check_action_masks(config: MultiAgentPPOConfig, spec: MultiAgentSpec, env_id: str) -> None:
    """``--action-masks on`` needs an env whose actions are discrete and masked."""
    if config.action_masks != "on":
        return
    if not spec.discrete:
        raise EnvError(
            f"--action-masks on: {env_id} has continuous actions, and action masks apply to "
            "discrete ones; drop --action-masks or make the env's actions discrete"
        )
    if not spec.action_masks:
        raise EnvError(
            f"--action-masks on: {env_id} gives no action masks (in its observations or "
            "infos); use --action-masks auto"
        )
