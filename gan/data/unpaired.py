"""Unpaired data for CycleGAN: two image folders sampled independently.

Items are `{"a": (3, R, R), "b": (3, R, R)}` in [-1, 1]. Item i takes A image
i (mod |A|) and, in training, a B image drawn at random from the sample's seed, so
every pass over A meets B in a fresh order (the reference's unaligned sampling).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch
from torch.utils.data import Dataset

from gan.core.images import pil_to_signed
from gan.data.decode import NoReadableImages, find_images, folders_overlap, read_rgb, readable_images
from gan.data.image_files import SkipUnreadable, augmentation_key, centre_square, location_of, warn_of_upsampling
from gan.data.paired import augment_together


class UnpairedImages(Dataset):
    def __init__(self, a_paths: list[Path], b_paths: list[Path], resolution: int, load_size: int = 286,
                 train: bool = True, hflip: bool = True, strict: bool = False,
                 skipped_at_scan: tuple[int, int] = (0, 0)):
        if load_size and load_size < resolution:
            raise ValueError(f"data.load_size ({load_size}) must be 0 or at least data.resolution ({resolution})")
        self.a_paths, self.b_paths = a_paths, b_paths
        self.resolution = resolution
        self.load_size = load_size
        self.train = train
        self.hflip = hflip
        # One per domain: each remembers the indices that failed in its own list of files
        self.skip_unreadable = {name: SkipUnreadable(strict, len(paths), skipped, location_of(paths))
                                for name, paths, skipped in (("a", a_paths, skipped_at_scan[0]),
                                                             ("b", b_paths, skipped_at_scan[1]))}

    def __len__(self) -> int:
        return max(len(self.a_paths), len(self.b_paths))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = augmentation_key(key)
        rng = random.Random(seed)
        b_index = rng.randrange(len(self.b_paths)) if self.train else index % len(self.b_paths)
        images = {}
        for name, paths, start in (("a", self.a_paths, index % len(self.a_paths)), ("b", self.b_paths, b_index)):
            image = self.skip_unreadable[name](lambda i, paths=paths: read_rgb(paths[i]), start, len(paths))
            (image,) = augment_together([image], self.resolution, self.load_size, rng if self.train else None,
                                        self.hflip)
            images[name] = pil_to_signed(image)
        return images

    @property
    def num_skipped(self) -> int:
        return sum(skip.num_skipped for skip in self.skip_unreadable.values())

    def item_failed(self, index: int) -> bool:
        """Whether evaluation item `index`, once loaded, holds a stand-in in place of a file of either
        domain that failed to decode (`readable_items` leaves such items out)."""
        return (index % len(self.a_paths) in self.skip_unreadable["a"].failed
                or index % len(self.b_paths) in self.skip_unreadable["b"].failed)

    def domain_images(self, name: str, limit: int = 0) -> list[torch.Tensor]:
        """Every image of domain `name` ("a" or "b") of an evaluation set once (the first `limit`, if
        given), in order, leaving out each whose file fails to decode: the image training puts in
        its place would count twice."""
        paths = self.a_paths if name == "a" else self.b_paths
        images = []
        for index in range(len(paths)):
            if limit and len(images) == limit:
                break
            image = self[index][name]  # (the other domain's file of the item does not matter here)
            if index not in self.skip_unreadable[name].failed:
                images.append(image)
        return images


def domain_folders(root: str | Path, split: str, a_root: str = "", b_root: str = "") -> tuple[Path, Path]:
    """`a_root`/`b_root` when given, else CycleGAN's `root/<split>A` and `root/<split>B`."""
    root = Path(root)
    return (Path(a_root) if a_root else root / f"{split}A"), (Path(b_root) if b_root else root / f"{split}B")


def unpaired_dataset(a_folder: Path, b_folder: Path, resolution: int, load_size: int = 286, train: bool = True,
                     hflip: bool = True, strict: bool = False, max_images: int = 0) -> UnpairedImages:
    _refuse_shared_images(a_folder, b_folder)
    folders, skipped = {}, {}
    for name, folder in (("A", a_folder), ("B", b_folder)):
        paths = find_images(folder)
        readable, unreadable = readable_images(paths, strict, max_images)
        if not readable:
            raise NoReadableImages(f"none of the {len(paths)} image files of domain {name} in '{folder}' could be read")
        if train:  # (resized whole to data.load_size, as the CycleGAN reference does, then cropped)
            warn_of_upsampling(readable, centre_square, resolution, f"the shorter side of domain {name}'s images",
                               load_size)
        folders[name], skipped[name] = readable, len(unreadable)
    _refuse_shared_files(folders["A"], folders["B"])
    return UnpairedImages(folders["A"], folders["B"], resolution, load_size, train, hflip, strict,
                          (skipped["A"], skipped["B"]))


def _refuse_shared_files(a_images: list[Path], b_images: list[Path]) -> None:
    """ValueError when one file is an image of both domains through a link (a linked folder or file
    inside one domain's folder that reaches the other's), which the folders' own check cannot see."""
    in_a = {real: path for path, real in zip(a_images, _real_paths(a_images))}
    shared = [(in_a[real], path) for path, real in zip(b_images, _real_paths(b_images)) if real in in_a]
    if shared:
        a_path, b_path = shared[0]
        raise ValueError(f"{len(shared)} image file(s) are in both domains through a link (the first: '{a_path}' of "
                         f"domain A is '{b_path}' of domain B): CycleGAN would learn to map them to themselves; "
                         "remove the link that reaches the other domain's folder")


def _real_paths(paths: list[Path]) -> list[str]:
    """Each file's path with no link in it: its folder's resolved once, and a linked file's target."""
    folders: dict[Path, str] = {}
    real = []
    for path in paths:
        if os.path.islink(path):
            real.append(os.path.realpath(path))
            continue
        if path.parent not in folders:  # (setdefault would resolve the folder again for every file)
            folders[path.parent] = os.path.realpath(path.parent)
        real.append(os.path.join(folders[path.parent], path.name))
    return real


def _refuse_shared_images(a_folder: Path, b_folder: Path) -> None:
    """ValueError when the two domains share images: one folder twice (CycleGAN would learn A -> A), or
    one folder inside the other (each domain is read with its subfolders, so the outer domain would hold
    every image of the inner one)."""
    overlap = folders_overlap(a_folder, b_folder)
    if overlap == "same":
        raise ValueError(f"domains A and B are one folder, '{a_folder}'" + (
            f" and '{b_folder}'" if str(a_folder) != str(b_folder) else "") + ": give each domain its own folder")
    if overlap is not None:
        (inner, inner_folder), (outer, outer_folder) = (
            (("A", a_folder), ("B", b_folder)) if overlap == "first inside" else (("B", b_folder), ("A", a_folder)))
        raise ValueError(f"domain {inner}'s folder '{inner_folder}' is inside domain {outer}'s, '{outer_folder}', which "
                         f"is read with its subfolders: every image of domain {inner} would be one of domain {outer} too; give the "
                         "domains folders side by side")
