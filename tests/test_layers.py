"""The layers of ARCHITECTURE.md, bottom up: the floor (`rlkit/` but its top) <
`dataflow/` < `rlkit/llm/` (the LLM runtime) < `envs/` < `algorithms/` < the top (`rlkit/cli.py`, `trainer.py`,
`plugins.py`, `rlhf.py`, `evaluate.py`). No module imports from a layer above its own,
not even inside a function (docs/concepts.md#layers)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("floor", "dataflow", "llm", "envs", "algorithms", "top")
TOP = ("rlkit.cli", "rlkit.trainer", "rlkit.plugins", "rlkit.rlhf", "rlkit.evaluate")


def layer(module: str) -> str:
    if any(module == t or module.startswith(t + ".") for t in TOP):
        return "top"
    for name in ("dataflow", "llm", "envs", "algorithms"):
        if module == f"rlkit.{name}" or module.startswith(f"rlkit.{name}."):
            return name
    return "floor"


def modules() -> dict[str, Path]:
    """Module name -> file, for every module of the package (the linked folders once)."""
    found: dict[str, Path] = {}
    for top in ("rlkit", "dataflow", "envs", "algorithms"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if (
                parts[0] == "rlkit"
                and len(parts) > 1
                and parts[1] in ("dataflow", "envs", "algorithms")
            ):
                continue  # the links: the same files as the top-level folders
            if parts[0] != "rlkit":
                parts.insert(0, "rlkit")
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
    return [(line, name) for line, name in out if name == "rlkit" or name.startswith("rlkit.")]


def upward_imports() -> list[str]:
    bad = []
    for module, path in modules().items():
        own = ORDER.index(layer(module))
        for line, target in imports(path):
            if ORDER.index(layer(target)) > own:
                where = path.relative_to(ROOT)
                bad.append(f"{where}:{line}: {layer(module)} imports {target} ({layer(target)})")
    return bad


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports() == []


def test_the_check_sees_the_layers():
    found = modules()
    assert (
        layer("rlkit.dataflow.collectives") == "dataflow" and "rlkit.dataflow.collectives" in found
    )
    assert (
        layer("rlkit.algorithms.rlhf.grpo") == "algorithms"
        and "rlkit.algorithms.rlhf.grpo" in found
    )
    assert layer("rlkit.llm.decode") == "llm" and "rlkit.llm.decode" in found
    assert layer("rlkit.batch") == "floor" and layer("rlkit.cli") == "top"
    assert "rlkit.errors" in [target for _, target in imports(found["rlkit.envs.families"])]


def module_level_imports(path: Path, found: dict[str, Path]) -> set[str]:
    """The modules `path` imports when it is imported (its top-level statements, not a
    function's, not ``if TYPE_CHECKING``): each named module; ``from pkg import name``
    names ``pkg`` (its ``__init__`` is where the name is looked up) and, where there is
    one, the submodule ``pkg.name``."""
    out: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {m for m in out if m in found}


def cycles() -> list[list[str]]:
    """Groups of modules that import each other at import time (Tarjan's algorithm)."""
    found = modules()
    graph = {m: module_level_imports(p, found) - {m} for m, p in found.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_not_even_through_a_package_init():
    assert cycles() == []


def test_no_function_is_over_sixty_lines_outside_benchmarks_and_tests():
    """A function a newcomer reads in one screen (issue #26): the package, examples and
    scripts."""
    long = []
    for folder in ("rlkit", "algorithms", "envs", "dataflow", "examples", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.is_symlink() or any(p.is_symlink() for p in path.parents):
                continue  # rlkit/algorithms -> ../algorithms: read once, at its real place
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > 60:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert not long, long
