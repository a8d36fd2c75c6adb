"""What a training run changes in its process, and puts back when it ends, so that a library
caller (a notebook, a sweep script) goes on as it was: its random streams, grad mode, default
dtype and cuDNN's autotuner. One run trains at a time in a process: runs share those streams."""

from __future__ import annotations

import contextlib
import random
import threading
from typing import Iterator

import numpy as np
import torch

_ONE_RUN = threading.Lock()  # (per process, as the random streams that two runs would share)


class RunInProgress(RuntimeError):
    """Another training run is in progress in this process."""


@contextlib.contextmanager
def process_state_kept(device: torch.device) -> Iterator[None]:
    """Train inside the block with grad mode on (a caller's `torch.no_grad()` or `inference_mode()` would
    stop the first backward pass) and float32 as the default dtype (a caller's float64 would build
    networks their float32 data cannot run through); afterwards, the process's random streams (which the
    run seeds), grad mode, default dtype and `cudnn.benchmark` are as they were, however the run ended.
    RunInProgress while another thread's run trains."""
    if not _ONE_RUN.acquire(blocking=False):
        raise RunInProgress("a gan training run is in progress in this process already (called from within it, or "
                            "in another thread): runs in one process share torch's random streams, so each would "
                            "change the other's results without a word; train one after the other, or in "
                            "processes of their own")
    try:
        streams = random.getstate(), np.random.get_state(), torch.get_rng_state()
        cuda_stream = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        default_dtype, benchmark = torch.get_default_dtype(), torch.backends.cudnn.benchmark
        torch.set_default_dtype(torch.float32)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                yield
        finally:
            random.setstate(streams[0])
            np.random.set_state(streams[1])
            torch.set_rng_state(streams[2])
            if cuda_stream is not None:
                torch.cuda.set_rng_state(cuda_stream, device)
            torch.set_default_dtype(default_dtype)
            torch.backends.cudnn.benchmark = benchmark
    finally:
        _ONE_RUN.release()
