"""Endless, resumable batches: the data order is a pure function of (seed, position)."""

from __future__ import annotations

import itertools
import os
import signal
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gan.core.distributed import SINGLE_PROCESS, ProcessGroup, ShardedSampler
from gan.core.processes import STOP_SIGNALS

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
    return iter(loader)
