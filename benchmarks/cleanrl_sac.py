"""A CleanRL-style single-file Soft Actor-Critic, the reference point of `benchmarks.offpolicy`.

Written for this benchmark in the manner of CleanRL's `sac_continuous_action.py` (one flat
training loop, no framework): two separate Q networks and their target copies, a
tanh-squashed Gaussian actor whose log std is squashed into [-5, 2], one Adam over both
critics, one for the actor, automatic entropy tuning on log alpha, Polyak targets updated
parameter by parameter, Stable-Baselines3's `ReplayBuffer` for storage (as CleanRL does),
and a one-env `SyncVectorEnv`. It is not CleanRL's code; it follows the same design so that
its cost per step is what such a script costs.

    python benchmarks/cleanrl_sac.py --env-id Humanoid-v5 --total-timesteps 1000000

Steps ``0 .. learning_starts-1`` take uniformly random actions; every later step acts with
the policy and is followed by one critic update (and, every `policy_frequency` steps,
`policy_frequency` actor and alpha updates). `main` returns the wall and CPU seconds of the
part after learning starts, which is what the benchmark compares.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Args:
    env_id: str = "Humanoid-v5"
    seed: int = 1
    total_timesteps: int = 1_000_000
    buffer_size: int = 1_000_000
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    learning_starts: int = 5_000
    policy_lr: float = 3e-4
    q_lr: float = 1e-3
    policy_frequency: int = 2
    target_network_frequency: int = 1
    alpha: float = 0.2
    autotune: bool = True
    hidden: int = 256
    torch_threads: int = 1
    print_every: int = 0


class QNet(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int) -> None:
        super().__init__()
        self.l1 = nn.Linear(obs_dim + act_dim, hidden)
        self.l2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.l1(torch.cat([obs, act], 1)))
        return self.out(F.relu(self.l2(h)))


class Policy(nn.Module):
    LOG_STD_LO, LOG_STD_HI = -5.0, 2.0
    half_range: torch.Tensor
    mid: torch.Tensor

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: int, low: np.ndarray, high: np.ndarray
    ) -> None:
        super().__init__()
        self.l1 = nn.Linear(obs_dim, hidden)
        self.l2 = nn.Linear(hidden, hidden)
        self.mu = nn.Linear(hidden, act_dim)
        self.log_std = nn.Linear(hidden, act_dim)
        self.register_buffer("half_range", torch.as_tensor((high - low) / 2.0, dtype=torch.float32))
        self.register_buffer("mid", torch.as_tensor((high + low) / 2.0, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.l2(F.relu(self.l1(obs))))
        squashed = torch.tanh(self.log_std(h))
        log_std = self.LOG_STD_LO + 0.5 * (self.LOG_STD_HI - self.LOG_STD_LO) * (squashed + 1.0)
        return self.mu(h), log_std

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized squashed action and its log-probability (tanh Jacobian included)."""
        mu, log_std = self(obs)
        dist = torch.distributions.Normal(mu, log_std.exp())
        u = dist.rsample()
        t = torch.tanh(u)
        logp = dist.log_prob(u) - torch.log(self.half_range * (1.0 - t.pow(2)) + 1e-6)
        return t * self.half_range + self.mid, logp.sum(1, keepdim=True)


def parse(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(allow_abbrev=False, description="CleanRL-style single-file SAC")
    for f in dataclasses.fields(Args):
        default = f.default
        kind: Any = (
            (lambda s: s.lower() in ("1", "true", "yes"))
            if isinstance(default, bool)
            else type(default)
        )
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=default)
    return Args(**vars(p.parse_args(argv)))


def main(args: Args) -> dict[str, float]:
    from stable_baselines3.common.buffers import ReplayBuffer

    torch.set_num_threads(args.torch_threads)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.RecordEpisodeStatistics(gym.make(args.env_id))],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    envs.single_action_space.seed(args.seed)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    assert isinstance(act_space, gym.spaces.Box) and obs_space.shape is not None
    obs_dim, act_dim = int(np.prod(obs_space.shape)), int(np.prod(act_space.shape))

    actor = Policy(obs_dim, act_dim, args.hidden, act_space.low, act_space.high)
    q1, q2 = QNet(obs_dim, act_dim, args.hidden), QNet(obs_dim, act_dim, args.hidden)
    q1_targ, q2_targ = QNet(obs_dim, act_dim, args.hidden), QNet(obs_dim, act_dim, args.hidden)
    q1_targ.load_state_dict(q1.state_dict())
    q2_targ.load_state_dict(q2.state_dict())
    q_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=args.q_lr)
    pi_opt = torch.optim.Adam(actor.parameters(), lr=args.policy_lr)

    if args.autotune:
        target_entropy = -float(act_dim)
        log_alpha = torch.zeros(1, requires_grad=True)
        alpha = log_alpha.exp().item()
        alpha_opt = torch.optim.Adam([log_alpha], lr=args.q_lr)
    else:
        alpha = args.alpha

    stored_space = gym.spaces.Box(
        -np.inf, np.inf, obs_space.shape, np.float32
    )  # MuJoCo gives float64
    rb = ReplayBuffer(
        args.buffer_size, stored_space, act_space, "cpu", handle_timeout_termination=False
    )
    returns: list[float] = []
    obs, _ = envs.reset(seed=args.seed)
    t_learn = c_learn = math.nan
    start, cpu_start = time.perf_counter(), time.process_time()
    for global_step in range(args.total_timesteps):
        if global_step == args.learning_starts:
            t_learn, c_learn = time.perf_counter(), time.process_time()
        if global_step < args.learning_starts:
            actions = np.array([act_space.sample()])
        else:
            with torch.no_grad():
                actions = actor.act(torch.as_tensor(obs, dtype=torch.float32))[0].numpy()

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        stored_next = next_obs.copy()
        if "final_obs" in infos:  # an env was reset in this step: store its real last observation
            for i in np.flatnonzero(infos["_final_obs"]):
                stored_next[i] = infos["final_obs"][i]
                returns.append(float(infos["final_info"]["episode"]["r"][i]))
        rb.add(obs, stored_next, actions, rewards, terminations, [{}])
        obs = next_obs

        if global_step >= args.learning_starts:
            batch = rb.sample(args.batch_size)
            with torch.no_grad():
                next_a, next_logp = actor.act(batch.next_observations)
                q_next = (
                    torch.min(
                        q1_targ(batch.next_observations, next_a),
                        q2_targ(batch.next_observations, next_a),
                    )
                    - alpha * next_logp
                )
                target = batch.rewards.flatten() + (
                    1.0 - batch.dones.flatten()
                ) * args.gamma * q_next.view(-1)
            q_loss = F.mse_loss(
                q1(batch.observations, batch.actions).view(-1), target
            ) + F.mse_loss(q2(batch.observations, batch.actions).view(-1), target)
            q_opt.zero_grad()
            q_loss.backward()
            q_opt.step()

            if global_step % args.policy_frequency == 0:
                for _ in range(args.policy_frequency):  # catch up on the delayed actor updates
                    a, logp = actor.act(batch.observations)
                    q_pi = torch.min(q1(batch.observations, a), q2(batch.observations, a))
                    pi_loss = (alpha * logp - q_pi).mean()
                    pi_opt.zero_grad()
                    pi_loss.backward()
                    pi_opt.step()
                    if args.autotune:
                        with torch.no_grad():
                            _, logp = actor.act(batch.observations)
                        alpha_loss = (-log_alpha.exp() * (logp + target_entropy)).mean()
                        alpha_opt.zero_grad()
                        alpha_loss.backward()
                        alpha_opt.step()
                        alpha = log_alpha.exp().item()

            if global_step % args.target_network_frequency == 0:
                with torch.no_grad():
                    for net, targ in ((q1, q1_targ), (q2, q2_targ)):
                        for p, tp in zip(net.parameters(), targ.parameters(), strict=True):
                            tp.data.copy_(args.tau * p.data + (1.0 - args.tau) * tp.data)

            if args.print_every and global_step % args.print_every == 0:
                recent = float(np.mean(returns[-100:])) if returns else math.nan
                sps = (global_step + 1) / (time.perf_counter() - start)
                print(
                    f"step {global_step + 1:,}  return {recent:.1f}  q_loss {q_loss.item():.3f}  "
                    f"alpha {alpha:.3f}  {sps:.0f} steps/s",
                    flush=True,
                )
    end, cpu_end = time.perf_counter(), time.process_time()
    envs.close()
    learned = args.total_timesteps - args.learning_starts
    return {
        "steps": learned,
        "loop_s": end - t_learn,
        "cpu_s": cpu_end - c_learn,
        "total_s": end - start,
        "total_cpu_s": cpu_end - cpu_start,
        "return": float(np.mean(returns[-100:])) if returns else math.nan,
    }


if __name__ == "__main__":
    out = main(parse())
    print(
        f"{out['steps']:,} steps after learning starts in {out['loop_s']:.1f}s "
        f"({out['steps'] / out['loop_s']:.1f} steps/s, {out['steps'] / out['cpu_s']:.1f} per CPU s); "
        f"return (last 100 episodes) {out['return']:.1f}"
    )
