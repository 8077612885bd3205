"""The roles of the on-policy template: the actor that collects rollouts (with
observation and reward normalization and bootstrapping on truncation) and the learner
that turns a rollout into advantages and takes `epochs` passes of minibatch steps on the
algorithm's loss (optionally data parallel, compiled, or in bf16)."""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rlkit import batch as B
from rlkit.algorithms.advantages import ADVANTAGES
from rlkit.algorithms.flat_params import FlatParameters
from rlkit.algorithms.learner import LearnerBase, seeded
from rlkit.algorithms.networks import ActorCritic
from rlkit.batch import Batch
from rlkit.config import offered_fields
from rlkit.device import use_threads
from rlkit.divergence import remedy
from rlkit.envs.families import parse_env_kwargs
from rlkit.envs.normalize import RewardScaler
from rlkit.envs.runner import EnvRunner
from rlkit.envs.vector import SpaceSpec
from rlkit.errors import TrainingError
from rlkit.roles import Actor, Metrics, Output, Weights

if TYPE_CHECKING:
    from rlkit.algorithms.on_policy import OnPolicy, OnPolicyBase, OnPolicyConfig


def make_policy(config: OnPolicyBase, spec: SpaceSpec) -> ActorCritic:
    """The template's default policy network (`OnPolicy.make_policy` may replace it)."""
    return ActorCritic(spec, config.hidden, config.activation, config.log_std_init)


def policy_of(
    algorithm: type[OnPolicy] | None, config: OnPolicyBase, spec: SpaceSpec
) -> ActorCritic:
    return (
        algorithm.make_policy(config, spec) if algorithm is not None else make_policy(config, spec)
    )


class OnPolicyActor(Actor):
    """Steps `num_envs` environments with the current policy and records rollouts."""

    def __init__(
        self,
        env_id: str,
        spec: SpaceSpec,
        config: OnPolicyConfig,
        replica: int = 0,
        algorithm: type[OnPolicy] | None = None,
    ) -> None:
        use_threads(config.torch_threads)
        self.config, self.spec = config, spec
        seed = config.seed + 10_007 * replica
        self.runner = EnvRunner(
            env_id,
            spec,
            config.num_envs,
            config.vector,
            seed,
            config.norm_obs,
            config.env_workers,
            parse_env_kwargs(config.env_kwargs),
        )
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.policy = policy_of(algorithm, config, spec)
        self.flat = FlatParameters(self.policy)
        self.generator = torch.Generator().manual_seed(seed)
        self.reward_scaler = (
            RewardScaler(config.num_envs, config.gamma) if config.norm_reward else None
        )
        self.version = 0

    def set_weights(self, weights: Weights, version: int) -> None:
        self.flat.set(weights["flat"])
        self.version = version

    @torch.no_grad()
    def collect(self, num_steps: int) -> Output:
        """A rollout (fields ``[num_envs, num_steps, ...]``, see `rlkit.batch`) and, as its
        info, the "return" and "length" of the episodes that ended. `next_values` is V(s')
        with V(final obs) on truncation and 0 on termination."""
        buf = self.empty_rollout(num_steps)
        groups = self.runner.groups
        # Pipelined over env groups: while one worker steps its envs, the policy runs for
        # the next group. With a single group this is the plain act-step loop.
        for g in range(len(groups)):
            self.launch(buf, 0, g)
        for t in range(num_steps):
            for g in range(len(groups)):
                self.record(buf, t, g)
                if t + 1 < num_steps:
                    self.launch(buf, t + 1, g)
        last_value = self.policy.value(torch.from_numpy(self.runner.obs))
        next_values = torch.cat([buf["values"][1:], last_value[None]])
        buf["next_values"] = torch.where(buf["dones"], buf["bootstrap"], next_values)
        order = ("obs", "actions", "log_probs", "values", "next_values", "rewards", "dones")
        rollout = {k: buf[k].transpose(0, 1).contiguous() for k in (*order, "terminated")}
        rollout["version"] = torch.full((self.config.num_envs,), self.version, dtype=torch.int64)
        return Output(rollout, self.runner.pop_episodes())

    def empty_rollout(self, num_steps: int) -> dict[str, torch.Tensor]:
        """The step-major buffers ``[num_steps, num_envs, ...]`` a rollout is written into."""
        n, spec = self.config.num_envs, self.spec
        shape = (num_steps, n)
        actions = (
            torch.empty(shape, dtype=torch.int64)
            if spec.discrete
            else torch.empty((*shape, spec.action_dim))
        )
        return {
            "obs": torch.empty((*shape, *spec.obs_shape)),
            "actions": actions,
            **{k: torch.empty(shape) for k in ("log_probs", "values", "rewards")},
            "dones": torch.empty(shape, dtype=torch.bool),
            "terminated": torch.empty(shape, dtype=torch.bool),
            "bootstrap": torch.zeros(shape),
        }

    def launch(self, buf: dict[str, torch.Tensor], t: int, g: int) -> None:
        """Act for env group g at step t and start its envs stepping."""
        sl = self.runner.groups[g]
        obs_g = torch.from_numpy(self.runner.obs[sl])
        action, log_prob, value = self.policy.act(obs_g, self.generator)
        buf["obs"][t, sl], buf["actions"][t, sl] = obs_g, action
        buf["log_probs"][t, sl], buf["values"][t, sl] = log_prob, value
        self.runner.step_async(g, action.numpy())

    def record(self, buf: dict[str, torch.Tensor], t: int, g: int) -> None:
        """Wait for env group g's step t and write what it returned."""
        sl = self.runner.groups[g]
        step = self.runner.step_wait(g)
        reward = step.reward
        if self.reward_scaler is not None:
            reward = self.reward_scaler(reward, step.done, sl)
        if step.final_obs is not None and step.truncated.any():
            # bootstrap from the last observation of a truncated (not terminated) episode
            cut = step.truncated[step.done] & ~step.terminated[step.done]
            rows = np.flatnonzero(step.done)[cut] + (sl.start or 0)
            buf["bootstrap"][t, rows] = self.policy.value(torch.from_numpy(step.final_obs[cut]))
        buf["rewards"][t, sl] = torch.from_numpy(reward)
        buf["dones"][t, sl] = torch.from_numpy(step.done)
        buf["terminated"][t, sl] = torch.from_numpy(step.terminated)

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "generator": self.generator.get_state(),
            "runner": self.runner.state_dict(),
            "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler else None,
            "version": self.version,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.generator.set_state(state["generator"])
        self.runner.load_state_dict(state["runner"])
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.version = state["version"]

    def close(self) -> None:
        self.runner.close()


class OnPolicyLearner(LearnerBase):
    """Advantages, then `epochs` passes of minibatch gradient steps on `algorithm.loss`."""

    def __init__(
        self,
        algorithm: type[OnPolicy],
        spec: SpaceSpec,
        config: OnPolicyBase,
        device: torch.device | None = None,
        replica: int = 0,
    ) -> None:
        per_update = config.num_steps * config.num_envs * config.actors
        super().__init__(config, device, replica, math.ceil(config.total_steps / per_update))
        self.algorithm, self.config = algorithm, config
        with seeded(config.seed):
            self.policy = policy_of(algorithm, config, spec).to(self.device)
        self.flat = FlatParameters(self.policy)
        optimizer = algorithm.make_optimizer(config, [self.flat.param])
        self.optimizer = self.add_optimizer("optimizer", optimizer)
        # compiled lazily, at the first minibatch (a subclass's own loss included)
        self.loss = (
            torch.compile(algorithm.loss, dynamic=False) if config.compile else algorithm.loss
        )
        self.loss_state: dict[str, Any] = algorithm.initial_loss_state(config)
        """Algorithm state the loss sees (e.g. an adaptive KL coefficient), checkpointed."""
        self.loss_takes_state = "state" in inspect.signature(algorithm.loss).parameters

    def update(self, batch: Batch) -> Metrics:
        """Advantages, then `epochs` passes of shuffled minibatch steps (stopped early past
        `target_kl`); the mean of each logged value over the steps."""
        cfg = self.config
        batch = B.to(batch, self.device)
        data, returns, values = self.samples(batch)
        if cfg.anneal_lr:
            self.set_lr(cfg.lr, "linear")
        n = B.batch_size(data)
        # data parallel: each replica's share; 0: the whole rollout
        size = cfg.minibatch_size // self.dp.world if cfg.minibatch_size else n
        sums: dict[str, torch.Tensor] = {}
        steps = 0
        for _ in range(cfg.passes()):
            order = torch.randperm(n, generator=self.generator).to(self.device)
            shuffled = B.index(data, order)  # one gather per epoch; minibatches are slices
            for start in range(0, n, size):
                stats = self.minibatch_step(B.index(shuffled, slice(start, start + size)))
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0) + v.detach()
                steps += 1
            # every replica must take the same decision, or the all-reduces deadlock
            kl = stats.get("approx_kl") if cfg.kl_stop() > 0 else None
            if kl is not None and self.dp.average_(kl.detach().clone()).item() > cfg.kl_stop():
                break
        self.updates += 1
        metrics = {k: float(v) / steps for k, v in sums.items()}
        if not math.isfinite(metrics["loss"]):
            # only the flags this algorithm has (MAPPO has no --norm-obs)
            norms = "norm_obs" in offered_fields(type(cfg))
            raise TrainingError(
                f"the loss became {metrics['loss']} at update {self.updates}: {remedy(cfg)}"
                + (" or enable --norm-obs/--norm-reward" if norms else "")
                + "; the last checkpoint is intact"
            )
        var = returns.var()
        metrics["explained_variance"] = (
            float(1 - (returns - values).var() / var) if var > 0 else 0.0
        )
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        self.algorithm.after_update(cfg, self.loss_state, metrics)
        return metrics

    def samples(self, batch: Batch) -> tuple[Batch, torch.Tensor, torch.Tensor]:
        """A rollout ``[envs, steps, ...]`` as flat samples with their advantages and
        returns (by the `--advantage` estimator); and, for the explained variance, the
        returns and the rollout's values they are compared with (``[envs, steps]``)."""
        cfg = self.config
        advantages, returns = ADVANTAGES.get(cfg.advantage)(
            batch["rewards"],
            batch["values"],
            batch["next_values"],
            batch["dones"],
            cfg.gamma,
            cfg.gae_lambda,
        )
        # scalars packed in one [n, 4] tensor: a minibatch is three gathers, not six
        scalars = torch.stack([batch["log_probs"], batch["values"], advantages, returns], -1)
        flat = B.flatten_time(
            {"obs": batch["obs"], "actions": batch["actions"], "scalars": scalars}
        )
        return flat, returns, batch["values"]

    def minibatch_step(self, rows: Batch) -> dict[str, torch.Tensor]:
        """One gradient step of `algorithm.loss` on a minibatch of samples: advantages
        standardized (over every replica's share), backward, all-reduce, clipping, step.
        Returns the loss and the loss's stats (tensors)."""
        cfg = self.config
        log_probs, values, adv, ret = rows["scalars"].unbind(-1)
        if cfg.norm_adv and adv.numel() > 1:
            mean, std = self.dp.mean_std(adv)  # over the whole minibatch, all replicas
            adv = (adv - mean) / (std + 1e-8)
        mb = {
            "obs": rows["obs"],
            "actions": rows["actions"],
            "log_probs": log_probs,
            "values": values,
            "advantages": adv,
            "returns": ret,
        }
        extra = {"state": self.loss_state} if self.loss_takes_state else {}
        with self.autocast():
            loss, stats = self.loss(cfg, self.policy, mb, **extra)
        self.flat.zero_grad()
        loss.backward()
        self.average_grads([self.flat.param])
        if cfg.max_grad_norm > 0:
            self.flat.clip_grad_norm_(cfg.max_grad_norm)
        self.optimizer.step()
        return {"loss": loss, **stats}

    def get_weights(self) -> Weights:
        return {"flat": self.flat.get()}

    def own_state(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "loss_state": dict(self.loss_state)}

    def load_own_state(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.loss_state = dict(state.get("loss_state", {}))
