"""The text environment's rewards: rule functions, a reward model, their weighted sum, and
the evaluation of answers by them (`answer_metrics`).

``--reward SPEC,...`` names Python callables: ``module:function`` (importable), or a file
``path/to/file.py:function`` (``path.py`` alone: its function ``reward``). Each is called
once per step with keyword arguments ``prompts`` (the prompt column of each sample, as in
the data), ``completions`` (the response texts), ``completion_ids`` (their token ids) and
every other column of the prompt dataset (a list each), and returns one float per sample
or None (no opinion on that sample: it counts 0). ``--reward-model`` adds a learned
reward: an `rm` run directory (its ``model/``) or a Hugging Face sequence-classification
model with one label, scoring the prompt and response formatted as the `rm` stage
formats them. ``--reward-weights`` weighs the rewards (rule functions first, then the
reward model; all 1 by default). ``--gold-reward SPEC`` is a rule function logged as
``gold_reward`` beside the trained-on ``reward`` and never trained on: over-optimization
of a learned reward shows as the two parting.

`RewardScorer.score(batch)` returns ``reward`` ``[N]`` (the weighted sum), ``gold``
``[N]`` (with a gold function) and ``rewards`` ``[N, R]`` (each reward). It reads its
settings through a protocol (`RewardConfig`: the RL stages' `RLConfig` has them), so the
envs layer imports nothing of the stages that use it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from rlkit import user_code
from rlkit.batch import Batch
from rlkit.dataflow.carry import merge, unpack
from rlkit.device import use_threads
from rlkit.envs.text.data import Format, _split_ids
from rlkit.envs.text.reward_args import RewardLog, TrainerState, arguments
from rlkit.errors import ConfigError, TrainingError
from rlkit.llm.models import load_model, load_tokenizer
from rlkit.llm.offload import Offload
from rlkit.roles import Scorer

RewardFn = Callable[..., list[float | None]]


def absolute(spec: str) -> str:
    """A file spec with its path made absolute (workers may run elsewhere); others as given."""
    path, _, fn = spec.partition(":") if ".py" in spec else (spec, "", "")
    if not path.endswith(".py"):
        return spec
    return f"{Path(path).expanduser().resolve()}{':' + fn if fn else ''}"


FILE_MODULE = "rlkit_reward_"
"""The prefix of the module name a reward file is loaded under."""

CALLABLES: dict[str, RewardFn] = {}
"""Functions given as Python objects (``rlhf.grpo(reward=[fn])``) that no import finds
again (a script's own, a closure), by the spec `spec_of` gave them: this process only."""


def spec_of(fn: RewardFn) -> str:
    """The spec of a Python callable: ``module:function`` when importing it gives it back
    (a resume in another process finds it), else a name kept in `CALLABLES`."""
    module = str(getattr(fn, "__module__", "") or "")
    name = str(getattr(fn, "__qualname__", "") or getattr(fn, "__name__", "") or type(fn).__name__)
    spec = f"{module or '__main__'}:{name}"
    plain = "." not in name and "<" not in name
    if module.startswith(FILE_MODULE) and plain:  # from a file spec: the file names it again
        return f"{sys.modules[module].__file__}:{name}"
    if module and module != "__main__" and plain:
        try:
            if getattr(importlib.import_module(module), name, None) is fn:
                return spec
        except Exception:  # noqa: S110  (not importable: kept in this process below)
            pass
    CALLABLES[spec] = fn
    return spec


def reward_name(spec: str) -> str:
    """The name a reward's metrics carry: its function's (``path.py`` alone: ``reward``)."""
    target, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not name:
        return "reward" if spec.endswith(".py") else spec
    return name.rsplit(".", 1)[-1]  # a closure's qualified name: its own part


def reward_names(specs: tuple[str, ...], model: bool) -> list[str]:
    """The metric name of each reward (`reward_name`; the reward model's ``model``), made
    unique by a counter where two functions share a name."""
    names = [reward_name(s) for s in specs] + (["model"] if model else [])
    out: list[str] = []
    for n in names:
        out.append(n if n not in out else f"{n}_{sum(o.startswith(n) for o in out) + 1}")
    return out


def load_function(spec: str, flag: str = "--reward") -> RewardFn:
    """The callable `spec` names; ConfigError saying why when it cannot be had."""
    if spec in CALLABLES:
        return CALLABLES[spec]
    target, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if target == "__main__":
        raise ConfigError(
            f"{flag} {spec}: a function given from Python by a script, which this process "
            "cannot import; move it into a module (module:function) or a file "
            "(path.py:function)"
        )
    if target.endswith(".py") or (not name and spec.endswith(".py")):
        module = _from_file(target or spec, flag, spec)
        name = name or "reward"
    else:
        if not name:
            raise ConfigError(f"{flag} {spec}: give module:function or a file path.py[:function]")
        try:
            module = importlib.import_module(target)
        except Exception as e:  # ImportError, or what the module raised while importing
            raise ConfigError(
                f"{flag} {spec}: cannot import {target!r} ({type(e).__name__}: {e}); "
                "put it on PYTHONPATH or give a file path"
            ) from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"{flag} {spec}: {module.__name__} has no function {name!r}")
    return fn


def _from_file(path: str, flag: str, spec: str) -> Any:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"{flag} {spec}: no such file {file}")
    module_name = f"{FILE_MODULE}{abs(hash(str(file.resolve())))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader = importlib.util.spec_from_file_location(module_name, file)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    try:
        loader.loader.exec_module(module)
    except Exception as e:
        raise ConfigError(
            f"{flag} {spec}: importing {file} failed ({type(e).__name__}: {e})"
        ) from None
    sys.modules[module_name] = module
    return module


def completion_ids(batch: Batch) -> list[list[int]]:
    """Each response's token ids (the loss-masked tokens), one list per sample."""
    flat = batch["input_ids"][batch["loss_mask"]].tolist()  # one gather, then split per row
    ends = batch["loss_mask"].sum(1).cumsum(0).tolist()
    return [flat[start:end] for start, end in zip([0, *ends][:-1], ends, strict=True)]


def call(
    fn: RewardFn,
    spec: str,
    kwargs: dict[str, Any],
    batch: Batch,
    timeout_s: float = 0.0,
    flag: str = "--reward",
) -> torch.Tensor:
    """`fn` called with `kwargs` (`reward_args.arguments`) on the batch's samples ``[N]``
    (None -> nan), behind the user-code boundary (`rlkit.user_code`: copies of the data,
    `timeout_s`); TrainingError when it raises, exits, hangs, or returns something else
    than one number or None per sample."""
    n = len(batch["completion"])
    out = user_code.run(
        user_code.UserCall(_to_the_end(fn), f"{flag} {spec}", kwargs, timeout_s, hint=REWARD_HINT)
    )
    if not isinstance(out, (list, tuple)) or len(out) != n:
        got = f"{len(out)} values" if isinstance(out, (list, tuple)) else type(out).__name__
        raise TrainingError(
            f"{flag} {spec} returned {got} for {n} completions; it must return a list of "
            "one float (or None) per completion"
        )
    try:
        values = torch.tensor([math.nan if v is None else float(v) for v in out])
    except (TypeError, ValueError):
        raise TrainingError(f"{flag} {spec}: its values must be numbers or None") from None
    bad = [i for i, v in enumerate(out) if v is not None and not math.isfinite(float(v))]
    if bad:
        raise TrainingError(non_finite(f"{flag} {spec}", float(out[bad[0]]), bad, batch))
    return values


REWARD_HINT = (
    "it gets prompts, completions, completion_ids and the data's other columns as keyword "
    "arguments; the last checkpoint is intact"
)


def non_finite(who: str, value: float, bad: list[int], batch: Batch) -> str:
    """The line of a reward that is nan or inf: who gave it, for which sample."""
    prompt = " ".join(str(batch["prompt"][bad[0]]).split())[:60]
    return (
        f"{who} returned {value} for sample {bad[0]} (prompt {prompt!r}; {len(bad)} of "
        f"{len(batch['completion'])} samples not finite); rewards must be finite numbers: "
        "return None where the function has no opinion; the last checkpoint is intact"
    )


async def _awaited(out: Any) -> Any:
    return await out


def _to_the_end(fn: RewardFn) -> Callable[..., Any]:
    """`fn`, with an awaitable result (an ``async def`` reward, as TRL allows) awaited, so
    that the boundary's timeout and error handling cover the whole call."""

    def run(**kwargs: Any) -> Any:
        out = fn(**kwargs)
        return asyncio.run(_awaited(out)) if inspect.isawaitable(out) else out

    return run


class RewardConfig(Protocol):
    """The reward settings `RewardScorer` reads (read-only; `RLConfig` has them)."""

    @property
    def reward(self) -> tuple[str, ...]: ...

    @property
    def reward_model(self) -> str: ...

    @property
    def reward_weights(self) -> tuple[float, ...]: ...

    @property
    def gold_reward(self) -> str: ...

    @property
    def reward_timeout(self) -> float: ...

    @property
    def chat_template(self) -> str: ...

    @property
    def micro_batch(self) -> int: ...

    @property
    def seed(self) -> int: ...

    @property
    def torch_threads(self) -> int: ...


class RewardScorer(Offload, Scorer):
    """The rule rewards, the reward model and the gold function of a run."""

    def __init__(self, config: RewardConfig, device: torch.device | None = None) -> None:
        use_threads(config.torch_threads)
        self.config = config
        self.device = device or torch.device("cpu")
        self.functions = [(s, load_function(s)) for s in config.reward]
        self.gold = (
            load_function(config.gold_reward, "--gold-reward") if config.gold_reward else None
        )
        self.model: Any = None
        if config.reward_model:
            self.tokenizer = load_tokenizer(config.reward_model)
            model = load_model(
                config.reward_model, "reward", config.seed, self.tokenizer.pad_token_id
            )
            self.model = model.to(self.home()).eval().requires_grad_(False)
        count = len(self.functions) + (self.model is not None)
        self.weights = torch.tensor(config.reward_weights or (1.0,) * count)

    @torch.no_grad()
    def score(self, batch: Batch, state: TrainerState | None = None) -> Batch:
        """``reward`` ``[N]``, ``rewards`` ``[N, R]``, with a gold function ``gold``, and
        what the functions logged (``metric/NAME`` ``[N]``, `reward_args.RewardLog`);
        `state`: the run's progress the functions get as ``trainer_state``."""
        n = len(batch["completion"])
        log = RewardLog()
        kwargs = arguments(batch, completion_ids(batch), state or TrainerState(), log)
        timeout = self.config.reward_timeout
        parts = [call(fn, spec, kwargs, batch, timeout) for spec, fn in self.functions]
        if self.model is not None:
            parts.append(self.model_rewards(batch))
            bad = (~parts[-1].isfinite()).nonzero()[:, 0].tolist()
            if bad:
                who = f"--reward-model {self.config.reward_model}"
                raise TrainingError(non_finite(who, float(parts[-1][bad[0]]), bad, batch))
        rewards = torch.stack(parts, 1)
        # None (no opinion) is nan here and counts 0; nan and inf returned were refused above
        out = {"reward": torch.nansum(rewards * self.weights, 1), "rewards": rewards}
        if self.gold is not None:
            gold = call(self.gold, self.config.gold_reward, kwargs, batch, timeout, "--gold-reward")
            out["gold"] = torch.nan_to_num(gold)
        return {**out, **log.fields(n)}

    def model_rewards(self, batch: Batch) -> torch.Tensor:
        """The reward model's score of each (prompt, completion) ``[N]``."""
        fmt = Format(self.tokenizer, self.config.chat_template, 1 << 30)
        seqs = []
        for prompt, completion in zip(batch["prompt"], batch["completion"], strict=True):
            p, r = _split_ids(fmt, prompt, completion)
            seqs.append(p + r)
        out = []
        pad = int(self.tokenizer.pad_token_id)
        with self.on_device():
            for start in range(0, len(seqs), self.config.micro_batch):
                chunk = seqs[start : start + self.config.micro_batch]
                width = max(map(len, chunk))
                ids = torch.full((len(chunk), width), pad, dtype=torch.int64)
                mask = torch.zeros((len(chunk), width), dtype=torch.int64)
                for i, s in enumerate(chunk):
                    ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), 1
                logits = self.model(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
                ).logits
                out.append(logits[:, 0].float().cpu())
        return torch.cat(out)

    def state_dict(self) -> dict[str, Any]:
        return {}  # frozen: rebuilt from the flags

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def answer_metrics(rewards: list[Any], answers: list[Any]) -> dict[str, float]:
    """The evaluation of answers to held-out prompts (greedy ones): ``eval_reward``,
    ``eval_response_length`` and, with a gold function, ``eval_gold_reward``, from the
    scorers' outputs and the generators' (one batch each, or `Output`s)."""
    r = merge(unpack(rewards)[0])
    made = merge(unpack(answers)[0])
    out = {
        "eval_reward": float(r["reward"].mean()),
        "eval_response_length": float(made["response_length"].float().mean()),
    }
    if "gold" in r:
        out["eval_gold_reward"] = float(r["gold"].mean())
    return out
