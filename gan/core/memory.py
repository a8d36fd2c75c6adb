"""How much memory there is, for the checks that refuse work before it runs out: on the CPU, an
allocation too large does not fail, the kernel's out-of-memory killer ends the process unsaid."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (torch-free to import: `out_of_memory` may be asked when memory has run out)
    import torch


def available_memory(device: torch.device) -> int | None:
    """Bytes free on a CUDA device, or available to new allocations on a Linux host without
    swapping (MemAvailable), and within the memory limits of this process's cgroups (a container's
    --memory, systemd's MemoryMax, a Slurm job's), which MemAvailable knows nothing of: under one, a
    check that passed let the kernel kill the command without a word. None when unknown."""
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    machine = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                machine = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    limited = cgroup_headroom()
    return machine if limited is None else limited if machine is None else min(machine, limited)


CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v2's and v1's files: the limit, the usage, and memory.stat's entries the kernel reclaims before
# it kills anything, counted in the usage (the page cache, active as well: a job that read its data set
# twice holds it all as active, and its headroom read near 0; v2's reclaimable slab too)
CGROUP_MEMORY_FILES = {"v2": ("memory.max", "memory.current", ("inactive_file", "active_file", "slab_reclaimable")),
                       "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes",
                              ("total_inactive_file", "total_active_file"))}
NO_LIMIT = 1 << 60  # (v1 writes "no limit" as 2**63 rounded down to a page)


def cgroup_headroom(root: Path = CGROUP_ROOT, membership: str | None = None) -> int | None:
    """Bytes this process may still allocate under its memory cgroups' limits, the least over its
    cgroup and those above it (`membership`: /proc/self/cgroup's text); None where none has a limit. A
    container that sees its own cgroup at the mount's root (a cgroup namespace) is read there."""
    if membership is None:
        try:
            membership = Path("/proc/self/cgroup").read_text()
        except OSError:
            return None
    found = []
    for line in membership.splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # cgroup v2 (at the root, or under unified/ beside v1's controllers)
            folders = [folder for base in (root, root / "unified") for folder in _with_parents(base, path)]
            found += [_headroom(folder, CGROUP_MEMORY_FILES["v2"]) for folder in folders]
        elif "memory" in controllers.split(","):
            found += [_headroom(folder, CGROUP_MEMORY_FILES["v1"]) for folder in _with_parents(root / "memory", path)]
    limits = [headroom for headroom in found if headroom is not None]
    return min(limits) if limits else None


def _with_parents(base: Path, path: str) -> list[Path]:
    """The cgroup folder `path` under the mount `base` and those above it to `base`; `base` alone where
    the path is not there (a container's namespace shows its own cgroup as the root)."""
    folder = base / path.strip("/")
    if not folder.is_dir():
        return [base] if base.is_dir() else []
    return [folder, *(parent for parent in folder.parents if parent.is_relative_to(base))]


def _headroom(folder: Path, files: tuple[str, str, tuple[str, ...]]) -> int | None:
    """A cgroup's limit less its usage, but what the kernel reclaims first; None without a limit."""
    limit_file, usage_file, reclaimable = files
    try:
        limit = (folder / limit_file).read_text().strip()
        if limit == "max" or int(limit) >= NO_LIMIT:
            return None
        usage = int((folder / usage_file).read_text())
        cache = 0
        with contextlib.suppress(OSError):
            for line in (folder / "memory.stat").read_text().splitlines():
                name, _, value = line.partition(" ")
                if name in reclaimable:
                    cache += int(value)
        return max(int(limit) - usage + cache, 0)
    except (OSError, ValueError):
        return None


def format_bytes(count: float) -> str:
    """Bytes in the largest binary unit under 1024 of it, named as one (`gan cache list` says MiB too): `3.1 TiB`."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    return f"{count:,.1f} TiB"


# What torch's CPU allocator says when an allocation fails: posix_memalign's failure (Linux, macOS), and
# _aligned_malloc's (Windows). Anything else read as a damaged file could have a good checkpoint set aside.
CPU_ALLOCATOR_FAILURES = ("can't allocate memory", "DefaultCPUAllocator: not enough memory")


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation that failed: CUDA's (torch.OutOfMemoryError), the CPU allocator's
    (a RuntimeError, worded by the platform), or Python's and NumPy's MemoryError (a process under a
    memory limit, `ulimit -v`). Told by names alone, importing nothing: memory may have run out for the import."""
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or (isinstance(error, RuntimeError) and any(words in str(error) for words in CPU_ALLOCATOR_FAILURES)))
