"""The README's install-and-run lines, as a newcomer copies them.

    python scripts/readme_commands.py EXTRA     # the lines that install EXTRA (base: none)

prints, one per line, every line of the README's code blocks that starts with
``pip install torch==2.13.0 && pip install`` and installs exactly that extra (``base``:
``pip install .``), with the README's smoke-test flag appended to a final
``rlkit run ... --env ...`` (an env algorithm's preset trains for hours; the README
states that flag once, for this). `scripts/newcomer_path.sh` runs them in fresh
environments, and tests/test_readme.py holds the README to them, so the two never drift.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
PREFIX = "pip install torch==2.13.0 && pip install "
SMOKE = re.compile(r"\*\*Smoke test:\*\* add\s+`([^`]+)`")


def code_lines(text: str) -> list[str]:
    """The lines inside the README's fenced code blocks."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line.strip())
    return lines


def install_lines(text: str) -> list[str]:
    """The one-line installs-and-runs, in README order."""
    return [line for line in code_lines(text) if line.startswith(PREFIX)]


def extra_of(line: str) -> str:
    """The extra a line installs: ``base`` for ``pip install .``."""
    target = line[len(PREFIX) :].split(" && ")[0].strip().strip("'\"")
    match = re.fullmatch(r"\.\[(\w+)\]", target)
    if target == ".":
        return "base"
    if match is None:
        raise ValueError(f"README line installs {target!r}, not . or .[EXTRA]: {line}")
    return match.group(1)


def smoke_flag(text: str) -> str:
    """The README's smoke-test flag (stated once)."""
    found = SMOKE.findall(text)
    if len(found) != 1:
        raise ValueError(f"README states the smoke-test flag {len(found)} times, not once")
    return found[0]


def runnable(line: str, smoke: str) -> str:
    """`line` with the smoke flag after its last command when that trains in an env."""
    last = line.split(" && ")[-1]
    if last.startswith("rlkit run ") and " --env " in last:
        return f"{line} {smoke}"
    return line


def commands(extra: str, text: str | None = None) -> list[str]:
    text = README.read_text() if text is None else text
    smoke = smoke_flag(text)
    return [runnable(line, smoke) for line in install_lines(text) if extra_of(line) == extra]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    found = commands(sys.argv[1])
    if not found:
        sys.exit(f"README has no install line for {sys.argv[1]!r}")
    print("\n".join(found))
