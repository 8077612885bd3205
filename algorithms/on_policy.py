"""The on-policy template (PPO, MAPPO): actors collect rollouts, one learner updates.

Logical graph::

    actor xN --rollout(gather)--> learner --weights(broadcast)--> actor xN

An algorithm built on it supplies `loss(config, policy, minibatch)`; rollout collection,
advantages, epochs and minibatches, clipping and annealing live here (the actor and
learner roles in `on_policy_roles.py`). Hooks replace the network (`make_policy`), the
optimizer (`make_optimizer`) and give the loss state of its own (`initial_loss_state`,
`after_update`: adaptive KL). The driver step is the graph's two edges: the rollout, then
the weights; the runtime carries them under every distribution policy.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from rlkit.algorithms.advantages import ADVANTAGES
from rlkit.algorithms.base import EnvAlgorithm, StepResult
from rlkit.algorithms.learner import adam
from rlkit.algorithms.networks import ActorCritic
from rlkit.algorithms.on_policy_roles import OnPolicyActor, OnPolicyLearner, make_policy
from rlkit.batch import Batch
from rlkit.config import BaseConfig, EnvConfig, Group, VectorFields, check
from rlkit.dataflow.collectives import GRADIENTS
from rlkit.dataflow.graph import Fragment, LogicalGraph, Pattern, Resources, edge
from rlkit.envs.normalize import ObsNormalizer
from rlkit.envs.vector import SpaceSpec
from rlkit.roles import Actor

LossFn = Callable[[Any, ActorCritic, Batch], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class OnPolicyBase(EnvConfig):
    """Fields of every on-policy algorithm, single- or multi-agent (what the template reads)."""

    num_steps: int = 2048
    """Steps per environment per rollout."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda (bias/variance trade-off of the advantages)."""
    advantage: str = "gae"
    """Advantage estimator (registry name)."""
    lr: float = 3e-4
    """Adam learning rate."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over the run."""
    minibatch_size: int = 64
    """Samples per gradient step; 0 means the whole rollout (one step per epoch)."""
    norm_adv: bool = True
    """Standardize advantages per minibatch."""
    vf_coef: float = 0.5
    """Value loss weight."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    max_grad_norm: float = 0.5
    """Gradient clipping by global norm (0 disables)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value MLPs."""
    activation: str = "tanh"
    """Hidden activation: tanh, relu or elu."""
    log_std_init: float = 0.0
    """Initial log std of the Gaussian policy (continuous actions)."""
    compile: bool = False
    """torch.compile the loss (forward and backward) in the learner: a one-off compile of
    some seconds, then faster minibatch steps (about 25% on CPU for the Humanoid preset)."""

    def validate(self) -> None:
        super().validate()
        check(
            len(self.hidden) >= 1 and min(self.hidden) >= 1, "hidden", "needs positive layer sizes"
        )
        check(self.activation in ("tanh", "relu", "elu"), "activation", "must be tanh, relu or elu")
        check(self.advantage in ADVANTAGES, "advantage", f"must be one of {ADVANTAGES.names()}")
        envs = self.num_envs * self.actors
        check(
            envs % self.learners == 0,
            "learners",
            f"must divide the {envs} envs (num_envs x actors)",
        )
        check(self.minibatch_size % self.learners == 0, "learners", "must divide --minibatch-size")

    def passes(self) -> int:
        """Passes over each rollout (`EpochFields`: --epochs; else one)."""
        return 1

    def kl_stop(self) -> float:
        """The approximate KL that ends a rollout's passes early (0: never)."""
        return 0.0

    def overlaps(self) -> bool:
        """Whether the next rollout is collected during the update (`OverlapFields`)."""
        return False


@dataclass
class NormFields(Group):
    """Running normalization of a single-agent env's observations and rewards."""

    section = "environment"

    norm_obs: bool = False
    """Standardize observations with running statistics."""
    norm_reward: bool = False
    """Scale rewards by the running std of the discounted return."""


@dataclass
class OnPolicyConfig(NormFields, VectorFields, OnPolicyBase):
    """Fields of every single-agent on-policy algorithm (what `OnPolicyActor` reads)."""


@dataclass
class EpochFields(Group):
    """Several passes over each rollout, stopped early past a KL (PPO's)."""

    epochs: int = 10
    """Passes over each rollout."""
    target_kl: float = 0.0
    """Stop the epochs early when the approximate KL exceeds this (0 disables)."""

    def passes(self) -> int:
        return self.epochs

    def kl_stop(self) -> float:
        return self.target_kl


@dataclass
class OverlapFields(Group):
    """Collection overlapped with the update."""

    overlap: bool = False
    """Collect the next rollout while the learner updates on this one (policy one version
    stale, corrected by the importance ratio); runs in parallel with --executor ray."""

    def overlaps(self) -> bool:
        return self.overlap


ROLLOUT = edge(
    "rollout", "actor", "learner", Pattern.GATHER, OnPolicyActor.collect, OnPolicyLearner.update
)
"""Every actor's rollout, concatenated, into the learner (split across data-parallel learners)."""
WEIGHTS = edge(
    "weights",
    "learner",
    "actor",
    Pattern.BROADCAST,
    OnPolicyLearner.get_weights,
    OnPolicyActor.set_weights,
)
"""The learner's parameters to every actor, with their version."""


class OnPolicy(EnvAlgorithm):
    """Template: subclasses implement `loss`; hooks choose the network and the optimizer."""

    config_cls: ClassVar[type[BaseConfig]] = OnPolicyConfig
    actor_cls: ClassVar[type[Actor]] = OnPolicyActor
    """The actor role: any `Actor` whose `collect` returns an env-major rollout (the
    multi-agent actor's has a trailing agent dimension) and whose `set_weights` takes
    the learner's."""
    learner_cls: ClassVar[type[OnPolicyLearner]] = OnPolicyLearner
    config: OnPolicyBase

    @staticmethod
    @abstractmethod
    def loss(
        config: Any, policy: ActorCritic, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss and scalar tensors to log, for one minibatch of flattened rollout:
        obs, actions, log_probs, values, advantages, returns (each ``[B, ...]``). A loss
        that also declares a `state` parameter gets the learner's algorithm state (a dict
        from `initial_loss_state`, updated by `after_update`, checkpointed)."""

    @staticmethod
    def make_policy(config: Any, spec: SpaceSpec) -> ActorCritic:
        """The policy-and-value network actors act with and the learner trains."""
        return make_policy(config, spec)

    @staticmethod
    def make_optimizer(config: Any, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        """The learner's optimizer over `params` (one flat parameter tensor): Adam here."""
        return adam(params, config.lr, eps=1e-5)

    @staticmethod
    def initial_loss_state(config: Any) -> dict[str, Any]:
        """Algorithm state the loss can see (e.g. ``{"kl_coef": 1.0}``); none by default."""
        return {}

    @staticmethod
    def after_update(config: Any, state: dict[str, Any], metrics: dict[str, float]) -> None:
        """Called by the learner after each update with its metrics (the means over the
        minibatches): adapt `state` here (adaptive KL)."""

    def graph(self) -> LogicalGraph:
        cfg = self.config
        g = LogicalGraph(self.name)
        g.add(
            Fragment(
                "actor",
                self.actor_cls,
                {"env_id": self.env_id, "spec": self.spec, "config": cfg, "algorithm": type(self)},
                Resources("cpu", cpus=cfg.actor_cpus),
                replicas=cfg.actors,
            )
        )
        g.add(
            Fragment(
                "learner",
                self.learner_cls,
                {"algorithm": type(self), "spec": self.spec, "config": cfg},
                Resources.for_device(cfg.device),
                replicas=cfg.learners,
            )
        )
        g.add_edge(ROLLOUT.with_options(ahead=int(cfg.overlaps())))
        g.add_edge(WEIGHTS)
        g.add_edge(GRADIENTS)
        return g

    def setup(self) -> None:
        self.version = 0
        self.runtime.carry(WEIGHTS.bind(0))

    def train_step(self) -> StepResult:
        sent = self.runtime.carry(ROLLOUT, self.config.num_steps)
        metrics = sent.mean()
        self.version += 1
        self.runtime.carry(WEIGHTS.bind(self.version))
        rollout = sent.data
        if self.config.overlaps():  # the rollout was collected by the weights of a step ago
            metrics["policy_lag"] = float(self.version - 1 - rollout["version"].float().mean())
        steps = rollout["rewards"].shape[0] * rollout["rewards"].shape[1]  # envs x steps
        return StepResult(steps, metrics, sent.episodes())

    def driver_state(self) -> dict[str, Any]:
        return {"version": self.version}

    def load_driver_state(self, state: dict[str, Any]) -> None:
        self.version = state["version"]

    @classmethod
    def eval_policy(
        cls, state: dict[str, Any], config: BaseConfig, spec: SpaceSpec
    ) -> Callable[[np.ndarray], np.ndarray]:
        assert isinstance(config, OnPolicyBase)
        actor = state["fragments"]["actor"][0]
        policy = cls.make_policy(config, spec)
        policy.load_state_dict(actor["policy"])
        saved_norm = actor["runner"]["obs_norm"]
        norm = ObsNormalizer(spec.obs_shape) if saved_norm is not None else None
        if norm is not None:
            norm.rms.load_state_dict(saved_norm)

        def act(obs: np.ndarray) -> np.ndarray:
            x = norm(obs, update=False) if norm is not None else np.asarray(obs, np.float32)
            action, _, _ = policy.act(torch.from_numpy(x), deterministic=True)
            out = action.numpy()
            return out if spec.discrete else np.clip(out, spec.action_low, spec.action_high)

        return act
