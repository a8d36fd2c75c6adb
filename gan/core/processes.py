"""How a training process meets its end from outside: the signals that stop it with a checkpoint,
a terminal that goes away, and a parent (a sweep, torchrun) that dies first."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import math
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Iterator

SET_PARENT_DEATH_SIGNAL = 1  # PR_SET_PDEATHSIG, <linux/prctl.h>

# Ctrl-C; `kill` or a scheduler; the terminal closing (an ssh session that drops); a scheduler's warning
# before its time limit (SLURM's `--signal=USR1@120`, which killed the run with no checkpoint): each
# one stops a run with a checkpoint, and the process exits with 128 + the signal's number.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")
                     if hasattr(signal, name))


def leave_the_terminal_on_hangup(signum: int) -> bool:
    """In a handler of the STOP_SIGNALS: after SIGHUP, `leave_the_terminal`. Returns whether it was SIGHUP."""
    hangup = signum == getattr(signal, "SIGHUP", None)
    if hangup:
        leave_the_terminal()
    return hangup


def ctrl_c_reaches_this_process() -> bool:
    """Whether this process is in its terminal's foreground group, where a Ctrl-C typed reaches it
    (not so for a run that `kill` or a scheduler stops, nor one started in the background)."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (AttributeError, OSError, ValueError):  # (no stdin, not a terminal, or not POSIX)
        return False


def leave_the_terminal() -> None:
    """After SIGHUP: the terminal is gone, and a write to it fails (EIO), which would end a run in a
    traceback before its checkpoint. The standard streams that were that terminal now go to
    /dev/null; those redirected to a file (a log) keep it, and so still say where the run stopped."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for descriptor in (0, 1, 2):
            if _terminal_or_hung_up(descriptor):
                os.dup2(null, descriptor)
    finally:
        os.close(null)


def _terminal_or_hung_up(descriptor: int) -> bool:
    """Whether `descriptor` is a terminal, one that has hung up included (os.isatty says no to
    those: asked for its settings, a hung-up terminal answers EIO, a file or pipe ENOTTY)."""
    import termios  # (POSIX, as SIGHUP is)

    try:
        termios.tcgetattr(descriptor)
    except termios.error as error:
        return error.args[0] == errno.EIO
    return True


def stop_with_parent(parent_pid: int) -> None:
    """Have the kernel send this process SIGTERM when `parent_pid`, its parent, dies, kill -9
    included: a training process then checkpoints and stops rather than training on alone and
    holding its run directory's lock. Linux only (prctl); elsewhere nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None).prctl(SET_PARENT_DEATH_SIGNAL, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def interrupt_on_sigterm() -> dict[int, Any]:
    """SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 (the STOP_SIGNALS other than SIGINT) raise KeyboardInterrupt,
    as Ctrl-C does, so that a command stopped by them cleans up what it started instead of dying
    mid-write (`gan train` before training begins: a decoded-image cache can take minutes; `gan
    sample`'s part of a set). The training loop handles them all itself while it runs. (An ignored
    signal stays ignored.) Returns the handlers replaced, for `signal.signal` to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, _raise_terminated) for signum in STOP_SIGNALS
            if signum != signal.SIGINT and signal.getsignal(signum) is not signal.SIG_IGN}


@contextlib.contextmanager
def stops_raise_interrupts() -> Iterator[None]:
    """Inside the block (a command), the stop signals other than SIGINT raise KeyboardInterrupt as
    Ctrl-C does (`interrupt_on_sigterm`), until the command's outputs are all in place
    (`stops_held_to_the_end`): from then on every stop is ignored, past the block to the process's
    exit (an ONNX export's teardown takes seconds; a stop then said "stopped" over whole files, or
    SIGTERM's default action ended it with 143). A command run in a process that goes on (click's
    CliRunner, a notebook) gets its handlers back from `stop_handlers_restored`."""
    handlers = interrupt_on_sigterm()
    outputs_in_place: list[bool] = []
    _COMMANDS.append(outputs_in_place)
    try:
        yield
    finally:
        _COMMANDS.pop()  # (this block's: blocks nest)
        for signum, handler in handlers.items() if not outputs_in_place else ():
            signal.signal(signum, handler)


@contextlib.contextmanager
def stop_handlers_restored() -> Iterator[None]:
    """The stop signals' handlers, after the block, as they were before it: around a command run in a
    process that goes on, whose stops `stops_raise_interrupts` leaves ignored once its outputs are in
    place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            if handler is not None:  # (None: not set from Python, so not to be set back from it)
                signal.signal(signum, handler)


class Terminated(KeyboardInterrupt):
    """SIGTERM, SIGHUP, SIGUSR1 or SIGUSR2, raised where Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum, frame) -> None:
    leave_the_terminal_on_hangup(signum)
    raise Terminated(signum)


def interrupt_of(signum: int) -> KeyboardInterrupt:
    """The KeyboardInterrupt a stop by `signum` raises in a command: Ctrl-C's own, or Terminated."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


@contextlib.contextmanager
def stops_noted() -> Iterator[list[int]]:
    """Inside the block, each stop signal that comes is noted before its handler runs (which raises
    KeyboardInterrupt as ever): for a library that may turn that KeyboardInterrupt into an error of
    its own (torch's C++ made one raised in ONNX tracing a RuntimeError, which its exporter wrapped
    as a failed export), so that its caller tells a stop from a failure. Yields the signals noted.
    (A signal with the default action or ignored keeps it: no handler of Python's runs for it.)"""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    received: list[int] = []
    handlers = {signum: handler for signum in STOP_SIGNALS if callable(handler := signal.getsignal(signum))}
    for signum, handler in handlers.items():
        signal.signal(signum, functools.partial(_noted_then_handled, received, handler))
    try:
        yield received
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _noted_then_handled(received: list[int], handler: Any, signum: int, frame) -> None:
    received.append(signum)
    handler(signum, frame)


@contextlib.contextmanager
def stop_signals_held(deliver: bool = True, to_the_end: bool = False) -> Iterator[list[int]]:
    """Hold the stop signals back until the block ends, then deliver the first that came, to the
    handlers there were: for steps that must not be left half done (moving a set of files into
    place). Each is noted by a handler of its own meanwhile (Python runs handlers in the main thread
    whichever thread the kernel gave the signal, so a mask of this thread alone would not hold).
    Yields the signals that came; with `deliver` off they are not delivered. With `to_the_end` (a
    command's last step, its outputs: `stops_held_to_the_end`), a block that completes in a command
    delivers none, and every stop after it is ignored (`stops_raise_interrupts`): the command is done."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                for signum in STOP_SIGNALS}
    _HELD_STOPS.append(received)
    completed = False
    try:
        yield received
        completed = True
    finally:
        _HELD_STOPS.remove(received)
        done = completed and to_the_end and bool(_COMMANDS)
        for signum, handler in previous.items():  # (ignored from here on, not restored in between: no gap)
            signal.signal(signum, signal.SIG_IGN if done else handler)
        if done:
            _COMMANDS[-1].append(True)
        elif received and deliver:
            signal.raise_signal(received[0])


@contextlib.contextmanager
def stops_held_to_the_end(what: str) -> Iterator[None]:
    """`stop_signals_held` around a command's last step, the writing of `what`: a stop that came
    meanwhile ends nothing once every file is in place, and is warned of (the command said "stopped by
    Ctrl-C" over whole files, and a retry was refused for them); one that comes after, to the
    process's exit, is ignored."""
    with stop_signals_held(deliver=False, to_the_end=True) as received:
        yield
    if received:
        warnings.warn(f"{signal.Signals(received[0]).name} came while {what} was written, and was held back until "
                      "every file was in place: nothing is missing", stacklevel=3)


# The stop signals each `stop_signals_held` block now running has held back (a process-wide fact, as
# signal handlers are): a wait inside one (for a folder another process holds) ends early on a stop.
_HELD_STOPS: list[list[int]] = []

# For each command now running (`stops_raise_interrupts`), whether its outputs are all in place (True
# in it), from when its stops are ignored: a process-wide fact too.
_COMMANDS: list[list[bool]] = []


def stop_held_back() -> bool:
    """Whether a stop signal came during a `stop_signals_held` block now running: it is delivered
    when the block ends, and nothing in it should wait long meanwhile."""
    return any(_HELD_STOPS)


def gan_launcher(processes: int) -> str:
    """How a command line starts gan again for a run of `processes`: under torchrun, with as many,
    when it ran under torchrun (a plain `gan train --resume` would go on in one process, and
    another number would change what BatchNorm computes)."""
    if processes <= 1:
        return "gan"
    # (torchrun's, in each process: the machines, and this machine's processes)
    machines, per_machine = os.environ.get("GROUP_WORLD_SIZE", ""), os.environ.get("LOCAL_WORLD_SIZE", "")
    if machines.isdigit() and int(machines) > 1:
        if per_machine.isdigit() and int(machines) * int(per_machine) == processes:
            return f"torchrun --nnodes={machines} --nproc_per_node={per_machine} ... -m gan"
        return f"torchrun --nnodes={machines} --nproc_per_node=<each machine's as before> ... -m gan"
    return f"torchrun --nproc_per_node={processes} ... -m gan"


# Where a container's CPU limit is read (cgroup v2's "QUOTA PERIOD" or "max"; v1's two files, quota -1: none)
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")


def usable_cpus() -> int:
    """The CPUs this process can compute on: those it may run on (taskset, a scheduler's cpuset), or fewer
    where a cgroup's CPU quota gives less time (`docker run --cpus`, a Kubernetes pod's CPU limit), which
    torch's thread count ignores: it takes a thread per core of the host, which then take turns."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        if CGROUP_CPU_MAX.is_file():
            quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        else:
            quota = (CGROUP_V1_CPU / "cpu.cfs_quota_us").read_text().strip()
            period = (CGROUP_V1_CPU / "cpu.cfs_period_us").read_text().strip()
        if quota not in ("max", "-1"):
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):  # (no cgroup files: another system, or none mounted)
        pass
    return cpus
