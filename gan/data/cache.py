"""A decoded-image cache: the data set cropped, resized and stored once as uint8 on disk.

Decoding JPEGs every epoch is what limits small-GAN training. With `data.cache` on,
the images are decoded once into `<cache_dir>/<hash>.npy` (N, 3, R, R) uint8, with a
JSON header beside it naming the source, count, resolution, crop and version; any
change there, or to the files themselves (names, sizes, times), rebuilds it. Training
then gathers batches from the array (memory-mapped, or copied whole onto the GPU) and
flips and normalises them as tensors (on the GPU when training there), with the same
flips as the uncached path. Under torchrun one process per machine builds it.
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
from gan.distributed import SINGLE_PROCESS, ProcessGroup, barrier
from gan.progress import Progress
from gan.registry import ConfigError

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
    """The (N, 3, R, R) uint8 array of the data set, memory-mapped; built first if missing or stale.

    Safe against other processes building the same cache: each writes under temp names of
    its own and renames, so a reader maps either a complete old array or a complete new one."""
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
    _remove_abandoned_temps(cache_dir, name)
    _build(dataset, array_path, progress_stream)
    temp = header_path.with_suffix(f".json.{os.getpid()}.tmp")
    temp.write_text(json.dumps(header, indent=1))
    os.replace(temp, header_path)
    return np.load(array_path, mmap_mode="r")


def _remove_abandoned_temps(cache_dir: Path, name: str) -> None:
    """Temp files of builds of this cache whose process is gone (killed, crashed): they can be
    gigabytes. A build still running in another process keeps its own."""
    for temp in cache_dir.glob(f"{name}.*.*.tmp"):  # <name>.npy.<pid>.tmp, <name>.json.<pid>.tmp
        pid = temp.suffixes[-2].lstrip(".")
        if pid.isdigit() and not _process_alive(int(pid)):
            temp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _build(dataset: ImageFileDataset, array_path: Path, progress_stream) -> None:
    count, size = len(dataset), dataset.resolution
    print(f"decoding {count} images once into the cache '{array_path}' ({count * 3 * size * size / 2**20:.0f} MiB)",
          file=sys.stderr)
    temp = array_path.with_suffix(f".npy.{os.getpid()}.tmp")  # never a file another process has open
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


def load_or_build_shared_cache(dataset: ImageFileDataset, identity: dict, cache_dir: Path,
                               group: ProcessGroup = SINGLE_PROCESS) -> np.ndarray:
    """`load_or_build_cache` under torchrun: the first process of each machine builds, the others
    wait at a barrier and then load what it built."""
    builder = group.local_rank == 0
    images = load_or_build_cache(dataset, identity, cache_dir) if builder else None
    barrier(group)
    return images if images is not None else load_or_build_cache(dataset, identity, cache_dir)


UPLOAD_CHUNK_BYTES = 256 * 2**20  # host memory an upload to the GPU holds at a time


def upload_to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """The cached array as one uint8 tensor on `device`, copied in chunks so host memory stays
    bounded (the array is memory-mapped); a clear error when the GPU cannot hold it."""
    needed = images.nbytes
    advice = ('use data.cache="ram" (memory-mapped on the host), a lower data.resolution or fewer images '
              "(data.max_images)")
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        if needed > free:
            raise ConfigError(f'data.cache="device" needs {needed / 2**30:.2f} GiB of GPU memory for {len(images)} '
                              f"images of {images.shape[-1]} px; {device} has {free / 2**30:.2f} GiB free of "
                              f"{total / 2**30:.2f} GiB: {advice}")
    try:
        uploaded = torch.empty(images.shape, dtype=torch.uint8, device=device)
    except torch.cuda.OutOfMemoryError:
        raise ConfigError(f'data.cache="device" needs {needed / 2**30:.2f} GiB of GPU memory on {device}, '
                          f"which could not be allocated: {advice}") from None
    per_chunk = max(1, UPLOAD_CHUNK_BYTES // max(1, images[0].nbytes))
    for start in range(0, len(images), per_chunk):
        chunk = torch.from_numpy(np.array(images[start:start + per_chunk]))  # a writable copy of the mapped pages
        uploaded[start:start + len(chunk)].copy_(chunk)
    return uploaded


def _on_device(values: list, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small host list as a tensor on `device`; to a GPU through pinned memory, without a sync."""
    tensor = torch.tensor(values, dtype=dtype)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


def _flip_and_scale(images: torch.Tensor, flips: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, R, R) -> float in [-1, 1] by the table `levels` (see `signed_levels`), rows where
    `flips` is true mirrored, on their device."""
    mirrored = torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
    return levels[mirrored.long()]


def signed_levels(device: torch.device) -> torch.Tensor:
    """The 256 grey levels in [-1, 1], computed on the CPU as the image loader computes them. A
    lookup keeps batches bit-identical on any device: CUDA divides by a scalar through its
    reciprocal, which differs from the CPU's division in the last bit."""
    return torch.arange(256, dtype=torch.uint8).float().div_(127.5).sub_(1.0).to(device)


class CachedBatches:
    """Endless batches `{"image": (B, 3, R, R) float in [-1, 1]}` gathered from a cached array.

    Sample order and flips come from the same ResumableSampler and per-sample seeds as the
    uncached loader, so the two paths give identical batches and resume the same way.
    Where the images are and what crosses to the GPU per batch:
    - on the device (`data.cache = "device"`): the whole array; only the batch's indices
      and flips cross, through pinned memory, so a step never waits for the host.
    - memory-mapped, training on CUDA: the batch's uint8 rows are gathered straight into
      pinned memory, copied asynchronously, and flipped and scaled on the GPU.
    - memory-mapped, training on the CPU: rows are flipped on uint8 and scaled into two
      reused buffers (allocating a fresh 12 MB tensor per batch costs more than filling
      it): a batch stays valid until the next-but-one is drawn, which the training loop,
      one step per batch, respects.
    """

    def __init__(self, images: np.ndarray, batch_size: int, seed: int, start_sample: int, hflip: bool,
                 device: torch.device, on_device: bool, group: ProcessGroup = SINGLE_PROCESS):
        sampler, batch_size = shard(ResumableSampler(len(images), seed, start=start_sample), batch_size, group)
        self.batch_size, self.hflip, self.device = batch_size, hflip, device
        # np.asarray: a plain view of the memory map (its subclass costs time on every gather)
        self.images = upload_to_device(images, device) if on_device else np.asarray(images)
        self.samples: Iterator[tuple[int, int]] = iter(sampler)
        on_host_for_cpu = not on_device and device.type == "cpu"
        self.buffers = [torch.empty(batch_size, *images.shape[1:]) for _ in range(2)] if on_host_for_cpu else []
        self.levels = signed_levels(device)
        self.drawn = 0

    def __iter__(self) -> "CachedBatches":
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        keys = [next(self.samples) for _ in range(self.batch_size)]
        indices = [index for index, _ in keys]
        flips = [self.hflip and random.Random(seed).random() < 0.5 for _, seed in keys]
        self.drawn += 1
        if isinstance(self.images, torch.Tensor):
            rows = self.images[_on_device(indices, torch.int64, self.device)]
            return {"image": _flip_and_scale(rows, _on_device(flips, torch.bool, self.device), self.levels)}
        if self.device.type == "cuda":
            pinned = torch.empty((self.batch_size, *self.images.shape[1:]), dtype=torch.uint8, pin_memory=True)
            np.take(self.images, indices, axis=0, out=pinned.numpy())
            rows = pinned.to(self.device, non_blocking=True)
            return {"image": _flip_and_scale(rows, _on_device(flips, torch.bool, self.device), self.levels)}
        rows = torch.from_numpy(np.take(self.images, indices, axis=0))  # memory-mapped: copy just these rows
        for row, flip in enumerate(flips):  # on uint8, row by row: the cheapest flip here
            if flip:
                rows[row] = rows[row].flip(-1)
        buffer = self.buffers[self.drawn % 2]
        buffer.copy_(rows).div_(127.5).sub_(1.0)
        return {"image": buffer}
