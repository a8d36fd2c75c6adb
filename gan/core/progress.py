"""A dependency-free progress line: step, images/s, ETA, losses."""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Callable, TextIO


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


CLEAR_LINE = "\r\033[K"  # back to the line's start, erase it: where a progress line is drawn
REDRAW_S = 1.0  # a terminal's line between updates (`Progress.redraw`) moves at most this often


def redraws_lines(stream: TextIO) -> bool:
    """Whether `stream` is a terminal that can redraw a line: not a file or pipe, nor one whose TERM
    says it takes no control codes ('dumb': Emacs' shell, some notebook consoles, where they show)."""
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (OSError, ValueError):
        return False


def print_above(message: str, stream: TextIO | None = None) -> None:
    """A message between progress updates: on a terminal it takes the progress line's place (the
    next update draws the line again below it); elsewhere it is a line of its own."""
    stream = stream or sys.stderr
    stream.write((CLEAR_LINE if redraws_lines(stream) else "") + message + "\n")
    stream.flush()


def terminal_width(stream: TextIO) -> int | None:
    """Columns of the terminal `stream` writes to, or None when unknown."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return None


class Progress:
    """Redraws one line on a terminal; prints one line per update elsewhere (logs, CI), or at
    most one per `log_interval` seconds there, and always the last."""

    def __init__(self, total: int, start: int = 0, stream: TextIO | None = None, unit: str = "step",
                 rate_unit: str = "img", log_interval: float = 0.0):
        self.total = total
        self.unit, self.rate_unit = unit, rate_unit
        self.start = start
        self.stream = stream or sys.stderr
        self.started_at = time.perf_counter()
        self.interactive = redraws_lines(self.stream)
        self.log_interval, self._logged_at = log_interval, -math.inf
        self._values: dict[str, float] | None = None  # the last update's, which a redraw shows again
        # (elapsed, step) at the first update: later ETAs leave out the start-up it carried (loader
        # workers, compilation, autotuning), which would weigh on every estimate of a long run
        self._settled: tuple[float, int] | None = None
        self._paused = 0.0  # the last update's `paused`
        self._unit_seconds: float | None = None  # a unit's time by the last ETA, kept across `restart_pace`

    def update(self, step: int, values: dict[str, float] | None = None, rate: float | None = None,
               start_up: float | None = None, paused: float = 0.0, ahead: float = 0.0,
               untimed: tuple[str, ...] = ()) -> None:
        """`rate` is in `rate_unit`s per second; without it, units done since the start per second.
        `start_up` (seconds) shows in the rate's place, for an update whose time is mostly start-up.
        `paused`: seconds since the start spent on work between units (grids, metrics, checkpoints),
        left out of a unit's time; `ahead`: seconds of such work still to come, added to the ETA;
        `untimed`: such work to come whose time is not known yet, named after the ETA."""
        elapsed = time.perf_counter() - self.started_at
        if not self.interactive and step < self.total and elapsed - self._logged_at < self.log_interval:
            return
        self._logged_at, self._values, self._paused = elapsed, values, paused
        done = step - self.start
        working = elapsed - paused  # (a unit's time: the pauses between units are foreseen in `ahead`)
        if self._settled is None and done:
            self._settled = (working, step)
        settled_at, settled_step = self._settled or (0.0, self.start)
        if step > settled_step:
            self._unit_seconds = (working - settled_at) / (step - settled_step)
            eta = format_duration(self._unit_seconds * (self.total - step) + ahead)
        elif self._unit_seconds is not None:  # (just after `restart_pace`: the pace before it)
            eta = format_duration(self._unit_seconds * (self.total - step) + ahead)
        else:  # one update: its time is all there is to go by, unless it was start-up
            eta = "?" if start_up is not None and step < self.total else format_duration(
                (working / done * (self.total - step) if done else 0.0) + ahead)
        if untimed and eta != "?":
            eta += f" + {' and '.join(untimed)}"
        if rate is None:
            rate = done / max(elapsed, 1e-9)
        pace = f"start-up {start_up:.1f}s" if start_up is not None else _pace(rate, self.rate_unit)
        terms = "".join(f"  {name} {value:.4g}" for name, value in (values or {}).items())
        # the pace and ETA before the terms: a terminal narrower than the line cuts its end
        line = (f"{self.unit} {step}/{self.total} ({100 * step / self.total:.0f}%)  {pace}  "
                f"elapsed {format_duration(elapsed)}  ETA {eta}{terms}")
        if self.interactive:
            width = terminal_width(self.stream)  # a wrapped line would leave its upper rows behind
            self.stream.write(CLEAR_LINE + (line[:width - 1] if width else line))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def restart_pace(self, step: int) -> None:
        """The ETA's pace measured afresh from `step` on (the pace before kept until then): the time
        before holds a stop the process did not work through (SIGSTOP, Ctrl-Z, a suspended job), which
        an average since the start would spread over every unit to come."""
        self._settled = (time.perf_counter() - self.started_at - self._paused, step)

    def redraw(self, step: int, rate: float | None = None, paused: float = 0.0, ahead: float = 0.0,
               untimed: tuple[str, ...] = ()) -> None:
        """Between updates (a training run's log points, `log.every` steps apart: minutes of a still
        line on a CPU), a terminal's line moves on with the step, `rate`, elapsed time and ETA, the
        values of the last update kept; at most every REDRAW_S seconds. A log gets no line of it."""
        if self.interactive and time.perf_counter() - self.started_at - self._logged_at >= REDRAW_S:
            self.update(step, self._values, rate, paused=paused, ahead=ahead, untimed=untimed)

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


class PassStopped(Exception):
    """A slow pass of a training run's side task (a metrics pass, validation) given up at its next
    batch, as a stop signal came: the step's checkpoint must not wait minutes for it (a scheduler
    kills the run 30 s after its SIGTERM)."""


def stoppable_progress(total: int, stream: TextIO | None, unit: str, rate_unit: str = "img",
                     stop_noted: Callable[[], bool] | None = None) -> Callable[[int], None] | None:
    """`advance(count)` of a pass of `total` `unit`s that a stop may cut short (a slow step of an
    evaluation: reading images, generating, the SWD sort, Inception): it moves a progress line on
    `stream`, and raises PassStopped once `stop_noted()` says a stop came. None when `stream` is
    None and there is no `stop_noted`."""
    if stream is None and stop_noted is None:
        return None
    progress = None if stream is None else Progress(total, stream=stream, unit=unit, rate_unit=rate_unit,
                                                    log_interval=5.0)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if stop_noted is not None and stop_noted():
            if progress is not None:  # (the line stays, saying where the pass stopped)
                progress.close()
            raise PassStopped(f"{unit} {done}/{total}")
        if progress is not None:
            progress.update(done)
            if done == progress.total:
                progress.close()
    return advance


class DelayedProgress:
    """A progress line for work that is mostly quick (reading a data set's file headers): shown only
    once it has taken `after_s` seconds, then as `Progress` shows it, at most one line per 10 s in a
    log. Silent in a torchrun process other than rank 0, which does the same work at the same time."""

    def __init__(self, total: int, unit: str, rate_unit: str, after_s: float = 2.0, stream: TextIO | None = None):
        self.total, self.unit, self.rate_unit, self.after_s, self.stream = total, unit, rate_unit, after_s, stream
        self.started_at = time.perf_counter()
        self.quiet = os.environ.get("RANK", "0").strip() not in ("", "0")
        self.progress: Progress | None = None

    def update(self, done: int) -> None:
        if self.quiet:
            return
        if self.progress is None:
            if time.perf_counter() - self.started_at < self.after_s:
                return
            self.progress = Progress(self.total, stream=self.stream, unit=self.unit, rate_unit=self.rate_unit,
                                     log_interval=10.0)
            self.progress.started_at = self.started_at  # (its rate and ETA count the quiet seconds too)
        self.progress.update(done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


def _pace(rate: float, unit: str) -> str:
    """`12.3 img/s`, or below one a second (a 256-px CycleGAN on a CPU: 0.0 img/s), `32.5 s/img`."""
    if 0 < rate < 0.95:
        return f"{1 / rate:.1f} s/{unit}"
    return f"{rate:.1f} {unit}/s"
