"""Run directory paths: --out a file, under a file or unwritable, and --name escaping its
parent are one line naming the path and exit 2, for every algorithm."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlkit.algorithms import ALGORITHMS
from rlkit.cli import main
from rlkit.errors import ConfigError
from rlkit.run_dir import check_name, create


def unwritable(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes anywhere a normal file system allows
        return Path("/sys/rlkit-test-out")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked / "runs"


def bad_outs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    file = tmp_path / "a-file"
    file.write_text("not a directory")
    return {
        "out-is-a-file": (str(file), ""),
        "out-under-a-file": (str(file / "deeper" / "runs"), ""),
        "out-unwritable": (str(unwritable(tmp_path)), ""),
        "name-escapes": (str(tmp_path / "runs"), "../../escaped"),
        "name-nested": (str(tmp_path / "runs"), "a/b"),
        "name-absolute": (str(tmp_path / "runs"), str(tmp_path / "abs")),
        "name-dotdot": (str(tmp_path / "runs"), ".."),
    }


CASES = [
    "out-is-a-file",
    "out-under-a-file",
    "out-unwritable",
    "name-escapes",
    "name-nested",
    "name-absolute",
    "name-dotdot",
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_bad_run_paths_are_one_line_naming_the_path(algo, case, tmp_path, capsys, train_args):
    what = train_args(algo)  # an env, or an algorithm on data's files (written first)
    out, name = bad_outs(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ["run", algo, *what, "--total-steps", "64", "--out", out]
    code = main([*args, *(["--name", name] if name else [])])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert (name or out) in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "abs").exists()


def test_existing_names_get_a_suffix(tmp_path):
    assert create(str(tmp_path), "r") == tmp_path / "r"
    assert create(str(tmp_path), "r") == tmp_path / "r-2"


@pytest.mark.parametrize("name", ["run-1", "ppo-CartPole-s0-20260101-000000", "a.b"])
def test_plain_names_pass(name):
    check_name(name)


@pytest.mark.parametrize("name", ["../x", "x/..", "/x", ".", "a\0b"])
def test_names_that_leave_out_are_refused(name):
    with pytest.raises(ConfigError, match="--name"):
        check_name(name)
