"""Model sources (rlkit/llm/models.py) and the embedded tiny model and tokenizer."""

from __future__ import annotations

import torch

from rlkit.llm.models import GGUF, RunDirectory, load_model, load_tokenizer, source


def test_tiny_is_deterministic_from_the_seed_and_small():
    a, b, c = (load_model("tiny", "causal", seed, 0) for seed in (0, 0, 1))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters(), strict=True))
    params = sum(p.numel() for p in a.parameters())
    assert 100_000 <= params <= 1_000_000
    assert a.config.hidden_size // a.config.num_attention_heads == 64  # what vLLM's CPU build takes
    reward = load_model("tiny", "reward", 0, 0)
    assert reward.config.num_labels == 1 and reward.config.pad_token_id == 0


def test_the_tiny_tokenizer_round_trips_text_and_has_a_chat_template():
    tok = load_tokenizer("tiny")
    text = "Hello, world!\n  {x: 1}"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tok.decode(ids) == text
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|user|>hi<|end|><|assistant|>"


def test_sources_claim_their_specs(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "config.yaml").write_text("algorithm: sft\n")
    assert isinstance(source(str(run)), RunDirectory)
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "m.gguf").write_bytes(b"")
    assert isinstance(source(str(tmp_path / "g")), GGUF) and isinstance(source("smollm2"), GGUF)


def test_a_reward_head_on_a_causal_lm_loads_quietly_but_a_real_mismatch_is_reported(tmp_path):
    """The new head of a reward model or critic made from an SFT model is no news: no
    transformers load report; backbone weights missing from the checkpoint still are."""
    import logging

    reports: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: reports.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(handler)
    try:
        causal = load_model("tiny", "causal", 0, 0)
        causal.save_pretrained(tmp_path / "lm")
        reward = load_model(str(tmp_path / "lm"), "reward", 0, 0)
        assert reward.config.num_labels == 1
        assert not [r for r in reports if "LOAD REPORT" in r]
        state = {k: v for k, v in causal.state_dict().items() if k != "model.norm.weight"}
        causal.save_pretrained(tmp_path / "partial", state_dict=state)
        load_model(str(tmp_path / "partial"), "reward", 0, 0)
        assert [r for r in reports if "LOAD REPORT" in r and "model.norm.weight" in r]
    finally:
        logger.removeHandler(handler)
