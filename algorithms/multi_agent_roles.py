"""The roles of the on-policy template for multi-agent envs (MAPPO, IPPO).

`MultiAgentActor` steps `num_envs` copies of a PettingZoo parallel env and returns an
env-major rollout with a trailing agent dimension (every field ``[E, T, A, ...]``, plus
the global ``state`` ``[E, T, *state]``), and ``mask`` ``[E, T, A]``: True where the agent
was alive and acted. `MultiAgentLearner` is the template's learner with three seams
replaced: `samples` (advantages over the agent dimension, value normalization, nothing
from steps after an agent is done), `minibatch_step` (advantages standardized over live
agents, actor and critic gradients clipped apart) and the explained variance over live
agents. Epochs, minibatches, annealing, early stopping and data parallelism are the
template's.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rlkit import batch as B
from rlkit.algorithms.advantages import ADVANTAGES
from rlkit.algorithms.flat_params import FlatParameters
from rlkit.algorithms.multi_agent_networks import MultiAgentPolicy
from rlkit.algorithms.on_policy import OnPolicy
from rlkit.algorithms.on_policy_roles import OnPolicyLearner
from rlkit.algorithms.value_norm import ValueNorm
from rlkit.batch import Batch
from rlkit.device import use_threads
from rlkit.envs.families import parse_env_kwargs
from rlkit.envs.multi_agent_spec import MultiAgentSpec
from rlkit.envs.parallel_runner import ParallelEnvRunner
from rlkit.roles import Actor, Output, Weights

if TYPE_CHECKING:
    from rlkit.algorithms.mappo import MAPPOConfig


ENV_FILE = "envs.pkl"
"""The file of a checkpoint in which an actor keeps its envs' states."""


def make_agents_policy(config: Any, spec: MultiAgentSpec) -> MultiAgentPolicy:
    """The networks of a multi-agent config (`MAPPO.make_policy`)."""
    return MultiAgentPolicy(
        spec,
        config.hidden,
        config.activation,
        config.log_std_init,
        config.layer_norm,
        config.critic == "central",
        config.share_params,
    )


def uses_masks(config: Any, spec: MultiAgentSpec) -> bool:
    """Whether the policy honors the env's action masks (``--action-masks``)."""
    return spec.action_masks and config.action_masks != "off"


class MultiAgentActor(Actor):
    """Steps `num_envs` parallel envs with the current policy and records rollouts."""

    def __init__(
        self,
        env_id: str,
        spec: MultiAgentSpec,
        config: Any,
        replica: int = 0,
        algorithm: type[OnPolicy] | None = None,
    ) -> None:
        use_threads(config.torch_threads)
        self.config, self.spec = config, spec
        seed = config.seed + 10_007 * replica
        kwargs = parse_env_kwargs(config.env_kwargs)
        self.runner = ParallelEnvRunner(env_id, spec, config.num_envs, seed, kwargs)
        any_spec: Any = spec  # the template's hook is typed for single-agent specs
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            made = algorithm.make_policy(config, any_spec) if algorithm else None
            policy = made if made is not None else make_agents_policy(config, spec)
        assert isinstance(policy, MultiAgentPolicy), "make_policy must give a MultiAgentPolicy"
        self.policy = policy
        self.flat = FlatParameters(self.policy)
        self.generator = torch.Generator().manual_seed(seed)
        self.masked = uses_masks(config, spec)
        self.version = 0

    def set_weights(self, weights: Weights, version: int) -> None:
        self.flat.set(weights["flat"])
        self.version = version

    def _now(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        r = self.runner
        masks = torch.from_numpy(r.masks) if self.masked and r.masks is not None else None
        return torch.from_numpy(r.obs), torch.from_numpy(r.state), masks

    @torch.no_grad()
    def collect(self, num_steps: int) -> Output:
        """A rollout, every field ``[num_envs, num_steps, ...]`` with agents after time
        (`rlkit.batch` schema plus ``state`` and ``mask``), and the episodes that ended:
        team "return", "length", ``return_<agent>``. `next_values` is V(s') with
        V(final obs) on truncation, 0 on termination and on steps the agent was not alive."""
        spec, runner = self.spec, self.runner
        shape = (num_steps, self.config.num_envs, len(spec.agents))
        obs = torch.empty((*shape, spec.obs_dim))
        state = torch.empty((*shape[:2], *spec.state_shape))
        actions = torch.empty(shape, dtype=torch.int64) if spec.discrete else None
        if actions is None:
            actions = torch.empty((*shape, spec.action_dim))
        masks = torch.empty((*shape, spec.action_dim), dtype=torch.bool) if self.masked else None
        log_probs, values, rewards, bootstrap = (torch.zeros(shape) for _ in range(4))
        alive, dones, terminated = (torch.empty(shape, dtype=torch.bool) for _ in range(3))
        for t in range(num_steps):
            o, s, m = self._now()
            action, log_probs[t], values[t] = self.policy.act(o, s, m, self.generator)
            obs[t], state[t], actions[t] = o, s, action
            alive[t] = torch.from_numpy(runner.alive)
            if masks is not None and m is not None:
                masks[t] = m
            step = runner.step(action.numpy())
            cut = step.truncated & ~step.terminated
            if cut.any():  # bootstrap from the last observation of a truncated episode
                assert step.final_obs is not None and step.final_state is not None
                final = self.policy.value(
                    torch.from_numpy(step.final_obs), torch.from_numpy(step.final_state), True
                )
                bootstrap[t] = torch.where(torch.from_numpy(cut), final, 0.0)
            rewards[t] = torch.from_numpy(step.reward)
            dones[t] = torch.from_numpy(step.done | ~step.acted)
            terminated[t] = torch.from_numpy(step.terminated)
        o, s, _ = self._now()
        last = self.policy.value(o, s, True)
        next_values = torch.where(dones, bootstrap, torch.cat([values[1:], last[None]]))
        rollout = {
            "obs": obs,
            "state": state,
            "actions": actions,
            "log_probs": log_probs,
            "values": torch.where(alive, values, 0.0),
            "next_values": torch.where(alive, next_values, 0.0),
            "rewards": rewards,
            "dones": dones,
            "terminated": terminated,
            "mask": alive,
        }
        if masks is not None:
            rollout["action_masks"] = masks
        rollout = {k: v.transpose(0, 1).contiguous() for k, v in rollout.items()}
        rollout["version"] = torch.full((self.config.num_envs,), self.version, dtype=torch.int64)
        return Output(rollout, runner.pop_episodes())

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "generator": self.generator.get_state(),
            "runner": self.runner.state_dict(),
            "version": self.version,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.generator.set_state(state["generator"])
        self.runner.load_state_dict(state["runner"])
        self.version = state["version"]

    def save_checkpoint(self, directory: Path) -> dict[str, Any]:
        """The env states (what grows with ``--num-envs``: about 6 KB per mpe2 env) into
        ``envs.pkl`` in `directory`; the policy, RNG and counters come back inline."""
        state = self.state_dict()
        envs = state["runner"].pop("envs")
        (directory / ENV_FILE).write_bytes(pickle.dumps(envs, protocol=pickle.HIGHEST_PROTOCOL))
        return state

    def load_checkpoint(self, directory: Path, state: dict[str, Any]) -> None:
        envs = pickle.loads((directory / ENV_FILE).read_bytes())
        self.load_state_dict({**state, "runner": {**state["runner"], "envs": envs}})

    def eval_state(self) -> dict[str, Any]:
        """What the evaluation policy needs: the network (no env states)."""
        return {"policy": self.policy.state_dict()}

    def close(self) -> None:
        self.runner.close()


class MultiAgentLearner(OnPolicyLearner):
    """The template's learner over agent-major samples, with value normalization."""

    config: MAPPOConfig

    def __init__(
        self,
        algorithm: type[OnPolicy],
        spec: Any,
        config: Any,
        device: torch.device | None = None,
        replica: int = 0,
    ) -> None:
        super().__init__(algorithm, spec, config, device, replica)
        policy = self.policy
        assert isinstance(policy, MultiAgentPolicy), "make_policy must give a MultiAgentPolicy"
        self.agents: MultiAgentPolicy = policy
        self.value_norm: ValueNorm | None = (
            ValueNorm(policy.group_index, config.value_norm_beta)
            if config.value_norm != "off"
            else None
        )

    def samples(self, batch: Batch) -> tuple[Batch, torch.Tensor, torch.Tensor]:
        """Flat samples ``[E * T, A, ...]``: GAE per agent on returns in the env's scale
        (the critic's outputs denormalized), then the value statistics updated and the
        targets and old values standardized. Steps after an agent is done carry zeros:
        no advantage, no target. Also the live agents' returns and values (``[n]``)."""
        cfg, norm = self.config, self.value_norm
        mask = batch["mask"]
        real = norm.denormalize if norm is not None else (lambda x: x)
        values = torch.where(mask, real(batch["values"]), 0.0)
        ends = batch["terminated"] if cfg.proper_time_limits else batch["dones"]
        next_values = torch.where(mask & ~ends, real(batch["next_values"]), 0.0)
        rewards = torch.where(mask, batch["rewards"], 0.0)
        advantages, returns = ADVANTAGES.get(cfg.advantage)(
            rewards, values, next_values, batch["dones"], cfg.gamma, cfg.gae_lambda
        )
        advantages, returns = torch.where(mask, advantages, 0.0), torch.where(mask, returns, 0.0)
        fit = (returns[mask], values[mask])
        if norm is not None:
            heads = self.agents.critic_heads() if cfg.value_norm == "popart" else None
            norm.update(returns, mask, self.dp, heads)
            returns = torch.where(mask, norm.normalize(returns), 0.0)
            values = torch.where(mask, norm.normalize(values), 0.0)
        log_probs = torch.where(mask, batch["log_probs"], 0.0)
        scalars = torch.stack([log_probs, values, advantages, returns, mask.float()], -1)
        fields: Batch = {
            k: batch[k] for k in ("obs", "state", "actions", "action_masks") if k in batch
        }
        return B.flatten_time({**fields, "scalars": scalars}), *fit

    def minibatch_step(self, rows: Batch) -> dict[str, torch.Tensor]:
        """One gradient step of `algorithm.loss` on ``[B, A, ...]`` samples: advantages
        standardized over the live agents (of every replica), backward, all-reduce, the
        actors' and the critics' gradients clipped each to `max_grad_norm`, step."""
        cfg = self.config
        log_probs, values, adv, ret, alive = rows["scalars"].unbind(-1)
        mask = alive > 0
        if cfg.norm_adv:
            mean, std = self.masked_mean_std(adv, mask)
            adv = torch.where(mask, (adv - mean) / (std + 1e-8), 0.0)
        mb = {
            "obs": rows["obs"],
            "state": rows["state"],
            "actions": rows["actions"],
            "log_probs": log_probs,
            "values": values,
            "advantages": adv,
            "returns": ret,
            "mask": mask,
        }
        if "action_masks" in rows:
            mb["action_masks"] = rows["action_masks"]
        extra = {"state": self.loss_state} if self.loss_takes_state else {}
        with self.autocast():
            loss, stats = self.loss(cfg, self.policy, mb, **extra)
        self.flat.zero_grad()
        loss.backward()
        self.average_grads([self.flat.param])
        if cfg.max_grad_norm > 0:
            k = self.agents.actor_numel
            for part in (self.flat.grad[:k], self.flat.grad[k:]):
                part.mul_((cfg.max_grad_norm / (part.norm() + 1e-6)).clamp(max=1.0))
        self.optimizer.step()
        return {"loss": loss, **stats}

    def masked_mean_std(
        self, x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of `x` where `mask`, over every data-parallel replica's share."""
        m = mask.to(x.dtype)
        moments = torch.stack([(x * m).sum(), (x.square() * m).sum(), m.sum()])
        self.dp.average_(moments)  # a mean of sums: the ratios are those of the union
        total, squares, count = moments.unbind()
        count = count.clamp(min=1.0 / self.dp.world)
        mean = total / count
        var = (squares / count - mean.square()).clamp(min=0)
        n = count * self.dp.world
        return mean, (var * n / (n - 1).clamp(min=1)).sqrt()

    def own_state(self) -> dict[str, Any]:
        state = super().own_state()
        state["value_norm"] = self.value_norm.state_dict() if self.value_norm else None
        return state

    def load_own_state(self, state: dict[str, Any]) -> None:
        super().load_own_state(state)
        if self.value_norm is not None:
            self.value_norm.load_state_dict(state["value_norm"])
