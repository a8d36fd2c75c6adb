"""Data sets, by name: `[data] dataset = "celeba" | "folder" | "synthetic" | "paired" | "sr_pairs" | "unpaired"`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import unicodedata
import warnings
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import Dataset

from gan.core.config import IMAGE_FOLDER_DATASETS, DataConfig
from gan.core.distributed import SINGLE_PROCESS, ProcessGroup
from gan.core.registry import ConfigError, Registry
from gan.data.cache import CachedBatches, load_or_build_shared_cache, user_cache_dir
from gan.data.decode import NoReadableImages, files_fingerprint, find_images, why_missing
from gan.data.image_files import (
    ImageFileDataset,
    PartitionFileError,
    celeba_dataset,
    celeba_image_dir,
    image_folder_dataset,
    partition_candidates,
)
from gan.data.paired import paired_dataset
from gan.data.sampling import batches
from gan.data.super_resolution import Degradation, super_resolution_dataset
from gan.data.synthetic import SyntheticFaces
from gan.data.unpaired import domain_folders, unpaired_dataset

# name -> builder(config, train): `train=False` gives the evaluation / preview set
# (no random augmentation; for paired data the `val_split`, for SR the `val_root`).
DATASETS: Registry = Registry("dataset")


@DATASETS.register("celeba")
def _celeba(config: DataConfig, train: bool) -> Dataset:
    _require_root(config)
    return celeba_dataset(config.root, config.resolution, config.crop, config.split, config.hflip and train,
                          config.strict, config.max_images)


@DATASETS.register("folder")
def _folder(config: DataConfig, train: bool) -> Dataset:
    _require_root(config)
    return image_folder_dataset(config.root, config.resolution, config.hflip and train, config.strict,
                                config.max_images)


@DATASETS.register("synthetic")
def _synthetic(config: DataConfig, train: bool) -> Dataset:
    return SyntheticFaces(config.resolution, config.synthetic_size, config.hflip and train)


@DATASETS.register("paired")
def _paired(config: DataConfig, train: bool) -> Dataset:
    _require_root(config)
    split = config.split if train else (config.val_split or config.split)
    return paired_dataset(config.root, split, config.resolution, config.load_size, config.direction, config.layout,
                          train, config.hflip, config.strict, config.max_images if train else 0)


def degradation(config: DataConfig) -> Degradation:
    """The LR degradation the `[data]` section describes."""
    return Degradation(config.scale, config.blur_sigma, config.noise_std, config.jpeg_quality)


@DATASETS.register("sr_pairs")
def _sr_pairs(config: DataConfig, train: bool) -> Dataset:
    _require_root(config)
    root = config.root if train else (config.val_root or config.root)
    return super_resolution_dataset(root, degradation(config), config.resolution, config.upsample_input, train,
                                    config.hflip, config.strict, config.max_images if train else 0, config.rot90)


@DATASETS.register("unpaired")
def _unpaired(config: DataConfig, train: bool) -> Dataset:
    split = config.split if train else (config.val_split or config.split)
    a_root, b_root = config.a_root, config.b_root
    if not train and (a_root or b_root):  # data.a_root/b_root name the training folders
        if config.root and config.val_split:  # both domains' held-out folders, never one of each kind
            a_root = b_root = ""
        else:
            warnings.warn("previews and validation use the training folders (data.a_root, data.b_root): set "
                          "data.root and data.val_split to folders <val_split>A/ and <val_split>B/ to score held-out "
                          "images", stacklevel=2)
    if not (a_root and b_root):
        _require_root(config)
    a_folder, b_folder = domain_folders(config.root, split, a_root, b_root)
    if split in ("", "all") and not (a_folder.exists() or b_folder.exists()):  # (the default split, kept)
        raise ConfigError(f"unpaired data is read from data.root's <split>A/ and <split>B/ folders, and data.split = "
                          f"\"{split}\" names none ('{a_folder}' does not exist): set data.split (CycleGAN's: "
                          "\"train\") and data.val_split (\"test\"), or data.a_root and data.b_root")
    return unpaired_dataset(a_folder, b_folder, config.resolution, config.load_size, train, config.hflip,
                            config.strict, config.max_images if train else 0)


def _require_root(config: DataConfig) -> None:
    if not config.root:
        raise ConfigError(f"data.root is empty: set it to the image folder of dataset '{config.dataset}', "
                          "e.g. --set data.root=/path/to/images")


# The folder keys each data set reads (the rest read data.root alone; synthetic, none).
FOLDER_KEYS = {"synthetic": (), "sr_pairs": ("root", "val_root"), "unpaired": ("root", "a_root", "b_root")}


def check_data_folders(config: DataConfig, metrics_root: str = "") -> None:
    """What building the data sets would refuse of their folders, from the paths alone (no scan): an
    empty data.root that the data set needs, or a folder key naming nothing or a file. A sweep
    checks each run so before any trains; building a data set checks the rest (its images)."""
    # (unpaired data with both domain folders reads data.root only for val_split's held-out folders)
    own_folders = config.dataset == "unpaired" and config.a_root and config.b_root
    if config.dataset != "synthetic" and not own_folders:
        _require_root(config)
    keys = FOLDER_KEYS.get(config.dataset, ("root",))
    if own_folders and not config.val_split:
        keys = ("a_root", "b_root")
    named = [(f"data.{key}", getattr(config, key)) for key in keys]
    for key, folder in [*named, ("metrics.root", metrics_root)]:
        if folder and not Path(folder).is_dir():
            what = ("is a file, not a folder" if Path(folder).exists() else
                    f"does not exist{why_missing(folder)}")
            raise ConfigError(f"{key} '{folder}' {what}. datasets/README.md says how to obtain each data set and "
                              "where to put it")


def reference_data(config: DataConfig, root: str) -> DataConfig:
    """The [data] section that reads `root` (metrics.root) as the metrics' real images: read as the
    training images are (crop, resolution), all of them. data.split and data.max_images select among
    the training images, not in another folder: a held-out folder of CelebA faces has no partition file."""
    return dataclasses.replace(config, root=root, split="all", max_images=0)


def build_dataset(config: DataConfig, train: bool = True, root_key: str = "data.root") -> Dataset:
    """The training set the `[data]` section describes, or with `train=False` its evaluation set.
    A missing folder's error names the config key that sets it (`root_key` for data.root, when
    another key put its folder there: metrics.root) and where to learn how to fill it."""
    try:
        return DATASETS.get(config.dataset)(config, train)
    except PartitionFileError:  # its message names data.split and the file: no folder key to add
        raise
    except FileNotFoundError as error:
        keys = _folder_keys(config, train).replace("data.root", root_key)
        raise FileNotFoundError(f"{error}; it is set by {keys} (--set {keys.split(' ')[0]}=/path/to/folder). "
                                "datasets/README.md says how to obtain each data set and where to put it") from None
    except NotADirectoryError as error:  # (a file where the folder belongs: data.root set to an image)
        keys = _folder_keys(config, train).replace("data.root", root_key)
        raise NotADirectoryError(f"{error}; it is set by {keys}, which names a folder. datasets/README.md says how "
                                 "to obtain each data set and where to put it") from None
    except NoReadableImages as error:  # (a folder of files that none can be read: which key put it there)
        keys = _folder_keys(config, train).replace("data.root", root_key)
        raise NoReadableImages(f"{error}; the folder is set by {keys}") from None


def _folder_keys(config: DataConfig, train: bool) -> str:
    """The config key(s) that place the data set's folder, for messages."""
    if config.dataset == "sr_pairs" and not train and config.val_root:
        return "data.val_root"
    held_out = not train and config.root and config.val_split  # (what _unpaired reads then, a_root or not)
    if config.dataset == "unpaired" and config.a_root and config.b_root and not held_out:
        return "data.a_root and data.b_root"
    if config.dataset in ("paired", "unpaired"):
        return "data.root with data.val_split" if not train and config.val_split else "data.root with data.split"
    return "data.root"


def data_identity(config: DataConfig) -> dict:
    """The `[data]` settings that decide which images, cropped and sized how, a data set yields
    (keys for caches derived from it; augmentation and loader settings are left out)."""
    identity = {"dataset": config.dataset, "resolution": config.resolution, "split": config.split,
                "max_images": config.max_images}
    if config.dataset == "synthetic":
        identity["synthetic_size"] = config.synthetic_size
    elif config.dataset == "celeba":  # (of its image folder, however data.root names it: one cache, not two)
        identity["root"] = str(celeba_image_dir(config.root).resolve())
    else:
        identity["root"] = str(Path(config.root).resolve())
    if config.dataset == "celeba":
        identity["crop"] = config.crop
    return identity


def source_fingerprint(config: DataConfig) -> str:
    """Changes when any image file under `data.root` changes (`files_fingerprint`); empty for synthetic
    data. For what is derived from the files and kept between runs."""
    roots = [] if config.dataset == "synthetic" else [root for root in (config.root, config.a_root, config.b_root) if root]
    if config.dataset == "celeba":  # (its image folder's, as the loader reads it, however data.root names it)
        image_dir = celeba_image_dir(config.root)
        files = find_images(image_dir, recursive=False)
        if config.split != "all":  # which files the split takes, as well
            files += [path for path in partition_candidates(image_dir) if path.is_file()]
    else:
        files = [path for root in roots for path in find_images(Path(root))]
    return files_fingerprint(files) if roots else ""


def data_signature(dataset: Dataset) -> dict:
    """Which images a data set holds, in its order, cheaply (their names and sizes, not their
    contents): kept in each checkpoint, so that a resume on data since added to, removed from,
    renamed (whose sample order then differs from the run's) or replaced by other images under the
    same names says so. Names and sizes, not paths or times, so that a moved or copied folder matches
    (its names in composed Unicode: a copy through macOS writes them decomposed, the same names)."""
    paths = [path for attribute in ("paths", "a_paths", "b_paths") for path in getattr(dataset, attribute, ())]
    paths += [path for pair in getattr(dataset, "pairs", ()) for path in pair if path is not None]
    names = unicodedata.normalize("NFC", "\0".join(Path(path).name for path in paths)).encode(errors="surrogateescape")
    return {"images": len(dataset), "names": hashlib.sha256(names).hexdigest(),
            "sizes": hashlib.sha256(",".join(map(str, map(_size, paths))).encode()).hexdigest()}


def training_folders(config: DataConfig) -> dict[str, str]:
    """The training folders' keys -> their absolute paths (a relative data.root reads another folder
    from another working folder), for records and messages."""
    return {key: str(Path(value).expanduser().resolve()) for key, value in
            (("data.root", config.root), ("data.a_root", config.a_root), ("data.b_root", config.b_root)) if value}


def _size(path: str | Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # (gone since it was listed: skipped where it is read)
        return -1


def evaluation_signature(dataset: Dataset) -> str:
    """`data_signature` in one short digest: what best.pt records of the images its score was
    measured on, so that a resume measuring on images since changed does not compare with it."""
    return hashlib.sha256(json.dumps(data_signature(dataset), sort_keys=True).encode()).hexdigest()[:16]


def training_batches(config: DataConfig, dataset: Dataset, batch_size: int, seed: int, start_sample: int,
                     device: torch.device, group: ProcessGroup = SINGLE_PROCESS) -> Iterator[dict[str, torch.Tensor]]:
    """Endless training batches from sample `start_sample` on (this process's share of each global
    batch): through DataLoader workers, or, with `data.cache`, from the decoded-image cache."""
    if config.cache == "off" or config.dataset not in IMAGE_FOLDER_DATASETS:  # (warned of: it changes nothing)
        return batches(dataset, batch_size, seed, start_sample, config.num_workers,
                       pin_memory=device.type == "cuda", group=group)
    if not isinstance(dataset, ImageFileDataset):
        raise ConfigError(f"data.cache applies to datasets of image files, not '{config.dataset}'")
    images = load_or_build_shared_cache(dataset, data_identity(config),
                                        Path(config.cache_dir) if config.cache_dir else user_cache_dir("decoded"),
                                        group, verify_all=config.cache_verify)
    return CachedBatches(images, batch_size, seed, start_sample, dataset.hflip, device,
                         on_device=_copied_to_device(config, device, group), group=group)


def _copied_to_device(config: DataConfig, device: torch.device, group: ProcessGroup) -> bool:
    """Whether `data.cache = "device"` copies the cache onto `device`: not onto the CPU, whose memory is
    where the memory map lies already (the copy held the whole data set in the process, checked against
    no memory left): there it is read as "mmap" reads it, with a line saying so."""
    if config.cache != "device":
        return False
    if device.type != "cpu":
        return True
    if group.is_main:
        warnings.warn('data.cache = "device" on the cpu reads the cache memory-mapped, as "mmap" does: the cpu\'s '
                      "memory is where the map lies already, and a copy would only hold the whole data set in this "
                      "process", stacklevel=3)
    return False
