"""Wording shared by messages."""

from __future__ import annotations

from collections.abc import Sequence


def first_few(names: Sequence[str], limit: int, separator: str = ", ") -> str:
    """`a, b, c and 4 more`: the first `limit` names, then a count of the rest, so a message about
    thousands of files stays one line that still names where to look."""
    shown = separator.join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
