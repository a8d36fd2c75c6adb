"""Reading one image file as 8-bit RGB, whatever its mode; errors name the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

# Pillow raises more than OSError on bad files: SyntaxError (broken PNG chunks),
# ValueError, DecompressionBombError (a header claiming a huge size).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class ImageReadError(OSError):
    """An image file could not be read; the message names it."""


class UnreadableImageWarning(UserWarning):
    """An image file was skipped because it could not be read."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image -> 8-bit RGB.

    16-bit grayscale is scaled to 8 bits (not clipped); transparent images (RGBA,
    LA, palette with transparency) are composited over white so that what was
    invisible does not show up as arbitrary colour.
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I"):  # 16/32-bit integer grayscale
        array = np.asarray(image).astype(np.float64)
        scale = 257.0 if image.mode.startswith("I;16") or array.max() > 255 else 1.0
        return Image.fromarray(np.clip(array / scale + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode == "F":
        array = np.asarray(image)
        array = array * 255.0 if array.max() <= 1.0 else array
        return Image.fromarray(np.clip(array + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def read_rgb(path: str | Path) -> Image.Image:
    """Decode `path` fully into an RGB image; raises ImageReadError naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except DECODE_ERRORS as error:
        raise ImageReadError(f"cannot read image '{path}': {error}") from error


def check_header(path: Path) -> str | None:
    """Cheap check (header only) that `path` is an image Pillow can open; returns the problem or None."""
    try:
        with Image.open(path) as image:
            width, height = image.size
        if width < 1 or height < 1:
            return f"empty image ({width}x{height})"
    except DECODE_ERRORS as error:
        return str(error) or type(error).__name__
    return None


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) read from the header alone; None when Pillow cannot open the file (reading
    it reports why)."""
    try:
        with Image.open(path) as image:
            return image.size
    except DECODE_ERRORS:
        return None


def find_images(root: Path, recursive: bool = True) -> list[Path]:
    """Image files (by extension, any case) under `root`, sorted; errors if there are none."""
    if not root.exists():
        raise FileNotFoundError(f"image folder '{root}' does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"'{root}' is not a folder of images")
    pattern = root.rglob("*") if recursive else root.iterdir()
    paths = sorted(p for p in pattern if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not paths:
        where = "under" if recursive else "in"
        raise FileNotFoundError(f"no images found {where} '{root}' (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return paths


def readable_images(paths: list[Path], strict: bool) -> tuple[list[Path], list[Path]]:
    """Split `paths` into (readable, skipped) by their headers; warns for each skipped file.

    With `strict`, the first unreadable file raises ImageReadError instead.
    """
    readable, skipped = [], []
    for path in paths:
        problem = check_header(path) if path.is_file() or path.is_symlink() else "not a regular file"
        if problem is None:
            readable.append(path)
            continue
        if strict:
            raise ImageReadError(f"cannot read image '{path}': {problem}")
        warnings.warn(f"skipping unreadable image '{path}': {problem}", UnreadableImageWarning, stacklevel=2)
        skipped.append(path)
    return readable, skipped
