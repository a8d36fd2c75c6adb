"""Super-resolution pairs made on the fly from high-resolution images alone.

A random HR crop is degraded (optional blur), downsampled with antialiased bicubic
filtering by `scale`, optionally noised and JPEG-compressed, and quantised to 8 bits
as a saved LR image would be. The input is that LR image, or (pix2pix-style, for
networks that do not upsample) the LR image bicubic-upsampled back to the HR size.
All randomness comes from the sample's seed, so a pair is reproducible.
"""

from __future__ import annotations

import io
import itertools
import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import Dataset

from gan.core.images import pil_to_signed
from gan.core.wording import first_few
from gan.data.decode import ImageReadError, find_images, header_size, read_rgb, readable_images
from gan.data.image_files import SkipUnreadable, augmentation_key, location_of


@dataclass(frozen=True)
class Degradation:
    """How an HR image becomes its LR input."""

    scale: int = 4
    blur_sigma: float = 0.0  # Gaussian blur std (HR pixels) before downsampling; 0 = off
    noise_std: float = 0.0  # Gaussian noise std on the LR image in grey levels (0-255); 0 = off
    jpeg_quality: int = 0  # JPEG-compress the LR image at this quality; 0 = off

    def __call__(self, hr_image: Image.Image, rng: random.Random | None) -> Image.Image:
        """HR image (size a multiple of `scale`) -> 8-bit LR image of 1/scale the size.

        `rng` draws the noise; it may be None when there is no noise."""
        width, height = hr_image.size
        if width % self.scale or height % self.scale:
            raise ValueError(f"HR size {width}x{height} is not a multiple of the scale {self.scale}")
        image = hr_image.filter(ImageFilter.GaussianBlur(self.blur_sigma)) if self.blur_sigma else hr_image
        lr_image = bicubic_resize(image, (width // self.scale, height // self.scale))
        if self.noise_std:
            if rng is None:
                raise ValueError("noise needs a random generator")
            noise = np.random.default_rng(rng.getrandbits(64)).normal(0.0, self.noise_std, (*lr_image.size[::-1], 3))
            lr_image = Image.fromarray(np.clip(np.asarray(lr_image) + noise + 0.5, 0, 255).astype(np.uint8))
        if self.jpeg_quality:
            buffer = io.BytesIO()
            lr_image.save(buffer, "JPEG", quality=self.jpeg_quality)
            lr_image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        return lr_image


def describe_degradation(degradation: Degradation) -> str:
    """`Gaussian blur sigma 2, bicubic x4, noise std 10, JPEG quality 75`: the steps in their order."""
    steps = [f"Gaussian blur sigma {degradation.blur_sigma:g}"] if degradation.blur_sigma else []
    steps.append(f"bicubic x{degradation.scale}")
    steps += [f"noise std {degradation.noise_std:g}"] if degradation.noise_std else []
    steps += [f"JPEG quality {degradation.jpeg_quality}"] if degradation.jpeg_quality else []
    return ", ".join(steps)


def bicubic_resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Pillow's bicubic resize (a = -0.5, antialiased when shrinking by a widened kernel, as MATLAB's
    imresize is). Not bit-identical to imresize: Pillow renormalises the kernel at the borders
    where imresize mirrors, and rounds between its two passes (Set5 x4: LR pixels within 1-2
    levels inside, up to 14 at the border; bicubic's PSNR within 0.004 dB)."""
    return image.resize(size, Image.Resampling.BICUBIC)


def crop_to_multiple(image: Image.Image, multiple: int) -> Image.Image:
    """Crop the right and bottom edges so both sides are multiples of `multiple` (SR 'mod crop')."""
    width, height = image.size
    return image.crop((0, 0, width - width % multiple, height - height % multiple))


ROTATIONS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


class SuperResolutionPairs(Dataset):
    """`{"input", "target"}` in [-1, 1] from HR files.

    Training: a random `hr_size` crop, flipped with probability 0.5 if `hflip` and turned by a
    random multiple of 90 degrees if `rot90`; the LR input is made from it, so both stay aligned.
    Evaluation (`train=False`): the whole image, cropped to a multiple of the scale
    (sizes differ between images, so batch size 1).
    """

    def __init__(self, paths: list[Path], degradation: Degradation, hr_size: int, upsample_input: bool = True,
                 train: bool = True, hflip: bool = True, strict: bool = False, skipped_at_scan: int = 0,
                 rot90: bool = False):
        if hr_size % degradation.scale:
            raise ValueError(f"data.resolution ({hr_size}) must be a multiple of data.scale ({degradation.scale})")
        self.paths = paths
        self.degradation = degradation
        self.hr_size = hr_size
        self.upsample_input = upsample_input
        self.train = train
        self.hflip = hflip
        self.rot90 = rot90
        self.skip_unreadable = SkipUnreadable(strict, len(paths), skipped_at_scan, location_of(paths))

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, index: int) -> Image.Image:
        image = read_rgb(self.paths[index])
        if self.train and min(image.size) < self.hr_size:
            raise ImageReadError(f"image '{self.paths[index]}' ({image.size[0]}x{image.size[1]}) is smaller than "
                                 f"the {self.hr_size} px training crop")
        return image

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = augmentation_key(key)
        rng = random.Random(seed)
        hr_image = self.skip_unreadable(self._load, index, len(self.paths))
        if self.train:
            left = rng.randint(0, hr_image.size[0] - self.hr_size)
            top = rng.randint(0, hr_image.size[1] - self.hr_size)
            hr_image = hr_image.crop((left, top, left + self.hr_size, top + self.hr_size))
            if self.hflip and rng.random() < 0.5:
                hr_image = hr_image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            turns = rng.randrange(4) if self.rot90 else 0
            if turns:
                hr_image = hr_image.transpose(ROTATIONS[turns])
        else:
            hr_image = crop_to_multiple(hr_image, self.degradation.scale)
        lr_image = self.degradation(hr_image, rng)
        source = bicubic_resize(lr_image, hr_image.size) if self.upsample_input else lr_image
        return {"input": pil_to_signed(source), "target": pil_to_signed(hr_image)}

    @property
    def num_skipped(self) -> int:
        return self.skip_unreadable.num_skipped

    def without_images_under(self, side: int, why: str) -> SuperResolutionPairs:
        """This evaluation set without the images whose sides, cropped to a multiple of the scale,
        are under `side` px (`why` says what needs it), each named in one warning; an error when
        none is left."""
        sizes = {path: _size(path) for path in self.paths}
        small = {path: size for path, size in sizes.items() if scored_side(size, self.degradation.scale) < side}
        if not small:
            return self
        if len(small) == len(self.paths):
            raise ImageReadError(f"every evaluation image is smaller than {side}x{side} pixels, which {why}: "
                                 f"{_named_with_sizes(small)}")
        warnings.warn(f"leaving out {len(small)} evaluation image(s) smaller than {side}x{side} pixels, which {why}: "
                      f"{_named_with_sizes(small)}", stacklevel=2)
        return SuperResolutionPairs([path for path in self.paths if path not in small], self.degradation,
                                    self.hr_size, self.upsample_input, self.train, self.hflip,
                                    self.skip_unreadable.strict, self.skip_unreadable.skipped_at_scan + len(small),
                                    self.rot90)


def scored_side(size: tuple[int, int], scale: int) -> int:
    """The shorter side of an HR image of `size` as evaluation scores it: cropped to a multiple of
    the scale (the rule that decides which images a validation set keeps, and so each one's place)."""
    return min(side - side % scale for side in size)


def super_resolution_dataset(root: str | Path, degradation: Degradation, hr_size: int, upsample_input: bool = True,
                             train: bool = True, hflip: bool = True, strict: bool = False,
                             max_images: int = 0, rot90: bool = False) -> SuperResolutionPairs:
    """SR pairs from every image under `root` (recursive)."""
    paths = find_images(Path(root))
    readable, skipped = readable_images(paths, strict)
    sizes = {path: _size(path) for path in readable}
    small = {}
    if train:  # images smaller than the crop cannot give a training pair
        small = {path: size for path, size in sizes.items() if min(size) < hr_size}
        if small and len(small) < len(readable):
            warnings.warn(f"leaving out {len(small)} image(s) under '{root}' smaller than the {hr_size} px training "
                          f"crop: {_named_with_sizes(small)}", stacklevel=2)
        readable = [path for path in readable if path not in small]
    readable = readable[:max_images] if max_images else readable  # (max_images counts usable images)
    if train:
        warn_of_held_out_folders(readable, Path(root))
    warn_of_low_resolution_copies({path: sizes[path] for path in readable}, root,
                                  "trained on as HR targets" if train else "scored as ground truth")
    if not readable:
        # (the largest first, in a line of its own length: which crop they can give is what helps)
        largest = dict(sorted(small.items(), key=lambda item: -min(item[1]))[:3])
        too_small = (f", {len(small)} smaller than the {hr_size} px training crop; the largest: "
                     f"{_named_with_sizes(largest)}" if small else "")
        raise ImageReadError(f"no usable images under '{root}' ({len(paths)} image files, {len(skipped)} unreadable"
                             f"{too_small})")
    return SuperResolutionPairs(readable, degradation, hr_size, upsample_input, train, hflip, strict, len(skipped),
                                rot90)


MAX_NAMED = 20  # files named in one message; the rest are counted


LR_COPY_FACTORS = range(2, 9)  # the scales of benchmark packs' LR copies (x2, x3, x4, x8) and those between


def warn_of_low_resolution_copies(sizes: dict[Path, tuple[int, int]], root: str | Path,
                                  used_as: str = "scored as ground truth") -> None:
    """Benchmark downloads keep LR copies beside their HR images (EDSR's Set5/HR/baby.png and
    Set5/LR_bicubic/X2/babyx2.png ... X4/babyx4.png; DIV2K_train_HR/ beside DIV2K_train_LR_bicubic/;
    SelfExSR's img_001_SRF_4_HR.png beside ..._LR.png): taken as HR images, they pull a mean PSNR down,
    or train the network on blurred targets, in silence. Warns naming the images (of `sizes`, each
    image's width and height) 1/k the size of another, for any k of LR_COPY_FACTORS (each side rounded
    down, as a crop to a multiple of k gives, or up, as MATLAB's imresize gives), and named like it; `used_as` says what they would be taken for."""
    reduced: dict[tuple[tuple[int, int], str], tuple[Path, int]] = {}  # (by size and name: one look-up an image)
    for path, (width, height) in sizes.items():
        for factor in LR_COPY_FACTORS:
            for low_size in itertools.product({width // factor, -(-width // factor)}, {height // factor,
                                                                                      -(-height // factor)}):
                reduced.setdefault((low_size, _base_name(path)), (path, factor))
    copies = [(path, *high) for path, size in sizes.items() if min(size) > 0
              and (high := reduced.get((size, _base_name(path)))) is not None and high[0] != path]
    if copies:
        low, high, _ = copies[0]
        factors = ", ".join(f"1/{factor}" for factor in sorted({factor for *_, factor in copies}))
        warnings.warn(f"{len(copies)} image(s) under '{root}' are {factors} the size of another named like them, "
                      f"low-resolution copies {used_as}? (the first: '{low}', beside '{high}'): give "
                      "the folder of the HR images alone (EDSR's benchmark sets: Set5/HR; DIV2K: DIV2K_train_HR)",
                      stacklevel=3)


HELD_OUT_NAME = re.compile(r"(?:^|[^a-z])(?:val|valid|validation|test|testing)(?:[^a-z]|$)")


def warn_of_held_out_folders(paths: list[Path], root: Path) -> None:
    """An SR training folder is read whole, with its subfolders: DIV2K's parent folder trained on
    DIV2K_valid_HR beside DIV2K_train_HR, in silence. Warns counting the images in subfolders named
    as a held-out split (val, valid, validation, test, testing as a word of the name)."""
    held_out = [path for path in paths if any(HELD_OUT_NAME.search(part.lower())
                                              for part in path.relative_to(root).parts[:-1])]
    if held_out:
        folder = next(part for part in held_out[0].relative_to(root).parts if HELD_OUT_NAME.search(part.lower()))
        warnings.warn(f"{len(held_out)} training image(s) under '{root}' are in folders named as a held-out split "
                      f"(the first: '{root / folder}'): an SR data.root is read whole, with its subfolders, so they "
                      "train with the rest; give the training images' folder alone (DIV2K: DIV2K_train_HR)",
                      stacklevel=3)


def _base_name(path: Path) -> str:
    """babyx4 and baby, img_001_SRF_4_LR and img_001_SRF_4_HR: one name, without its LR or HR mark."""
    return re.sub(r"([_-]?(lr|hr|x\d))+$", "", path.stem.lower())


def _named_with_sizes(sizes: dict[Path, tuple[int, int]]) -> str:
    """'path' (WxH); ... for the first MAX_NAMED files, then how many more."""
    return first_few([f"'{path}' ({width}x{height})" for path, (width, height) in sizes.items()], MAX_NAMED, "; ")


def _size(path: Path) -> tuple[int, int]:
    return header_size(path) or (0, 0)  # an unreadable header was skipped by readable_images
