#!/usr/bin/env python3
"""Unpack and check CelebA's aligned faces for `gan train experiments/dcgan_celeba128.toml` (or 64).

Nothing is downloaded: fetch img_align_celeba.zip (and optionally
list_eval_partition.txt) yourself, as datasets/README.md describes, then

    python datasets/prepare_celeba.py --zip ~/Downloads/img_align_celeba.zip \
        --partition ~/Downloads/list_eval_partition.txt --out data/celeba

which leaves data/celeba/img_align_celeba/*.jpg and data/celeba/list_eval_partition.txt.
With only --out, it checks an existing folder. Exits non-zero when something is off.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import zipfile
from collections import Counter
from pathlib import Path

from PIL import Image

OFFICIAL_COUNT = 202_599
OFFICIAL_SIZE = (178, 218)
CROP = 148  # data.crop of the CelebA configs, in official pixels


def unpack(archive: Path, out: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        members = [m for m in zipped.namelist() if m.startswith("img_align_celeba/") and m.endswith(".jpg")]
        if not members:
            sys.exit(f"{archive}: no img_align_celeba/*.jpg inside; is this CelebA's aligned-faces zip?")
        print(f"unpacking {len(members)} images to {out / 'img_align_celeba'} ...")
        zipped.extractall(out, members)


def check(out: Path, sample_every: int = 1000) -> tuple[int, int] | None:
    """Report what `out` holds; the most common image size, or None when there are no faces."""
    image_dir = out / "img_align_celeba"
    if not image_dir.is_dir():
        print(f"missing folder {image_dir}")
        return None
    images = sorted(image_dir.glob("*.jpg"))
    print(f"{len(images)} images in {image_dir} (the full set has {OFFICIAL_COUNT})")
    sizes = Counter()
    for path in images[::sample_every]:
        with Image.open(path) as image:
            sizes[image.size] += 1
    print("sizes of every", sample_every, "th image:", dict(sizes))
    if sizes and set(sizes) != {OFFICIAL_SIZE}:
        print(f"note: the official aligned faces are {OFFICIAL_SIZE}; the crop is scaled to the width found")
    partition = out / "list_eval_partition.txt"
    if partition.is_file():
        splits = Counter(line.split()[1] for line in partition.read_text().splitlines() if line.strip())
        print(f"partition: train {splits['0']}, valid {splits['1']}, test {splits['2']}")
    else:
        print(f"no {partition}: data.split must stay \"all\"")
    return sizes.most_common(1)[0][0] if images else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zip", type=Path, help="img_align_celeba.zip, downloaded by you")
    parser.add_argument("--partition", type=Path, help="list_eval_partition.txt, downloaded by you")
    parser.add_argument("--out", type=Path, required=True, help="folder to hold img_align_celeba/")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.zip:
        unpack(args.zip, args.out)
    if args.partition:
        shutil.copy(args.partition, args.out / "list_eval_partition.txt")
    size = check(args.out)
    if size is None:
        sys.exit(1)
    print(ready_message(size, args.out / "img_align_celeba"))


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
    main()
