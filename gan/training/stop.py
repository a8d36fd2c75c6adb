"""Stopping a run cleanly: the signals that ask for it become a flag the loop checks between steps."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from typing import Any

from gan.core.processes import STOP_SIGNALS, ctrl_c_reaches_this_process, leave_the_terminal_on_hangup
from gan.core.progress import CLEAR_LINE, print_above, redraws_lines


def say_in_a_signal_handler(message: str) -> None:
    """`print_above`'s line, written straight to stderr's file descriptor: a handler runs between two
    bytecodes of the main thread, which may be inside stderr's buffered write (a log's progress line),
    and writing through it again raised "RuntimeError: reentrant call", which stopped the run as a
    failed side task. A stream without a descriptor (one in memory) has no such lock. A stream whose
    writes go elsewhere than its descriptor (Jupyter's) is written through, its descriptor the fallback."""
    stream = sys.stderr
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        print_above(message, stream)
        return
    text = (CLEAR_LINE if redraws_lines(stream) else "") + message + "\n"
    if not _writes_to_its_descriptor(stream) and _written_through(stream, text):
        return
    with contextlib.suppress(OSError):  # (a closed or full stderr: the stop itself goes on)
        os.write(descriptor, text.encode(getattr(stream, "encoding", None) or "utf-8", errors="backslashreplace"))


def _writes_to_its_descriptor(stream: Any) -> bool:
    """Whether `stream` is io's own file object over its fileno() (a terminal, a log, a pipe). Not so
    ipykernel's stderr: its fileno() is a copy of the terminal the kernel started from, and its writes
    go to the notebook, so the notice written to the descriptor was never seen."""
    layer = getattr(stream, "buffer", None)
    raw = getattr(layer, "raw", layer)  # (python -u: the text layer is over the FileIO itself)
    try:
        return isinstance(stream, io.TextIOWrapper) and isinstance(raw, io.FileIO) and raw.fileno() == stream.fileno()
    except (OSError, ValueError):  # (closed)
        return False


def _written_through(stream: Any, text: str) -> bool:
    """Whether `stream.write` took `text`: False where it refused (re-entered mid-write, "reentrant
    call"; closed), for the descriptor to say it instead."""
    try:
        stream.write(text)
    except (RuntimeError, OSError, ValueError):
        return False
    with contextlib.suppress(RuntimeError, OSError, ValueError):  # (written: not said twice for a failed flush)
        stream.flush()
    return True


class StopRequest:
    """Turns the STOP_SIGNALS (SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2) into a flag checked between
    steps; a second Ctrl-C aborts at once. After SIGHUP (the terminal closed) the output that went
    to the terminal is dropped. Once a stop is noted, a loader worker's death raises nothing."""

    def __init__(self, announce: bool = True):
        self.signal_name: str | None = None
        self.announce = announce  # (under torchrun, rank 0 says it for every process)
        # SIGCONTs so far: the process was stopped (SIGSTOP, Ctrl-Z, a scheduler's suspension) and goes on.
        # The time stopped counts on every clock a step is timed by: the loop leaves such spans untimed.
        self.continued = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal_name is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            leave_the_terminal_on_hangup(signum)
            return  # (already stopping: a sweep passing a Ctrl-C on, `timeout`'s second signal)
        hangup = leave_the_terminal_on_hangup(signum)
        self.signal_name = signal.Signals(signum).name
        if self.announce:
            abort = " (Ctrl-C again to abort without saving)" if ctrl_c_reaches_this_process() else ""
            say_in_a_signal_handler(f"received {self.signal_name}{' (the terminal closed)' if hangup else ''}: "
                                    f"saving a checkpoint after this step{abort}")

    def _continue(self, signum: int, frame: Any) -> None:
        self.continued += 1

    def _child_ended(self, signum: int, frame: Any) -> None:
        # (PyTorch's handler raises for a loader worker that died wherever the trainer is, a step or the
        # save: once a stop is noted no batch is needed, and a worker killed with the job costs no checkpoint)
        if self.signal_name is None:
            self._previous[signal.SIGCHLD](signum, frame)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            if hasattr(signal, "SIGCONT"):  # (not on Windows)
                self._previous[signal.SIGCONT] = signal.signal(signal.SIGCONT, self._continue)
            if hasattr(signal, "SIGCHLD") and callable(signal.getsignal(signal.SIGCHLD)):  # (loader workers')
                self._previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, self._child_ended)
            for signum in STOP_SIGNALS:
                # A signal ignored at start stays ignored, as Python leaves SIGINT: a run started in the
                # background of a script (or by a sweep so started) is not the terminal's Ctrl-C to stop.
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
