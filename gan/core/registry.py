"""Name -> constructor registries, so configs can name networks, recipes and datasets."""

from __future__ import annotations

import difflib
import functools
import importlib
import re
from typing import Callable, Generic, TypeVar

from gan.core.wording import printable

T = TypeVar("T", bound=Callable)


class ConfigError(ValueError):
    """A config value or key is wrong; the message names it and says what was expected."""


def suggest(name: str, choices: list[str]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''. Case is no difference
    (`HINGE`, `Train.Steps`) but breaks ties."""
    by_lower = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return f" (did you mean '{by_lower[close[0]]}'?)" if close else ""


class Registry(Generic[T]):
    """Maps names to constructors.

    >>> RECIPES = Registry("recipe")
    >>> @RECIPES.register("dcgan")
    ... class DCGANRecipe: ...
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._unimported: dict[str, str] = {}  # module -> why it failed to import (`import_modules`)

    def import_modules(self, modules: tuple[str, ...], listed_in: str, together: tuple[Registry, ...] = ()) -> None:
        """Import `modules`, whose import registers entries here (and in the registries `together`). One that
        fails to import, however (a package it needs not installed, a misspelled name, a CUDA extension that
        does not build or load), is kept, said with any name not found (`get`) and not tried again, and what
        it registered before it failed is taken out again: raised, it broke every command with a traceback,
        those that use none of its entries too."""
        registries = (self, *(registry for registry in together if registry is not self))
        for module in modules:
            if module in self._unimported:
                continue
            before = [set(registry._entries) for registry in registries]
            try:
                importlib.import_module(module)
            except Exception as error:  # noqa: BLE001 - a module of one's own may raise anything as it imports
                kind = "" if isinstance(error, ImportError) else f"{type(error).__name__}: "
                why = f"{module} (listed in {listed_in}) failed to import: {kind}{printable(str(error))}"
                for registry, names in zip(registries, before):  # (a network of a half-imported module: not used)
                    for name in set(registry._entries) - names:
                        del registry._entries[name]
                    registry._unimported[module] = why

    def unimported(self) -> list[str]:
        """Why each module `import_modules` could not import failed to, one line each."""
        return list(self._unimported.values())

    def register(self, name: str, constructor: T | None = None):
        """Register `constructor` under `name`; without `constructor`, works as a decorator."""

        def add(entry: T) -> T:
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
                # (a config and a command line name it; a name of another type broke every list of the names)
                raise ValueError(f"{self.kind} {_qualified_name(entry)} is registered under {name!r}: a name is "
                                 "ASCII letters and digits, then also '_', '-', '.' or '+'")
            earlier = self._entries.get(name)
            if earlier is not None and _qualified_name(earlier) != _qualified_name(entry):
                raise ValueError(f"{self.kind} '{name}' is registered twice: to {_qualified_name(earlier)}, and now "
                                 f"to {_qualified_name(entry)}; register yours under a name of its own")
            # (the same name again: its definition run again, as a notebook's cell is, replaces the earlier one)
            self._entries[name] = entry
            return entry

        return add if constructor is None else add(constructor)

    def get(self, name: str) -> T:
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise ConfigError(  # (the name cut: a config may name a network of megabytes)
                f"unknown {self.kind} '{printable(name, 80)}'{suggest(name, list(self._entries))}; known: {known}"
                + "".join(f"; {why}" for why in self.unimported())
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def _qualified_name(entry: object) -> str:
    """Where `entry` is defined, as `module.QualifiedName` (a partial: its function's, and its arguments;
    a lambda: itself alone, as lambdas share their name)."""
    if isinstance(entry, functools.partial):
        arguments = [*map(repr, entry.args), *(f"{key}={value!r}" for key, value in entry.keywords.items())]
        return f"{_qualified_name(entry.func)}({', '.join(arguments)})"
    name = getattr(entry, "__qualname__", type(entry).__qualname__)
    return f"{getattr(entry, '__module__', '?')}.{name}" + (f" at {id(entry):#x}" if "<lambda>" in name else "")
