"""TensorBoard event logging that survives a full disk.

TensorBoard's writer writes from a background thread. When a write fails (a full disk),
the thread dies, and from then on every call re-raises its error, which would end the
run. `EventLog` drops a writer that failed, warns once, and opens a fresh event file
(TensorBoard reads all files of a run directory together) as soon as the disk has room
again (or every `retry_s` seconds, where free space cannot be told), so logging resumes
with the next scalar. Scalars logged without a writer are kept (up to `MAX_PENDING`) and
written into the fresh file, at the latest when the log closes; images are not (their
grids are PNGs in samples/ too). What the dead writer's thread still held is lost.
Checkpoints are written and retried on their own (gan/core/files.py).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from gan.core.files import why_write_failed

EVENT_FILES = "events.out.tfevents.*"
ROOM_BYTES = 2**20  # free space that makes a fresh event file worth trying
MAX_PENDING = 100_000  # scalars kept while no writer takes them (a few MB)


def opened_second(path: Path) -> int | None:
    """The second an event file was opened at, as its name says (`events.out.tfevents.<second>.<host>...`)."""
    parts = path.name.split(".")
    return int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else None


class _ClockPast:
    """The time module, but for a `time()` that is never below `floor`."""

    def __init__(self, clock: Any, floor: float) -> None:
        self._clock, self._floor = clock, floor

    def time(self) -> float:
        return max(self._clock.time(), self._floor)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clock, name)


@contextlib.contextmanager
def named_after(existing: set[Path]):
    """Event files opened meanwhile named to sort after every one of `existing`. TensorBoard reads a
    run's files in name order, and a file is named by the second it opens: one opened in a second no
    later than the newest file's (the clock set back, by NTP or on another machine a requeued job
    resumes on; or a writer opened again within that second, whose counter 10 sorts before 9) was
    read first, so the steps a resume trains again, purged by it, came back from the older file,
    beside the new ones. TensorBoard's writer takes the second from its module's `time`; moved
    past the newest file's while a file opens, and put back."""
    from tensorboard.summary.writer import event_file_writer

    seconds = [second for second in map(opened_second, existing) if second is not None]
    clock = getattr(event_file_writer, "time", None)
    if not seconds or clock is None or not callable(getattr(clock, "time", None)) or clock.time() >= max(seconds) + 1:
        yield
        return
    event_file_writer.time = _ClockPast(clock, float(max(seconds) + 1))
    try:
        yield
    finally:
        event_file_writer.time = clock


class EventLog:
    def __init__(self, open_writer: Callable[[int | None], Any], run_dir: Path, purge_step: int | None = None,
                 retry_s: float = 60.0):
        self._open = open_writer  # purge_step -> a SummaryWriter
        self.run_dir = run_dir
        self.retry_s = retry_s
        self._warned = False
        self._failed_at = 0.0
        self._writer = None
        self._purge_step: int | None = None  # a resume's, until a writer has opened with it
        self._pending: list[tuple[tuple, dict]] = []  # add_scalar calls made without a writer
        self._files_before: set[Path] = set()
        # TensorBoard's thread prints its OSError as a traceback before the error reaches us;
        # the warning below says it in one line, so that thread's OSErrors are not printed.
        self._previous_hook = threading.excepthook
        threading.excepthook = self._quiet_writer_thread_errors
        self._try_open(purge_step)

    def _quiet_writer_thread_errors(self, args: threading.ExceptHookArgs) -> None:
        if not (issubclass(args.exc_type, OSError) and type(args.thread).__module__.startswith("tensorboard.")):
            self._previous_hook(args)

    def _try_open(self, purge_step: int | None = None) -> None:
        self._files_before = set(self.run_dir.glob(EVENT_FILES))
        # (a resume's purge step holds until a writer has opened with it: else the steps trained again
        # would show twice, when the first writer could not open on a full disk)
        if purge_step is not None:
            self._purge_step = purge_step
        try:
            with named_after(self._files_before):
                self._writer = self._open(self._purge_step)
        except OSError as error:
            self._fail(error)
        else:
            self._purge_step = None

    def _fail(self, error: OSError) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # the dead thread's error again; the events it held are lost either way
                pass
        # An attempt on a disk still full leaves an empty event file: one a minute, for as long as it stays full.
        for path in set(self.run_dir.glob(EVENT_FILES)) - self._files_before:
            with contextlib.suppress(OSError):
                if path.stat().st_size == 0:
                    path.unlink()
        self._writer, self._failed_at = None, time.monotonic()
        if not self._warned:
            self._warned = True
            # (a disk gone read-only has room: "74823.0 MiB free ... when there is space again" misled)
            warnings.warn(f"TensorBoard events in '{self.run_dir}' could not be written"
                          f"{why_write_failed(error, self.run_dir / 'events')}; training goes on, and logging resumes "
                          "when it can write there again", stacklevel=3)

    @property
    def alive(self) -> bool:
        """Whether events are being written (False from a failure until a fresh file opens)."""
        return self._writer is not None

    def _has_room(self) -> bool:
        try:
            return shutil.disk_usage(self.run_dir).free >= ROOM_BYTES
        except OSError:
            return False

    def _reopened(self) -> bool:
        """A writer, opening a fresh file when one is due, with the scalars kept meanwhile written into it."""
        if self._writer is None:
            if time.monotonic() - self._failed_at < self.retry_s and not self._has_room():
                return False
            self._try_open()
            if self._writer is None:
                return False
            pending, self._pending = self._pending, []
            for args, kwargs in pending:
                self._write("add_scalar", *args, **kwargs)
        return self._writer is not None

    def _write(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self._writer is None:
            if method == "add_scalar" and len(self._pending) < MAX_PENDING:
                self._pending.append((args, kwargs))
            return
        try:
            # (a Summary made here goes through the writer's file writer, as its own add_image's does)
            target = self._writer._get_file_writer() if method == "add_summary" else self._writer
            getattr(target, method)(*args, **kwargs)
        except OSError as error:
            self._fail(error)
            self._write(method, *args, **kwargs)  # (kept, as the next ones are: the writer is gone)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        self._reopened()
        self._write(method, *args, **kwargs)

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        self._call("add_scalar", *args, **kwargs)

    def add_png(self, tag: str, png: bytes, height: int, width: int, step: int) -> None:
        """An RGB image already encoded as PNG, logged as add_image logs one: add_image takes pixels, and
        encodes them again (0.6 s for a 128 px 8x8 grid)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=png)
        self._call("add_summary", Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def close(self) -> None:
        if self._pending:  # (the last chance for the scalars kept while the disk was full)
            self._reopened()
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError as error:
                self._fail(error)
            self._writer = None
        threading.excepthook = self._previous_hook
