"""The optional extras of the package (pyproject's ``[project.optional-dependencies]``)
and the modules each one brings.

The base install (torch, gymnasium with MuJoCo) runs every classic algorithm; nothing
outside an extra imports that extra's packages until a run needs them. A run that needs
an extra which is not installed is refused before anything starts, in one line that
names the install command (`require`); `rlkit list` shows which algorithm needs which
extra and whether it is installed here.
"""

from __future__ import annotations

import importlib.util

from rlkit.errors import ConfigError

EXTRAS: dict[str, tuple[str, ...]] = {
    "marl": ("pettingzoo", "mpe2"),
    "rlhf": ("transformers", "tokenizers", "datasets"),
    "ray": ("ray",),
    "wandb": ("wandb",),
    "lora": ("peft",),
    "qlora": ("peft", "bitsandbytes"),
    "vllm": ("vllm",),
}
"""Extra -> the top-level modules it installs that rlkit imports."""

FLAGS: dict[str, str] = {
    "ray": "--executor ray",
    "wandb": "--wandb",
    "lora": "--lora-rank",
    "qlora": "--lora-quantize nf4",
    "vllm": "--generator vllm",
}
"""Extra -> the flag that needs it, for the extras no algorithm needs as a whole."""


def missing(extra: str) -> list[str]:
    """The modules of `extra` that are not importable here (empty: installed)."""
    return [m for m in EXTRAS[extra] if not _importable(m)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # an import hook that refuses it, or a broken parent package
        return False


def install_command(extra: str) -> str:
    """How to install `extra`: from the package, or from a clone of the repository."""
    return f"pip install 'rlkit[{extra}]' (in a clone of rlkit: pip install '.[{extra}]')"


def require(extra: str, what: str) -> None:
    """ConfigError, in one line, when `what` (e.g. "rlkit run sft") needs `extra` and
    some of its modules are not installed."""
    lacking = missing(extra)
    if lacking:
        raise ConfigError(
            f"{what} needs the {extra} extra ({', '.join(lacking)} not installed): "
            f"{install_command(extra)}"
        )
