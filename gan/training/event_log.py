"""TensorBoard event logging that survives a full disk.

TensorBoard's writer writes from a background thread. When a write fails (a full disk),
the thread dies, and from then on every call re-raises its error, which would end the
run. `EventLog` drops a writer that failed, warns once, and opens a fresh event file
(TensorBoard reads all files of a run directory together) at most every `retry_s`
seconds, so logging resumes when there is space again. Scalars logged while the disk
was full are lost; checkpoints are written and retried on their own (gan/core/files.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from gan.core.files import free_space

EVENT_FILES = "events.out.tfevents.*"


class EventLog:
    def __init__(self, open_writer: Callable[[int | None], Any], run_dir: Path, purge_step: int | None = None,
                 retry_s: float = 60.0):
        self._open = open_writer  # purge_step -> a SummaryWriter
        self.run_dir = run_dir
        self.retry_s = retry_s
        self._warned = False
        self._failed_at = 0.0
        self._writer = None
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
        try:
            self._writer = self._open(purge_step)
        except OSError as error:
            self._fail(error)

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
            warnings.warn(f"TensorBoard events in '{self.run_dir}' could not be written ({free_space(self.run_dir)}: "
                          f"{error}); training goes on, and logging resumes when there is space again", stacklevel=3)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self._writer is None:
            if time.monotonic() - self._failed_at < self.retry_s:
                return
            self._try_open()
            if self._writer is None:
                return
        try:
            getattr(self._writer, method)(*args, **kwargs)
        except OSError as error:
            self._fail(error)

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        self._call("add_scalar", *args, **kwargs)

    def add_image(self, *args: Any, **kwargs: Any) -> None:
        self._call("add_image", *args, **kwargs)

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError as error:
                self._fail(error)
            self._writer = None
        threading.excepthook = self._previous_hook
