"""Where one PPO update's CPU time goes on Humanoid-v5 (rlkit's preset, one torch thread):
collecting 2,048 env steps (4 envs x 512, policy inference, normalization), the learner's
update on them (10 epochs x 32 minibatches), and the same 2,048 steps of the raw env with
random actions. Prints CPU seconds per part (medians of `--repeats`) and what they bound:
the steps/s of one process doing both, of collection overlapped with the update on two
cores (`--overlap`), and of a perfect split of all the work over two cores.

    python -m benchmarks.ppo_parts
"""

from __future__ import annotations

import argparse
import time

from benchmarks.report import median


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m benchmarks.ppo_parts",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--repeats", type=int, default=5, help="updates measured (default 5)")
    a = p.parse_args(argv)

    import gymnasium as gym
    import torch

    from rlkit.algorithms import PPO, PPOConfig
    from rlkit.algorithms.on_policy_roles import OnPolicyActor, OnPolicyLearner
    from rlkit.envs.vector import probe_spec
    from rlkit.trainer import make_config

    torch.set_num_threads(1)
    cfg = make_config(PPO, "Humanoid", None, {"seed": 0})
    assert isinstance(cfg, PPOConfig)
    env_id, spec = probe_spec(cfg.env)
    actor, learner = OnPolicyActor(env_id, spec, cfg), OnPolicyLearner(PPO, spec, cfg)
    steps = cfg.num_steps * cfg.num_envs
    actor.collect(cfg.num_steps)  # warm-up
    collect, update, raw = [], [], []
    env = gym.make(env_id)
    env.reset(seed=0)
    for _ in range(a.repeats):
        c = time.process_time()
        rollout, _ = actor.collect(cfg.num_steps)
        collect.append(time.process_time() - c)
        c = time.process_time()
        learner.update(rollout)
        update.append(time.process_time() - c)
        c = time.process_time()
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        raw.append(time.process_time() - c)
    col, upd, env_s = median(collect), median(update), median(raw)
    print(
        f"CPU s per update of {steps:,} env steps (medians of {a.repeats}): collect {col:.3f} "
        f"(raw env {env_s:.3f}, so {col / env_s - 1:.0%} on top), learner update {upd:.3f}"
    )
    print(
        f"bounds in env steps/s: one process {steps / (col + upd):,.0f}; collection overlapped with the "
        f"update on two cores {steps / max(col, upd):,.0f}; all work split perfectly over two cores "
        f"{steps / ((col + upd) / 2):,.0f}"
    )
    actor.close()
    env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
