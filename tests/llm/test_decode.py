"""The HF engine's decode loop (rlkit/llm/decode.py) against Hugging Face `generate`
itself, on the tiny model: the same tokens and the same logits, bit for bit, for greedy
and for sampling from the same seed (and the same draws: the random stream ends in the
same state), with padded and unpadded prompts, every sampling field, stop ids, stop
strings and an early stop of every row."""

from __future__ import annotations

import pytest
import torch
from transformers.generation import StopStringCriteria

from rlkit.llm.decode import Decoding, Sampling
from rlkit.llm.models import load_model, load_tokenizer

TOK = load_tokenizer("tiny")
MODEL = load_model("tiny", "causal", 0, TOK.pad_token_id).eval()
PAD, EOS = TOK.pad_token_id, TOK.eos_token_id
PROMPTS = torch.tensor([[9, 10, 11, 12, 13], [14, 15, 16, 17, 18], [19, 20, 21, 22, 23]])


def mask_of(padded: bool) -> torch.Tensor:
    """All real, or the first row left-padded by 2 and the last by 1 (the ids under the
    mask stay: a padded position's id must not matter)."""
    mask = torch.ones_like(PROMPTS, dtype=torch.bool)
    if padded:
        mask[0, :2] = False
        mask[2, :1] = False
    return mask


def hf_generate(s: Sampling, mask: torch.Tensor, copies: int, **extra) -> tuple:
    kwargs = {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p}
    with torch.no_grad():
        out = MODEL.generate(
            input_ids=PROMPTS.masked_fill(~mask, PAD),
            attention_mask=mask.long(),
            max_new_tokens=s.max_new_tokens,
            min_new_tokens=s.min_new_tokens,
            do_sample=s.do_sample,
            eos_token_id=list(s.stop_ids),
            pad_token_id=s.pad_id,
            num_return_sequences=copies,
            return_dict_in_generate=True,
            output_logits=True,
            **(kwargs if s.do_sample else {}),
            **extra,
        )
    return out.sequences[:, PROMPTS.shape[1] :], torch.stack(out.logits, 1)


def both(s: Sampling, padded: bool, copies: int, seed: int = 3, stop=None, **extra) -> tuple:
    """(ours, HF's) tokens and logits, and the random stream's state after each."""
    mask = mask_of(padded)
    torch.manual_seed(seed)
    ours = Decoding(MODEL, PROMPTS.masked_fill(~mask, PAD), mask, s, copies, stop=stop).run()
    after_ours = torch.get_rng_state()
    torch.manual_seed(seed)
    theirs = hf_generate(s, mask, copies, **extra)
    return ours, theirs, after_ours, torch.get_rng_state()


def assert_same(ours: tuple, theirs: tuple) -> None:
    assert ours[0].shape == theirs[0].shape
    assert torch.equal(ours[0], theirs[0]), "tokens differ"
    assert torch.equal(ours[1], theirs[1]), "logits differ"


SAMPLINGS = {
    "plain": Sampling(14, stop_ids=(EOS,), pad_id=PAD),
    "warped": Sampling(14, 4, True, 0.7, 20, 0.9, (EOS, 30), PAD),
    "hot, no stop": Sampling(10, 0, True, 1.6, pad_id=PAD),
}


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
@pytest.mark.parametrize("name", list(SAMPLINGS))
def test_sampling_equals_generate_bit_for_bit(name: str, padded: bool):
    ours, theirs, rng_ours, rng_theirs = both(SAMPLINGS[name], padded, copies=4)
    assert_same(ours, theirs)
    assert torch.equal(rng_ours, rng_theirs)  # the same draws from the stream
    assert ours[0].shape == (12, SAMPLINGS[name].max_new_tokens)


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
def test_greedy_equals_generate(padded: bool):
    s = Sampling(12, 2, False, stop_ids=(EOS, 25), pad_id=PAD)
    ours, theirs, _, _ = both(s, padded, copies=1)
    assert_same(ours, theirs)


def test_rows_that_stop_get_pads_and_the_loop_ends_when_every_row_has():
    """Most ids stop: rows end at different steps (pads after), and the loop ends as soon
    as the last one does, where generate ends."""
    s = Sampling(20, 1, True, stop_ids=tuple(range(40, 104)), pad_id=PAD)
    ours, theirs, rng_ours, rng_theirs = both(s, padded=True, copies=4, seed=5)
    assert_same(ours, theirs)
    assert torch.equal(rng_ours, rng_theirs)
    tokens = ours[0]
    assert tokens.shape[1] < 20
    stopped = (tokens >= 40).int().argmax(1)
    assert len(set(stopped.tolist())) > 1  # rows ended at different steps
    for row, at in zip(tokens, stopped.tolist(), strict=True):
        assert (row[at + 1 :] == PAD).all()


def test_stop_strings_end_rows_where_generate_ends_them():
    s = Sampling(16, 0, True, stop_ids=(EOS,), pad_id=PAD)
    criterion = StopStringCriteria(TOK, ["5"])
    ours, theirs, _, _ = both(
        s, False, 4, 1, stop=lambda ids: criterion(ids, None), stop_strings=["5"], tokenizer=TOK
    )
    assert_same(ours, theirs)
    texts = [TOK.decode(r) for r in ours[0].tolist()]
    assert any("5" in t for t in texts)


@pytest.mark.parametrize("padded", [False, True])
def test_a_decoding_saved_mid_way_continues_where_it_stopped(padded):
    """`Decoding` (a request in flight under --policy async) saved after 3 of 8 greedy
    steps and loaded into a fresh one, its KV cache rebuilt by one forward over the
    tokens so far: the same tokens as decoding straight through, and logits equal to
    float rounding."""
    mask = mask_of(padded)
    s = Sampling(max_new_tokens=8, do_sample=False, pad_id=PAD)
    ids = PROMPTS.masked_fill(~mask, PAD)
    whole = Decoding(MODEL, ids, mask, s, copies=2).run()
    first = Decoding(MODEL, ids, mask, s, copies=2)
    for _ in range(3):
        first.step()
    second = Decoding(MODEL, ids, mask, s, copies=2)
    second.load_state_dict(first.state_dict())
    while not second.done:
        second.step()
    resumed = second.result()
    assert torch.equal(resumed.tokens, whole.tokens)
    assert torch.allclose(resumed.logits, whole.logits, atol=1e-4)
    assert torch.allclose(resumed.logps, whole.logps, atol=1e-4)
