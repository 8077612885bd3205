"""The embedded tokenizer of ``--model tiny`` and what every stage needs of a tokenizer.

The tiny tokenizer is character level: one token per printable ASCII character and
newline, plus special tokens (pad, bos, eos, unk and the chat roles), built locally with
`tokenizers` (no file, no download), identical on every machine. It carries a chat
template, so chat-format data trains on it as on a real instruct model.
"""

from __future__ import annotations

from typing import Any

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>")
CHARS = tuple(chr(c) for c in range(32, 127)) + ("\n",)
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_tokenizer() -> Any:
    """A character-level `PreTrainedTokenizerFast` with 104 tokens (pad 0, bos 1, eos 2)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + CHARS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=list(SPECIALS[4:]),
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    return tokenizer


def prepare(tokenizer: Any) -> Any:
    """A tokenizer as the stages use it: a pad token (eos when it has none; pads never
    reach the loss) and right padding."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            from rlkit.errors import ConfigError

            raise ConfigError(
                f"--model: the tokenizer ({type(tokenizer).__name__}) has neither a pad nor an "
                "eos token; add one to its tokenizer_config.json"
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer
