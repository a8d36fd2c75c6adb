"""Where and how a run computes: its autocast, the seeds and the CPUs (the device is checked in
gan/core/devices.py)."""

from __future__ import annotations

import contextlib
import math
import os
import random
from pathlib import Path

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
