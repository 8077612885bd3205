"""rlkit/extras.py: the base install runs every classic algorithm; a run that needs a
missing extra is refused in one line with the install command, before anything is made.

The interpreter under test refuses to import the extras' packages (an import hook), as
an environment without them would: scripts/newcomer_path.sh checks the same in real
fresh environments in CI.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

WITHOUT = ("transformers", "tokenizers", "datasets", "peft", "pettingzoo", "mpe2", "ray", "wandb")

HOOK = textwrap.dedent(
    f"""
    import importlib.abc, sys

    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in {WITHOUT!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Absent())
    """
)


def without_extras(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HOOK + textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_algorithms_import_and_list_without_any_extra(tmp_path):
    done = without_extras(
        """
        import sys
        import rlkit.algorithms
        from rlkit.cli import main
        print(sorted(rlkit.algorithms.ALGORITHMS))
        heavy = sorted({m.split(".")[0] for m in sys.modules} & set(WITHOUT))
        print("imported:", heavy)
        sys.exit(main(["list"]))
        """.replace("WITHOUT", repr(WITHOUT)),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "'dqn'" in done.stdout and "'ppo'" in done.stdout and "'sac'" in done.stdout
    assert "imported: []" in done.stdout
    listed = done.stdout.splitlines()
    assert any(line.split()[:3] == ["rlhf", "not", "installed"] for line in listed), listed[-8:]
    assert any(line.split()[:3] == ["marl", "not", "installed"] for line in listed)
    assert any(line.startswith("  sft ") and "extra: rlhf" in line for line in listed)


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["run", "sft", "--data", "demos.jsonl"], "rlhf"),
        (["run", "grpo", "--prompts", "prompts.jsonl"], "rlhf"),
        (["plan", "mappo", "--env", "simple_spread"], "marl"),
        (["run", "ppo", "--env", "CartPole", "--wandb", "--total-steps", "64"], "wandb"),
    ],
)
def test_a_missing_extra_is_one_line_with_the_install_command(tmp_path, argv, extra):
    done = without_extras(
        f"import sys; from rlkit.cli import main; sys.exit(main({argv!r}))", tmp_path
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"the {extra} extra" in lines[0] and f"pip install 'rlkit[{extra}]'" in lines[0]
    assert not (tmp_path / "runs").exists()  # refused before a run directory is made


def test_a_classic_run_needs_no_extra(tmp_path):
    done = without_extras(
        """
        import sys
        from rlkit.cli import main
        sys.exit(main(["run", "ppo", "--env", "CartPole", "--total-steps", "512", "--name", "r"]))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "r" / "checkpoint.pt").is_file()
