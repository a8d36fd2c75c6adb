"""Where and how a run computes: its autocast, the seeds and the CPUs (the device is checked in
gan/core/devices.py)."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from gan.recipes.base import AutocastFactory


def make_autocast(device: torch.device, enabled: bool) -> AutocastFactory:
    """bf16 autocast on CUDA when `enabled` (no loss scaling needed); a no-op elsewhere."""
    if device.type == "cuda" and enabled:
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


