"""Paired image-to-image data: the pix2pix "AB" layout, or A/ and B/ folders matched by name.

Items are `{"input": (3, R, R), "target": (3, R, R)}` in [-1, 1], with the same
resize, crop and flip applied to both sides so that they stay pixel-aligned.
"""

from __future__ import annotations

import random
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from gan.core.images import pil_to_signed
from gan.core.wording import first_few
from gan.data.decode import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    UnreadableImageWarning,
    find_images,
    folders_overlap,
    header_size,
    left_out_of_listing,
    read_rgb,
    readable_images,
    why_missing,
)
from gan.data.image_files import SkipUnreadable, augmentation_key, centre_square, location_of, warn_of_upsampling

MAX_LISTED = 20  # unmatched names listed per folder in an error


def split_side_by_side(image: Image.Image) -> tuple[Image.Image, Image.Image]:
    """An AB image (A on the left half, B on the right) -> (A, B)."""
    width, height = image.size
    half = width // 2
    return image.crop((0, 0, half, height)), image.crop((half, 0, 2 * half, height))


def pair_wide(width: int, height: int) -> bool:
    """At least twice as wide as high (within 1%): shaped like an A|B pair of square or wider halves."""
    return width >= 0.99 * 2 * height


def too_narrow_to_split(width: int, height: int) -> str:
    return f"{width}x{height}, too narrow to split into A|B halves"


def read_side_by_side(path: Path) -> tuple[Image.Image, Image.Image]:
    """The (A, B) halves of the AB image at `path`; ImageReadError when it is under 2 px wide."""
    image = read_rgb(path)
    if image.width < 2:
        raise ImageReadError(f"cannot read image pair: '{path}' is {too_narrow_to_split(*image.size)}")
    return split_side_by_side(image)


def splittable_side_by_side(path: Path) -> bool:
    """Whether an A|B image is at least 2 px wide, so that it splits into two halves (a file whose
    header cannot be read counts: it is skipped elsewhere, said there)."""
    size = header_size(path)
    return size is None or size[0] >= 2


def check_side_by_side_shapes(paths: list[Path], root: Path, strict: bool) -> list[Path]:
    """The AB images of `paths` that can be split: those under 2 px wide are skipped, each with a
    warning. Images narrower than 2:1 among a majority at least 2:1 (a stray photo among the pairs)
    are warned of, named. With `strict` either is an error."""
    sizes = {path: size for path in paths if (size := header_size(path)) is not None}
    narrow = {path for path, (width, _) in sizes.items() if width < 2}
    stray, wide = [], sum(pair_wide(*size) for size in sizes.values())
    if wide >= len(sizes) / 2:
        stray = [f"{path.relative_to(root)} {width}x{height}" for path, (width, height) in sizes.items()
                 if path not in narrow and not pair_wide(width, height)]
    elif sizes:  # (a folder of photos, not pairs: said even without --strict's error, which pairs of portrait
        # halves, narrower than 2:1 too, would meet)
        first, (width, height) = next((path, size) for path, size in sizes.items() if not pair_wide(*size))
        warnings.warn(f"{len(sizes) - wide} of the {len(sizes)} images in '{root}' are narrower than 2:1 (the first: "
                      f"{first.relative_to(root)} {width}x{height}): A|B pairs side by side are usually twice as wide "
                      "as high, so these may be single photos whose left and right halves would train as input and "
                      "target; if so, give A|B images or A/ and B/ folders that pair by name", UserWarning,
                      stacklevel=3)
    problems = [(f"skipping '{path}': it is {too_narrow_to_split(*sizes[path])}", UnreadableImageWarning)
                for path in sorted(narrow)]
    if stray:
        problems.append((f"{len(stray)} image(s) in '{root}' are narrower than 2:1 while most are A|B pairs at least "
                         f"twice as wide as high, so their halves may not be a pair: {first_few(stray, MAX_LISTED, '; ')}",
                         UserWarning))
    if strict and problems:
        raise ImageReadError("; ".join(message for message, _ in problems)
                             + " (data.strict / --strict makes this an error)")
    for message, category in problems:
        warnings.warn(message, category, stacklevel=3)
    return [path for path in paths if path not in narrow]


SHAPE_SAMPLE = 1000  # training images whose headers tell the shape of a run's pairs (the first, by name)


@dataclass(frozen=True)
class PairShapes:
    """The width/height range of the A|B images a run trained on, as far as this machine can tell.

    `known` is False when the training folder is not here. `lowest` and `highest` are 0 when the
    run did not train on A|B images at least twice as wide as high (A/ and B/ folders, another
    data set, pairs of portrait halves): then no input is shaped like its pairs.
    """
    known: bool
    lowest: float = 0.0
    highest: float = 0.0

    def fits(self, width: int, height: int) -> bool:
        """Whether a `width` x `height` image is shaped like these pairs, within 1%. Unknown pairs
        are taken to be twice as wide as high, as pix2pix's A|B data sets are."""
        aspect = width / height
        if not self.known:
            return abs(aspect - 2) <= 0.02
        return self.highest > 0 and 0.99 * self.lowest <= aspect <= 1.01 * self.highest


def training_pair_shapes(data: dict, side_by_side: bool = False) -> PairShapes:
    """What a run's `[data]` section (a checkpoint's config) trained on, read from the headers of
    its first SHAPE_SAMPLE training images. Its A|B images count when most are at least twice as
    wide as high (square or wider halves), and their range of shapes says which inputs are pairs:
    after 2:1 pairs a 2:1 input is one, after 4:1 pairs it is a single side, and a 3:1 panorama
    is a pair only for a run whose pairs were that wide. With `side_by_side`, the pairs of a run
    that trained on A/ and B/ folders count too, as its A images set beside their partners (twice as
    wide): the A|B inputs that `gan translate --paired-input` takes for it."""
    if data.get("dataset") != "paired" or (data.get("layout") == "folders" and not side_by_side):
        return PairShapes(known=True)
    folder = _training_folder(data)
    if folder is None:
        return PairShapes(known=False)
    folders = data.get("layout") == "folders" or (data.get("layout", "auto") == "auto"
                                                  and detect_layout(folder) == "folders")
    if folders and not side_by_side:
        return PairShapes(known=True)
    try:
        if folders:
            sizes = [(2 * width, height) for path in find_images(side_folder(folder, "A"))[:SHAPE_SAMPLE]
                     if (size := header_size(path)) is not None for width, height in [size]]
        else:
            sizes = [size for path in find_images(folder)[:SHAPE_SAMPLE] if (size := header_size(path)) is not None]
    except FileNotFoundError:
        sizes = []
    if not sizes:  # no readable images: nothing to tell by
        return PairShapes(known=False)
    wide = [width / height for width, height in sizes if pair_wide(width, height)]
    if len(wide) < len(sizes) / 2:
        return PairShapes(known=True)
    return PairShapes(known=True, lowest=min(wide), highest=max(wide))


def training_layout(data: dict) -> str | None:
    """How a run's `[data]` section (a checkpoint's config) laid out its pairs: "folders" (A/ and B/)
    or "aligned" (A|B images), as set or as detected in its training folder; None when the layout
    is auto-detected and the folder is not here to tell."""
    if data.get("layout") in ("aligned", "folders"):
        return data["layout"]
    folder = _training_folder(data)
    return detect_layout(folder) if folder is not None else None


def _training_folder(data: dict) -> Path | None:
    """The folder of a run's training pairs (data.root, or its data.split subfolder), when it is here."""
    if not data.get("root"):
        return None
    split = data.get("split", "")
    folder = Path(data["root"]) if split in ("", "all") else Path(data["root"]) / split
    return folder if folder.is_dir() else None


def augment_together(images: list[Image.Image], size: int, load_size: int, rng: random.Random | None,
                     hflip: bool) -> list[Image.Image]:
    """The same geometric augmentation on every image of `images`.

    Training (`rng` given): resize to `load_size` squared (pix2pix's resize_and_crop;
    a short image is scaled up), crop the same random `size` square, flip all or none.
    Evaluation (`rng` None) or `load_size` 0: resize to `size` squared.
    """
    if rng is None or not load_size:
        images = [image.resize((size, size), Image.Resampling.BICUBIC) for image in images]
    else:
        images = [image.resize((load_size, load_size), Image.Resampling.BICUBIC) for image in images]
        left, top = rng.randint(0, load_size - size), rng.randint(0, load_size - size)
        images = [image.crop((left, top, left + size, top + size)) for image in images]
    if rng is not None and hflip and rng.random() < 0.5:
        images = [image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for image in images]
    return images


class PairedImages(Dataset):
    """Pairs of files (A, B), or single AB files (B is None), as (input, target) tensors."""

    def __init__(self, pairs: list[tuple[Path, Path | None]], resolution: int, load_size: int = 286,
                 direction: str = "AtoB", train: bool = True, hflip: bool = True, strict: bool = False,
                 skipped_at_scan: int = 0):
        if load_size and load_size < resolution:
            raise ValueError(f"data.load_size ({load_size}) must be 0 or at least data.resolution ({resolution})")
        self.pairs = pairs
        self.resolution = resolution
        self.load_size = load_size
        self.reverse = direction == "BtoA"
        self.train = train
        self.hflip = hflip
        self.skip_unreadable = SkipUnreadable(strict, len(pairs), skipped_at_scan,
                                              location_of([first for first, _ in pairs]))

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[Image.Image, Image.Image]:
        """(A, B) images of pair `index`, unaugmented."""
        first, second = self.pairs[index]
        if second is None:
            return read_side_by_side(first)
        return read_rgb(first), read_rgb(second)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = augmentation_key(key)
        a_image, b_image = self.skip_unreadable(self.load, index, len(self.pairs))
        rng = random.Random(seed) if self.train else None
        a_image, b_image = augment_together([a_image, b_image], self.resolution, self.load_size, rng, self.hflip)
        source, target = (b_image, a_image) if self.reverse else (a_image, b_image)
        return {"input": pil_to_signed(source), "target": pil_to_signed(target)}

    @property
    def num_skipped(self) -> int:
        return self.skip_unreadable.num_skipped

    def without_strays(self) -> PairedImages:
        """This evaluation set without the A|B images narrower than 2:1 among a majority at least that
        wide (a stray photo among the pairs), named in one warning: halved, such an image is no input
        and target, and `gan eval` leaves it out of its scores too."""
        sizes = {first: size for first, second in self.pairs
                 if second is None and (size := header_size(first)) is not None}
        narrow = [path for path, size in sizes.items() if not pair_wide(*size)]
        if not narrow or len(narrow) >= len(sizes) / 2:  # (none; or no majority of pairs to stray from)
            return self
        shown = first_few([path.name for path in narrow], MAX_LISTED)
        warnings.warn(f"leaving out {len(narrow)} evaluation image(s) narrower than 2:1 while most are A|B pairs, as "
                      f"gan eval does (halved, they are no input and target): {shown}", stacklevel=2)
        dropped = set(narrow)
        return PairedImages([pair for pair in self.pairs if pair[0] not in dropped], self.resolution, self.load_size,
                            "BtoA" if self.reverse else "AtoB", self.train, self.hflip, self.skip_unreadable.strict,
                            self.skip_unreadable.skipped_at_scan + len(dropped))


def side_folder(root: Path, side: str) -> Path:
    """`root/A` (or `root/B`), also when written in lower case (`a/`); both cases at once is an error."""
    found = [root / name for name in (side.upper(), side.lower()) if (root / name).is_dir()]
    if len(found) == 2 and not found[0].samefile(found[1]):
        raise ValueError(f"'{root}' holds both {side.upper()}/ and {side.lower()}/: keep one folder per side")
    return found[0] if found else root / side.upper()


def detect_layout(root: Path) -> str:
    """'folders' when root holds A/ and B/ (in either case), else 'aligned'."""
    return "folders" if side_folder(root, "A").is_dir() and side_folder(root, "B").is_dir() else "aligned"


def refuse_two_folders_of_single_images(root: Path) -> None:
    """ValueError when `root`, about to be read as A|B images cut in halves, holds no images of its
    own but two folders of images mostly narrower than 2:1: the sides of pairs, named other than
    A/ and B/ (input/ and target/, say), whose images would each be cut in two."""
    if _images_beside(root):  # (a .DS_Store or a README is no image of its own)
        return
    sides = [side for side in ("A", "B") if side_folder(root, side).is_dir()]
    if len(sides) == 1:  # (its photos would be cut in halves, or, 2:1 themselves, train as their own pairs)
        other = "B" if sides == ["A"] else "A"
        raise ValueError(f"'{root}' has {sides[0]}/ but no {other}/: pairs in folders take both, A/ the inputs and B/ "
                         "the targets, their files paired by name")
    # (an empty lost+found/ or $RECYCLE.BIN/ beside them made three folders, and single photos trained as pairs)
    folders = sorted(sub for sub in root.iterdir() if sub.is_dir() and not left_out_of_listing(sub.name))
    if len(folders) != 2:
        return
    try:
        sizes = [size for folder in folders for path in find_images(folder)[:SHAPE_SAMPLE // 2]
                 if (size := header_size(path)) is not None]
    except FileNotFoundError:
        return
    if sizes and sum(pair_wide(*size) for size in sizes) < len(sizes) / 2:
        names = " and ".join(f"{folder.name}/" for folder in folders)
        raise ValueError(f"'{root}' holds two folders of single images ({names}), which would be read as A|B images "
                         "cut in halves: name them A/ and B/ so that their files pair by name")


def _images_beside(folder: Path) -> list[Path]:
    """The image files right in `folder` (not hidden), as find_images would read them."""
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS
                  and not path.name.startswith(".") and path.is_file())


# The split folders of pix2pix's data sets (facades/train, val, test).
SPLIT_FOLDERS = ("train", "val", "test")


def refuse_splits_read_together(root: Path) -> None:
    """ValueError when `root`, read whole (data.split = "all"), holds split folders (train/ and val/,
    say): their pairs would train together, and validation (data.val_split, by default the training
    split) would score pairs the run trained on."""
    splits = sorted(sub.name for sub in root.iterdir() if sub.is_dir() and sub.name.lower() in SPLIT_FOLDERS)
    if len(splits) >= 2:
        raise ValueError(f"'{root}' holds the split folders {', '.join(f'{name}/' for name in splits)}, which "
                         f"data.split = \"all\" would read together (and validate on the pairs it trains on): set "
                         f"data.split to one of {', '.join(splits)} and data.val_split to another")


def refuse_splits_inside_sides(root: Path) -> None:
    """ValueError when `root`'s A/ and B/ hold split folders (A/train, A/val, A/test and B/'s alike: the
    layout pix2pix's combine_A_and_B.py takes), which reading A/ and B/ would pair and train together,
    test pairs too. gan reads a split's pairs from root/<split>/A and root/<split>/B; says how to move
    them there."""
    sides = [folder for folder in (side_folder(root, "A"), side_folder(root, "B")) if folder.is_dir()]
    splits = sorted({sub.name for side in sides for sub in side.iterdir()
                     if sub.is_dir() and sub.name.lower() in SPLIT_FOLDERS})
    if splits:
        raise ValueError(_splits_inside_sides(root, splits))


def _splits_inside_sides(root: Path, splits: list[str]) -> str:
    a_side, b_side = side_folder(root, "A").name, side_folder(root, "B").name
    first = splits[0]  # (the moves of one split, as the example)
    moves = (f"mkdir {root / first} && mv {root / a_side / first} {root / first / 'A'} && "
             f"mv {root / b_side / first} {root / first / 'B'}")
    return (f"'{root}' holds split folders inside {a_side}/ and {b_side}/ ({', '.join(f'{a_side}/{name}' for name in splits)}"
            f", the layout pix2pix's combine_A_and_B.py takes), which would be read together: gan reads a split's "
            f"pairs from {root}/<split>/A and {root}/<split>/B; move each split there ({moves}; and so on)")


def _name_key(root: Path, path: Path) -> str:
    """Relative path without extension: a.png in A/ pairs with a.jpg in B/. In Unicode's composed
    form (NFC), since macOS writes names decomposed: a copied é.png would not pair with a typed one."""
    return unicodedata.normalize("NFC", path.relative_to(root).with_suffix("").as_posix())


def _files_by_name(folder: Path) -> dict[str, Path]:
    """The images of `folder` by relative name without extension; two files of one name
    (`0.png` and `0.jpg`) are an error, since either could be the pair's side."""
    files: dict[str, Path] = {}
    for path in find_images(folder):
        name = _name_key(folder, path)
        if name in files:
            alike = (" (their names differ only in Unicode form: one written composed, one decomposed as macOS "
                     "writes names)" if files[name].relative_to(folder).with_suffix("") !=
                     path.relative_to(folder).with_suffix("") else "")
            raise ValueError(f"'{files[name]}' and '{path}' have the same name without extension{alike}, so the "
                             f"pair '{name}' is ambiguous: keep one of them (files pair by name without extension)")
        files[name] = path
    return files


def matched_folders(root: Path) -> list[tuple[Path, Path]]:
    """Files of root/A and root/B paired by relative name; any unmatched name is an error."""
    a_folder, b_folder = side_folder(root, "A"), side_folder(root, "B")
    overlap = folders_overlap(a_folder, b_folder)
    if overlap is not None:  # (a link: each image would be its own target)
        shared = "are one folder" if overlap == "same" else "share images (one is inside the other)"
        raise ValueError(f"'{a_folder}' and '{b_folder}' {shared}: A/ holds the inputs and B/ the targets, each "
                         "its own files")
    a_files, b_files = _files_by_name(a_folder), _files_by_name(b_folder)
    problems = []
    for side, other, mine, theirs in (("A", "B", a_files, b_files), ("B", "A", b_files, a_files)):
        alone = sorted(set(mine) - set(theirs))
        if alone:
            shown = first_few([f"{side}/{name}" for name in alone], MAX_LISTED)
            problems.append(f"{len(alone)} file(s) in {side}/ have no partner in {other}/: {shown}")
    if problems:
        raise ValueError(f"unmatched pairs in '{root}' (files pair by name without extension): " + "; ".join(problems)
                         + _case_only(set(a_files) - set(b_files), set(b_files) - set(a_files)))
    return [(a_files[name], b_files[name]) for name in sorted(a_files)]


def _case_only(a_alone: set[str], b_alone: set[str]) -> str:
    """A note for unmatched names of A/ that differ from one of B/ in case alone (A/UPPER.PNG,
    B/upper.png): names pair exactly, as the file system tells them apart."""
    b_by_folded = {name.casefold(): name for name in b_alone}
    alike = sorted((name, b_by_folded[name.casefold()]) for name in a_alone if name.casefold() in b_by_folded)
    if not alike:
        return ""
    return (f"; {len(alike)} of them differ from a partner in case alone (the first: "
            f"'A/{alike[0][0]}' and 'B/{alike[0][1]}'): names pair exactly, case included, so rename one side")


def _warn_of_unused_partners(pairs: list[tuple[Path, Path]], readable: set[Path], root: Path) -> None:
    """One warning naming the readable sides of the pairs left out for an unreadable partner (each
    named in its own warning): without it they would vanish from the data without a word."""
    unused = [path for pair in pairs if not set(pair) <= readable for path in pair if path in readable]
    if unused:
        shown = ", ".join(path.relative_to(root).as_posix() for path in unused[:MAX_LISTED])
        more = f" and {len(unused) - MAX_LISTED} more" if len(unused) > MAX_LISTED else ""
        warnings.warn(f"{len(unused)} readable file(s) in '{root}' are left out with their unreadable partner: "
                      f"{shown}{more}", UnreadableImageWarning, stacklevel=3)


def check_pair_shapes(pairs: list[tuple[Path, Path]], root: Path, strict: bool) -> None:
    """Warn once (an error with `strict`) naming the pairs whose A and B aspect ratios differ: both
    sides are resized to the same square, so such a pair is distorted differently on each side
    and pixels no longer correspond."""
    mismatched = []
    for a_path, b_path in pairs:
        a_size, b_size = header_size(a_path), header_size(b_path)
        if a_size is None or b_size is None:  # unreadable: skipped and named when loaded
            continue
        (a_width, a_height), (b_width, b_height) = a_size, b_size
        if abs(a_width * b_height - b_width * a_height) > 0.01 * a_height * b_width:
            mismatched.append(f"{a_path.relative_to(root)} {a_width}x{a_height} / "
                              f"{b_path.relative_to(root)} {b_width}x{b_height}")
    if not mismatched:
        return
    shown = first_few(mismatched, MAX_LISTED, "; ")
    message = (f"{len(mismatched)} pair(s) in '{root}' have A and B of different aspect ratios, so their pixels do "
               f"not correspond after resizing: {shown}")
    if strict:
        raise ImageReadError(message + " (data.strict / --strict makes this an error)")
    warnings.warn(message + " (--strict makes this an error)", stacklevel=2)


def _likely_root(root: Path, split: str) -> str:
    """What a data.root without its split folder most likely is, for the message: one with the split's
    folder named in other case (`Train/`), a split folder itself (`paired/train`), or CycleGAN's
    unpaired layout (`trainA/`, `trainB/`)."""
    try:
        other_case = next((sub.name for sub in root.iterdir() if sub.name.lower() == split.lower() and sub.is_dir()),
                          None)
        if other_case is not None:
            return f": '{root}' holds '{other_case}/' (folder names are case-sensitive): name the split \"{other_case}\""
        if any(sub.name.endswith(("A", "B")) and sub.name[:-1] in ("train", "val", "test") and sub.is_dir()
               for sub in root.iterdir()):
            return f": '{root}' holds trainA/-style folders, CycleGAN's unpaired layout (recipe = \"cyclegan\")"
        if find_images(root, recursive=False):
            return (f": '{root}' holds images itself, so it may be a split folder: set data.root to '{root.parent}', "
                    "or data.split = \"all\" to read these")
    except OSError:  # (no such folder: the message says so)
        pass
    return ""


def paired_dataset(root: str | Path, split: str, resolution: int, load_size: int = 286, direction: str = "AtoB",
                   layout: str = "auto", train: bool = True, hflip: bool = True, strict: bool = False,
                   max_images: int = 0) -> PairedImages:
    """Pairs under `root`, in `root/split` when that folder exists (pix2pix's train/ val/ test/)."""
    root = Path(root)
    folder = root if split in ("", "all") else root / split
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"paired data folder '{folder}' is a file, not a folder (data.root names a folder "
                                 "of A|B images or of A/ and B/ folders)")
    if not folder.is_dir():
        if (side_folder(root, "A") / split).is_dir():  # (A/train beside B/train: the split under each side)
            raise FileNotFoundError(f"paired data folder '{folder}' does not exist: "
                                    + _splits_inside_sides(root, [split]))
        raise FileNotFoundError(f"paired data folder '{folder}' does not exist"
                                f"{why_missing(folder)} (the split "
                                f"names a subfolder of data.root; \"all\" uses data.root itself){_likely_root(root, split)}")
    if layout == "auto":
        layout = detect_layout(folder)
        nested = sorted(sub.name for sub in folder.iterdir() if sub.is_dir() and detect_layout(sub) == "folders")
        if layout == "aligned" and nested:
            raise ValueError(f"'{folder}' holds A/ and B/ folders one level down ({', '.join(nested)}), which would "
                             f"be read as A|B images cut in halves: set data.split to one of {', '.join(nested)} "
                             "(or data.root to it)")
        if layout == "aligned":
            refuse_two_folders_of_single_images(folder)
    if layout != "folders" and split in ("", "all"):
        refuse_splits_read_together(folder)
    if layout == "folders":
        refuse_splits_inside_sides(folder)
        missing = [name for name in ("A", "B") if not side_folder(folder, name).is_dir()]
        if missing:
            lacks = "neither A/ nor B/" if len(missing) == 2 else f"no {missing[0]}/"
            raise FileNotFoundError(f"data.layout = \"folders\" reads pairs from '{folder}/A' and '{folder}/B', and "
                                    f"'{folder}' has {lacks}; for A|B images side by side set data.layout=aligned "
                                    "(or auto, which tells them apart)")
        beside = _images_beside(folder)
        if beside:  # (A|B images beside the folders, say: the folders layout reads A/ and B/ alone)
            warnings.warn(f"'{folder}' holds {len(beside)} image file(s) beside its A/ and B/ folders, which are left "
                          f"out (pairs are read from A/ and B/ alone): {first_few([p.name for p in beside], 3)}; move "
                          "them into A/ and B/ as pairs, or out of the folder", stacklevel=2)
        pairs = matched_folders(folder)
        files = [path for pair in pairs for path in pair]
        readable, skipped = readable_images(files, strict)
        readable_set = set(readable)
        kept = [pair for pair in pairs if pair[0] in readable_set and pair[1] in readable_set]
        _warn_of_unused_partners(pairs, readable_set, folder)
        kept = kept[:max_images] if max_images else kept  # (max_images counts pairs that can be read)
        check_pair_shapes(kept, folder, strict)
    else:
        files = find_images(folder)
        readable, skipped = readable_images(files, strict, max_images, counts=splittable_side_by_side)
        splittable = check_side_by_side_shapes(readable, folder, strict)
        skipped += sorted(set(readable) - set(splittable))
        kept = [(path, None) for path in splittable]
    if not kept:
        raise ImageReadError(f"no readable image pairs in '{folder}'")
    if train:  # (resized whole to data.load_size, as the pix2pix reference does, then cropped)
        if layout == "folders":
            warn_of_upsampling([path for pair in kept for path in pair], centre_square, resolution,
                               "the images' shorter side", load_size)
        else:
            warn_of_upsampling([path for path, _ in kept], lambda width, height: centre_square(width // 2, height),
                               resolution, "each A|B half's shorter side", load_size)
    return PairedImages(kept, resolution, load_size, direction, train, hflip, strict, len(skipped))
