"""A command's standard streams: its progress lines and warnings (stderr) never stop its work, and
a result it prints (stdout) that cannot be written is said in one line, not a traceback."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator, TextIO

STANDARD_OUTPUT = "<standard output>"  # the "file" named when stdout cannot be written


class _Forgiving:
    """stderr that a reader gone (`gan train ... 2>&1 | head`), a full disk or a closed descriptor
    cannot stop: what cannot be written is dropped, and the training goes on."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._broken = False

    def write(self, text: str) -> int:
        if not self._broken:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):  # (ValueError: written after the stream was closed)
                self._broken = True
        return len(text)

    def flush(self) -> None:
        if not self._broken:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._broken = True

    def isatty(self) -> bool:
        try:
            return not self._broken and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Named:
    """stdout whose write errors name it, so that the command's handler of errors on named files says
    them in one line (`gan compare ... > /dev/full`: No space left on device)."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as error:
            raise OSError(error.errno, error.strerror, STANDARD_OUTPUT) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as error:
            raise OSError(error.errno, error.strerror, STANDARD_OUTPUT) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def command_streams() -> Iterator[None]:
    """sys.stderr forgiving and sys.stdout named inside the block (one closed, `2>&-`, which Python
    gives as None: written to nowhere); both as they were after it, for a process that goes on
    (CliRunner, a notebook)."""
    stdout, stderr = sys.stdout, sys.stderr
    with contextlib.ExitStack() as closing:
        def or_nowhere(stream: TextIO | None) -> TextIO:
            return stream if stream is not None else closing.enter_context(open(os.devnull, "w"))

        sys.stdout, sys.stderr = _Named(or_nowhere(stdout)), _Forgiving(or_nowhere(stderr))
        try:
            yield
        finally:
            sys.stdout, sys.stderr = stdout, stderr
