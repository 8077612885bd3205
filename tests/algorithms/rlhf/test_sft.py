"""SFT (algorithms/rlhf/sft.py): the tiny model learns a task with a checkable answer,
the prompt is no target, and packing changes nothing but the padding."""

from __future__ import annotations

import pytest
import torch

from rlkit.algorithms.rlhf import SFT, SFTConfig
from rlkit.algorithms.rlhf.batches import collate_sequences, pack
from rlkit.envs.text.data import Format, sequences
from rlkit.llm.models import load_model, load_tokenizer


@pytest.mark.slow
def test_sft_learns_to_reverse_words(tmp_path, tasks, llm_run):
    """Greedy answers on 100 held-out prompts: exact reversals go from chance (1 in
    1296) to >= 0.9 within 4,800 samples (150 steps of 32) of the tiny model, seed 0,
    with no tuning flag (the tiny preset's learning rate; only the budget and the
    micro-batch, a speed setting, are given)."""
    ws = tasks.words()
    train, held = ws[:800], ws[-100:]
    data = tasks.write_jsonl(tmp_path / "demos.jsonl", tasks.reversal_rows(train))
    flags = ["--total-steps", "4800", "--micro-batch", "32"]
    start = llm_run("sft", "start", data, "--total-steps", "32", "--lr", "1e-12")
    run = llm_run("sft", "sft", data, *flags)
    answers = [w[::-1] for w in held]
    assert tasks.greedy_accuracy(start / "model", held, answers) <= 0.02
    assert tasks.greedy_accuracy(run / "model", held, answers) >= 0.9


def tiny_examples(tasks, n: int = 12):
    tok = load_tokenizer("tiny")
    rows = tasks.reversal_rows(tasks.words()[:n])
    rows[0]["response"] = "a much longer response than the others"  # ragged lengths
    return tok, rows, sequences(rows, Format(tok), "prompt", "response", "messages")


def test_only_response_tokens_are_targets(tasks):
    """The loss mask is True on exactly the response's tokens (its text, the template's
    end-of-turn and eos), and the loss is the cross-entropy there, computed from the
    full logits of plain transformers."""
    tok, rows, data = tiny_examples(tasks)
    for row, ids, loss in zip(rows, data.ids, data.loss, strict=True):
        response = tok(row["response"] + "<|end|>", add_special_tokens=False)["input_ids"]
        expected = [False] * (len(ids) - len(response) - 1) + [True] * (len(response) + 1)
        assert loss == expected and ids[-1] == tok.eos_token_id
        assert tok.decode(ids).startswith("<|user|>" + row["prompt"])
    batch = collate_sequences(data, torch.arange(len(data)), tok.pad_token_id)
    model = load_model("tiny", "causal", 0, tok.pad_token_id)
    loss, stats = SFT.loss(SFTConfig(), model, batch)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["mask"].long()).logits
    where = batch["loss_mask"][:, 1:]
    manual = torch.nn.functional.cross_entropy(
        logits[:, :-1][where], batch["input_ids"][:, 1:][where], reduction="sum"
    )
    torch.testing.assert_close(loss, manual)
    assert SFT.units(batch) == sum(sum(m) for m in data.loss)


def test_packing_gives_the_loss_of_the_unpacked_examples(tasks):
    """Packed rows hold several examples with no padding, and attention stays within each
    example: the summed loss is that of the examples one per row."""
    tok, _, data = tiny_examples(tasks)
    packed = pack(data, 64)
    assert len(packed) < len(data) and all(len(r) <= 64 for r in packed.ids)
    assert sorted(t for r in packed.ids for t in r) == sorted(t for r in data.ids for t in r)
    model = load_model("tiny", "causal", 0, tok.pad_token_id)
    one_per_row = collate_sequences(data, torch.arange(len(data)), tok.pad_token_id)
    rows = collate_sequences(packed, torch.arange(len(packed)), tok.pad_token_id)
    assert rows["mask"].sum() == one_per_row["mask"].sum()
    separate, _ = SFT.loss(SFTConfig(), model, one_per_row)
    together, _ = SFT.loss(SFTConfig(), model, rows)
    torch.testing.assert_close(together, separate, rtol=1e-5, atol=1e-4)
