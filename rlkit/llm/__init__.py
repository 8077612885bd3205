"""The LLM runtime (the ``rlhf`` extra): models and tokenizers (`models`, `tokenizer`: the
embedded tiny model, SmolLM2 offline, Hugging Face models and rlkit runs), the rollout
engines (`generator`: HF with its decode loop, `decode`; `vllm_engine`), log-probs
(`logprobs`), FSDP (`fsdp`) and offload (`offload`).

A layer of its own under the env families and the algorithms (docs/concepts.md#layers):
it imports nothing of them. transformers is imported only where it is used, so that
importing this package needs no extra.
"""
