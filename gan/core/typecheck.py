"""Checking config values (from TOML or `--set`) against a Python type annotation."""

from __future__ import annotations

import datetime
import tomllib
import types
import typing
from typing import Any

from gan.core.registry import ConfigError
from gan.core.wording import printable


def type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Return `value` as `annotation` (int, float, bool, str, list[...], tuple[...], Literal[...],
    X | None, Any).

    Only lossless conversions are made (an int where a float is expected; a number
    written where a string is expected, as `--set data.root=2024` gives). Anything
    else raises ConfigError naming `key`, the expected type and the value.
    """
    if annotation is Any or annotation is typing.Any:
        return value
    origin = typing.get_origin(annotation) or (annotation if annotation in (list, tuple) else None)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, annotation, key)
    if origin is typing.Literal:  # (type and value: True is no 1, "1" no 1)
        choices = typing.get_args(annotation)
        if any(type(value) is type(choice) and value == choice for choice in choices):
            return value
        raise ConfigError(f"{key}: expected one of {', '.join(shown(choice) for choice in choices)}, got {shown(value)}")
    if origin in (list, tuple):
        return _coerce_sequence(value, annotation, origin, key)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {shown(value)}")
        return dict(value)
    return _coerce_scalar(value, annotation, key)


def _coerce_union(value: Any, annotation: Any, key: str) -> Any:
    """`value` as the first of the union's types that takes it; None where the union has it."""
    options = typing.get_args(annotation)
    if value is None and type(None) in options:
        return None
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return coerce(value, option, key)
        except ConfigError as error:
            errors.append(str(error))
    raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: expected {type_name(annotation)}, got {shown(value)}")


def _coerce_sequence(value: Any, annotation: Any, origin: type, key: str) -> list | tuple:
    """`value` (a TOML array) as list[X], tuple[X, ...] (any length) or tuple[X, Y] (one of each)."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected a list, got {shown(value)}")
    item_types = typing.get_args(annotation) or (Any,)
    if origin is list or item_types[-1] is Ellipsis:
        items = [coerce(item, item_types[0], f"{key}[{i}]") for i, item in enumerate(value)]
        return items if origin is list else tuple(items)
    if len(value) != len(item_types):
        raise ConfigError(f"{key}: expected a list of {len(item_types)} ({str(annotation).replace('typing.', '')}), got "
                          f"{shown(value)}")
    return tuple(coerce(item, item_type, f"{key}[{i}]") for i, (item, item_type) in enumerate(zip(value, item_types)))


def _coerce_scalar(value: Any, annotation: Any, key: str) -> Any:
    """`value` as bool, int, float or str, losing nothing; ConfigError for any other type hint."""
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an integer of hundreds of digits
                raise ConfigError(f"{key} must be a finite number, got an integer of {len(str(value))} digits, "
                                  "beyond any float") from None
    elif annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float, datetime.date, datetime.time)) and not isinstance(value, bool):
            # TOML has read it as a number or a date, losing its spelling (2024_01 is 202401, 1e3 is 1000.0)
            kind = "the number" if isinstance(value, (int, float)) else "the date or time"
            raise ConfigError(f"{key}: expected text, got {kind} {shown(value)}; TOML reads an unquoted "
                              f"2024_01 as 202401, 1e3 as 1000.0 and 2024-01-05 as a date, so write text in "
                              f"quotes: {key.rsplit('.', 1)[-1]} = \"...\"")
    else:  # (a network of one's own, say, whose argument a config cannot fill)
        raise ConfigError(f"{key}: its type hint {type_name(annotation)} is not one a config value can fill: int, "
                          "float, bool, str, list[...] or tuple[...] of them, Literal[...], X | None or Any")
    raise ConfigError(f"{key}: expected {type_name(annotation)}, got {shown(value)}{_quotes_hint(value, annotation)}"
                      f"{_integer_hint(value, annotation)}")


SHOWN_CHARACTERS = 80  # of a value in a message: a config's value may be megabytes (200,000 milestones)


def shown(value: Any) -> str:
    """A value as TOML writes it (`true`, `1979-05-27`, `[1, 2]`), not as Python's repr does; text quoted;
    cut to SHOWN_CHARACTERS for a message (`printable`: a value of megabytes made an error line of megabytes)."""
    return printable(_spelled(value), SHOWN_CHARACTERS)


def _spelled(value: Any) -> str:
    """`value` as TOML writes it, whole."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_spelled(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{name} = {_spelled(item)}" for name, item in value.items()) + "}"
    return repr(value)


def _integer_hint(value: Any, annotation: Any) -> str:
    """Advice for a whole number written as a float (`1e3`, `4.0`) where an integer is expected."""
    if annotation is int and isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return f"; TOML reads 1e3 and 4.0 as floats: write {int(value)}"
    return ""


def _quotes_hint(value: Any, annotation: Any) -> str:
    """Advice for text that would be the value expected without its quotes (`hflip = "true"`)."""
    if not isinstance(value, str):
        return ""
    try:
        unquoted = tomllib.loads(f"value = {value.strip()}")["value"]
    except (ValueError, KeyError, RecursionError):  # (not TOML; or past Python's limits: an integer of more
        return ""  # than 4,300 digits, brackets thousands deep, which were a traceback here)
    meant = {bool: (bool,), int: (int,), float: (int, float)}.get(annotation, ())
    if not isinstance(unquoted, meant) or (annotation is not bool and isinstance(unquoted, bool)):
        return ""
    return f"; in quotes it is text: give {printable(value.strip(), SHOWN_CHARACTERS)} without them"
