"""The Generator role: batched sampling from a Hugging Face model with its KV cache (the
HF engine: `generate`'s sampling as the lean loop of `decode.py`), the rollout engine of
the RL stages (vLLM plugs into the same role in its own issue).

`generate(prompts)` samples ``--group-size`` responses per prompt (``temperature``,
``top_p``, ``top_k``, at most ``max_new_tokens``; a response ends at eos, at a
``--stop-token-ids`` id or once it contains a ``--stop-strings`` string) and returns,
for N = prompts x group_size samples in prompt order (sample i belongs to group i // G),
the token layout of `batches.py` (prompt, then response, right padded, T tokens):

    input_ids       [N, T] int64   prompt and response ids
    mask            [N, T] bool    real tokens
    loss_mask       [N, T] bool    response tokens (the targets)
    logps           [N, T] float   log pi_old(token) at response tokens (0 elsewhere),
                                   under the distribution the sampler drew from
                                   (temperature, top-k, top-p: `decode.Decoded`)
    version         [N] int64      the weights' version that sampled it
    response_length [N] int64
    truncated       [N] bool       no stop before max_new_tokens
    completion      list[N]        the response's text (special tokens skipped)
    prompt, columns list[N]        the prompt's data, repeated per sample

Sampling draws from a random stream of the role's own (seeded by replica, part of its
state), so a run is reproducible and resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from rlkit.batch import Batch
from rlkit.device import use_threads
from rlkit.llm.decode import Decoding, Sampling
from rlkit.llm.models import load_into, load_model, load_tokenizer
from rlkit.llm.offload import Offload
from rlkit.roles import InFlight, Weights

if TYPE_CHECKING:
    from rlkit.llm.rollout import RolloutConfig


class Finished(NamedTuple):
    """A request `HFGenerator.advance` finished: the driver's ticket for it and its samples
    (`generate`'s fields, plus ``token_version`` ``[N, T]``: the weights' version that
    sampled each response token, and ``version`` the oldest of them)."""

    ticket: int
    samples: Batch


@dataclass
class Request:
    """A batch of prompts being decoded a few steps at a time (`HFGenerator.start`)."""

    ticket: int
    prompts: Batch
    decoding: Decoding
    versions: list[int]
    """The weights' version of each decode step so far."""


class HFGenerator(Offload, InFlight):
    """A copy of the policy that samples responses; takes the learner's weights."""

    def __init__(
        self, config: RolloutConfig, device: torch.device | None = None, replica: int = 0
    ) -> None:
        use_threads(config.torch_threads)
        self.config = config
        self.device = device or torch.device("cpu")
        self.tokenizer = load_tokenizer(config.model)
        model = load_model(config.model, "causal", config.seed, self.tokenizer.pad_token_id)
        self.model: Any = model.to(self.home()).eval().requires_grad_(False)
        self.version = 0
        self.requests: list[Request] = []
        """Requests in flight (`start`, `advance`), oldest first."""
        with torch.random.fork_rng(devices=self.cuda()):
            torch.manual_seed(config.seed + 7_919 * (replica + 1))
            self.rng = self.rng_state()
        self.stop_ids = sorted(
            {*config.stop_token_ids, *([self.tokenizer.eos_token_id] if self.eos() else [])}
        )
        from transformers.generation import StopStringCriteria  # the rlhf extra, used here

        self.stop_criterion = (
            StopStringCriteria(self.tokenizer, list(config.stop_strings))
            if config.stop_strings
            else None
        )

    def eos(self) -> bool:
        return self.tokenizer.eos_token_id is not None

    def set_weights(self, weights: Weights, version: int) -> None:
        """Load the learner's parameters; samples made from now on carry `version`."""
        load_into(self.model, weights)
        self.version = version

    def generate(self, prompts: Batch) -> Batch:
        """`group_size` samples of every prompt (fields in the module docstring)."""
        g = self.config.group_size
        with torch.inference_mode(), self.on_device(), torch.random.fork_rng(devices=self.cuda()):
            self.set_rng_state(self.rng)
            drawn = self.decoding(prompts, greedy=False, copies=g).run()
            self.rng = self.rng_state()
        return self.layout(prompts, drawn.tokens.cpu(), drawn.logps.cpu(), g)

    # -- in-flight requests: decoded a few steps at a time, weights changing in between -----
    def start(self, prompts: Batch, ticket: int) -> None:
        """Begin `group_size` samples of every prompt as request `ticket`; `advance` decodes it."""
        with torch.inference_mode(), self.on_device():
            decoding = self.decoding(prompts, greedy=False, copies=self.config.group_size)
        self.requests.append(Request(ticket, prompts, decoding, []))

    def advance(self, steps: int) -> list[Finished]:
        """Up to `steps` decode steps of every request in flight, the oldest first, with the
        weights held now (a push between two calls lands between decode steps); the
        requests that finished, laid out as `generate`'s samples."""
        done: list[Finished] = []
        with torch.inference_mode(), self.on_device(), torch.random.fork_rng(devices=self.cuda()):
            self.set_rng_state(self.rng)
            for request in list(self.requests):
                for _ in range(steps):
                    if request.decoding.done:
                        break
                    request.decoding.step()
                    request.versions.append(self.version)
                if request.decoding.done:
                    self.requests.remove(request)
                    done.append(Finished(request.ticket, self.finish(request)))
            self.rng = self.rng_state()
        return done

    def in_flight(self) -> list[int]:
        """The tickets of the requests in flight, oldest first."""
        return [r.ticket for r in self.requests]

    def finish(self, request: Request) -> Batch:
        """A finished request's samples, each response token tagged with its version."""
        drawn = request.decoding.result()
        out = self.layout(
            request.prompts, drawn.tokens.cpu(), drawn.logps.cpu(), self.config.group_size
        )
        lengths = out["response_length"]
        p_len = out["loss_mask"].int().argmax(1)
        at = torch.arange(out["input_ids"].shape[1])[None]
        step = (at - p_len[:, None]).clamp(0, len(request.versions) - 1)
        versions = torch.tensor(request.versions, dtype=torch.int64).expand(len(lengths), -1)
        out["token_version"] = torch.where(out["loss_mask"], versions.gather(1, step), 0)
        out["version"] = torch.full_like(lengths, request.versions[0])
        return out

    def greedy(self, prompts: Batch) -> Batch:
        """The greedy response of each prompt (evaluation), laid out as `generate`'s
        samples with one per prompt (``logps`` left 0)."""
        with torch.inference_mode(), self.on_device():
            response = self.decoding(prompts, greedy=True, copies=1).run().tokens.cpu()
        return self.layout(prompts, response, torch.zeros(response.shape), 1)

    def decoding(self, prompts: Batch, greedy: bool, copies: int) -> Decoding:
        """A decode of `copies` continuations of every prompt (left-padded) with this
        engine's model, sampling and stop strings, on its device."""
        ids, mask = left_padded(prompts["prompt_ids"], prompts["prompt_mask"], self.pad())
        stop = self.stop_string_hit if self.stop_criterion else None
        return Decoding(
            self.model,
            ids.to(self.device),
            mask.to(self.device),
            self.sampling(greedy),
            copies,
            stop,
        )

    def sampling(self, greedy: bool) -> Sampling:
        """The config's sampling fields (`decode.Sampling`); greedy for evaluation."""
        cfg = self.config
        return Sampling(
            max_new_tokens=cfg.max_new_tokens,
            min_new_tokens=cfg.min_new_tokens,
            do_sample=not greedy,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            stop_ids=tuple(self.stop_ids),
            pad_id=self.pad(),
        )

    def stop_string_hit(self, ids: torch.Tensor) -> torch.Tensor:
        """Whether each sequence so far ``[N, L]`` ends in a stop string ``[N]``."""
        assert self.stop_criterion is not None
        return self.stop_criterion(ids, None)

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
        if response.shape[1] == 0:  # nothing generated: one pad column to gather from
            response = torch.full((len(response), 1), self.pad(), dtype=response.dtype)
            logps = torch.zeros(response.shape)
        n, new = response.shape
        width = int((p_len + lengths).max())
        at = torch.arange(width)[None]
        in_prompt = at < p_len[:, None]
        in_response = ~in_prompt & (at < (p_len + lengths)[:, None])
        prompt_ids = prompts["prompt_ids"][:, :width].repeat_interleave(g, 0)
        prompt_ids = torch.nn.functional.pad(prompt_ids, (0, width - prompt_ids.shape[1]))
        step = (at - p_len[:, None]).clamp(0, new - 1)  # each position's response index
        ids = torch.where(in_prompt, prompt_ids, response.gather(1, step))
        ids = ids.masked_fill(~(in_prompt | in_response), self.pad())
        token_logps = torch.where(in_response, logps.gather(1, step), 0.0)
        batch: dict[str, Any] = {
            "input_ids": ids,
            "mask": in_prompt | in_response,
            "loss_mask": in_response,
            "logps": token_logps.float(),
            "version": torch.full((n,), self.version, dtype=torch.int64),
            "response_length": lengths,
            "truncated": ~stopped,
            "completion": self.tokenizer.batch_decode(
                [r[:k] for r, k in zip(response.tolist(), lengths.tolist(), strict=True)],
                skip_special_tokens=True,
            ),
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
        """The sampling stream, the version (the weights come with the next push) and the
        requests in flight: their prompts and the tokens so far, nothing lost."""
        requests = [
            {
                "ticket": r.ticket,
                "prompts": r.prompts,
                "decoding": r.decoding.state_dict(),
                "versions": list(r.versions),
            }
            for r in self.requests
        ]
        return {"rng": self.rng, "version": self.version, "requests": requests}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng, self.version = state["rng"], int(state["version"])
        self.requests = []
        for saved in state.get("requests", []):
            self.start(saved["prompts"], int(saved["ticket"]))
            self.requests[-1].decoding.load_state_dict(saved["decoding"])
            self.requests[-1].versions = list(saved["versions"])


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
