"""Algorithms from outside rlkit: installed packages (entry points) and files.

    rlkit run a2c --env CartPole                  # an installed package's entry point
    rlkit run my_algos.py:A2C --env CartPole      # a class in a file
    rlkit run my_package.algos:A2C --env CartPole # a class in an importable module
    rlkit run --algo my_algos.py:A2C --env CartPole

A package registers its algorithms in its metadata (pyproject.toml)::

    [project.entry-points."rlkit.algorithms"]
    a2c = "my_package.algos:A2C"

The entry point's name is the algorithm's registry name. A class loaded from a file or a
module keeps the name it gives itself (``@ALGORITHMS.register("a2c")`` or ``name = ...``;
otherwise its class name in lower case). A run records where its algorithm came from, so
`rlkit resume` and `rlkit eval` find it again.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

from rlkit.algorithms.base import ALGORITHMS, Algorithm
from rlkit.errors import RegistryError
from rlkit.registry import FILE_MODULE_PREFIX

GROUP = "rlkit.algorithms"
HOW = (
    "register one with an entry point in group 'rlkit.algorithms', or name a class: "
    "rlkit run path/to/file.py:Class (or module:Class); see docs/custom_algorithm.md"
)
SOURCES: dict[str, str] = {}
"""Registry name -> where a plugin algorithm was loaded from (a spec `load` takes)."""
_loaded_entry_points = False


def is_spec(name: str) -> bool:
    """True for ``module:Class`` and ``path/file.py:Class``."""
    return ":" in name


def load_entry_points() -> None:
    """Register every installed `rlkit.algorithms` entry point (once per process)."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.name in ALGORITHMS:
            continue
        try:
            cls = ep.load()
        except Exception as e:  # a broken plugin must not break `rlkit list` for the others
            print(f"rlkit: warning: entry point {ep.name} ({ep.value}): {e}", file=sys.stderr)
            continue
        cls = _checked(cls, ep.value)
        if "name" in cls.__dict__ and not getattr(cls, "_auto_name", False):
            # the class names itself: that name stays (checkpoints and presets use it);
            # the entry point's name is an alias of it
            if cls.name not in ALGORITHMS:
                ALGORITHMS.add(cls.name, cls)
            if ep.name.lower() != cls.name.lower() and ep.name not in ALGORITHMS:
                ALGORITHMS.add(ep.name, cls)
        elif ep.name not in ALGORITHMS:
            _register(cls, ep.name)
        SOURCES[ep.name.lower()] = SOURCES[cls.name.lower()] = ep.value


def resolve(name: str, source: str | None = None) -> type[Algorithm]:
    """The algorithm called `name` (a registry name or a spec), loading it from `source`
    (where a saved run says it came from) or the entry points when it is not registered."""
    if is_spec(name):
        return load(name)
    if name not in ALGORITHMS and source:
        load(source)
    if name not in ALGORITHMS:
        load_entry_points()
    if name not in ALGORITHMS:
        raise RegistryError(f"unknown algorithm {name!r}{ALGORITHMS.suggest(name)}; {HOW}")
    return ALGORITHMS.get(name)


def load(spec: str) -> type[Algorithm]:
    """Import ``module:Class`` or ``path/file.py:Class`` and register the class (a file is
    imported once per process)."""
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise RegistryError(f"algorithm {spec!r}: expected module:Class or path/file.py:Class")
    if where.endswith(".py") or "/" in where:
        path = Path(where).resolve()
        if not path.is_file():
            raise RegistryError(f"algorithm {spec!r}: no file {path}")
        module_name = f"{FILE_MODULE_PREFIX}{path.stem}_{abs(hash(str(path)))}"
        module = sys.modules.get(module_name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            try:
                module_spec.loader.exec_module(module)
            except Exception:
                del sys.modules[module_name]
                raise
        source = f"{path}:{attr}"
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise RegistryError(f"algorithm {spec!r}: cannot import {where} ({e})") from None
        source = spec
    cls = _checked(getattr(module, attr, None), spec)
    if cls.name not in ALGORITHMS:
        _register(cls, cls.name)
    elif ALGORITHMS.get(cls.name) is not cls:
        raise RegistryError(
            f"algorithm {spec!r} is named {cls.name!r}, which another algorithm has; "
            "give it its own name (name = ...)"
        )
    SOURCES[cls.name.lower()] = source
    return cls


def source_of(algo_cls: type[Algorithm]) -> str | None:
    """Where a plugin algorithm came from (None for rlkit's own)."""
    return SOURCES.get(algo_cls.name.lower())


def _checked(obj: object, spec: str) -> type[Algorithm]:
    if not (isinstance(obj, type) and issubclass(obj, Algorithm)):
        raise RegistryError(f"algorithm {spec!r} is not a subclass of rlkit's Algorithm")
    abstract = sorted(getattr(obj, "__abstractmethods__", ()))
    if abstract:
        raise RegistryError(
            f"algorithm {spec!r} leaves {', '.join(abstract)} unimplemented "
            "(a template's abstract methods)"
        )
    return obj


def _register(cls: type[Algorithm], name: str) -> None:
    cls.name = name
    ALGORITHMS.add(name, cls)
