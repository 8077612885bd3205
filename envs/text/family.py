"""The text env family: a prompt dataset with its reward functions is an environment.

An episode is one prompt: the policy answers it, the rewards score the answer (one turn;
the agentic issue makes it several). The family is a registry entry beside gymnasium and
PettingZoo (`rlkit.envs.families`): it owns prompt datasets (a .jsonl/.json, .parquet or
.csv file, or a `datasets` save_to_disk directory), resolves one to its absolute path,
probes it into a `TextSpec` (its rows), and plays whole episodes with a policy that
answers prompts. The RL stages on prompts are given their `--prompts` by it
(`RLStage.create`), as PPO is given its `--env` by gymnasium.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlkit.envs.families import FAMILIES, EnvFamily
from rlkit.envs.text.data import READERS, Rows, read_rows
from rlkit.envs.text.rewards import load_function
from rlkit.errors import EnvError
from rlkit.evaluation import Episodes, Playback

Answer = Callable[[list[Any]], list[str]]
"""A text policy: prompts (texts or chat messages) -> one answer each."""


@dataclass(frozen=True)
class TextSpec:
    """What probing a prompt dataset gives: its rows (the prompt column and the others,
    which reach the reward functions)."""

    rows: Rows

    @property
    def columns(self) -> list[str]:
        return list(self.rows[0])


class Text(EnvFamily):
    """Prompt datasets: files and `datasets` directories."""

    name = "text"
    any_id = "a prompt dataset: a .jsonl/.json/.parquet/.csv file or a datasets directory"

    def owns(self, env: str) -> bool:
        path = Path(env).expanduser()
        return (
            path.suffix.lower() in READERS
            or (path.is_dir() and _saved_dataset(path))
            or _hub_name(env)
        )

    def resolve(self, env: str) -> str:
        """A file or directory's absolute path (a resume from elsewhere finds it); a hub
        dataset's name as it is."""
        path = Path(env).expanduser()
        if path.exists():
            return str(path.resolve())
        if _hub_name(env):
            return env
        raise EnvError(f"--prompts {env}: no such file or directory")

    def probe(self, env_id: str, kwargs: dict[str, Any]) -> TextSpec:
        """The dataset's rows (``split=NAME`` picks a split of a datasets directory)."""
        return TextSpec(read_rows(env_id, str(kwargs.get("split", "train")), "--prompts"))

    def names(self) -> dict[str, str]:
        return {}

    def short_name(self, env_id: str) -> str:
        return Path(env_id).stem

    def evaluate(
        self,
        env_id: str,
        kwargs: dict[str, Any],
        policy: Answer,
        play: Playback,
    ) -> Episodes:
        """The first `play.episodes` prompts answered by `policy`, each answer's return the
        sum of the ``reward=MODULE:FN;...`` functions of `kwargs` (its length in
        characters); text has no video, and nothing to seed (the prompts go in order)."""
        spec = self.probe(env_id, kwargs)
        rows = spec.rows[: play.episodes]
        column = str(kwargs.get("prompt_column", "prompt"))
        prompts = [row[column] for row in rows]
        answers = policy(prompts)
        specs = [s for s in str(kwargs.get("reward", "")).split(";") if s]
        if not specs:
            raise EnvError("text evaluation needs reward=MODULE:FUNCTION in its kwargs")
        others = {k: [row[k] for row in rows] for k in spec.columns if k != column}
        returns = [0.0] * len(rows)
        for fn in map(load_function, specs):
            for i, r in enumerate(fn(prompts, answers, **others)):
                returns[i] += float(r or 0.0)
        for i, answer in enumerate(answers):
            if play.on_episode is not None:
                play.on_episode(i, returns[i], len(answer))
        return Episodes(returns, [len(a) for a in answers])


def _hub_name(env: str) -> bool:
    """``org/name``: a dataset `datasets.load_dataset` takes (not a path)."""
    parts = env.split("/")
    return len(parts) == 2 and all(parts) and not env.startswith((".", "~")) and "." not in parts[0]


def _saved_dataset(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()


FAMILIES.add(Text.name, Text())
