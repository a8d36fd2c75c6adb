"""A process that should not outlive the one that started it (a sweep's run, a torchrun worker)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

SET_PARENT_DEATH_SIGNAL = 1  # PR_SET_PDEATHSIG, <linux/prctl.h>


def stop_with_parent(parent_pid: int) -> None:
    """Have the kernel send this process SIGTERM when `parent_pid`, its parent, dies, kill -9
    included: a training process then checkpoints and stops rather than training on alone and
    holding its run directory's lock. Linux only (prctl); elsewhere nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None).prctl(SET_PARENT_DEATH_SIGNAL, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)
