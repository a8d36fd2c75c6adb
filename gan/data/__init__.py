"""Data sets, by name: `[data] dataset = "celeba" | "folder" | "synthetic"`."""

from __future__ import annotations

from torch.utils.data import Dataset

from gan.config import DataConfig
from gan.data.image_files import celeba_dataset, image_folder_dataset
from gan.data.synthetic import SyntheticFaces
from gan.registry import ConfigError, Registry

DATASETS: Registry = Registry("dataset")


@DATASETS.register("celeba")
def _celeba(config: DataConfig) -> Dataset:
    return celeba_dataset(config.root, config.resolution, config.crop, config.split, config.hflip,
                          config.strict, config.max_images)


@DATASETS.register("folder")
def _folder(config: DataConfig) -> Dataset:
    return image_folder_dataset(config.root, config.resolution, config.hflip, config.strict, config.max_images)


@DATASETS.register("synthetic")
def _synthetic(config: DataConfig) -> Dataset:
    return SyntheticFaces(config.resolution, config.synthetic_size, config.hflip)


def build_dataset(config: DataConfig) -> Dataset:
    """The data set the `[data]` section describes."""
    if config.dataset != "synthetic" and not config.root:
        raise ConfigError(f"data.root is empty: set it to the image folder of dataset '{config.dataset}', "
                          "e.g. --set data.root=/path/to/images")
    return DATASETS.get(config.dataset)(config)
