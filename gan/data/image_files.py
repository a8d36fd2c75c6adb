"""Unconditional image datasets on files: any folder of images, and CelebA's layout."""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import random
import warnings
import zlib
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import torch
from PIL import Image
from torch.utils.data import Dataset

from gan.core.config import CELEBA_OFFICIAL_WIDTH
from gan.core.images import pil_to_signed
from gan.core.wording import first_few, one_line
from gan.data.decode import (
    IMAGE_EXTENSIONS,
    ImageFileGone,
    ImageFolderGone,
    ImageReadError,
    NoReadableImages,
    UnreadableImageWarning,
    files_fingerprint,
    find_images,
    header_size,
    read_rgb,
    readable_images,
    regular_file_problem,
)

# (width, height) -> (left, top, right, bottom) region to resize to the training resolution.
CropBox = Callable[[int, int], tuple[int, int, int, int]]

T = TypeVar("T")

CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
# Listed files found gone from one folder that now holds no image: it was emptied (its images moved
# out), not a file or two deleted (LFW's one-photo folders: one photo deleted is skipped)
GONE_FROM_A_FOLDER = 8
GONE_COUNTERS = 4096  # at most: folders' counts of gone files, shared with the loader workers, by a hash of the folder


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def celeba_crop(side_at_official_size: int) -> CropBox:
    """A centred square of `side_at_official_size` px in 178x218 terms, scaled to the file's width."""

    def box(width: int, height: int) -> tuple[int, int, int, int]:
        side = min(round(side_at_official_size * width / CELEBA_OFFICIAL_WIDTH), width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return left, top, left + side, top + side

    return box


def augmentation_key(key: int | tuple[int, int]) -> tuple[int, int]:
    """Dataset keys are (index, augmentation seed) from the sampler, or a plain index."""
    return (key, key) if isinstance(key, int) else (int(key[0]), int(key[1]))


class SkipUnreadable:
    """Loads item `index` with a function, taking another readable item in its place when a file
    fails to decode.

    The stand-in is fixed per index (the same in every worker and on resume) and spread over the
    set: `index + k * stride` for k = 1, 2, ..., with a stride about 0.6 of the set and prime to its
    size, so it visits every item. The next index would stand in for a whole block of damaged
    neighbours (a bad disk range, a broken copy of one folder), one image counted hundreds of
    times. A file that failed is not decoded again: each try of a block's files cost a decode of
    every damaged file after it. Each skipped file gets one warning naming it and is counted once,
    whichever DataLoader worker processes meet it (a flag per file, in memory shared with them);
    with `strict` the error is raised instead. Files damaged past their header and end marker pass
    the scan and only fail here.
    """

    def __init__(self, strict: bool, count: int, skipped_at_scan: int = 0, where: str = ""):
        self.strict = strict
        self.where = where
        self.skipped_at_scan = skipped_at_scan
        self.failed_anywhere = torch.zeros(count, dtype=torch.bool).share_memory_()
        self.failed: set[int] = set()  # indices that failed to decode, here or in a worker (once met here)
        # listed files found gone, by folder, counted across the workers (each counting its own, 8 workers
        # named 56 files of a folder emptied before the stop): a count per hash of a folder, no more than
        # the files (a small set under `ulimit -f` has small shared files), and the hash counted in each
        self.gone_from = torch.zeros(min(GONE_COUNTERS, count), dtype=torch.int32).share_memory_()
        self.gone_folder = torch.zeros(min(GONE_COUNTERS, count), dtype=torch.int64).share_memory_()

    def __call__(self, load: Callable[[int], T], index: int, size: int) -> T:
        stride = stand_in_stride(size)
        gone: list[tuple[int, ImageFileGone]] = []  # files missing in a row since the last one read: not yet said
        for attempt in range(size):
            candidate = (index + attempt * stride) % size
            if candidate in self.failed or self.failed_anywhere[candidate]:
                self.failed.add(candidate)  # (a worker's: an evaluation of this set leaves it out too)
                continue  # (it fails again; the same stand-in is reached without it)
            try:
                item = load(candidate)
            except ImageFolderGone:  # (each of its files would be skipped and named in turn: thousands of lines)
                raise
            except ImageReadError as error:
                if self.strict:
                    raise
                if isinstance(error, ImageFileGone):
                    gone.append((candidate, error))
                    folder = Path(error.path).parent
                    if self._count_gone(folder) >= GONE_FROM_A_FOLDER and not _holds_an_image(folder):
                        # (a folder emptied, CelebA's moved out: a warning for each of its files, else)
                        raise _folder_emptied(folder, self._count_gone(folder, 0), Path(gone[0][1].path)) from error
                    continue
                self._say_skipped([*gone, (candidate, error)])
                gone = []
            else:
                self._say_skipped(gone)  # (a few files deleted: each skipped, and named)
                return item
        self._say_skipped(gone)
        where = f" {self.where}" if self.where else ""
        raise ImageReadError(f"none of the {size} images{where} could be decoded (each is named in a warning above)")

    def _say_skipped(self, failures: list[tuple[int, ImageReadError]]) -> None:
        for candidate, error in failures:
            self.failed.add(candidate)
            if not self.failed_anywhere[candidate]:  # not yet met by another worker
                self.failed_anywhere[candidate] = True
                warnings.warn(f"skipping an unreadable file: {error}", UnreadableImageWarning, stacklevel=4)

    def _count_gone(self, folder: Path, more: int = 1) -> int:
        """The files found gone from `folder` in every process, `more` counted first (0 where another
        folder's hash took its counter first: it is not counted, its files each skipped and named)."""
        key = zlib.crc32(os.fsencode(folder)) + 1  # (the same in every process; 0: a counter unused)
        counter = key % len(self.gone_from)
        if self.gone_folder[counter] == 0:
            self.gone_folder[counter] = key
        if self.gone_folder[counter] != key:
            return 0
        self.gone_from[counter] += more
        return int(self.gone_from[counter])

    @property
    def num_skipped(self) -> int:
        """Files skipped so far: unreadable headers at start plus the files that failed to decode in
        this process or its workers, each counted once."""
        return self.skipped_at_scan + int(self.failed_anywhere.sum())


def stand_in_stride(size: int) -> int:
    """The step from an unreadable item to the one read in its place (`SkipUnreadable`): near the
    golden section of `size` and prime to it, so the steps visit every item once."""
    stride = max(1, round(size * 0.618))
    while math.gcd(stride, size) != 1:
        stride += 1
    return stride


def _holds_an_image(folder: Path) -> bool:
    """Whether `folder` holds an image file (at the first one found: a folder of 200,000 is not listed),
    by the listing's rule: macOS's `._photo.jpg` left behind by `mv *.jpg` are not images."""
    try:
        with os.scandir(folder) as entries:
            return any(entry.name.lower().endswith(IMAGE_EXTENSIONS) and not entry.name.startswith(".")
                       for entry in entries)
    except OSError:
        return False


def _folder_emptied(folder: Path, count: int, first: Path) -> ImageFolderGone:
    return ImageFolderGone(f"{count} listed image files are gone from '{one_line(folder)}', which holds no image now "
                           f"('{one_line(first.name)}' among them; moved, renamed or deleted since the data set was "
                           "listed): the data changed under this command")


def preview_items(dataset: Dataset, num_samples: int) -> list:
    """The first `num_samples` readable items of an evaluation set, for preview grids; a set that
    holds fewer is said (log.num_samples = 7 over 2 validation pairs showed 2, unsaid)."""
    items = list(itertools.islice(readable_items(dataset), num_samples))
    if len(items) < num_samples:
        warnings.warn(f"log.num_samples = {num_samples}: the evaluation images hold {len(items)} readable "
                      f"item(s), so each preview grid shows {len(items)}", stacklevel=2)
    return items


def readable_items(dataset: Dataset, indices: Iterable[int] | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """The items of an evaluation set (or of its `indices`) in order, leaving out each whose file
    fails to decode (named in the dataset's warning): the image a training set puts in its
    place would count twice."""
    skip = getattr(dataset, "skip_unreadable", None)
    failed = getattr(dataset, "item_failed", None)  # (a data set of several files an item, unpaired)
    for index in range(len(dataset)) if indices is None else indices:
        item = dataset[index]
        if failed is not None:
            if not failed(index):
                yield item
        elif skip is None or index not in skip.failed:
            yield item


class ImageFileDataset(Dataset):
    """Images from files, cropped, resized to `resolution` squared, optionally flipped.

    Items are `{"image": (3, resolution, resolution) float in [-1, 1]}`. A file that
    fails to decode at training time is skipped (see SkipUnreadable).
    """

    def __init__(self, paths: list[Path], resolution: int, crop_box: CropBox = centre_square,
                 hflip: bool = False, strict: bool = False, skipped_at_scan: int = 0):
        if not paths:
            raise ValueError("ImageFileDataset needs at least one image")
        self.paths = paths
        self.resolution = resolution
        self.crop_box = crop_box
        self.hflip = hflip
        self.skip_unreadable = SkipUnreadable(strict, len(paths), skipped_at_scan, location_of(paths))

    def __len__(self) -> int:
        return len(self.paths)

    @functools.cached_property
    def fingerprint(self) -> str:
        """`files_fingerprint` of its files, taken once: the check before step 1 and the cache both ask."""
        return files_fingerprint(self.paths)

    def load(self, index: int) -> Image.Image:
        """The cropped and resized image at `index` (no augmentation)."""
        image = read_rgb(self.paths[index])
        return image.resize((self.resolution, self.resolution), Image.Resampling.BICUBIC,
                            box=self.crop_box(*image.size))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = augmentation_key(key)
        image = self.skip_unreadable(self.load, index, len(self.paths))
        if self.hflip and random.Random(seed).random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return {"image": pil_to_signed(image)}

    @property
    def num_skipped(self) -> int:
        return self.skip_unreadable.num_skipped


def location_of(paths: list[Path]) -> str:
    """'under FOLDER' for the folder holding all of `paths`, for messages."""
    try:
        return f"under '{os.path.commonpath([path.parent for path in paths])}'" if paths else ""
    except ValueError:  # absolute and relative paths mixed
        return ""


def image_folder_dataset(root: str | Path, resolution: int, hflip: bool = False, strict: bool = False,
                         max_images: int = 0) -> ImageFileDataset:
    """Every image under `root` (recursive), centre-square-cropped and resized."""
    paths = find_images(Path(root))
    readable, skipped = readable_images(paths, strict, max_images)  # (max_images counts readable ones)
    if not readable:
        raise NoReadableImages(f"none of the {len(paths)} image files under '{root}' could be read")
    warn_of_upsampling(readable, centre_square, resolution, "the images' centred square")
    return ImageFileDataset(readable, resolution, centre_square, hflip, strict, len(skipped))


UPSAMPLING_SAMPLE = 100  # images whose headers are read for the check, drawn at random over the set


def warn_of_upsampling(paths: list[Path], crop_box: CropBox, resolution: int, crop: str, scaled_to: int = 0) -> None:
    """A crop smaller than data.resolution is upsampled: the samples can hold no more detail than it
    (CelebA's half-size copies at 128 px, say). Said once, from a sample of the images' headers
    drawn at random (a fixed stride met only one size of a folder whose sizes alternate). `scaled_to`:
    the side the crop is resized to when larger than data.resolution (pix2pix's data.load_size)."""
    chosen = sorted(random.Random(0).sample(range(len(paths)), min(len(paths), UPSAMPLING_SAMPLE)))
    sides = {}
    for path in [paths[index] for index in chosen]:
        size = header_size(path)
        if size is not None:
            left, _, right, _ = crop_box(*size)
            sides[path] = (right - left, size)
    small = {path: side for path, side in sides.items() if side[0] < resolution}
    if not small:
        return
    smallest = min(small, key=lambda path: small[path][0])
    side, (width, height) = small[smallest]
    sampled = "" if len(chosen) == len(paths) else " sampled"  # (every header read: no sample)
    share = ("every image" if len(sides) == len(paths) else f"every one of {len(sides)} images{sampled}") \
        if len(small) == len(sides) else f"{len(small)} of {len(sides)} images{sampled}"
    warnings.warn(f"{crop} is smaller than data.resolution = {resolution} in {share} (smallest: {side} px, in the "
                  f"{width}x{height} '{one_line(smallest)}'), so they are upsampled, up to {max(scaled_to, resolution) / side:.1f}x: the samples "
                  f"hold no more detail than that; train at a lower data.resolution"
                  f"{' and data.load_size' if scaled_to > resolution else ''}, or on larger images",
                  UserWarning, stacklevel=3)


def celeba_dataset(root: str | Path, resolution: int, crop: int = 148, split: str = "all",
                   hflip: bool = False, strict: bool = False, max_images: int = 0) -> ImageFileDataset:
    """CelebA's aligned faces: `root` is `img_align_celeba/` or the folder holding it.

    Each image is cropped to a centred square of `crop` px at the official 178x218
    size (scaled for smaller copies), then resized. `split` selects the official
    partition from `list_eval_partition.txt`, looked for beside `img_align_celeba/`.
    """
    image_dir = celeba_image_dir(root)
    try:
        paths = find_images(image_dir, recursive=False)
    except FileNotFoundError as error:
        if not image_dir.is_dir():
            raise
        found = celeba_folder_below(image_dir)
        advice = (f"set data.root to '{found}'" if found else
                  "for images in subfolders, set data.dataset = \"folder\", which searches them")
        raise FileNotFoundError(f"{error}: CelebA's faces are read from img_align_celeba/ (or the folder holding it), "
                                f"not searched for in subfolders; {advice}") from None
    _warn_of_an_unfinished_unpack(image_dir, len(paths))
    twice = sorted(stem for stem, count in Counter(path.stem for path in paths).items() if count > 1)
    if twice:  # (the official .jpg faces beside the .png copy: each such face would train twice)
        warnings.warn(f"{len(twice)} face(s) in '{image_dir}' are there in two files of one name "
                      f"({first_few(twice, NAMES_SHOWN)}, e.g. .jpg and .png): each trains twice, as two faces; keep "
                      "one copy", UserWarning, stacklevel=2)
    if split != "all":
        if split not in CELEBA_SPLITS:
            raise ValueError(f"data.split must be all, train, valid or test, got '{split}'")
        partition_file, partition = _read_partition(image_dir)
        unlisted = [path for path in paths if path.stem not in partition]
        if unlisted:  # (a partition file of another copy, or images added since)
            shown = first_few([path.name for path in unlisted], NAMES_SHOWN)
            warnings.warn(f"{len(unlisted)} of the {len(paths)} images in '{image_dir}' are not listed in "
                          f"'{partition_file}', so no data.split holds them ({shown}); data.split = \"all\" reads "
                          "them", UserWarning, stacklevel=2)
        # by the name without its extension: the official PNG copy (000001.png) shares the .jpg names' file
        chosen = [p for p in paths if partition.get(p.stem) == CELEBA_SPLITS[split]]
        if not chosen:  # (the folder is there: the split is what to change)
            held = [name for name, number in CELEBA_SPLITS.items()
                    if any(partition.get(p.stem) == number for p in paths)]
            raise PartitionFileError(f"data.split = '{split}' holds no images of '{image_dir}' ('{partition_file}' "
                                     f"lists them under {', '.join(held) or 'no split'}): set data.split to "
                                     f"{' or '.join(f'{name!r}' for name in [*held, 'all'])}")
        paths = chosen
    readable, skipped = readable_images(paths, strict, max_images)
    if not readable:
        raise NoReadableImages(f"none of the {len(paths)} image files in '{image_dir}' could be read")
    warn_of_other_shapes_than_aligned_faces(readable, image_dir)
    warn_of_upsampling(readable, celeba_crop(crop), resolution,
                       f"the faces' centred crop (data.crop = {crop} at CelebA's 178 px width, scaled to each file's)")
    return ImageFileDataset(readable, resolution, celeba_crop(crop), hflip, strict, len(skipped))


SHAPE_SAMPLE = 64  # images whose shape tells aligned faces from other photos
ALIGNED_ASPECT = 218 / 178  # CelebA's aligned faces' height over width, in every scaled copy


def warn_of_other_shapes_than_aligned_faces(paths: list[Path], image_dir: Path) -> None:
    """The celeba data set crops each image where an aligned face is (its centre, at 178x218's
    proportions): the in-the-wild img_celeba/ photos (faces anywhere, located only by
    list_bbox_celeba.txt) trained on wrong pixels in silence. Warns when most of the first images
    are not shaped like 178x218 (or a copy scaled from it)."""
    sizes = [(path, size) for path in paths[:SHAPE_SAMPLE] if (size := header_size(path)) and size[0] > 0]
    other = [(path, size) for path, size in sizes if abs(size[1] / size[0] / ALIGNED_ASPECT - 1) > 0.03]
    if other and len(other) > len(sizes) / 2:
        path, (width, height) = other[0]
        warnings.warn(f"{len(other)} of the first {len(sizes)} images in '{image_dir}' are not shaped as CelebA's "
                      f"aligned faces (178x218, or a copy scaled from it; '{path.name}' is {width}x{height}): the "
                      "in-the-wild img_celeba/ photos, or faces cropped otherwise? data.dataset = \"celeba\" crops "
                      "each image where an aligned face is; for other images set data.dataset = \"folder\" "
                      "(a centred square)", UserWarning, stacklevel=3)


NAMES_SHOWN = 5  # of the images a warning is about
UNPACK_RECORD = "prepare_celeba.json"  # datasets/prepare_celeba.py's, beside img_align_celeba/: the zip, its count


def _warn_of_an_unfinished_unpack(image_dir: Path, found: int) -> None:
    """A warning when datasets/prepare_celeba.py's record says its unpack into `image_dir` stopped
    part-way (a kill, a full disk), or that more images came out of the zip than are there now: a
    run would train on the part silently."""
    record_path = _beside(image_dir) / UNPACK_RECORD
    try:
        record = json.loads(record_path.read_text())
        images, complete = int(record["images"]), bool(record["complete"])
    except (OSError, ValueError, TypeError, KeyError):  # (none, or not the script's: its check says so)
        return
    if not complete:
        warnings.warn(f"'{record_path}' says the unpack of CelebA into '{image_dir}' did not finish ({found} of "
                      f"{images} images there): this run trains on those; run the same prepare_celeba.py --zip "
                      "command again to finish it (it keeps the images unpacked whole)", UserWarning, stacklevel=3)
    elif found < images:
        warnings.warn(f"'{image_dir}' holds {found} images, and {images} were unpacked into it ('{record_path}'): "
                      f"{images - found} are gone; run the prepare_celeba.py --zip command again to restore them",
                      UserWarning, stacklevel=3)


class PartitionFileError(FileNotFoundError):
    """CelebA's list_eval_partition.txt, which data.split needs, is missing; the message says so."""


def celeba_image_dir(root: str | Path) -> Path:
    """The folder of CelebA's images: `root` is `img_align_celeba/` or the folder holding it (Kaggle's
    copy unpacks to `img_align_celeba/img_align_celeba/`)."""
    image_dir = Path(root)
    for _ in range(2):
        if (image_dir / "img_align_celeba").is_dir():
            image_dir = image_dir / "img_align_celeba"
    return image_dir


def celeba_folder_below(folder: Path) -> Path | None:
    """The CelebA image folder to name for a `folder` without faces of its own: an img_align_celeba/
    (or the official PNG copy, img_align_celeba_png/) three levels down at most (Google Drive's
    CelebA/Img/img_align_celeba/), nearest first; None when there is none."""
    return next((path for pattern in ("img_align_celeba*", "*/img_align_celeba*", "*/*/img_align_celeba*")
                 for path in sorted(folder.glob(pattern)) if path.is_dir()), None)


def partition_candidates(image_dir: Path) -> list[Path]:
    """Where CelebA's partition file is looked for, first found first: the official
    list_eval_partition.txt, or Kaggle's list_eval_partition.csv beside its outer folder."""
    folders = []
    for beside in dict.fromkeys((_beside(image_dir), _beside(image_dir.resolve()))):  # (and where a link leads)
        # (Google Drive's CelebA/Img/img_align_celeba/ has it in CelebA/Eval/; Kaggle's two folders up)
        folders += [beside, image_dir, beside / "Eval", beside.parent, beside.parent / "Eval"]
    return [folder / f"list_eval_partition.{suffix}" for suffix in ("txt", "csv") for folder in dict.fromkeys(folders)]


def _beside(image_dir: Path) -> Path:
    """The folder holding `image_dir`, also when it is given as `.` or relative (run from inside it)."""
    return Path(os.path.abspath(image_dir)).parent if not image_dir.is_absolute() else image_dir.parent


def read_partition_file(path: Path) -> dict[str, int]:
    """CelebA's list_eval_partition.txt (or Kaggle's .csv; UTF-8 or UTF-16): each image's name without
    extension -> 0 (train), 1 (valid) or 2 (test). ValueError names the file and line of a problem."""
    partition: dict[str, int] = {}
    raw = path.read_bytes()
    # (saved as UTF-16, "Unicode" in Windows' Notepad, it starts with its byte-order mark; without one,
    # its ASCII names come with a zero byte each)
    encoding = ("utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else
                ("utf-16-le" if raw[1:2] == b"\0" else "utf-16-be") if b"\0" in raw[:2] else "utf-8-sig")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:  # (the file names are ASCII: this is another file)
        raise ValueError(f"'{path}' is not CelebA's list_eval_partition.txt: it is not text ({error})") from None
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.replace(",", " ").split()  # (Kaggle's copy is a CSV)
        if not fields or (number == 1 and fields == ["image_id", "partition"]):  # (the CSV's header)
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(f"{path}:{number}: expected '<file name> <0|1|2>', got '{one_line(line)}'")
        stem = Path(fields[0]).stem
        if partition.setdefault(stem, int(fields[1])) != int(fields[1]):  # which one is meant?
            raise ValueError(f"{path}:{number}: '{fields[0]}' is listed again, in another partition "
                             f"({fields[1]}, after {partition[stem]})")
    return partition


def _read_partition(image_dir: Path) -> tuple[Path, dict[str, int]]:
    """(the partition file, each image's name without extension -> 0, 1 or 2)."""
    candidates = partition_candidates(image_dir)
    for path in candidates:
        if (path.is_symlink() or path.exists()) and not path.is_file():  # (a folder of its name: "put it there")
            problem = "a folder" if path.is_dir() else regular_file_problem(path)
            raise PartitionFileError(f"'{path}' is {problem}, where CelebA's {path.name} is looked for: put the "
                                    "file there in its place, or use data.split=\"all\"")
        if path.is_file():
            return path, read_partition_file(path)
    raise PartitionFileError(
        f"data.split needs CelebA's list_eval_partition.txt; put it at '{candidates[0]}' or use data.split=\"all\""
    )
