"""The README's quickstart lines (scripts/readme_commands.py reads them; CI's newcomer
stage, scripts/newcomer_path.sh, runs them in fresh environments): each extra has its
line, the smoke-test flag is stated once, and every rlkit command in them is accepted."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest

from rlkit.cli import main

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "readme_commands", ROOT / "scripts/readme_commands.py"
)
assert _spec is not None and _spec.loader is not None
readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme)


def test_every_extra_has_its_quickstart_line():
    text = (ROOT / "README.md").read_text()
    assert readme.smoke_flag(text) == "--total-steps 2048"
    assert readme.commands("base") == [
        "pip install torch==2.13.0 && pip install . && rlkit run ppo --env Humanoid --total-steps 2048"
    ]
    assert readme.commands("marl")[0].endswith(
        "rlkit run mappo --env simple_spread --total-steps 2048"
    )
    assert any(" rlkit run dpo " in line for line in readme.commands("rlhf"))
    assert readme.commands("test") == [
        'pip install torch==2.13.0 && pip install ".[test]" && pytest'
    ]
    # the CPU-only torch line comes before the first command that installs torch
    assert text.index("--index-url https://download.pytorch.org/whl/cpu") < text.index(
        readme.install_lines(text)[0]
    )


def test_the_smoke_flag_must_be_stated_once():
    with pytest.raises(ValueError, match="2 times"):
        readme.smoke_flag("**Smoke test:** add `--total-steps 1`\n**Smoke test:** add `--x`")


def rlkit_commands(extra: str) -> list[list[str]]:
    return [
        shlex.split(part)[1:]
        for line in readme.commands(extra)
        for part in line.split(" && ")
        if part.startswith("rlkit ")
    ]


@pytest.mark.parametrize("extra", ["base", "marl", "rlhf"])
def test_every_rlkit_command_of_the_quickstart_is_accepted(extra, tmp_path, monkeypatch, capsys):
    """Each `rlkit run` planned (`rlkit plan`: parsed, validated, compiled; nothing
    trained), each `rlkit data` run, in a scratch directory as a newcomer's."""
    monkeypatch.chdir(tmp_path)
    for argv in rlkit_commands(extra):
        if argv[0] == "run":
            argv = ["plan", *argv[1:]]
            if "--model" in argv:  # the previous stage's run: its start stands in for it
                argv[argv.index("--model") + 1] = "tiny"
        assert main(argv) == 0, (argv, capsys.readouterr().err)
