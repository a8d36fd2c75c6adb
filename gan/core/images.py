"""Conversions between images on disk, uint8 tensors and the [-1, 1] tensors networks see.

The one place that defines the [-1, 1] convention and how grids are written.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan.core.files import make_folder, write_together


def pil_to_signed(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, H, W) in [-1, 1]."""
    array = np.asarray(image, dtype=np.uint8)
    return uint8_to_signed(torch.from_numpy(array.copy()).permute(2, 0, 1))


def uint8_to_signed(pixels: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 tensor in [0, 255] (any shape) -> float tensor in [-1, 1]: `signed_to_uint8` undone
    (into the float tensor `out` of the same shape, when given)."""
    return (pixels.float() if out is None else out.copy_(pixels)).div_(127.5).sub_(1.0)


def signed_levels(device: torch.device) -> torch.Tensor:
    """The 256 grey levels in [-1, 1], computed on the CPU as `uint8_to_signed` computes them. A
    lookup keeps batches bit-identical on any device: CUDA divides by a scalar through its
    reciprocal, which differs from the CPU's division in the last bit."""
    return uint8_to_signed(torch.arange(256, dtype=torch.uint8)).to(device)


def signed_to_uint8(images: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """Float tensor in [-1, 1] (any shape) -> uint8 tensor in [0, 255], rounded and clamped.
    `in_place`: a float32 `images` of the caller's own is used as the scratch buffer (a large
    output's full-size copy spared)."""
    converted = images.detach().float()
    scratch = converted if in_place or converted.data_ptr() != images.data_ptr() else converted.clone()
    return scratch.add_(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def signed_to_pil(image: torch.Tensor, in_place: bool = False) -> Image.Image:
    """(3, H, W) in [-1, 1] -> RGB PIL image; `in_place` as `signed_to_uint8`. ValueError for an image
    of another dtype or shape."""
    _check_one_signed_image(image)
    return Image.fromarray(signed_to_uint8(image, in_place).permute(1, 2, 0).cpu().numpy(), "RGB")


def _check_one_signed_image(image: torch.Tensor) -> None:
    """ValueError unless `image` is one floating (3, H, W) image: uint8 pixels (`generated_images`') were read
    as [-1, 1] values, all white without a word, and a batch failed in torch's words ("permute(sparse_coo)")."""
    advice = []
    if image.dtype == torch.uint8:
        advice.append("uint8 pixels (what generated_images gives) are an image as they are: "
                      "Image.fromarray(image.permute(1, 2, 0).numpy())")
    elif not image.is_floating_point():
        advice.append("give it floats in [-1, 1]")
    if image.dim() == 4:
        advice.append("of a batch take one image (images[0]) or draw them all with image_grid(images)")
    elif image.dim() == 3 and image.shape[0] == 1:  # (it was told "not (H, W, 3)", which it never was)
        advice.append("it has one channel (grey): repeat it to 3 first, image.expand(3, -1, -1)")
    elif image.dim() != 3 or image.shape[0] != 3:
        advice.append("give it its 3 channels first: (3, H, W), not (H, W, 3)")
    if advice:
        raise ValueError(f"signed_to_pil takes one floating (3, H, W) image in [-1, 1]; got a {image.dtype} tensor of "
                         f"shape {tuple(image.shape)}: {'; '.join(advice)}")


GRID_PADDING = 2  # pixels between and around the images of a grid
# PIL's Image.MAX_IMAGE_PIXELS: a larger image opens only with a DecompressionBombWarning
# (and not at all beyond twice this), so gan writes no grid larger.
MAX_GRID_PIXELS = 89_478_485


def grid_columns(count: int, num_columns: int | None = None) -> int:
    """The columns of a grid of `count` images: `num_columns` (at most `count`), else roughly square."""
    return min(num_columns, count) if num_columns else max(1, math.ceil(math.sqrt(count)))


def grid_size(count: int, height: int, width: int, num_columns: int | None = None) -> tuple[int, int]:
    """(width, height) in pixels of `image_grid` of `count` images of height x width, before writing it."""
    if count == 1:  # (a lone image is the grid, unpadded)
        return width, height
    columns = grid_columns(count, num_columns)
    rows = math.ceil(count / columns)
    return columns * (width + GRID_PADDING) + GRID_PADDING, rows * (height + GRID_PADDING) + GRID_PADDING


def image_grid(images: torch.Tensor, num_columns: int | None = None) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> one (3, H', W') grid in [-1, 1], roughly square by default; a grey
    (N, 1, H, W) batch is drawn in 3 equal channels, as torchvision's make_grid drew it."""
    images = images.detach().float().cpu()
    if images.shape[1] == 1:  # (gan's own grid refused it, though make_grid, which it replaced, wrote it)
        images = images.repeat(1, 3, 1, 1)
    count, channels, height, width = images.shape
    if count == 1:
        return images[0]
    columns = grid_columns(count, num_columns)
    grid_width, grid_height = grid_size(count, height, width, num_columns)
    grid = images.new_full((channels, grid_height, grid_width), -1.0)  # (the padding: black)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = GRID_PADDING + row * (height + GRID_PADDING), GRID_PADDING + column * (width + GRID_PADDING)
        grid[:, top:top + height, left:left + width] = image
    return grid


class GridCanvas:
    """`image_grid` of `count` images of height x width, drawn batch by batch in uint8 pixels: the
    same pixels as `signed_to_pil(image_grid(...))`, without the float copy of every image (`gan
    sample`'s grid of 20,000 faces held 6 GB so)."""

    def __init__(self, count: int, height: int, width: int, num_columns: int | None = None):
        self.count, self.height, self.width = count, height, width
        self.columns = grid_columns(count, num_columns)
        grid_width, grid_height = grid_size(count, height, width, num_columns)
        self.pixels = torch.zeros(3, grid_height, grid_width, dtype=torch.uint8)  # (the padding: -1, black)
        self.placed = 0

    def add(self, images: torch.Tensor) -> None:
        """Draw the next (N, 3, H, W) images in [-1, 1] into their places."""
        for image in signed_to_uint8(images).cpu():  # (channels first, as the images come: rows copied whole)
            if self.count == 1:  # (a lone image is the grid, unpadded)
                top = left = 0
            else:
                row, column = divmod(self.placed, self.columns)
                top, left = (GRID_PADDING + row * (self.height + GRID_PADDING),
                             GRID_PADDING + column * (self.width + GRID_PADDING))
            self.pixels[:, top:top + self.height, left:left + self.width] = image
            self.placed += 1

    def image(self) -> Image.Image:
        return Image.fromarray(self.pixels.permute(1, 2, 0).numpy(), "RGB")


def split_grid(grid: torch.Tensor, count: int, height: int, width: int) -> torch.Tensor:
    """The inverse of `image_grid` (default columns): (3, H', W') -> the `count` images (N, 3, H, W)."""
    if count == 1:  # (a lone image is the grid itself, unpadded)
        return grid[None, :, :height, :width]
    columns = grid_columns(count)
    images = []
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = GRID_PADDING + row * (height + GRID_PADDING), GRID_PADDING + column * (width + GRID_PADDING)
        images.append(grid[:, top:top + height, left:left + width])
    return torch.stack(images)


# The formats gan writes images in, by extension: each holds a colour image as it is (GIF with a
# palette of 256 colours, said by `palette_warning`). Pillow knows more, but writes them wrongly or
# not at all: colour in a .pgm (a grey format) under the wrong name, an error for .xbm that reads like
# a disk fault, lossy AVIF at its default quality.
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".webp": "WEBP",
                  ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".ppm": "PPM", ".pnm": "PPM", ".gif": "GIF"}
# Extensions of formats that hold grey (or black-and-white) images only, and their colour kin.
GREY_ONLY = {".pgm": ".ppm", ".pbm": ".ppm"}


def image_format_of(path: Path) -> str:
    """PIL's format name for an output path's extension (any case); a clear error for one gan does not
    write colour images in."""
    name = OUTPUT_FORMATS.get(path.suffix.lower())
    if name is None:
        kin = GREY_ONLY.get(path.suffix.lower())
        why = (f": '{path.suffix}' holds grey images only, and these are in colour ({kin} is its colour kin)" if kin
               else f" from its extension '{path.suffix}'")
        raise ValueError(f"cannot write the image '{path}'{why}: expected one of .png, .jpg, .webp, .bmp, .tif, "
                         ".ppm or .gif")
    return name


def palette_warning(paths: list[Path]) -> str | None:
    """A warning for outputs among `paths` that are GIFs, whose palette keeps 256 colours of those the
    network made; None when there are none."""
    gifs = [path for path in paths if path.suffix.lower() == ".gif"]
    if not gifs:
        return None
    which = f"'{gifs[0]}' is a GIF" if len(gifs) == 1 else f"{len(gifs)} outputs are GIFs (the first: '{gifs[0]}')"
    return (f"{which}: GIF keeps 256 colours and one frame, so it loses colours the network made; write .png to "
            "keep them")


def side_by_side(images: list[Image.Image]) -> Image.Image:
    """One strip of `images` left to right, each resized (bicubic) to the last one's size."""
    size = images[-1].size
    strip = Image.new("RGB", (size[0] * len(images), size[1]))
    for index, image in enumerate(images):
        shown = image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)
        strip.paste(shown.convert("RGB"), (index * size[0], 0))
    return strip


# Pillow's defaults lose detail a result should keep (JPEG quality 75 with 4:2:0 chroma, lossy WebP at
# 80): outputs are written near-lossless instead, as a viewer or a metric should see them.
SAVE_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"lossless": True}}


# The largest side each format can hold: the encoder fails past it (WebP's with a bare ValueError,
# JPEG's as a broken data stream that reads like a disk fault).
FORMAT_SIDE_LIMITS = {"WEBP": 16383, "JPEG": 65500}


class FormatLimitError(ValueError):
    """An image is larger than its output file's format can hold."""


def check_format_fits(path: Path, width: int, height: int) -> None:
    """FormatLimitError, naming the file, the format's limit and what to write instead, when an image
    of `width` x `height` is larger than the format of `path` holds."""
    image_format = image_format_of(path)
    limit = FORMAT_SIDE_LIMITS.get(image_format)
    if limit is not None and max(width, height) > limit:
        raise FormatLimitError(f"'{path}': {image_format} images are at most {limit:,} px a side, and this one is "
                               f"{width:,}x{height:,}: write it as .png or .tif")


def save_image(image: Image.Image, path: str | Path, new_only: bool = False, durable: bool = True) -> Path:
    """Write a PIL image atomically (never a half-written file), in the format of its extension
    (JPEG at quality 95 without chroma subsampling, WebP lossless); creates parent folders.
    FormatLimitError for an image larger than that format holds. `new_only` (a command without
    --overwrite): WriteError rather than replacing a file that appeared meanwhile (another command's).
    `durable=False`: not flushed to disk here (`write_together`)."""
    path = Path(path)
    image_format = image_format_of(path)
    check_format_fits(path, *image.size)
    make_folder(path.parent)
    # (encoded in memory, then written as Python writes: given a file, Pillow's JPEG, BMP and TIFF
    # encoders pass over a short write (a full disk, `ulimit -f`), and a file cut short went into place)
    write_together({path: lambda temp: temp.write_bytes(encode_image(image, image_format))}, new_only=new_only,
                   durable=durable)
    return path


def encode_image(image: Image.Image, image_format: str = "PNG") -> bytes:
    """The bytes of `image` as a file of `image_format` (a PIL format name), as `save_image` writes it:
    a PNG as TensorBoard's add_image encodes one (Pillow's defaults)."""
    encoded = io.BytesIO()
    image.save(encoded, format=image_format, **SAVE_OPTIONS.get(image_format, {}))
    return encoded.getvalue()


def save_encoded_image(encoded: bytes, path: str | Path) -> Path:
    """Write an image already encoded (`encode_image`) atomically; creates parent folders."""
    path = Path(path)
    make_folder(path.parent)
    write_together({path: lambda temp: temp.write_bytes(encoded)})
    return path


def save_image_grid(images: torch.Tensor, path: str | Path, num_columns: int | None = None) -> Path:
    """Write (N, 3, H, W) in [-1, 1] (or grey, (N, 1, H, W)) as one image grid (PNG, or the format of the
    extension)."""
    return save_image(signed_to_pil(image_grid(images, num_columns)), path)
