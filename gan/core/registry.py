"""Name -> constructor registries, so configs can name networks, recipes and datasets."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, TypeVar

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

    def register(self, name: str, constructor: T | None = None):
        """Register `constructor` under `name`; without `constructor`, works as a decorator."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = entry
            return entry

        return add if constructor is None else add(constructor)

    def get(self, name: str) -> T:
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise ConfigError(
                f"unknown {self.kind} '{name}'{suggest(name, list(self._entries))}; known: {known}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
