"""dp-learner: two learner replicas on gloo, each updating on half the rollout (PPO) or
half the sampled batch (DQN), end with the parameters of one learner updating on the
whole of it (to float tolerance)."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import torch

from rlkit import batch as B
from rlkit.algorithms import PPO, PPOConfig
from rlkit.algorithms.dqn import DQNConfig, DQNLearner
from rlkit.algorithms.on_policy_roles import OnPolicyLearner
from rlkit.dataflow.collectives import DataParallel
from rlkit.envs import SpaceSpec

SPEC = SpaceSpec((5,), False, 2, (-1.0, -1.0), (1.0, 1.0))
ENVS, STEPS = 4, 8


def config(learners: int) -> PPOConfig:
    # one minibatch per epoch (the whole batch): the gradient of the mean loss over the
    # batch is then the average of the replicas' gradients over their halves
    return PPOConfig(
        num_envs=ENVS,
        num_steps=STEPS,
        minibatch_size=ENVS * STEPS,
        epochs=3,
        anneal_lr=False,
        learners=learners,
        hidden=(16,),
        torch_threads=1,
    )


def run_two_replicas(target: Any, batch: B.Batch) -> list[Any]:
    """`target(rank, address, half of batch, queue)` in two forked processes joined on gloo;
    what each put on the queue, by rank."""
    address = DataParallel(0, 2, torch.device("cpu")).rendezvous()
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    parts = B.split(batch, 2)
    procs = [ctx.Process(target=target, args=(r, address, parts[r], out)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return [(r[0], torch.from_numpy(r[1]), *r[2:]) for r in results]


def replica(rank: int, address: str, part: B.Batch, out: mp.Queue) -> None:
    learner = OnPolicyLearner(PPO, SPEC, config(2), replica=rank)
    learner.join(address)
    metrics = learner.update(part)
    # numpy: torch pickles a tensor on a queue as a file descriptor that dies with us
    out.put((rank, learner.flat.get().numpy(), metrics["loss"]))
    learner.close()


def test_two_learners_equal_one_learner_on_the_whole_batch(make_rollout):
    rollout = make_rollout(ENVS, STEPS, obs_dim=5, act_dim=2)
    single = OnPolicyLearner(PPO, SPEC, config(1))
    before = single.flat.get()
    single.update(rollout)
    expected = single.flat.get()

    (_, params0, loss0), (_, params1, loss1) = run_two_replicas(replica, rollout)
    torch.testing.assert_close(params0, params1)  # the replicas stay identical
    torch.testing.assert_close(params0, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(before, expected)  # the update did move the parameters


DQN_SPEC = SpaceSpec((4,), True, 3, (), ())


def dqn_config(learners: int) -> DQNConfig:
    return DQNConfig(learners=learners, hidden=(16,), batch_size=32, torch_threads=1)


def dqn_batch() -> B.Batch:
    g = torch.Generator().manual_seed(1)
    n = 32
    return {
        "obs": torch.randn(n, 4, generator=g),
        "actions": torch.randint(0, 3, (n,), generator=g),
        "rewards": torch.randn(n, generator=g),
        "next_obs": torch.randn(n, 4, generator=g),
        "discounts": torch.full((n,), 0.99),
        "terminated": torch.rand(n, generator=g) < 0.2,
    }


def dqn_replica(rank: int, address: str, part: B.Batch, out: mp.Queue) -> None:
    learner = DQNLearner(DQN_SPEC, dqn_config(2), replica=rank)
    learner.join(address)
    for _ in range(3):
        learner.update(part)
    out.put((rank, learner.flat.get().numpy()))  # numpy: see replica
    learner.close()


def test_two_dqn_learners_equal_one_learner_on_the_whole_batch():
    single = DQNLearner(DQN_SPEC, dqn_config(1))
    before = single.flat.get()
    for _ in range(3):
        single.update(dqn_batch())
    expected = single.flat.get()

    (_, params0), (_, params1) = run_two_replicas(dqn_replica, dqn_batch())
    torch.testing.assert_close(params0, params1, rtol=0, atol=0)
    torch.testing.assert_close(params0, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(before, expected)
