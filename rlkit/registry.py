"""Name -> object registries (algorithms, envs, distribution policies, executors, ...).

Lookups are case-insensitive, and a miss suggests the closest names.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from rlkit.errors import RegistryError

T = TypeVar("T")

FILE_MODULE_PREFIX = "rlkit_plugin_"
"""Modules of algorithms imported from files (`rlkit run file.py:Class`) are named so:
the Ray executor sends such modules to its workers by value."""


class Registry(Generic[T]):
    """A named collection; `kind` names what it holds in error messages ("algorithm")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._names: dict[str, str] = {}  # lower-case -> registered spelling

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@ALGORITHMS.register("ppo")``. A class with a `name` attribute gets
        this name, so it is written once."""

        def add(obj: T) -> T:
            if isinstance(obj, type) and hasattr(obj, "name"):
                obj.name = name
                if hasattr(obj, "_auto_name"):
                    obj._auto_name = False
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        key = name.lower()
        if key in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[key] = obj
        self._names[key] = name

    def get(self, name: str) -> T:
        key = name.lower()
        if key not in self._items:
            raise RegistryError(f"unknown {self.kind} {name!r}{self.suggest(name)}")
        return self._items[key]

    def suggest(self, name: str) -> str:
        """'; did you mean ...?' for the closest names, or the list of known names."""
        close = difflib.get_close_matches(name.lower(), list(self._items), n=3, cutoff=0.5)
        if close:
            return "; did you mean " + " or ".join(repr(self._names[c]) for c in close) + "?"
        return "; known: " + ", ".join(self.names())

    def names(self) -> list[str]:
        return sorted(self._names.values(), key=str.lower)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
