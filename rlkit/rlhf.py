"""The RLHF stages from Python: each call trains one stage and returns its run directory,
which the next stage takes as its model (or reward model)::

    from rlkit import rlhf

    sft = rlhf.sft("demos.jsonl", total_steps=4800, lr=3e-3)
    rm = rlhf.reward_model("prefs.jsonl", model=sft, epochs=2, lr=1e-3)
    ppo = rlhf.ppo("prompts.jsonl", model=sft, reward_model=rm, kl_coef=0.1)

Keyword arguments are the stage's config fields (the flags of ``rlkit run STAGE``, with
underscores: ``kl_coef=0.1`` is ``--kl-coef 0.1``); paths may be `Path`s, lists stand for
comma-separated flags. Rewards may be Python callables, as TRL's ``reward_funcs`` are
(``reward=[correct, fmt]``, ``gold_reward=exact``): one importable again is stored in the
run's config as ``module:function`` (a resume finds it); a script's own function or a
closure serves this process only (a resume from the command line asks for a module). Each run is the one the CLI makes (run directory under ``out``,
logs, checkpoint, ``model/``); bad input raises the `rlkit.errors` exception the CLI would
print, and a run stopped by Ctrl-C raises `TrainingError` (resume it with
``rlkit resume RUN_DIR``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlkit.errors import TrainingError


def train(stage: str, **fields: Any) -> Path:
    """Train `stage` (``sft``, ``rm``, ``dpo``, ``grpo``, ``rlhf-ppo``, or any algorithm on
    data) with config `fields`; its run directory once it finished."""
    import rlkit.algorithms  # noqa: F401  (registers the stages)
    from rlkit.plugins import resolve
    from rlkit.trainer import Trainer, make_config

    algo_cls = resolve(stage)
    values = {k: _value(v) for k, v in fields.items()}
    trainer = Trainer(algo_cls, make_config(algo_cls, "", None, values))
    code = trainer.run()
    assert trainer.run_dir is not None
    if code != 0:
        raise TrainingError(
            f"{stage} stopped early: continue it with rlkit resume {trainer.run_dir}"
        )
    return trainer.run_dir


def sft(data: str | Path, **fields: Any) -> Path:
    """Supervised fine-tuning on demonstrations (prompt + response, or chat messages)."""
    return train("sft", data=data, **fields)


def reward_model(data: str | Path, **fields: Any) -> Path:
    """A reward model on preference pairs (prompt, chosen, rejected)."""
    return train("rm", data=data, **fields)


def dpo(data: str | Path, **fields: Any) -> Path:
    """DPO on preference pairs against the frozen starting model."""
    return train("dpo", data=data, **fields)


def grpo(prompts: str | Path, **fields: Any) -> Path:
    """GRPO on prompts with rule rewards (``reward=[fn]`` or ``"module:function"``) and/or a
    reward model."""
    return train("grpo", prompts=prompts, **fields)


def ppo(prompts: str | Path, **fields: Any) -> Path:
    """PPO for LLMs on prompts, usually with ``reward_model=`` an `rm` run."""
    return train("rlhf-ppo", prompts=prompts, **fields)


def _value(v: Any) -> Any:
    from rlkit.envs.text.rewards import spec_of

    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple)):
        return tuple(_value(x) for x in v)
    if callable(v) and not isinstance(v, type):
        return spec_of(v)
    return v
