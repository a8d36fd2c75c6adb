"""Wording shared by messages."""

from __future__ import annotations

from collections.abc import Sequence


def first_few(names: Sequence[str], limit: int, separator: str = ", ") -> str:
    """`a, b, c and 4 more`: the first `limit` names, then a count of the rest, so a message about
    thousands of files stays one line that still names where to look."""
    shown = separator.join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def counted(count: int, noun: str) -> str:
    """`1 image`, `2 images`: a count and its noun, plural by an s."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def one_line(path: object) -> str:
    """`path` as text that keeps a message on one line: a control character in a file name (a new
    line, a tab) written as its escape, `\\n`, and the bytes of a name that are no UTF-8 text as
    `\\xff` (as `undecoded`; Python's own `\\udcff` names no byte a user can find), the rest as it is."""
    return "".join(character if character.isprintable() or character == " " else
                   character.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for character in _bytes_shown(path))


def _bytes_shown(path: object) -> str:
    try:
        return undecoded(path)
    except UnicodeEncodeError:  # (a surrogate no file name holds: shown escaped as the rest)
        return str(path)


def printable(text: object, limit: int = 300) -> str:
    """Text read from a file someone else may have written, for a message: on one line (`one_line`:
    no escape sequence reaches the terminal) and cut to `limit` characters (a value a megabyte long
    made a megabyte of error line)."""
    line = one_line(text)
    return line if len(line) <= limit else f"{line[:limit]}... ({len(line) - limit:,} more characters)"


def undecoded(path: object) -> str:
    """`path` as text any stream can print: the bytes of a name that are no UTF-8 text (which Python
    holds as surrogate escapes, and printing fails on) written as `\\xff`."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
