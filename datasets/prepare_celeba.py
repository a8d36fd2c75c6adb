#!/usr/bin/env python3
"""Unpack and check CelebA's aligned faces for `gan train experiments/dcgan_celeba128.toml` (or 64).

Nothing is downloaded: fetch img_align_celeba.zip (and optionally
list_eval_partition.txt) yourself, as datasets/README.md describes, then

    python datasets/prepare_celeba.py --zip ~/Downloads/img_align_celeba.zip \
        --partition ~/Downloads/list_eval_partition.txt --out datasets/celeba

which leaves datasets/celeba/img_align_celeba/*.jpg and datasets/celeba/list_eval_partition.txt.
Run again after an interruption, it keeps the files already unpacked whole and goes on. It never
replaces a file that differs from the zip's. With only --out, it checks an existing folder: every
image is opened and checked for being cut short. Exits non-zero when something is off.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings
import zipfile
import zlib
from collections import Counter
from pathlib import Path

try:  # (torch comes with them, which takes seconds: a Ctrl-C then is one line too, not a traceback)
    from gan.core.files import is_stale_temp, remove_stale_temps, temp_name, write_atomically, write_text_atomically
    from gan.core.processes import interrupt_on_sigterm
    from gan.core.progress import DelayedProgress, Progress
    from gan.core.wording import first_few
    from gan.data.decode import check_header, find_images, header_size
    from gan.data.image_files import (
        UNPACK_RECORD,
        celeba_folder_below,
        celeba_image_dir,
        partition_candidates,
        read_partition_file,
    )
except KeyboardInterrupt:
    print("prepare_celeba: stopped before it began; nothing was written", file=sys.stderr)
    sys.exit(130)

OFFICIAL_COUNT = 202_599
OFFICIAL_SIZE = (178, 218)
CROP = 148  # data.crop of the CelebA configs, in official pixels
IMAGE_FOLDER = "img_align_celeba"
PARTITION_NAME = "list_eval_partition.txt"
RECORD_NAME = UNPACK_RECORD  # what the last unpack took from which zip, and whether it finished (training reads it)
# The methods Python's zipfile unpacks (a Deflate64 member, say, it cannot)
READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                    zipfile.ZIP_LZMA: "lzma"}
NAMED = 5  # files named in one message; the rest are counted


def fail(message: str) -> None:
    sys.exit(f"prepare_celeba: error: {message}")


SEVEN_ZIP_SIGNATURE = b"7z\xbc\xaf\x27\x1c"


def faces_in(archive: Path) -> dict[str, zipfile.ZipInfo]:
    """The zip's face JPEGs by file name: those in a folder named img_align_celeba, as in the official
    zip (img_align_celeba/000001.jpg) and Kaggle's (img_align_celeba/img_align_celeba/000001.jpg)."""
    if not archive.is_file():
        fail(f"--zip '{archive}' is not a file")
    try:
        zipped = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        with open(archive, "rb") as file:
            if file.read(6) == SEVEN_ZIP_SIGNATURE or ".7z" in archive.name.lower():
                fail(f"--zip '{archive}' is a 7-Zip archive (the official PNG copy ships as 7z parts), not a zip: "
                     "unpack it with 7-Zip (`7z x` on its first part) into --out's folder, then check it with --out "
                     "alone")
        fail(f"--zip '{archive}' is not a readable zip ({error}); download it again")
    with zipped:
        members = [info for info in zipped.infolist() if not info.is_dir()]
    faces: dict[str, zipfile.ZipInfo] = {}
    for info in members:
        path = Path(info.filename)
        # (a zip made on a Mac holds __MACOSX/img_align_celeba/._000001.jpg beside each face: no image)
        hidden = any(part.startswith(".") or part == "__MACOSX" for part in path.parts)
        if path.suffix.lower() == ".jpg" and path.parent.name == IMAGE_FOLDER and not hidden:
            if path.name in faces:
                fail(f"--zip '{archive}' holds '{path.name}' twice ({faces[path.name].filename} and {info.filename})")
            faces[path.name] = info
    if not faces:
        held = first_few([info.filename for info in members], NAMED) or "nothing"
        fail(f"--zip '{archive}' holds no {IMAGE_FOLDER}/*.jpg (it holds {held}): is it CelebA's aligned-faces zip?")
    encrypted = [info.filename for info in faces.values() if info.flag_bits & 0x1]
    if encrypted:
        fail(f"--zip '{archive}' is encrypted ({len(encrypted)} of its faces, e.g. '{encrypted[0]}'), which this "
             "script does not unpack: unzip it yourself with its password into --out's img_align_celeba/, then check "
             "it with --out alone")
    unreadable = Counter(info.compress_type for info in faces.values() if info.compress_type not in READABLE_METHODS)
    if unreadable:
        fail(f"--zip '{archive}' compresses {sum(unreadable.values())} of its faces with a method Python's zipfile "
             f"cannot unpack (zip method {', '.join(map(str, sorted(unreadable)))}; it reads "
             f"{', '.join(READABLE_METHODS.values())}): unzip it with another tool into --out's img_align_celeba/, "
             "then check it with --out alone")
    return faces


def file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def already_there(path: Path, info: zipfile.ZipInfo) -> bool | None:
    """True when `path` holds the member's bytes, False when it holds others, None when it is absent."""
    if not path.exists():
        return None
    return path.is_file() and path.stat().st_size == info.file_size and file_crc(path) == info.CRC


def record_of(archive: Path, images: int, complete: bool) -> dict:
    return {"zip": str(archive.resolve()), "images": images, "complete": complete}


def read_record(record: Path) -> dict | None:
    """The record `write_record` wrote, or None (none, or not JSON)."""
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError):
        return None


def write_record(record: Path, archive: Path, images: int, complete: bool) -> None:
    write_text_atomically(record, json.dumps(record_of(archive, images, complete)) + "\n")


def unpack(archive: Path, faces: dict[str, zipfile.ZipInfo], there: dict[str, bool | None], image_dir: Path,
           record: Path) -> None:
    """Each face `there` does not hold yet to a temp name, checked against its CRC, then renamed: an
    interrupted or damaged unpack leaves only whole files, and the record says it did not finish."""
    remove_stale_temps(image_dir)  # an earlier unpack's, killed mid-file
    missing = [name for name in sorted(faces) if not there[name]]
    if not missing and read_record(record) == record_of(archive, len(faces), complete=True):
        print(f"all {len(faces)} images of '{archive}' are in {image_dir} already")
        return  # (nothing to write: a folder made read-only since is only checked)
    write_record(record, archive, len(faces), complete=False)
    print(f"unpacking {len(missing)} images to {image_dir} ({len(faces) - len(missing)} already there) ...")
    progress = Progress(len(missing), stream=sys.stdout, unit="image", rate_unit="img", log_interval=10.0)
    with zipfile.ZipFile(archive) as zipped:
        for count, name in enumerate(missing, 1):
            destination = image_dir / name
            temp = temp_name(destination)
            try:
                with zipped.open(faces[name]) as source, open(temp, "wb") as target:
                    while chunk := source.read(1 << 20):  # zipfile checks the CRC at the member's end
                        target.write(chunk)
                os.replace(temp, destination)
            except KeyboardInterrupt:  # (Ctrl-C, SIGTERM: no partial file is left)
                temp.unlink(missing_ok=True)
                raise
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as error:
                temp.unlink(missing_ok=True)
                if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    then = f"make '{image_dir}' writable"
                elif isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
                    then = "free space"
                else:
                    then = "download the zip again"
                fail(f"could not unpack '{faces[name].filename}' from '{archive}' ({error}); the {count - 1} images "
                     f"unpacked before it are whole: {then}, then run this again")
            if count % 100 == 0 or count == len(missing):  # (a terminal's line redrawn per image: 14 MB of it)
                progress.update(count)
    progress.close()
    write_record(record, archive, len(faces), complete=True)


def refuse_to_replace(there: dict[str, bool | None], faces: dict[str, zipfile.ZipInfo], image_dir: Path,
                      partition: Path | None, partition_destination: Path) -> None:
    """Files of --out that the unpack or the copy would replace with other bytes: named, nothing written."""
    differing = [f"{IMAGE_FOLDER}/{name}" for name in sorted(there) if there[name] is False]
    # (by its end: a whole face of a smaller copy is shorter too, and no stump)
    shorter = [name for name in sorted(there) if there[name] is False and (image_dir / name).is_file()
               and (image_dir / name).stat().st_size < faces[name].file_size
               and check_header(image_dir / name) is not None]
    if partition and partition_destination.exists() and not partition_destination.samefile(partition) \
            and partition_destination.read_bytes() != partition.read_bytes():
        differing.append(PARTITION_NAME)
    if differing:
        cut = (f"; {len(shorter)} of them are shorter than the zip's and cut short ({first_few(shorter, NAMED)}): "
               "copies cut short (by a copy or unpack that stopped, not by this script, which writes whole files) can "
               "be deleted, and this run again unpacks them" if shorter else "")
        fail(f"{len(differing)} file(s) in '{image_dir.parent}' differ from what would replace them "
             f"({first_few(differing, NAMED)}): nothing was written; move them away or choose another --out{cut}")


def _holds_images(folder: Path) -> bool:
    """Whether `folder` holds image files itself (the official PNG copy, img_align_celeba/ named as --out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bool(find_images(folder, recursive=False))
        except (FileNotFoundError, NotADirectoryError):
            return False


def check(out: Path) -> tuple[tuple[int, int] | None, list[str]]:
    """Report what `out` holds, as the loader reads it (its image folder, Kaggle's nested one too, and
    partition file): (the most common image size or None, the problems found)."""
    image_dir = celeba_image_dir(out)
    if image_dir == out and not _holds_images(out):  # (else the image folder itself, as data.root may name it)
        below = celeba_folder_below(out)  # (Google Drive's CelebA/ holds it in Img/)
        return None, [f"no folder '{out / IMAGE_FOLDER}'" + (f"; the faces are in '{below}': give --out {below}"
                                                               if below else "")]
    problems = []
    leftovers = [path for path in image_dir.glob("*.tmp") if is_stale_temp(path)]
    record_path = (out if image_dir != out else out.parent) / RECORD_NAME
    try:
        record = json.loads(record_path.read_text()) if record_path.is_file() else None
        if record is not None and not (isinstance(record.get("images"), int) and "complete" in record):
            raise ValueError("not this script's record")
    except (ValueError, AttributeError):  # (not JSON, or JSON of another shape)
        problems.append(f"'{record_path}' is damaged; run the --zip command again to rewrite it")
        record = None
    if leftovers or (record and not record.get("complete")):
        problems.append(f"an unpack into '{image_dir}' did not finish: run the same --zip command again (it keeps "
                        "the images already unpacked whole)")
    # every file the loader reads (the official PNG copy, a stray .jpeg), not the zip's .jpg alone
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (files of other formats: the loader warns of them at training)
            images = find_images(image_dir, recursive=False)
    except FileNotFoundError:  # (none there)
        images = []
    if not images:
        return None, [*problems, f"no images in '{image_dir}'"]
    print(f"checking {len(images)} images in {image_dir} (the full set has {OFFICIAL_COUNT:,}) ...", flush=True)
    if record and record.get("complete") and len(images) < record["images"]:
        problems.append(f"{record['images'] - len(images)} of the {record['images']} images unpacked from "
                        f"'{record['zip']}' are missing; run the --zip command again")
    elif not record and len(images) < OFFICIAL_COUNT:
        print(f"note: fewer than the official {OFFICIAL_COUNT:,} faces (fine for a subset)")
    sizes: Counter[tuple[int, int]] = Counter()
    unreadable = []
    progress = DelayedProgress(len(images), "image", "img", stream=sys.stdout)  # (34 s of 202,599 said nothing)
    for done, path in enumerate(images, 1):
        problem = check_header(path)
        if problem:
            unreadable.append(f"{path.name} ({problem})")
        else:
            sizes[header_size(path)] += 1
        progress.update(done)
    progress.close()
    if unreadable:
        problems.append(f"{len(unreadable)} image(s) cannot be read: {first_few(unreadable, NAMED, '; ')}")
    twice = sorted(stem for stem, count in Counter(path.stem for path in images).items() if count > 1)
    if twice:  # (000001.jpg beside 000001.png: the loader reads both, so each such face trains twice)
        problems.append(f"{len(twice)} face(s) are there in two files of one name ({first_few(twice, NAMED)}, e.g. "
                        ".jpg and .png): each trains twice; keep one copy")
    if len(sizes) > 1:
        shown = first_few([f"{count} at {width}x{height}" for (width, height), count in sizes.most_common()], NAMED)
        guess = ("two copies of CelebA mixed?" if len(sizes) <= NAMED else
                 "photos, not the aligned faces (the in-the-wild img_celeba/, say)?")
        problems.append(f"the images are of {len(sizes)} sizes ({shown}): {guess}")
    elif sizes and set(sizes) != {OFFICIAL_SIZE}:
        print(f"note: the official aligned faces are {OFFICIAL_SIZE[0]}x{OFFICIAL_SIZE[1]}; the crop is scaled "
              "to the width found")
    partition = next((path for path in partition_candidates(image_dir) if path.is_file()), None)
    if partition:
        try:
            splits = read_partition_file(partition)
        except ValueError as error:
            problems.append(str(error))
        else:
            counts = Counter(splits.values())
            print(f"partition: train {counts[0]}, valid {counts[1]}, test {counts[2]}")
            absent = sorted(set(splits) - {path.stem for path in images})
            if absent:
                print(f"note: {len(absent)} of the images the partition lists are not in the folder "
                      f"({first_few(absent, NAMED)})")
            unlisted = [path.name for path in images if path.stem not in splits]
            if unlisted:
                print(f"note: {len(unlisted)} of the images are in no split of '{partition}' "
                      f"({first_few(unlisted, NAMED)}): only data.split = \"all\" trains on them")
    else:
        print(f"no {PARTITION_NAME} beside '{image_dir}': data.split must stay \"all\" (Kaggle's zip holds "
              "list_eval_partition.csv: give it with --partition)")
    return (sizes.most_common(1)[0][0] if sizes else None), problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zip", type=Path, help="img_align_celeba.zip, downloaded by you")
    parser.add_argument("--partition", type=Path, help="list_eval_partition.txt (or Kaggle's .csv), downloaded by you")
    parser.add_argument("--out", type=Path, required=True, help="folder to hold img_align_celeba/")
    args = parser.parse_args()
    # (`.` from inside img_align_celeba/: its name and the folder holding it, as the loader reads them)
    out = Path(os.path.abspath(args.out)) if args.out.name in ("", ".", "..") else args.out
    image_dir = out / IMAGE_FOLDER
    if args.zip and celeba_image_dir(out) != image_dir and image_dir.is_dir():
        # (Kaggle's copy unpacked by hand nests the folder: the loader and the check read the inner one)
        fail(f"--out '{out}' holds '{celeba_image_dir(out)}', which the loader reads: unpacking beside it into "
             f"'{image_dir}' would make a second copy nothing reads; check it with --out alone, or choose another --out")
    if args.zip and out.name == IMAGE_FOLDER and out.is_dir() and any(
            path.suffix.lower() == ".jpg" for path in out.iterdir()):
        fail(f"--out '{out}' is an image folder itself, holding faces: unpacking into '{image_dir}' would make a "
             f"second copy, which the loader would read in its place; give the folder holding it: --out {out.parent}")
    partition_destination = out / PARTITION_NAME
    # Everything that can be checked is, before anything is written.
    faces = faces_in(args.zip) if args.zip else {}
    if args.partition:
        if not args.partition.is_file():
            fail(f"--partition '{args.partition}' is not a file")
        try:
            read_partition_file(args.partition)
        except ValueError as error:
            fail(f"--partition: {error}")
    if out.exists() and not out.is_dir():
        fail(f"--out '{out}' is a file, not a folder")
    # each face already in --out read once (its CRC): what to refuse, and what a rerun keeps
    there = {}
    progress = DelayedProgress(len(faces), "face of the zip looked for in --out", "img", stream=sys.stdout)
    for done, (name, info) in enumerate(faces.items(), 1):  # (a rerun: 10 s for 53,000 said nothing)
        there[name] = already_there(image_dir / name, info)
        progress.update(done)
    progress.close()
    if faces or args.partition:
        refuse_to_replace(there, faces, image_dir, args.partition, partition_destination)
        try:
            image_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            fail(f"cannot make '{image_dir}': {error.strerror or error}")
    if faces:
        unpack(args.zip, faces, there, image_dir, out / RECORD_NAME)
    if args.partition and not (partition_destination.exists() and partition_destination.samefile(args.partition)):
        # (a .csv keeps its text: the loader reads both forms)
        write_atomically(partition_destination, lambda temp: temp.write_bytes(args.partition.read_bytes()))
    size, problems = check(out)
    for problem in problems:
        print(f"problem: {problem}")
    if problems or size is None:
        sys.exit(1)
    print(ready_message(size, celeba_image_dir(out)))  # (Kaggle's nested folder too, as the loader finds it)


def ready_message(size: tuple[int, int], image_dir: Path) -> str:
    """The config that fits faces of `size`: the centred crop (148 of 178 official pixels) must
    hold the training resolution without upsampling, so half-size copies (89x109) train at 64."""
    crop = round(CROP * size[0] / OFFICIAL_SIZE[0])
    for resolution in (128, 64):
        if crop >= resolution:
            return (f"ready: gan train experiments/dcgan_celeba{resolution}.toml --set data.root={image_dir}"
                    + ("" if resolution == 128 else f"  (the faces are {size[0]}x{size[1]}: their {crop}-px crop "
                       "is too small for 128x128 without upsampling)"))
    return (f"the faces are only {size[0]}x{size[1]} (a {crop}-px crop): too small even for "
            "experiments/dcgan_celeba64.toml without upsampling")


if __name__ == "__main__":
    interrupt_on_sigterm()  # (SIGTERM, SIGHUP stop it as Ctrl-C does: said, no partial file left)
    try:
        main()
    except KeyboardInterrupt:  # (what was unpacked whole stays; the rerun keeps it)
        print("prepare_celeba: stopped; run the same command again: it keeps the images already unpacked whole",
              file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # (its output piped into `head`, which has read enough)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except OSError as error:  # a full disk, a read-only folder, mid-unpack: one line, no traceback
        fail(f"{error.strerror or error}{f': {error.filename!r}' if error.filename else ''}")
