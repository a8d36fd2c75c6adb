"""A command's standard streams: its progress lines and warnings (stderr) never stop its work, and
a result it prints (stdout) that cannot be written is said in one line, not a traceback."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import Any, Iterator, TextIO

STANDARD_OUTPUT = "<standard output>"  # the "file" named when stdout cannot be written


def drop_unwritten(stream: TextIO) -> None:
    """Point `stream`'s descriptor at the null device once a write to it has failed: the bytes its
    buffer still holds would fail again when Python flushes it at exit, which prints "Exception
    ignored" and exits with 120 (Python's default, buffered streams; PYTHONUNBUFFERED hid it). A
    stream without a descriptor (one in memory) keeps what it holds."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, descriptor)
        os.close(null)


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
                self._break()
        return len(text)

    def flush(self) -> None:
        if not self._broken:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._break()

    def _break(self) -> None:
        self._broken = True
        drop_unwritten(self._stream)

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
        # (click probes a stream with an empty write, "" after b"", which must still fail as a text stream's does;
        # unbuffered, "" was a write of 0 bytes that /dev/full refuses: dropped there, the output went to /dev/null)
        if text == "":
            return 0
        try:
            return self._stream.write(text)
        except OSError as error:
            drop_unwritten(self._stream)
            raise OSError(error.errno, error.strerror, STANDARD_OUTPUT) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as error:
            drop_unwritten(self._stream)
            raise OSError(error.errno, error.strerror, STANDARD_OUTPUT) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Closed:
    """stdout closed (`>&-`, which Python gives as None): what is written is counted, for the command
    to say, once it is done, that its output went nowhere (its result, for `gan cache list`)."""

    def __init__(self) -> None:
        self.lost = 0

    def write(self, text: str) -> int:
        self.lost += len(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def command_streams() -> Iterator[None]:
    """sys.stderr forgiving (closed, `2>&-`, which Python gives as None: written to nowhere) and sys.stdout
    named inside the block (closed: an error after it, when the command wrote to it); both as they were
    after it, for a process that goes on (CliRunner, a notebook)."""
    stdout, stderr = sys.stdout, sys.stderr
    closed = _Closed() if stdout is None else None
    with open(os.devnull, "w") if stderr is None else contextlib.nullcontext(stderr) as errors:
        sys.stdout, sys.stderr = closed or _Named(stdout), _Forgiving(errors)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = stdout, stderr
    if closed is not None and closed.lost:  # (the work is done; its output, which may be its result, is not)
        raise OSError(errno.EBADF, f"it is closed, and the {closed.lost:,} characters of this command's output went "
                                   "nowhere", STANDARD_OUTPUT)
