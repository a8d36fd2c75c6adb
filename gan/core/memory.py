"""How much memory there is, for the checks that refuse work before it runs out: on the CPU, an
allocation too large does not fail, the kernel's out-of-memory killer ends the process unsaid."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (torch-free to import: `out_of_memory` may be asked when memory has run out)
    import torch


def available_memory(device: torch.device) -> int | None:
    """Bytes free on a CUDA device, or available to new allocations on a Linux host without
    swapping (MemAvailable); None when unknown."""
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
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
