"""A decoded-image cache: the data set cropped, resized and stored once as uint8 on disk.

Decoding JPEGs every epoch is what limits small-GAN training. With `data.cache` on,
the images are decoded once into `<cache_dir>/<hash>.npy` (N, 3, R, R) uint8, with a
JSON header beside it naming the source, count, resolution, crop and version; any
change there, or to the files themselves (names, sizes, times), rebuilds it. Training
then gathers batches from the array (memory-mapped, or copied whole onto the GPU) and
flips and normalises them as tensors, with the same flips as the uncached path.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from gan.data.image_files import ImageFileDataset
from gan.data.sampling import ResumableSampler, shard
from gan.distributed import SINGLE_PROCESS, ProcessGroup
from gan.progress import Progress

VERSION = 1


def user_cache_dir(name: str) -> Path:
    """`$XDG_CACHE_HOME/gan/<name>`, or `~/.cache/gan/<name>`: where gan keeps what it can recompute."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gan" / name


def files_fingerprint(paths: list[Path]) -> str:
    """Changes when any file is added, removed, renamed, rewritten or touched."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_header(dataset: ImageFileDataset, identity: dict) -> dict:
    """What the cached array depends on: the data set's identity (source, resolution, crop, ...), its files."""
    return {"version": VERSION, **identity, "count": len(dataset), "resolution": dataset.resolution,
            "files": files_fingerprint(dataset.paths)}


def load_or_build_cache(dataset: ImageFileDataset, identity: dict, cache_dir: Path,
                        progress_stream=None) -> np.ndarray:
    """The (N, 3, R, R) uint8 array of the data set, memory-mapped; built first if missing or stale."""
    header = cache_header(dataset, identity)
    name = hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:20]
    array_path, header_path = cache_dir / f"{name}.npy", cache_dir / f"{name}.json"
    if header_path.is_file() and array_path.is_file():
        try:
            if json.loads(header_path.read_text()) == header:
                return np.load(array_path, mmap_mode="r")
        except (ValueError, OSError):
            pass  # a damaged cache is rebuilt
    cache_dir.mkdir(parents=True, exist_ok=True)
    header_path.unlink(missing_ok=True)  # the header, written last, marks a complete array
    _build(dataset, array_path, progress_stream)
    temp = header_path.with_suffix(".json.tmp")
    temp.write_text(json.dumps(header, indent=1))
    os.replace(temp, header_path)
    return np.load(array_path, mmap_mode="r")


def _build(dataset: ImageFileDataset, array_path: Path, progress_stream) -> None:
    count, size = len(dataset), dataset.resolution
    print(f"decoding {count} images once into the cache '{array_path}' ({count * 3 * size * size / 2**20:.0f} MiB)",
          file=sys.stderr)
    temp = array_path.with_suffix(".npy.tmp")
    array = np.lib.format.open_memmap(temp, mode="w+", dtype=np.uint8, shape=(count, 3, size, size))
    progress = Progress(count, 0, progress_stream, unit="image")
    for index in range(count):
        # an undecodable file gets the next readable image, as in the uncached path
        image = dataset.skip_unreadable(dataset.load, index, count)
        array[index] = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
        if index % 500 == 499 or index == count - 1:
            progress.update(index + 1, {}, (index + 1) / max(time.perf_counter() - progress.started_at, 1e-9))
    progress.close()
    array.flush()
    del array
    os.replace(temp, array_path)


class CachedBatches:
    """Endless batches `{"image": (B, 3, R, R) float in [-1, 1]}` gathered from a cached array.

    Sample order and flips come from the same ResumableSampler and per-sample seeds as the
    uncached loader, so the two paths give identical batches and resume the same way.
    From a memory-mapped array, batches are written into two reused buffers (allocating a
    fresh 12 MB tensor per batch costs more than filling it): a batch stays valid until
    the next-but-one is drawn, which the training loop, one step per batch, respects.
    """

    def __init__(self, images: np.ndarray, batch_size: int, seed: int, start_sample: int, hflip: bool,
                 device: torch.device, on_device: bool, group: ProcessGroup = SINGLE_PROCESS):
        sampler, batch_size = shard(ResumableSampler(len(images), seed, start=start_sample), batch_size, group)
        self.batch_size, self.hflip, self.device = batch_size, hflip, device
        # np.asarray: a plain view of the memory map (its subclass costs time on every gather)
        self.images = torch.from_numpy(np.array(images)).to(device) if on_device else np.asarray(images)
        self.samples: Iterator[tuple[int, int]] = iter(sampler)
        self.buffers = [torch.empty(batch_size, *images.shape[1:]) for _ in range(2)] if not on_device else []
        self.drawn = 0

    def __iter__(self) -> "CachedBatches":
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        keys = [next(self.samples) for _ in range(self.batch_size)]
        indices = [index for index, _ in keys]
        flipped = [row for row, (_, seed) in enumerate(keys) if self.hflip and random.Random(seed).random() < 0.5]
        self.drawn += 1
        if isinstance(self.images, torch.Tensor):
            batch = self.images[torch.tensor(indices, device=self.device)]
            if flipped:
                rows = torch.tensor(flipped, device=self.device)
                batch[rows] = batch[rows].flip(-1)
            return {"image": batch.float().div_(127.5).sub_(1.0)}
        rows = torch.from_numpy(np.take(self.images, indices, axis=0))  # memory-mapped: copy just these rows
        for row in flipped:  # on uint8, row by row: the cheapest flip here
            rows[row] = rows[row].flip(-1)
        buffer = self.buffers[self.drawn % 2]
        buffer.copy_(rows).div_(127.5).sub_(1.0)
        return {"image": buffer.to(self.device, non_blocking=True)}
