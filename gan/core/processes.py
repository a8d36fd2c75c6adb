"""How a training process meets its end from outside: the signals that stop it with a checkpoint,
a terminal that goes away, and a parent (a sweep, torchrun) that dies first."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import sys

SET_PARENT_DEATH_SIGNAL = 1  # PR_SET_PDEATHSIG, <linux/prctl.h>

# Ctrl-C; `kill` or a scheduler; the terminal closing (an ssh session that drops): each one stops a
# run with a checkpoint, and the process exits with 128 + the signal's number.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def leave_the_terminal_on_hangup(signum: int) -> bool:
    """In a handler of the STOP_SIGNALS: after SIGHUP, `leave_the_terminal`. Returns whether it was SIGHUP."""
    hangup = signum == getattr(signal, "SIGHUP", None)
    if hangup:
        leave_the_terminal()
    return hangup


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
