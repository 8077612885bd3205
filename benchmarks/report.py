"""Writes one benchmark's section of docs/benchmarks.md, leaving the other sections alone.

Each benchmark owns the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Every table is written by the script named in its section, which runs rlkit and the peers "
    "side by side in one invocation on the same machine. Figures are medians of repeats; "
    "ratios are rlkit / peer.\n"
)


def run_child(module: str, args: Sequence[str], cwd: Path) -> dict[str, float]:
    """Run ``python -m module ARGS`` (one contender in a fresh process, so none inherits
    another's allocator or threads) and parse its ``RESULT {json}`` line."""
    out = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=3600
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(
            f"{module} {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
    return dict(json.loads(line[len("RESULT ") :]))


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def write_section(name: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the section `name` of the benchmarks document with `body`."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = doc.read_text() if doc.exists() else HEADER
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def quick_banner(what: str) -> list[str]:
    """The warning lines that open a section written by a `--quick` smoke run."""
    return [
        f"**QUICK SMOKE RUN (`--quick`): {what}; the figures are not a measurement. Rerun "
        "without `--quick` for the real table.**",
        "",
    ]


def provenance(script: str, load: tuple[float, float], versions: str = "") -> str:
    """ "Written by `SCRIPT` on DATE (machine, cores, Python[, versions]; load averages)": the
    opening of every section, without the closing period."""
    extra = f", {versions}" if versions else ""
    return (
        f"Written by `{script}` on {time.strftime('%Y-%m-%d %H:%M')} ({platform.machine()}, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}{extra}; 1-minute load "
        f"average {load[0]:.1f} at the start, {load[1]:.1f} at the end"
        + ("; other work was running on this shared machine" if max(load) > 1.5 else "")
        + ")"
    )


def reproduce(command: str) -> list[str]:
    """The closing lines of a section: how to run it again."""
    return [
        "Reproduce (from the repository root, with the `bench` extra installed):",
        "",
        "```",
        command,
        "```",
    ]
