"""The LLM learner (algorithms/rlhf/roles.py): two data-parallel learners on gloo, each
on half a step, take the step one learner takes on the whole; LoRA trains adapters only
and exports a merged model; bf16 and gradient checkpointing train the same model."""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

import pytest
import torch

from rlkit import batch as B
from rlkit.algorithms.rlhf import SFT, RewardModel, SFTConfig
from rlkit.algorithms.rlhf.batches import collate_pairs, collate_sequences
from rlkit.algorithms.rlhf.reward_model import RewardModelConfig
from rlkit.algorithms.rlhf.roles import LLMLearner
from rlkit.dataflow.collectives import DataParallel
from rlkit.envs.text.data import Format, pairs, sequences
from rlkit.llm.models import load_tokenizer

STAGES: dict[str, tuple[Any, Any]] = {
    "sft": (SFT, SFTConfig),
    "rm": (RewardModel, RewardModelConfig),
}


def step_batch(stage: str, tasks) -> B.Batch:
    """8 examples of unequal lengths (so the halves hold unequal numbers of tokens)."""
    tok = load_tokenizer("tiny")
    ws = tasks.words()[:8]
    if stage == "sft":
        rows = [{"prompt": w, "response": w[::-1] * (1 + i % 3)} for i, w in enumerate(ws)]
        return collate_sequences(
            sequences(rows, Format(tok), "prompt", "response", "messages"), torch.arange(8), 0
        )
    rows = [{"prompt": w, "chosen": w[::-1] * (1 + i % 3), "rejected": w} for i, w in enumerate(ws)]
    return collate_pairs(
        pairs(rows, Format(tok), "prompt", "chosen", "rejected"), torch.arange(8), 0
    )


def learner(stage: str, learners: int = 1, replica: int = 0, **fields: Any) -> LLMLearner:
    algorithm, config_cls = STAGES[stage]
    config = config_cls(learners=learners, micro_batch=2, samples_per_step=8, lr=1e-3, **fields)
    return LLMLearner(algorithm, config, 0, total_updates=10, replica=replica)


def flat(learner: LLMLearner) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in learner.params])


def replica(rank: int, address: str, stage: str, part: B.Batch, out: mp.Queue) -> None:
    role = learner(stage, learners=2, replica=rank)
    role.join(address)
    metrics = [role.update(part) for _ in range(2)]
    out.put((rank, flat(role).numpy(), metrics[-1]["loss"]))  # numpy: see fsdp_replica
    role.close()


@pytest.mark.parametrize("stage", list(STAGES))
def test_two_learners_on_gloo_equal_one_learner_on_the_whole_batch(stage, tasks):
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the children are forked
    batch = step_batch(stage, tasks)
    single = learner(stage)
    before = flat(single)
    expected_loss = [single.update(batch) for _ in range(2)][-1]["loss"]
    expected = flat(single)

    address = DataParallel(0, 2, torch.device("cpu")).rendezvous()
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    halves = B.split(batch, 2)
    procs = [
        ctx.Process(target=replica, args=(r, address, stage, halves[r], out)) for r in range(2)
    ]
    for p in procs:
        p.start()
    got = sorted(out.get(timeout=120) for _ in procs)
    (_, params0, loss0), (_, params1, loss1) = ((r, torch.from_numpy(p), x) for r, p, x in got)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    torch.testing.assert_close(params0, params1, rtol=0, atol=0)  # the replicas stay identical
    torch.testing.assert_close(params0, expected, rtol=1e-5, atol=1e-6)
    assert (loss0 + loss1) / 2 == pytest.approx(expected_loss, rel=1e-5)  # the mean over learners
    assert not torch.allclose(before, expected)


def test_lora_trains_adapters_only_and_exports_a_merged_model(tmp_path, tasks):
    import transformers

    role = learner("sft", lora_rank=4, lora_alpha=8)
    names = {n for n, p in role.model.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names)
    frozen = {
        n: p.detach().clone() for n, p in role.model.named_parameters() if not p.requires_grad
    }
    batch = step_batch("sft", tasks)
    first = role.update(batch)["loss"]
    for _ in range(5):
        last = role.update(batch)["loss"]
    assert last < first
    assert all(torch.equal(p, frozen[n]) for n, p in role.model.named_parameters() if n in frozen)
    role.export(tmp_path / "model")
    merged = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "model").eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    ids = batch["input_ids"][:2]
    with torch.no_grad():
        torch.testing.assert_close(
            merged(ids).logits, role.model.eval()(ids).logits, rtol=1e-4, atol=1e-4
        )
    # a checkpoint holds the adapters and comes back exactly
    (tmp_path / "ckpt").mkdir()
    small = role.save_checkpoint(tmp_path / "ckpt")
    again = learner("sft", lora_rank=4, lora_alpha=8)
    again.load_checkpoint(tmp_path / "ckpt", small)
    assert torch.equal(flat(again), flat(role)) and again.updates == 6


def test_bf16_and_gradient_checkpointing_train_the_same_model(tasks):
    batch = step_batch("sft", tasks)
    plain, checkpointed = learner("sft"), learner("sft", gradient_checkpointing=True)
    a, b = plain.update(batch), checkpointed.update(batch)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
    torch.testing.assert_close(flat(plain), flat(checkpointed), rtol=1e-5, atol=1e-6)
    bf16 = learner("sft", precision="bf16")
    c = bf16.update(batch)
    assert c["loss"] == pytest.approx(a["loss"], rel=2e-2)
    assert all(p.dtype == torch.float32 for p in bf16.params)  # master weights stay fp32


def fsdp_replica(rank: int, address: str, part: B.Batch, work: str, out: mp.Queue) -> None:
    from pathlib import Path

    role = learner("sft", learners=2, replica=rank, fsdp=True)
    role.join(address)
    sharded = type(role.params[0]).__name__
    for _ in range(2):
        role.update(part)
    after_two = role.get_weights()
    ckpt = Path(work) / f"learner-{rank}"
    ckpt.mkdir()
    small = role.save_checkpoint(ckpt)
    role.update(part)
    after_three = role.get_weights()
    role.load_checkpoint(ckpt, small)  # back to two updates, then the third again
    role.update(part)
    again = role.get_weights()
    role.export(Path(work) / "model")
    # numpy: torch's own pickling of tensors hands out file descriptors that die with us
    states = [{k: v.numpy() for k, v in w.items()} for w in (after_two, after_three, again)]
    out.put((rank, sharded, *states))
    role.close()


def test_fsdp_learners_shard_the_model_and_take_the_unsharded_step(tmp_path, tasks):
    """Two FSDP2 learners on gloo (each a shard of every weight and of Adam's state) take
    the steps one unsharded learner takes on the whole batch; their checkpoint is each
    one's shards, which load back exactly and join into the whole model; the export is
    the whole model."""
    import transformers

    from rlkit.algorithms.rlhf.template import restore

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    batch = step_batch("sft", tasks)
    single = learner("sft")
    steps = []
    for _ in range(3):
        single.update(batch)
        steps.append(single.get_weights())
    address = DataParallel(0, 2, torch.device("cpu")).rendezvous()
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    halves = B.split(batch, 2)
    procs = [
        ctx.Process(target=fsdp_replica, args=(r, address, halves[r], str(tmp_path), out))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (_, sharded, *states), _ = results
    two, three, again = ({k: torch.from_numpy(v) for k, v in w.items()} for w in states)
    assert sharded == "DTensor"
    for k, v in steps[1].items():
        torch.testing.assert_close(two[k], v, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(three[k], steps[2][k], rtol=1e-5, atol=1e-6)
        assert torch.equal(again[k], three[k])
    exported = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    for k, v in exported.state_dict().items():
        torch.testing.assert_close(v, three[k])
    joined = learner("sft", learners=2, fsdp=True)  # rlkit eval: one process, unsharded
    entries = [
        {"__files__": str(tmp_path / f"learner-{r}"), "state": {"updates": 2}} for r in range(2)
    ]
    restore(joined, entries)
    for k, v in joined.get_weights().items():
        torch.testing.assert_close(v, two[k])
