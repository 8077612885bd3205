"""Corrupted run directories are refused by `eval` and `resume` with one line and exit 2,
and nothing in the run directory changes. One tiny run per registered algorithm."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from rlkit import checkpoint
from rlkit.algorithms import ALGORITHMS
from rlkit.cli import main


def config_text(run: Path, algorithm: object = "keep", config: object = "keep") -> str:
    data = yaml.safe_load((run / "config.yaml").read_text())
    if algorithm != "keep":
        data["algorithm"] = algorithm
    if config != "keep":
        data["config"] = config
    return yaml.safe_dump(data)


def flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
    path.write_bytes(bytes(data))


def bad_fragments(run: Path) -> None:
    data = torch.load(run / "checkpoint.pt", weights_only=False)
    data["state"]["fragments"] = [1, 2, 3]
    algo = data.pop("algorithm")
    data.pop("format")
    checkpoint.save(run / "checkpoint.pt", algo, data)  # a valid digest: the layout is wrong


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "config-random-bytes": (
        lambda r: (r / "config.yaml").write_bytes(os.urandom(256)),
        "config.yaml",
    ),
    "config-yaml-a-list": (lambda r: (r / "config.yaml").write_text("- 1\n- 2\n"), "config.yaml"),
    "config-null": (
        lambda r: (r / "config.yaml").write_text(config_text(r, config=None)),
        "config.yaml",
    ),
    "config-a-list": (
        lambda r: (r / "config.yaml").write_text(config_text(r, config=[1])),
        "config.yaml",
    ),
    "config-a-string": (
        lambda r: (r / "config.yaml").write_text(config_text(r, config="x")),
        "config.yaml",
    ),
    "config-field-nan": (
        lambda r: (r / "config.yaml").write_text(config_text(r, config={"total_steps": "x"})),
        "config.yaml",
    ),
    "algorithm-a-list": (
        lambda r: (r / "config.yaml").write_text(config_text(r, algorithm=["ppo"])),
        "config.yaml",
    ),
    "algorithm-null": (
        lambda r: (r / "config.yaml").write_text(config_text(r, algorithm=None)),
        "config.yaml",
    ),
    "algorithm-unknown": (
        lambda r: (r / "config.yaml").write_text(config_text(r, algorithm="nope")),
        "not registered",
    ),
    "checkpoint-bytes-flipped": (lambda r: flip_middle(r / "checkpoint.pt"), "SHA-256"),
    "checkpoint-truncated": (
        lambda r: (r / "checkpoint.pt").write_bytes((r / "checkpoint.pt").read_bytes()[:100]),
        "checkpoint.pt",
    ),
    "checkpoint-fragments-not-a-mapping": (bad_fragments, "fragments"),
}


@pytest.fixture
def runs(tiny_run) -> Callable[[str], Path]:
    made: dict[str, Path] = {}

    def get(algo: str) -> Path:
        if algo not in made:
            made[algo] = tiny_run(algo, f"base-{algo}")
        return made[algo]

    return get


def refused(capsys, code: int, *fragments: str) -> None:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("rlkit: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_corrupted_run_dirs_are_refused_by_eval_and_resume(
    algo, runs, tmp_path, capsys, dir_snapshot
):
    base = runs(algo)
    capsys.readouterr()
    for case, (corrupt, fragment) in CORRUPTIONS.items():
        run = tmp_path / case
        shutil.copytree(base, run)
        corrupt(run)
        before = dir_snapshot(run)
        for command in (
            ["eval", str(run), "--episodes", "1"],
            ["resume", str(run), "--total-steps", "512"],
        ):
            refused(capsys, main(command), fragment)
            assert dir_snapshot(run) == before, f"{case}: {command[0]} changed the run directory"


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_a_garbage_metrics_row_is_refused_by_resume(algo, runs, tmp_path, capsys, dir_snapshot):
    run = tmp_path / "garbage"
    shutil.copytree(runs(algo), run)
    with open(run / "metrics.csv", "a") as f:
        f.write("\x00garbage,row\n")
    before = dir_snapshot(run)
    capsys.readouterr()
    refused(capsys, main(["resume", str(run), "--total-steps", "512"]), "metrics.csv line")
    assert dir_snapshot(run) == before


@pytest.mark.parametrize("value", ["-1", "0", str(2**60)])
def test_an_out_of_range_budget_on_resume_changes_nothing(value, runs, capsys, dir_snapshot):
    run = runs("ppo")
    before = dir_snapshot(run)
    capsys.readouterr()
    refused(capsys, main(["resume", str(run), "--total-steps", value]), "--total-steps")
    assert dir_snapshot(run) == before
