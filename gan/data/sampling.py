"""Endless, resumable batches: the data order is a pure function of (seed, position)."""

from __future__ import annotations

import errno
import itertools
import os
import signal
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

from gan.core.distributed import SINGLE_PROCESS, ProcessGroup, ShardedSampler
from gan.core.memory import format_bytes
from gan.core.processes import STOP_SIGNALS
from gan.data.decode import ProcessLimitError, open_file_limit

_MASK63 = (1 << 63) - 1


class ResumableSampler(Sampler):
    """Yields `(index, augmentation_seed)` forever, from sample position `start` on.

    Epoch e is a permutation drawn from a generator seeded with (seed, e); the
    augmentation seed of the sample at stream position p is derived from (seed, p).
    So the stream from position p is the same whether the run started there or
    resumed there, with any number of loader workers.
    """

    def __init__(self, size: int, seed: int, start: int = 0, shuffle: bool = True):
        self.size = size
        self.seed = seed
        self.start = start
        self.shuffle = shuffle

    def _order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) & _MASK63)
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start
        while True:
            epoch, offset = divmod(position, self.size)
            order = self._order(epoch)
            for index in order[offset:]:
                yield index, (self.seed * 0x9E3779B97F4A7C15 + position) & _MASK63
                position += 1


def shard(sampler: Sampler, batch_size: int, group: ProcessGroup) -> tuple[Sampler, int]:
    """(this process's sampler, its batch size) for global batches of `batch_size`."""
    if not group.distributed:
        return sampler, batch_size
    sharded = ShardedSampler(sampler, batch_size, group)
    return sharded, sharded.local_batch


def first_samples(dataset: Dataset, count: int, seed: int) -> dict[str, torch.Tensor]:
    """The first `count` samples of the training stream (position 0 on, augmented as there), as one
    batch: the same images whether a run started or resumed, in any process."""
    keys = itertools.islice(ResumableSampler(len(dataset), seed), min(count, len(dataset)))
    items = [dataset[key] for key in keys]
    return {name: torch.stack([item[name] for item in items]) for name in items[0]}


# How long a loader worker outlives a SIGTERM: the trainer, signalled with it, notes its stop first
WORKER_SIGTERM_GRACE_S = 10


def _leave_stopping_to_the_trainer(worker_id: int) -> None:
    """A loader worker leaves the trainer's process group, and ignores every signal the trainer
    takes as a stop (STOP_SIGNALS) but SIGTERM, which ends it WORKER_SIGTERM_GRACE_S later. Ctrl-C to
    the group, and a scheduler's SIGTERM to every process of the job (SLURM's), killed it before the
    trainer had noted its stop: the run ended as a dead worker (exit 1), its checkpoint unwritten.
    SIGTERM is still how a worker is ended when it is left running (multiprocessing's exit sends it
    to an iterator's workers never shut down, then waits for them: ignored, the process never ended).
    The trainer ends its workers itself, and they end on their own, within seconds, when it dies
    (PyTorch's watchdog in each sees its parent gone)."""
    if hasattr(os, "setsid"):
        os.setsid()
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGTERM, _end_after_a_grace)


def _end_after_a_grace(signum: int, frame: object) -> None:
    signal.alarm(WORKER_SIGTERM_GRACE_S)  # (SIGALRM's default action ends the process)


def batches(dataset: Dataset, batch_size: int, seed: int, start_sample: int, num_workers: int,
            pin_memory: bool = False, group: ProcessGroup = SINGLE_PROCESS) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches, starting at sample `start_sample` of the endless stream; with several
    processes, this one's share of each global batch of `batch_size`."""
    sampler, local_batch = shard(ResumableSampler(len(dataset), seed, start=start_sample), batch_size, group)
    loader = DataLoader(
        dataset,
        batch_size=local_batch,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=True,
        # A private generator: creating the loader's iterator must not draw from the global RNG.
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=_leave_stopping_to_the_trainer,
        # The sampler is endless, so the one iterator lives for the whole run: persistent
        # workers would change nothing. Deeper prefetch rides out slow files.
        prefetch_factor=4 if num_workers else None,
    )
    try:
        return iter(loader)
    except OSError as error:  # (os.pipe for each worker started: EMFILE, with no file to name)
        if error.errno not in (errno.EMFILE, errno.ENFILE):
            raise
        _end_workers_of_a_failed_start(error)
    # (raised here, not with that error as its context, whose traceback holds the half-made iterator: its pipes
    # are closed as it goes, for what the run does on its way out)
    cause, remedy = open_file_shortage(num_workers)
    raise ProcessLimitError(f"starting {num_workers} data-loading workers failed: {cause}. {remedy}")


def _end_workers_of_a_failed_start(error: OSError) -> None:
    """The workers a loader had started when starting the next failed, ended now, and their pipes closed:
    torch's clean-up of the half-made iterator fails ("no attribute '_workers_status'"), so they lived on
    to the exit (which waited WORKER_SIGTERM_GRACE_S and more for them), holding the files whose lack
    stopped the run: removing what the start wrote failed on it, and said that instead."""
    trace = error.__traceback__.tb_next  # (from below `batches`: its own locals, read, would keep `error` alive)
    while trace is not None:
        made = trace.tb_frame.f_locals.get("self")
        if isinstance(made, _MultiProcessingDataLoaderIter):
            made._workers_status = [True] * len(getattr(made, "_workers", []))
            if hasattr(made, "_workers_done_event"):  # (made before the first worker is)
                made._shutdown_workers()
            made._shutdown = True  # (its own clean-up, when collected, then does nothing)
            return
        trace = trace.tb_next


def end_batches(stream: Iterator | None) -> None:
    """Ends the loader workers of `stream` (of `batches`) at once, rather than when the last reference to
    it goes: the error that stops a run on its data holds it in its traceback up to the exit, where
    multiprocessing sent the workers the SIGTERM they take WORKER_SIGTERM_GRACE_S to obey (a 10 s wait,
    then torch's "DataLoader worker ... is killed by signal: Alarm clock" traceback)."""
    shut_down = getattr(stream, "_shutdown_workers", None)
    if shut_down is not None:
        shut_down()


# How torch says its loader workers' shared memory (/dev/shm) ran out: a batch it could not allocate or
# write there, or a worker killed by SIGBUS as it wrote to pages a full tmpfs could not give
SHARED_MEMORY_FULL = ("unable to allocate shared memory", "unable to write to file </torch_",
                      "is killed by signal: Bus error")
SHARED_MEMORY = "/dev/shm"


def loader_shortage(error: BaseException, num_workers: int) -> tuple[str, str] | None:
    """(what ran out, what to do) when reading the training data failed for want of a resource of the
    system rather than of the data: open files, or the shared memory the loader workers hand batches over
    in (Docker's 64 MB /dev/shm); None for any other error. torch's own advice for the first is to call
    set_sharing_strategy in one's code, and its words for the second read as a full disk."""
    text = str(error)
    if getattr(error, "errno", None) in (errno.EMFILE, errno.ENFILE) or "Too many open files" in text:
        return open_file_shortage(num_workers)
    full = any(sign in text for sign in SHARED_MEMORY_FULL) or ("No space left on device" in text and any(
        where in text for where in (SHARED_MEMORY, "torch_")))
    if not full:
        return None
    return (f"the shared memory that the {num_workers} loader workers hand their batches over in is too small: "
            f"{_shared_memory_size()}",
            "Give it more (docker run --shm-size=2g, or --ipc=host), or use less of it: data.cache = \"mmap\" "
            "(celeba and folder data: no workers), fewer data.num_workers (0: none), or a smaller train.batch_size")


def open_file_shortage(num_workers: int) -> tuple[str, str]:
    """(what ran out, what to do) for a run out of open files: each loader worker holds files and pipes of
    its own, beside those of the trainer it was forked from."""
    limit = open_file_limit()
    return (f"the open-file limit, `ulimit -n`{f' = {limit}' if limit else ''}, is too low for data.num_workers = "
            f"{num_workers}", "Raise it (ulimit -n 4096, in the shell that runs gan)"
            + (" or use fewer workers (data.num_workers = 0 reads in this process)" if num_workers else ""))


def _shared_memory_size() -> str:
    """'/dev/shm holds 64.0 MiB, 60.1 MiB of it free now', or the folder alone where it cannot be measured."""
    try:
        found = os.statvfs(SHARED_MEMORY)
    except (OSError, AttributeError):  # (no statvfs on Windows)
        return SHARED_MEMORY
    return (f"{SHARED_MEMORY} holds {format_bytes(found.f_blocks * found.f_frsize)}, "
            f"{format_bytes(found.f_bavail * found.f_frsize)} of it free now")
