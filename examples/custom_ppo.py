"""A custom algorithm by subclassing: PPO with a KL penalty instead of clipping.

PPO-Penalty (Schulman et al. 2017, section 4) maximizes the unclipped surrogate
``ratio * advantage`` minus ``kl_coef * KL(old || new)``. Everything else (rollouts, GAE,
epochs, minibatches, normalization, checkpoints, the dataflow graph) is inherited from
PPO and the on-policy template: the subclass adds one config field and overrides `loss`.

    python examples/custom_ppo.py --total-steps 20000 --out /tmp/rlkit-examples
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from rlkit.algorithms import ALGORITHMS, PPO, PPOConfig
from rlkit.algorithms.networks import ActorCritic
from rlkit.batch import Batch
from rlkit.config import BaseConfig, check
from rlkit.evaluate import evaluate
from rlkit.trainer import Trainer, make_config


@dataclass
class KLPenaltyPPOConfig(PPOConfig):
    """PPO-Penalty: the PPO fields plus the weight of the KL penalty."""

    kl_coef: float = 1.0
    """Weight of the KL(old || new) penalty that replaces ratio clipping."""

    def validate(self) -> None:
        super().validate()
        check(self.kl_coef >= 0, "kl_coef", "must be >= 0")


# The name is given once, here: checkpoints and config.yaml record it. PPO's per-env
# presets are inherited. From the shell: rlkit run examples/custom_ppo.py:KLPenaltyPPO ...
@ALGORITHMS.register("ppo_kl")
class KLPenaltyPPO(PPO):
    config_cls: ClassVar[type[BaseConfig]] = KLPenaltyPPOConfig

    @staticmethod
    def loss(
        config: PPOConfig, policy: ActorCritic, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Called by the learner for each minibatch; `batch` holds obs, actions, log_probs,
        values, advantages, returns, each ``[B, ...]``."""
        # PPO.loss takes a PPOConfig; the learner passes this class's config_cls.
        assert isinstance(config, KLPenaltyPPOConfig)
        dist = policy.dist(batch["obs"])
        log_ratio = policy.log_prob(dist, batch["actions"]) - batch["log_probs"]
        ratio = log_ratio.exp()
        kl = ((ratio - 1) - log_ratio).mean()  # k3 estimator of KL(old || new): >= 0, low variance
        policy_loss = -(ratio * batch["advantages"]).mean() + config.kl_coef * kl

        value_loss = 0.5 * (policy.value(batch["obs"]) - batch["returns"]).pow(2).mean()
        entropy = policy.entropy(dist).mean()
        loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
        stats = {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "approx_kl": kl,
        }
        return loss, {k: v.detach() for k, v in stats.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--total-steps", type=int, default=20_000, help="environment steps")
    parser.add_argument(
        "--out",
        default=str(Path(tempfile.gettempdir()) / "rlkit-examples"),
        help="parent directory of the run directory",
    )
    parser.add_argument("--kl-coef", type=float, default=1.0, help="weight of the KL penalty")
    args = parser.parse_args()

    # Defaults, then the CartPole preset, then these overrides (as `rlkit run` does).
    overrides = {
        "total_steps": args.total_steps,
        "out": args.out,
        "kl_coef": args.kl_coef,
        "device": "cpu",
    }  # CPU: the same numbers on every machine
    config = make_config(KLPenaltyPPO, "CartPole", None, overrides)
    trainer = Trainer(KLPenaltyPPO, config)
    if trainer.run() != 0:
        raise SystemExit("interrupted")
    assert trainer.run_dir is not None
    train_return = trainer.recent("return")
    result = evaluate(trainer.run_dir, episodes=5)
    print(
        f"{KLPenaltyPPO.name}: {trainer.step:,} steps; training return {train_return:.1f} "
        f"(last 100 episodes); eval return {result.mean:.1f} +- {result.std:.1f} (5 episodes)"
    )


if __name__ == "__main__":
    main()
