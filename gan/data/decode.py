"""Reading one image file as 8-bit RGB, whatever its mode; errors name the file."""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import os
import re
import stat as stat_module
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, features

try:  # (imported now: a process out of open files, which it is asked about, cannot load it then)
    import resource
except ImportError:  # (POSIX only)
    resource = None

from gan.core.files import LOCK_NAME, another_unicode_form
from gan.core.progress import DelayedProgress
from gan.core.wording import first_few, one_line


def pillow_has_module(name: str) -> bool:
    """Whether this Pillow was built with its module `name` ("avif"), asked without features.check's warning of
    a name it does not know (Pillow before 11.2 knows no "avif": "Unknown feature 'avif'." began every command)."""
    return name in features.modules and features.check_module(name)


# AVIF when this Pillow was built with it (its wheels are from 11.3 on; a GPU machine's may be older).
AVIF = (".avif",) if pillow_has_module("avif") else ()
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".bmp", ".tif", ".tiff", ".gif",
                    ".ppm", ".pgm", ".pnm", *AVIF)
# Cameras' RAW files, which Pillow cannot open (it reads a few as TIFF: their small preview, not the photo).
CAMERA_RAW_FORMATS = (".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2", ".pef",
                      ".dng", ".raw", ".3fr", ".erf", ".kdc", ".mrw", ".srw", ".x3f")
# Photo formats this Pillow cannot open (phones' HEIC, JPEG XL, cameras' RAW): counted with the other
# formats left out, so that a folder of them is not just "no images found".
PHOTO_FORMATS_WITHOUT_PILLOW = (".heic", ".heif", ".jxl", *((".avif",) if not AVIF else ()), *CAMERA_RAW_FORMATS)

# Pillow raises more than OSError on bad files: SyntaxError (broken PNG chunks),
# ValueError, DecompressionBombError (a header claiming a huge size).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)

EXIF_ORIENTATION = 0x0112
TIFF_PHOTOMETRIC_INTERPRETATION = 262  # 0: white is zero
TIFF_IMAGE_WIDTH, TIFF_IMAGE_LENGTH = 256, 257  # the size as stored
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
# How each EXIF orientation is undone (the table of the EXIF standard, as ImageOps.exif_transpose
# applies it). Applied here from the tag already read: exif_transpose parses the whole EXIF block
# again and fails on tags that break the standard, where viewers still turn the image.
UPRIGHT_BY_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageReadError(OSError):
    """An image file could not be read; the message names it."""


class NoReadableImages(ImageReadError):
    """None of a folder's image files could be read; the message names the folder."""


class ImageFolderGone(ImageReadError):
    """The folder of an image file listed before is gone (moved, renamed, unmounted): every file
    of it would fail in turn, each skipped and named, so it ends the reading at once."""


class ImageFileGone(ImageReadError):
    """An image file listed before is gone (its folder still there); `path` names it."""
    path: str = ""


# What opening any file fails with once this process or the system is out of open files (or of kernel
# memory): no fault of the file, which every healthy image would share
PROCESS_LIMIT_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOMEM)


class ProcessLimitError(OSError):
    """An image file could not be opened for a limit of the process or system, not a fault of the
    file (PROCESS_LIMIT_ERRNOS): not an ImageReadError, so that no reader skips or counts the file for
    it (each healthy image skipped in turn, with its warning); the message names the file and the limit."""


def open_file_limit() -> int | None:
    """This process's open-file limit (the soft RLIMIT_NOFILE, what `ulimit -n` sets), or None where unknown."""
    if resource is None:
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def raise_if_process_limit(error: BaseException, path: str | Path) -> None:
    """ProcessLimitError for `error` when it is a limit of the process or system (PROCESS_LIMIT_ERRNOS), not
    the file's fault; nothing otherwise."""
    if not isinstance(error, OSError) or error.errno not in PROCESS_LIMIT_ERRNOS:
        return
    limit = open_file_limit()
    which = {errno.EMFILE: f"this process's open-file limit{f' ({limit}, `ulimit -n`)' if limit else ''} is reached",
             errno.ENFILE: "the system's table of open files is full", errno.ENOMEM: "the system is out of memory"}
    raise ProcessLimitError(f"cannot open image '{one_line(path)}': {error.strerror}: {which[error.errno]}, no "
                            "fault of the file") from error


class UnreadableImageWarning(UserWarning):
    """An image file was skipped because it could not be read."""


class TransparentImageWarning(UserWarning):
    """An image is transparent everywhere: it is read as a blank white image."""


class ClippedHighlightsWarning(UserWarning):
    """A float image of 0..1 has highlights above 1: they are clipped to white."""


ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image -> 8-bit RGB.

    16-bit grayscale is scaled to 8 bits (not clipped; 16-bit colour Pillow reads by each sample's
    high byte, within one level of the same scaling and unbiased); transparent images (RGBA,
    LA, palette with transparency, a PNG's colour key) are composited over white so
    that what was invisible does not show up as arbitrary colour. Float images with
    NaN or infinite pixels raise ValueError.
    """
    keyed = "transparency" in image.info
    if image.mode == "RGB" and not keyed:
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return _grey_to_rgb(image)
    if keyed or image.mode in ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


# Formats whose 32-bit pixels often leave the alpha byte unused, 0 everywhere (X8R8G8B8, as many Windows
# programs write it, with an alpha mask in the header all the same): Windows and browsers (Chromium's BMP
# reader) then show the image opaque.
ALPHA_UNUSED_WHEN_ZERO = ("BMP", "DIB", "ICO", "CUR")


def alpha_unused(image: Image.Image) -> bool:
    """A decoded BMP (or icon) whose alpha is 0 everywhere: its fourth byte is unused, not transparency."""
    return (image.format in ALPHA_UNUSED_WHEN_ZERO and image.mode == "RGBA"
            and image.getchannel("A").getextrema() == (0, 0))


def fully_transparent(image: Image.Image) -> bool:
    """Whether every pixel of a decoded image is transparent (its alpha, or a PNG's colour key): `to_rgb`
    makes it a blank white image."""
    if image.mode in ALPHA_MODES:
        return image.getchannel("A").getextrema()[1] == 0
    if "transparency" not in image.info or image.mode.startswith("I") or image.mode == "F":
        return False  # (a deep grey image's key: rare, and whitened by `_grey_to_rgb` without an alpha)
    return image.convert("RGBA").getchannel("A").getextrema()[1] == 0


def _grey_to_rgb(image: Image.Image) -> Image.Image:
    """16/32-bit integer or float grayscale -> 8-bit RGB. Integer images are 16-bit when their mode
    says so or their format only stores 16 (PNG, and PPM, which Pillow scales to 0..65535); other
    32-bit integers (TIFF) are taken as 16-bit only when a value exceeds 255. Float images are in
    [0, 1] (values above 1 clipped) or [0, 255], as `float_in_unit_range` tells (`pixel_range_problem`
    has refused the rest). A colour-keyed grey value (PNG tRNS) becomes white."""
    array = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        scale = 1 / 255 if float_in_unit_range(array) else 1.0
    else:
        sixteen_bit = (image.mode.startswith("I;16") or image.format in ("PNG", "PPM")
                       or array.max(initial=0) > 255)
        scale = 257.0 if sixteen_bit else 1.0
    grey = np.clip(array / scale + 0.5, 0, 255).astype(np.uint8)
    key = image.info.get("transparency")
    if isinstance(key, int):
        grey[array == key] = 255
    return Image.fromarray(grey, "L").convert("RGB")


def float_in_unit_range(array: np.ndarray) -> bool:
    """Whether a float image's values are 0..1, else 0..255: nearly all of them are within 0..1 (its 99th
    percentile: an HDR merge's or a linear render's few highlights above 1 made it read as 0..255, nearly
    black)."""
    return array.max(initial=0) <= 1.0 or np.percentile(array, 99) <= 1.0


def clipped_highlights(image: Image.Image) -> float | None:
    """The largest value of a float image read as 0..1 where it exceeds 1 (clipped to white), else None."""
    if image.mode != "F":
        return None
    array = np.asarray(image)
    top = float(array.max(initial=0))
    return top if top > 1.0 and float_in_unit_range(array) else None


FLOAT_MAX = 255.5  # a 0..255 float image's top value rounds to 255 from up to here


def pixel_range_problem(image: Image.Image) -> str | None:
    """Why the values of a (decoded) image are none that gan can read as 8- or 16-bit ones, else
    None: a float image with NaN, infinite, negative or above-255 pixels (clipping would turn a
    -1..1 image's lower half black, a 0..65535 one white), a signed or 32-bit integer image, or
    a TIFF of signed bytes holding a negative one (which Pillow reads as unsigned: -1 as white)."""
    if image.mode == "F":
        array = np.asarray(image)
        if not np.isfinite(array).all():
            return f"{image.mode} image has NaN or infinite pixel values"
        if array.min(initial=0) < 0 or array.max(initial=0) > FLOAT_MAX:
            kind = "not signed ones" if array.min(initial=0) < 0 else "not ones above 255"
            return (f"float image has pixel values from {array.min():.3g} to {array.max():.3g}: gan reads "
                    f"float images of 0..1 (or 0..255), {kind}")
    elif image.mode.startswith("I"):
        array = np.asarray(image)
        if array.min(initial=0) < 0 or array.max(initial=0) > 65535:
            return (f"{image.mode} image has pixel values from {array.min():.0f} to {array.max():.0f}: a "
                    "signed or 32-bit integer image, where gan reads unsigned 8- and 16-bit ones")
    elif _signed_bytes(image):
        signed = np.asarray(image).view(np.int8)
        if signed.min(initial=0) < 0:
            return (f"signed 8-bit {image.mode} image has pixel values from {signed.min()} to {signed.max()}: a "
                    "signed integer image, where gan reads unsigned 8- and 16-bit ones")
    return None


def regular_file_problem(path: str | Path) -> str | None:
    """Why `path` cannot be opened as an image file without blocking (a FIFO, a device, a folder, a
    broken link), or None. Opening a FIFO would wait forever for a writer."""
    path = Path(path)
    if path.is_file():
        return None
    if path.is_symlink():
        return ("a broken or looping symbolic link" if not path.exists()
                else "a symbolic link to something that is not a regular file")
    return "not a regular file" if path.exists() else "no such file (removed after the folder was listed?)"


class LargeImageWarning(UserWarning):
    """An image file is larger than Pillow's decompression-bomb limit (but under twice it)."""


@contextmanager
def opened_image(path: str | Path) -> Iterator[Image.Image]:
    """Image.open for a regular file only (opening a FIFO waits forever for a writer), warning with
    its name when it is larger than Pillow's decompression-bomb limit (Pillow's own warning names
    no file; the command line silences it)."""
    problem = regular_file_problem(path)
    if problem:
        raise OSError(problem)
    with Image.open(path) as image:
        width, height = image.size
        if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
            warnings.warn(f"'{one_line(path)}' is {width}x{height} pixels, more than Pillow's limit of "
                          f"{Image.MAX_IMAGE_PIXELS} against decompression bombs: check that it is the image "
                          "you meant", LargeImageWarning, stacklevel=1)  # (one place: once a file, whoever opens it)
        yield image


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1: as stored); 1 when the EXIF block is damaged, as viewers show it."""
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except DECODE_ERRORS:
        return 1
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def orientation_in_header(image: Image.Image) -> bool:
    """Whether an opened, not yet decoded image's orientation is read: a PNG's counts from an eXIf
    chunk before its pixels, where PNG's third edition puts it. Browsers ignore one after them, and
    so does gan, for Pillow's reader would decode every pixel to look for it (measuring would be decoding)."""
    return image.format != "PNG" or "exif" in image.info


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) as the opened (not yet decoded) image is shown: its EXIF orientation
    (`orientation_in_header`) may turn it by 90 degrees."""
    width, height = image.size
    if not orientation_in_header(image) or exif_orientation(image) not in TRANSPOSING_ORIENTATIONS:
        return width, height
    tags = getattr(image, "tag_v2", None)
    stored = (tags.get(TIFF_IMAGE_WIDTH), tags.get(TIFF_IMAGE_LENGTH)) if tags is not None else (width, height)
    # A TIFF may be open already as shown: recent Pillow turns its size at open, and its pixels on load
    return (height, width) if stored == (width, height) else (width, height)


# Modes whose embedded colour profile is applied (grey and palette images keep their values).
PROFILED_MODES = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB"}


class ColourProfileWarning(UserWarning):
    """An image's embedded colour profile could not be applied; its values are taken as sRGB."""


def in_srgb(image: Image.Image, path: str | Path) -> Image.Image:
    """`image` converted from its embedded ICC profile (a phone's Display P3, Adobe RGB, a print
    CMYK) to sRGB, as colour-managed viewers show it; as it is without one. A profile that cannot
    be applied is warned of by file name and the values are taken as sRGB."""
    profile = image.info.get("icc_profile")
    if not profile:
        return image
    keyed = "transparency" in image.info
    if keyed or image.mode in ("P", "PA"):
        # A colour key or a palette holds values under the profile too: applied first (the transform
        # would drop the key), the alpha then passes through it (grey images are not profiled)
        image = image.convert("RGBA" if keyed or image.mode == "PA" else "RGB")
    output_mode = PROFILED_MODES.get(image.mode)
    if output_mode is None:
        return image
    try:
        return ImageCms.applyTransform(image, _to_srgb(bytes(profile), image.mode, output_mode))
    except (ImageCms.PyCMSError, OSError, ValueError) as error:
        warnings.warn(f"'{one_line(path)}': its embedded colour profile cannot be applied ({error}); its colours are taken as "
                      "sRGB", ColourProfileWarning, stacklevel=3)
        return image


@functools.lru_cache(maxsize=16)
def _to_srgb(profile: bytes, mode: str, output_mode: str) -> ImageCms.ImageCmsTransform:
    """The transform from `profile` to sRGB, built once per profile (a photo set shares one or two)."""
    return ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(profile)), ImageCms.createProfile("sRGB"),
                                   mode, output_mode, renderingIntent=ImageCms.Intent.PERCEPTUAL)


class ColourKeyWarning(UserWarning):
    """A PNG's colour key (tRNS) could not be applied exactly, so it was ignored."""


# Pillow scales 1/2/4-bit grey PNG values up to 0..255 but leaves their colour key at the stored depth.
LOW_DEPTH_GREY_SCALE = {"L;2": 85, "L;4": 17}


def _key_in_decoded_values(image: Image.Image, path: str | Path) -> None:
    """Bring a PNG colour key (tRNS) to the values Pillow will decode, before `image.load()` forgets
    the stored depth. A 16-bit RGB key is dropped with a warning: Pillow keeps only the high byte of
    each channel, so any 8-bit match would also blank pixels of other colours."""
    key = image.info.get("transparency")
    if key is None or not image.tile:
        return
    raw_mode = image.tile[0][3]
    if raw_mode in LOW_DEPTH_GREY_SCALE and isinstance(key, int):
        image.info["transparency"] = key * LOW_DEPTH_GREY_SCALE[raw_mode]
    elif raw_mode == "RGB;16B" and isinstance(key, tuple):
        del image.info["transparency"]
        warnings.warn(f"'{one_line(path)}': the colour key (tRNS) of this 16-bit RGB PNG cannot be applied at 8 bits; "
                      "pixels of that colour are kept opaque", ColourKeyWarning, stacklevel=4)


def _white_is_zero_deep_grey(image: Image.Image) -> bool:
    """A 16-bit grey TIFF stored white-is-zero (PhotometricInterpretation 0), which Pillow decodes
    without inverting (it inverts 8-bit ones itself)."""
    return (image.format == "TIFF" and image.mode.startswith("I")
            and getattr(image, "tag_v2", {}).get(TIFF_PHOTOMETRIC_INTERPRETATION) == 0)


TIFF_SAMPLE_FORMAT, SIGNED_INTEGER = 339, 2


def _signed_bytes(image: Image.Image) -> bool:
    """A TIFF of signed 8-bit samples (0..127 read the same as unsigned ones)."""
    if image.format != "TIFF":
        return False
    formats = getattr(image, "tag_v2", {}).get(TIFF_SAMPLE_FORMAT)
    return SIGNED_INTEGER in (formats if isinstance(formats, tuple) else (formats,))


def read_rgb(path: str | Path) -> Image.Image:
    """Decode `path` fully into an RGB image, turned upright by its EXIF orientation (as viewers
    show it); raises ImageReadError naming the file."""
    try:
        with opened_image(path) as image:
            _key_in_decoded_values(image, path)
            oriented = orientation_in_header(image)  # (as measured)
            image.load()
            problem = pixel_range_problem(image)
            if problem is not None:
                raise ValueError(problem)
            pixels = image.convert("RGB") if alpha_unused(image) else image  # (the convert keeps its profile)
            _warn_of_lost_pixels(pixels, path)
            upright = UPRIGHT_BY_ORIENTATION.get(exif_orientation(image)) if oriented else None
            rgb = to_rgb(in_srgb(pixels.transpose(upright) if upright is not None else pixels, path))
            return ImageOps.invert(rgb) if _white_is_zero_deep_grey(image) else rgb
    except DECODE_ERRORS as error:
        raise_if_process_limit(error, path)
        if not Path(path).parent.is_dir():
            raise ImageFolderGone(f"cannot read image '{one_line(path)}': its folder '{one_line(Path(path).parent)}' "
                                  "is gone (moved, renamed or unmounted since it was listed)") from error
        if not os.path.lexists(path):  # (many from a folder emptied: `SkipUnreadable` says so once)
            gone = ImageFileGone(f"cannot read image '{one_line(path)}': {decode_problem(error, path)}")
            gone.path = str(path)
            raise gone from error
        raise ImageReadError(f"cannot read image '{one_line(path)}': {decode_problem(error, path)}") from error
    except MemoryError as error:  # (a process under a memory limit: the message is empty)
        raise ImageReadError(f"cannot read image '{one_line(path)}': not enough memory to decode it") from error


def _warn_of_lost_pixels(image: Image.Image, path: str | Path) -> None:
    """Warn by name of a decoded image that reads with what it holds lost: transparent everywhere (a blank
    white image), or a 0..1 float one's highlights above 1 (clipped to white)."""
    # (each in one place, as the size's warning: once a file, whoever reads it)
    if fully_transparent(image):
        warnings.warn(f"'{one_line(path)}': its alpha is 0 everywhere: read as a blank white image; save it "
                      "without its alpha channel to use its colours", TransparentImageWarning, stacklevel=1)
    top = clipped_highlights(image)
    if top is not None:
        warnings.warn(f"'{one_line(path)}': read as a float image of 0..1 (99% of its pixels are within it), its "
                      f"highlights up to {top:.3g} clipped to white; tone-map it to 0..1 to keep them",
                      ClippedHighlightsWarning, stacklevel=1)


def check_header(path: Path) -> str | None:
    """Cheap check that `path` is an image Pillow can open, and that the file was not cut short
    (`cut_short_problem`); returns the problem or None."""
    try:
        with opened_image(path) as image:
            width, height = image.size
            if width < 1 or height < 1:
                return f"empty image ({width}x{height})"
            problem = cut_short_problem(path, image)
            if problem is None and (image.format not in VALUES_IN_RANGE or image.mode == "F"):
                problem = pixel_range_problem(image)  # (TIFFs are decoded above: found here, they count)
            return problem
    except DECODE_ERRORS as error:
        raise_if_process_limit(error, path)  # (never a file's problem: every file of the scan would be skipped)
        return decode_problem(error, path)


# How a whole file of these formats ends. A file cut short (a copy or an unpack stopped) still has
# its header: found only when decoded, it would be counted among data.max_images and the training
# images, then replaced by a stand-in, which would be drawn twice as often. (MPO: a phone's
# JPEG with a second picture.)
COMPLETE_ENDINGS = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}
TAIL_BYTES = 64  # a marker this near the end: the common case, one small read


# Formats whose pixels cannot be out of range once decoded (a PNG or PGM/PPM stores up to 16 unsigned
# bits), but for float ones (a PFM, which Pillow calls PPM). The others that can (TIFF) are decoded
# whole by `cut_short_problem` anyway, as PPM's are.
VALUES_IN_RANGE = ("JPEG", "MPO", "PNG", "PPM", "WEBP", "BMP", "GIF")


def cut_short_problem(path: Path, image: Image.Image) -> str | None:
    """For a file cut short, the decoder's problem with it, else None. A JPEG or PNG must reach its
    end marker: most files end with it; others (a phone's trailer or appended video after it) are
    read whole and searched, and only a file the search finds no end in is decoded to be sure. A
    WEBP or BMP must be as long as its header says; any other format (GIF, TIFF, PPM, ...: rare in
    data sets, and with no such cheap sign) is decoded."""
    ending = COMPLETE_ENDINGS.get(image.format or "")
    if ending is None:
        declared = _declared_length(path, image.format or "")
        if declared is not None and path.stat().st_size >= declared:
            return None
        return _load_problem(image)
    with open(path, "rb") as file:
        file.seek(max(0, file.seek(0, os.SEEK_END) - TAIL_BYTES))
        if ending in file.read():
            return None
        file.seek(0)
        data = file.read()
    if (_jpeg_ends(data) if ending == COMPLETE_ENDINGS["JPEG"] else ending in data):
        return None
    return _load_problem(image)


def _load_problem(image: Image.Image) -> str | None:
    """The decoder's problem with the whole of `image` (its first frame), else None."""
    try:
        image.load()
    except DECODE_ERRORS as error:
        return f"cut short: {decode_problem(error)}"
    return None


def _declared_length(path: Path, image_format: str) -> int | None:
    """The file length a WEBP's RIFF header or a BMP's file header states (None for other formats,
    and for a BMP whose writer left it 0)."""
    offset = {"WEBP": 4, "BMP": 2}.get(image_format)
    if offset is None:
        return None
    with open(path, "rb") as file:
        file.seek(offset)
        length = int.from_bytes(file.read(4), "little")
    return (length + 8 if image_format == "WEBP" else length) or None


def _jpeg_ends(data: bytes) -> bool:
    """Whether a JPEG's image data reaches its end marker: past the header's segments (their lengths
    skip an EXIF thumbnail's own markers), an FF D9 after the first scan's start, where the coded
    data can hold no other (its FF bytes are stuffed)."""
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # fill
            position += 1
        elif marker == 0xDA:  # start of scan
            return data.find(b"\xff\xd9", position) != -1
        else:
            position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    return False


def decode_problem(error: BaseException, path: str | Path | None = None) -> str:
    """Pillow's error in words that say what to do, where its own do not (on one line, with the bytes of
    a file name it quotes as they are: `\\xff`)."""
    # (Pillow quotes the name with %r, which writes such a byte as the text `\\udcff`)
    text = re.sub(r"\\udc([89a-f][0-9a-f])", r"\\x\1", one_line(str(error) or type(error).__name__))
    heif = _heif_brand(path) if isinstance(error, Image.UnidentifiedImageError) and path is not None else None
    if heif is not None:  # (a phone's photo renamed .jpg: told to convert it, as a .heic file is)
        return (f"{text}: it is {heif} photo under another extension, which gan does not read; convert it to PNG "
                "or JPEG to use it")
    if isinstance(error, Image.DecompressionBombError):  # (Pillow's words: a pixel count and "DOS attack")
        limit = Image.MAX_IMAGE_PIXELS or 0
        pixels = re.search(r"\((\d+) pixels\)", text)
        size = f"its {int(pixels[1]):,} pixels are" if pixels else "it is"
        return (f"{size} more than Pillow decodes ({2 * limit:,}, twice its decompression-bomb limit of {limit:,}): "
                "downscale it, e.g. to half size, to use it")
    # (the pixels are fine: Pillow caps the text it reads; before 11 it named no cap, "Decompressed Data Too Large")
    if any(words in text for words in ("MAX_TEXT_CHUNK", "MAX_TEXT_MEMORY", "Decompressed Data Too Large")):
        return ("its PNG text metadata (XMP, comments) is larger than the 1 MB Pillow reads; strip the metadata "
                "(`exiftool -all= FILE` or `mogrify -strip FILE`) to use the image")
    return text


HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"heim": "HEIC", b"heis": "HEIC", b"mif1": "HEIF",
               b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


def _heif_brand(path: str | Path) -> str | None:
    """"a HEIC", "a HEIF" or "an AVIF" for a file named otherwise that begins as one (an ISO media `ftyp`
    box) in a format this Pillow does not read, else None (a damaged .avif is no AVIF under another name)."""
    if Path(path).suffix.lower() in (".heic", ".heif", ".avif", ".avifs"):
        return None
    try:
        with open(path, "rb") as handle:
            start = handle.read(12)
    except OSError:
        return None
    brand = HEIF_BRANDS.get(start[8:12]) if start[4:8] == b"ftyp" else None
    if brand is None or (brand == "AVIF" and AVIF):
        return None
    return f"an {brand}" if brand == "AVIF" else f"a {brand}"


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) as shown (EXIF orientation applied), read from the header alone; None when
    Pillow cannot open the file (reading it reports why)."""
    try:
        with opened_image(path) as image:
            return oriented_size(image)
    except DECODE_ERRORS:
        return None


def file_on_the_way(path: Path) -> str:
    """For a folder that does not exist: ` ('x.png' is a file, not a folder)` when a file stands where
    one of its parent folders should (data.root set to an image), else nothing."""
    for parent in path.parents:
        if parent.exists():
            return f" ('{parent}' is a file, not a folder)" if not parent.is_dir() else ""
    return ""


def why_missing(path: Path | str) -> str:
    """For a folder that does not exist, what may explain it, in parentheses (or nothing): a file where
    a folder on its way should be, its name in another Unicode form there, or a path relative to here."""
    return file_on_the_way(Path(path)) or another_unicode_form(Path(path)) or relative_to_here(path)


def relative_to_here(path: Path | str) -> str:
    """For a folder that does not exist: ` (a relative path, read from the folder gan runs in, '/x')`
    when it is relative (a command or resume started from another folder than the run's first), else
    nothing."""
    if Path(path).expanduser().is_absolute():
        return ""
    return (f" (a relative path, read from the folder gan runs in, '{Path.cwd()}': run gan from the folder it is "
            "relative to, or give it as an absolute path)")


def _listing_order(path: Path) -> tuple:
    """Paths sorted folder by folder, by their names in composed Unicode (a copy through macOS writes
    them decomposed: the same names, in the same order, so a resume on the copy reads the same)."""
    return tuple(unicodedata.normalize("NFC", part) for part in path.parts), path.parts


def folders_overlap(first: Path, second: Path) -> str | None:
    """How two folders share images as find_images reads them (with their subfolders): "same" (one
    folder under two names or through a link), "first inside" or "second inside" (the outer one's
    images include the inner one's), or None when apart."""
    first, second = Path(first).resolve(), Path(second).resolve()
    if first == second:
        return "same"
    if second in first.parents:
        return "first inside"
    return "second inside" if first in second.parents else None


def find_images(root: Path, recursive: bool = True) -> list[Path]:
    """Image files (by extension, any case) under `root`, sorted; errors if there are none.

    Hidden files and folders (a leading dot: `.ipynb_checkpoints/`, `.thumbnails/`) are left out, and
    system folders (`SYSTEM_FOLDERS`: a NAS's thumbnails, recycle bins) with one warning.
    Linked folders are followed, each real folder once, so a link loop ends. Files in other formats
    Pillow knows (.psd, .ico, .pdf, ...), and photos in formats it lacks (.heic, cameras' RAW), are left
    out with one warning that counts them (or, where they are all there is, in the error).
    """
    if not root.exists():
        raise FileNotFoundError(f"image folder '{root}' does not exist"
                                f"{why_missing(root)}")
    if not root.is_dir():
        raise NotADirectoryError(f"'{root}' is not a folder of images")
    paths, other_formats, runs, unlisted, system = [], Counter(), [], [], []
    try:
        entries = list(_walk(root, runs, unlisted, system) if recursive else root.iterdir())
    except OSError as error:
        unlisted.append(error)
        entries = []
    if any(error.filename == str(root) for error in unlisted):
        raise ImageReadError(f"image folder '{root}' cannot be listed: {unlisted[0].strerror}; give a folder you may "
                             "read")
    if unlisted:
        shown = ", ".join(f"'{error.filename}'" for error in unlisted[:3]) + (" ..." if len(unlisted) > 3 else "")
        warnings.warn(f"left out {len(unlisted)} folder(s) under '{root}' that cannot be listed "
                      f"({unlisted[0].strerror}), with any images in them: {shown}", UnreadableImageWarning,
                      stacklevel=2)
    for path in entries:
        suffix = path.suffix.lower()
        if path.name.startswith("."):
            continue
        if suffix in IMAGE_EXTENSIONS:
            paths.append(path)
        elif suffix in Image.registered_extensions() or suffix in PHOTO_FORMATS_WITHOUT_PILLOW:
            other_formats[suffix] += 1
    paths.sort()
    if not all(str(path).isascii() for path in paths):  # (most sets: sorted as plain paths, as fast)
        paths.sort(key=_listing_order)
    if other_formats and paths:
        place = f" under '{root}'"
        warnings.warn(f"left out {_in_other_formats(other_formats, place)}", UnreadableImageWarning, stacklevel=2)
    if runs:
        warnings.warn(f"left out {len(runs)} run director{'y' if len(runs) == 1 else 'ies'} of gan under '{root}' "
                      f"({', '.join(map(str, runs[:3]))}{', ...' if len(runs) > 3 else ''}): their sample grids are "
                      "a run's outputs, not images to train or score on; keep runs outside the data folders",
                      stacklevel=2)
    if system:
        named = first_few([f"'{one_line(path)}'" for path in system], 3)
        warnings.warn(f"left out {len(system)} system folder(s) under '{root}' (a NAS's thumbnails, a recycle bin, "
                      f"...), with any images in them: {named}", UnreadableImageWarning, stacklevel=2)
    if not paths:
        where = "under" if recursive else "in"
        found = f", but {_in_other_formats(other_formats)}" if other_formats else ""
        raise FileNotFoundError(f"no images found {where} '{root}' (looked for {', '.join(IMAGE_EXTENSIONS)}){found}")
    return paths


def _in_other_formats(counts: Counter, place: str = "") -> str:
    """'3 files`place` in formats gan does not read as training images (1 .heic, 2 .nef); convert them ...', for
    the files `find_images` left out, counted by extension."""
    by_extension = ", ".join(f"{count} {suffix}" for suffix, count in sorted(counts.items()))
    raw = (" (camera RAW files with the camera maker's software, darktable or dcraw, to PNG, JPEG or TIFF)"
           if any(suffix in CAMERA_RAW_FORMATS for suffix in counts) else "")
    return (f"{sum(counts.values())} files{place} in formats gan does not read as training images ({by_extension}); "
            f"convert them to PNG or JPEG to use them{raw}")


# Folders that systems keep among a person's files (lower case): Synology's per-photo thumbnails and
# recycle bin, QNAP's, Windows', a file system's, macOS zips' resource forks. Their images are thumbnails
# of the photos beside them or files deleted: a NAS share of 200 photos trained on 900.
SYSTEM_FOLDERS = frozenset({"@eadir", "#recycle", "#snapshot", "@recycle", "@recently-snapshot", "$recycle.bin",
                            "system volume information", "lost+found", "__macosx"})


def left_out_of_listing(folder_name: str) -> bool:
    """Whether image listings pass over a folder of this name: hidden, or a system's (`SYSTEM_FOLDERS`)."""
    return folder_name.startswith(".") or folder_name.lower() in SYSTEM_FOLDERS


def holds_a_run(file_names: Iterable[str]) -> bool:
    """Whether a folder of these files is a gan run directory, which listings pass over too (its grids
    are a run's outputs, not images to train or score on)."""
    return {LOCK_NAME, "config.toml"} <= set(file_names)


def _walk(root: Path, runs: list[Path], unlisted: list[OSError], system: list[Path]) -> Iterator[Path]:
    """Every entry under `root`, following linked folders but never into a real folder twice (a link
    to a parent would loop), and leaving out hidden folders, system folders (added to `system`) and run
    directories (added to `runs`: `--out` inside the data folder would otherwise train a resumed run on
    its own samples).
    Linked folders are walked after every real one, so a folder reached both ways is listed by its
    real path, whatever the link's name (a link sorting first took it, and outputs named after the
    images moved under the link's name). Folders are listed too: one named like an image is then
    skipped with a warning. A folder that cannot be listed (no permission) is added to `unlisted`,
    to be said, not passed over."""
    seen = set()
    tops = [root]  # the root, then each linked folder found on the way
    while tops:
        for folder, subfolders, files in os.walk(tops.pop(0), onerror=unlisted.append):
            real = os.stat(folder)
            if (real.st_dev, real.st_ino) in seen:
                subfolders.clear()
                continue
            seen.add((real.st_dev, real.st_ino))
            if folder != str(root) and holds_a_run(files):
                runs.append(Path(folder))
                subfolders.clear()
                continue
            system += [Path(folder) / name for name in subfolders if name.lower() in SYSTEM_FOLDERS]
            visible = sorted(name for name in subfolders if not left_out_of_listing(name))
            linked = [name for name in visible if os.path.islink(os.path.join(folder, name))]
            tops += [Path(folder) / name for name in linked]
            subfolders[:] = [name for name in visible if name not in linked]  # (os.walk would not enter them)
            yield from (Path(folder) / name for name in [*visible, *files])


def files_fingerprint(paths: list[Path]) -> str:
    """Changes when any file is added, removed, renamed, rewritten or touched. The change time
    (ctime) is in it because no tool can set it back: a file rewritten in place with its size
    and modification time restored still changes it. Each file counts by its real path: its
    folder's, resolved once per folder (half the time of 200,000 files went on resolving each),
    and, for a link, its target's."""
    digest = hashlib.sha256()
    real_folders: dict[Path, Path] = {}
    progress = DelayedProgress(len(paths), "looking at files", "file")  # (CelebA's 202,599: seconds in silence)
    for done, path in enumerate(paths, 1):
        if done % 1000 == 0:
            progress.update(done)
        # fsencode: a file name need not be valid UTF-8 (it is bytes on POSIX)
        try:
            stat = path.lstat()
            if stat_module.S_ISLNK(stat.st_mode):
                real, stat = path.resolve(), path.stat()
            else:
                folder = real_folders.get(path.parent)
                if folder is None:
                    folder = real_folders[path.parent] = path.parent.resolve()
                real = folder / path.name
            digest.update(os.fsencode(real) + f"\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ctime_ns}\n".encode())
        except (OSError, RuntimeError):  # a broken or looping link, skipped where it is read: its name counts
            digest.update(os.fsencode(os.path.abspath(path)) + b"\0unreadable\n")
    if progress.progress is not None:
        progress.update(len(paths))
    progress.close()
    return digest.hexdigest()


def readable_images(paths: list[Path], strict: bool, limit: int = 0,
                    counts: Callable[[Path], bool] | None = None) -> tuple[list[Path], list[Path]]:
    """Split `paths` into (readable, skipped) by their headers; warns for each skipped file. With
    `limit` (data.max_images), up to the `limit`-th readable one that `counts` (all, by default: an
    A|B image too narrow to split does not count) the files after it are not read.

    With `strict`, the first unreadable file raises ImageReadError instead.
    """
    readable, skipped, counted = [], [], 0
    # (CelebA's 202,599: 20 s; with a `limit`, about that many are read)
    progress = DelayedProgress(min(len(paths), limit or len(paths)), "reading image headers", "file")
    try:
        for done, path in enumerate(paths):
            progress.update(min(done, progress.total))
            if limit and counted == limit:
                break
            problem = check_header(path)
            if problem is None:
                readable.append(path)
                counted += counts is None or counts(path)
                continue
            if strict:
                raise ImageReadError(f"cannot read image '{one_line(path)}': {problem}")
            warnings.warn(f"skipping unreadable image '{one_line(path)}': {problem}", UnreadableImageWarning,
                          stacklevel=2)
            skipped.append(path)
        progress.update(progress.total)  # (the line ends at its total, also where unreadable files took more)
    finally:
        progress.close()
    return readable, skipped
