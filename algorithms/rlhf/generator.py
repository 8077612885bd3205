"""The Generator role: batched sampling with Hugging Face `generate` (KV cache), the
rollout engine of the RL stages (vLLM plugs into the same role in its own issue).

`generate(prompts)` samples ``--group-size`` responses per prompt (``temperature``,
``top_p``, ``top_k``, at most ``max_new_tokens``; a response ends at eos, at a
``--stop-token-ids`` id or once it contains a ``--stop-strings`` string) and returns,
for N = prompts x group_size samples in prompt order (sample i belongs to group i // G),
the token layout of `batches.py` (prompt, then response, right padded, T tokens):

    input_ids       [N, T] int64   prompt and response ids
    mask            [N, T] bool    real tokens
    loss_mask       [N, T] bool    response tokens (the targets)
    logps           [N, T] float   log pi_old(token) at response tokens (0 elsewhere),
                                   of the logits divided by the temperature
    version         [N] int64      the weights' version that sampled it
    response_length [N] int64
    truncated       [N] bool       no stop before max_new_tokens
    completion      list[N]        the response's text (special tokens skipped)
    prompt, columns list[N]        the prompt's data, repeated per sample

Sampling draws from a random stream of the role's own (seeded by replica, part of its
state), so a run is reproducible and resumes exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from rlkit.algorithms.rlhf.models import load_model, load_tokenizer
from rlkit.algorithms.rlhf.offload import Offload
from rlkit.algorithms.rlhf.roles import load_into
from rlkit.batch import Batch
from rlkit.roles import Generator, Weights

if TYPE_CHECKING:
    from rlkit.algorithms.rlhf.rl_config import RLConfig


class HFGenerator(Offload, Generator):
    """A copy of the policy that samples responses; takes the learner's weights."""

    def __init__(
        self, config: RLConfig, device: torch.device | None = None, replica: int = 0
    ) -> None:
        torch.set_num_threads(config.torch_threads)
        self.config = config
        self.device = device or torch.device("cpu")
        self.tokenizer = load_tokenizer(config.model)
        model = load_model(config.model, "causal", config.seed, self.tokenizer.pad_token_id)
        self.model: Any = model.to(self.home()).eval().requires_grad_(False)
        self.version = 0
        with torch.random.fork_rng(devices=self.cuda()):
            torch.manual_seed(config.seed + 7_919 * (replica + 1))
            self.rng = self.rng_state()
        self.stop_ids = sorted(
            {*config.stop_token_ids, *([self.tokenizer.eos_token_id] if self.eos() else [])}
        )

    def eos(self) -> bool:
        return self.tokenizer.eos_token_id is not None

    def set_weights(self, weights: Weights, version: int) -> None:
        """Load the learner's parameters; samples made from now on carry `version`."""
        load_into(self.model, weights)
        self.version = version

    @torch.no_grad()
    def generate(self, prompts: Batch) -> Batch:
        """`group_size` samples of every prompt (fields in the module docstring)."""
        cfg, g = self.config, self.config.group_size
        with self.on_device():
            ids, mask = left_padded(prompts["prompt_ids"], prompts["prompt_mask"], self.pad())
            with torch.random.fork_rng(devices=self.cuda()):
                self.set_rng_state(self.rng)
                out = self.model.generate(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device).long(),
                    **self.sampling(greedy=False),
                    num_return_sequences=g,
                    return_dict_in_generate=True,
                    output_logits=True,
                )
                self.rng = self.rng_state()
        response = out.sequences[:, ids.shape[1] :].cpu()
        logits = torch.stack(out.logits, 1).float().cpu()  # [N, new, V]
        logps = torch.log_softmax(logits / cfg.temperature, -1)
        logps = logps.gather(-1, response[..., None])[..., 0]
        return self.layout(prompts, response, logps, g)

    @torch.no_grad()
    def greedy(self, prompts: Batch) -> Batch:
        """The greedy response of each prompt (evaluation), laid out as `generate`'s
        samples with one per prompt (``logps`` left 0)."""
        with self.on_device():
            ids, mask = left_padded(prompts["prompt_ids"], prompts["prompt_mask"], self.pad())
            out = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device).long(),
                **self.sampling(greedy=True),
            )
        response = out[:, ids.shape[1] :].cpu()
        return self.layout(prompts, response, torch.zeros(response.shape), 1)

    def sampling(self, greedy: bool) -> dict[str, Any]:
        cfg = self.config
        kwargs: dict[str, Any] = {
            "max_new_tokens": cfg.max_new_tokens,
            "min_new_tokens": cfg.min_new_tokens,
            "pad_token_id": self.pad(),
            "eos_token_id": self.stop_ids or None,
            "use_cache": True,
        }
        if cfg.stop_strings:
            kwargs.update(stop_strings=list(cfg.stop_strings), tokenizer=self.tokenizer)
        if greedy:
            return {**kwargs, "do_sample": False}
        return {
            **kwargs,
            "do_sample": True,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "top_k": cfg.top_k,  # 0: no top-k (None would take the model's default, often 50)
        }

    def pad(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def text(self, ids: torch.Tensor) -> str:
        return str(self.tokenizer.decode(ids.tolist(), skip_special_tokens=True))

    def ends(self, response: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens of each response ``[N]`` up to its stop (the stop included), and whether
        it stopped ``[N]`` (else max_new_tokens cut it)."""
        n, width = response.shape
        lengths = torch.full((n,), width, dtype=torch.int64)
        stopped = torch.zeros(n, dtype=torch.bool)
        if self.stop_ids:
            stop = torch.isin(response, torch.tensor(self.stop_ids))
            stopped = stop.any(1)
            lengths = torch.where(stopped, stop.int().argmax(1) + 1, width)
        for i in range(n) if self.config.stop_strings else ():
            end = self.stop_string_end(response[i, : lengths[i]])
            if end is not None:
                lengths[i], stopped[i] = end, True
        return lengths, stopped

    def stop_string_end(self, ids: torch.Tensor) -> int | None:
        """The shortest prefix of `ids` whose text holds a stop string (None if none)."""
        stops = self.config.stop_strings
        if not any(s in self.tokenizer.decode(ids.tolist()) for s in stops):
            return None
        return next(
            k
            for k in range(1, len(ids) + 1)
            if any(s in self.tokenizer.decode(ids[:k].tolist()) for s in stops)
        )

    def layout(self, prompts: Batch, response: torch.Tensor, logps: torch.Tensor, g: int) -> Batch:
        """Prompt + response rows, right padded (the module docstring's fields)."""
        lengths, stopped = self.ends(response)
        p_len = prompts["prompt_mask"].sum(1).repeat_interleave(g)
        prompt_ids = prompts["prompt_ids"].repeat_interleave(g, 0)
        n = response.shape[0]
        width = int((p_len + lengths).max())
        ids = torch.full((n, width), self.pad(), dtype=torch.int64)
        loss_mask = torch.zeros((n, width), dtype=torch.bool)
        token_logps = torch.zeros((n, width))
        for i in range(n):
            p, r = int(p_len[i]), int(lengths[i])
            ids[i, :p] = prompt_ids[i, :p]
            ids[i, p : p + r] = response[i, :r]
            loss_mask[i, p : p + r] = True
            token_logps[i, p : p + r] = logps[i, :r]
        batch: dict[str, Any] = {
            "input_ids": ids,
            "mask": torch.arange(width)[None] < (p_len + lengths)[:, None],
            "loss_mask": loss_mask,
            "logps": token_logps,
            "version": torch.full((n,), self.version, dtype=torch.int64),
            "response_length": lengths,
            "truncated": ~stopped,
            "completion": [self.text(response[i, : lengths[i]]) for i in range(n)],
            "prompt": [x for x in prompts["prompt"] for _ in range(g)],
            "columns": [c for c in prompts["columns"] for _ in range(g)],
        }
        return batch

    # -- state -----------------------------------------------------------------------------
    def cuda(self) -> list[torch.device]:
        """The CUDA device whose random stream sampling draws from (none on CPU)."""
        return [self.device] if self.device.type == "cuda" else []

    def rng_state(self) -> list[torch.Tensor]:
        """The sampling stream: the CPU generator's state, and the device's on CUDA."""
        return [torch.get_rng_state(), *(torch.cuda.get_rng_state(d) for d in self.cuda())]

    def set_rng_state(self, state: list[torch.Tensor]) -> None:
        torch.set_rng_state(state[0])
        for d, s in zip(self.cuda(), state[1:], strict=True):
            torch.cuda.set_rng_state(s, d)

    def state_dict(self) -> dict[str, Any]:
        """The sampling stream and the version (the weights come with the next push)."""
        return {"rng": self.rng, "version": self.version}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng, self.version = state["rng"], int(state["version"])


def left_padded(
    ids: torch.Tensor, mask: torch.Tensor, pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded prompts ``[P, L]`` as left-padded ones (what batched generate needs)."""
    lengths = mask.sum(1)
    width = ids.shape[1]
    out = torch.full_like(ids, pad)
    out_mask = torch.zeros_like(mask)
    for i, n in enumerate(lengths.tolist()):
        out[i, width - n :] = ids[i, :n]
        out_mask[i, width - n :] = True
    return out, out_mask
