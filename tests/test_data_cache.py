"""The decoded-image cache: same batches as the uncached loader, rebuilt when its source changes."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_rgb, tiny_config

import gan.data.cache as cache_module
from gan.config import DataConfig
from gan.data import build_dataset, training_batches
from gan.registry import ConfigError
from gan.train import train

CPU = torch.device("cpu")


@pytest.fixture
def folder(tmp_path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for index in range(10):
        random_rgb((30 + index, 24 + 2 * index), seed=index).save(images / f"{index:02d}.png")
    return images


def config_for(folder: Path, cache: str, tmp_path: Path) -> DataConfig:
    return DataConfig(dataset="folder", root=str(folder), resolution=16, num_workers=0, cache=cache,
                      cache_dir=str(tmp_path / "cache"), hflip=True)


def take(stream, count: int) -> list[torch.Tensor]:
    return [next(stream)["image"].clone() for _ in range(count)]  # cached batches reuse two buffers


@pytest.mark.parametrize("mode", ["ram", "device"])
def test_cached_batches_equal_the_uncached_loader_from_any_position(folder, tmp_path, mode):
    uncached_config, cached_config = config_for(folder, "off", tmp_path), config_for(folder, mode, tmp_path)
    dataset = build_dataset(uncached_config)
    for start in (0, 7):  # 7: a resume mid-epoch
        uncached = take(training_batches(uncached_config, dataset, 4, 3, start, CPU), 6)  # 2.4 epochs
        cached = take(training_batches(cached_config, dataset, 4, 3, start, CPU), 6)
        for a, b in zip(uncached, cached):
            assert torch.equal(a, b)
    flipped = torch.cat(cached)
    assert flipped.dtype == torch.float32 and flipped.min() >= -1 and flipped.max() <= 1


def test_the_cache_is_built_once_and_rebuilt_when_the_source_changes(folder, tmp_path, monkeypatch):
    builds = []
    original = cache_module._build
    monkeypatch.setattr(cache_module, "_build", lambda *args: builds.append(args[1]) or original(*args))
    config = config_for(folder, "ram", tmp_path)

    def first_batch() -> torch.Tensor:
        return next(training_batches(config, build_dataset(config), 10, 0, 0, CPU))["image"]

    before = first_batch()
    first_batch()
    assert len(builds) == 1  # the second run reads the cache
    random_rgb((40, 40), seed=99).save(folder / "03.png")  # one file rewritten
    after = first_batch()
    assert len(builds) == 2 and not torch.equal(before, after)
    uncached = config_for(folder, "off", tmp_path)
    assert torch.equal(after, next(training_batches(uncached, build_dataset(uncached), 10, 0, 0, CPU))["image"])
    (folder / "09.png").unlink()  # one file removed
    first_batch()
    config.resolution = 8  # another size
    first_batch()
    assert len(builds) == 4


def test_a_cache_without_its_header_is_rebuilt(folder, tmp_path):
    config = config_for(folder, "ram", tmp_path)
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    (header,) = (tmp_path / "cache").glob("*.json")
    header.write_text("{broken")
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert header.read_text().startswith("{\n")


def test_training_with_the_cache_gives_the_same_weights(folder, tmp_path):
    common = ["data.dataset=folder", f"data.root='{folder}'", "data.resolution=32", "data.hflip=true",
              f"data.cache_dir='{tmp_path / 'cache'}'"]
    runs = [train(tiny_config(*common, f"data.cache={mode}"), tmp_path / mode, CPU, progress_stream=sys.stdout)
            for mode in ("off", "ram")]
    weights = [torch.load(run.checkpoint, weights_only=True)["networks"]["generator"] for run in runs]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_the_cache_is_only_for_image_file_datasets():
    with pytest.raises(ConfigError, match="data.cache applies to the celeba and folder datasets, not 'synthetic'"):
        tiny_config("data.cache=ram")
    with pytest.raises(ConfigError, match="data.cache must be one of off, ram, device"):
        tiny_config("data.cache=gpu")


def test_the_device_copy_is_made_in_chunks_and_equals_the_array(monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (7, 3, 4, 4), dtype=np.uint8)
    monkeypatch.setattr(cache_module, "UPLOAD_CHUNK_BYTES", 2 * images[0].nbytes)  # 4 chunks: 2, 2, 2, 1
    uploaded = cache_module.upload_to_device(images, CPU)
    assert uploaded.dtype == torch.uint8 and torch.equal(uploaded, torch.from_numpy(images))


def test_a_device_cache_larger_than_the_free_gpu_memory_says_what_it_needs(monkeypatch):
    huge = np.broadcast_to(np.zeros((1, 3, 128, 128), dtype=np.uint8), (43691, 3, 128, 128))  # 2 GiB, no memory
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (2**30, 80 * 2**30))
    with pytest.raises(ConfigError, match=r'data.cache="device" needs 2.00 GiB of GPU memory for 43691 images of '
                                          r"128 px; cuda has 1.00 GiB free of 80.00 GiB: use data.cache=\"ram\""):
        cache_module.upload_to_device(huge, torch.device("cuda"))


def test_a_killed_builders_temp_file_is_removed_and_a_live_ones_kept(folder, tmp_path):
    import subprocess

    config = config_for(folder, "ram", tmp_path)
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    (header,) = (tmp_path / "cache").glob("*.json")
    header.unlink()  # so the next start rebuilds
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid now names no process
    abandoned = tmp_path / "cache" / f"{header.stem}.npy.{gone.pid}.tmp"
    building = tmp_path / "cache" / f"{header.stem}.npy.{os.getppid()}.tmp"  # a process that is alive
    for path in (abandoned, building):
        path.write_bytes(b"partial")
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert not abandoned.exists() and building.exists()
