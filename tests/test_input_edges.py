"""Image inputs at the edges: EXIF orientation, colour keys, 16-bit and float files, linked and
hidden folders, FIFOs, A|B images too narrow to split, file names that are not UTF-8, and files
that change under cached statistics. Each is read as a viewer shows it, or named and left out."""

import io
import os
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import (
    REPO,
    damage_past_the_header,
    random_rgb,
    tiny_recipe_config,
    write_png16,
    write_raw_png,
    write_recipe_data,
)
from PIL import Image, features

from gan.core.config import DataConfig
from gan.data import build_dataset, source_fingerprint, training_batches
from gan.data.decode import (
    ImageReadError,
    LargeImageWarning,
    UnreadableImageWarning,
    check_header,
    files_fingerprint,
    find_images,
    header_size,
    read_rgb,
    readable_images,
)
from gan.data.image_files import celeba_dataset, image_folder_dataset
from gan.data.paired import paired_dataset
from gan.inference.scoring import csv_text
from gan.metrics.generative import reference_key
from gan.recipes.image_to_image import evaluation_set

RED, BLUE = (255, 0, 0), (0, 0, 255)
CPU = torch.device("cpu")
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and byte file names are POSIX")


def sideways_jpeg(path, size=(16, 8)) -> None:
    """Stored red | blue, left to right, with EXIF orientation 6: viewers turn it 90 degrees
    clockwise, so it shows red on top of blue, `size` turned."""
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, exif=exif, quality=100)


def caught_warnings(action):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = action()
    return result, [str(warning.message) for warning in caught]


# ----------------------------------------------------------------------------- decoding


def test_an_exif_rotated_photo_is_read_and_measured_as_viewers_show_it(tmp_path):
    sideways_jpeg(tmp_path / "turned.jpg")
    image = np.asarray(read_rgb(tmp_path / "turned.jpg")).astype(int)
    assert image.shape == (16, 8, 3)
    assert abs(image[1, 4] - RED).max() < 40 and abs(image[-2, 4] - BLUE).max() < 40
    assert header_size(tmp_path / "turned.jpg") == (8, 16)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_every_exif_orientation_is_read_as_pillow_turns_it(tmp_path, suffix):
    from PIL import ImageOps

    stored = Image.fromarray(np.arange(6 * 4 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"{orientation}{suffix}"
        stored.save(path, exif=exif, **({"lossless": True} if suffix == ".webp" else {"quality": 100}))
        with Image.open(path) as image:
            expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        assert np.array_equal(np.asarray(read_rgb(path)), expected), orientation
        assert header_size(path) == expected.shape[1::-1], orientation


def test_the_size_of_a_png_is_read_without_decoding_its_pixels(tmp_path, monkeypatch):
    """Pillow's PNG reader decodes every pixel when asked for EXIF the header lacks: sizing the
    images of an SR or paired folder decoded them all before training (3.8 s for 30 2K PNGs)."""
    from PIL import PngImagePlugin

    Image.new("RGB", (30, 20), RED).save(tmp_path / "plain.png")

    def decoded(*args):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", decoded)
    assert header_size(tmp_path / "plain.png") == (30, 20)


def test_a_png_orientation_after_its_pixels_is_ignored_when_decoded_as_when_measured(tmp_path):
    """An eXIf chunk after the pixel data (which PNG's third edition forbids; browsers ignore it) went
    unread by the header measurement but turned the decoded image: an A|B pair was checked as
    512x256 and trained as two halves of a 256x512 image."""
    import struct
    import zlib

    path = tmp_path / "late.png"
    Image.fromarray(np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)).save(path)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = exif.tobytes().removeprefix(b"Exif\x00\x00")
    chunk = struct.pack(">I", len(data)) + b"eXIf" + data + struct.pack(">I", zlib.crc32(b"eXIf" + data))
    stored = path.read_bytes()
    end = stored.rindex(b"IEND") - 4
    path.write_bytes(stored[:end] + chunk + stored[end:])
    with Image.open(path) as image:
        image.load()
        assert image.getexif()[0x0112] == 6  # (Pillow reads it, once it has decoded the pixels)
    assert read_rgb(path).size == header_size(path) == (6, 4)


def test_an_xmp_orientation_turns_the_image_as_pillow_does(tmp_path):
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="8"/></x:xmpmeta>'
    Image.new("RGB", (12, 4), RED).save(tmp_path / "x.jpg", xmp=xmp)
    assert read_rgb(tmp_path / "x.jpg").size == header_size(tmp_path / "x.jpg") == (4, 12)


def test_a_damaged_exif_tag_beside_the_orientation_gives_no_nameless_warning_on_the_command_line(tmp_path):
    """Pillow warns "Tag data larger than file" naming no file, for a tag that changes nothing
    gan reads; the orientation beside it still turns the image."""
    import struct
    import subprocess

    entries = [(0x0112, 3, 1, 6), (0x010E, 2, 1000, 200)]  # orientation 6; a description past the end
    directory = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *entry) for entry in entries)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (40, 60), RED).save(folder / "x.jpg", exif=b"Exif\x00\x00II*\x00" + struct.pack("<I", 8)
                                         + directory + b"\x00" * 4)
    Image.new("RGB", (60, 40), BLUE).save(folder / "y.png")
    assert read_rgb(folder / "x.jpg").size == header_size(folder / "x.jpg") == (60, 40)
    # a process of its own: pytest records warnings itself, so they never reach the output here
    result = subprocess.run([sys.executable, "-m", "gan", "train", str(REPO / "experiments" / "dcgan_demo.toml"),
                             "--set", "data.dataset=folder", "--set", f"data.root={folder}", "--set", "train.steps=1",
                             "--set", "metrics.every=0", "--set", "train.keep_best=''", "--set", "train.batch_size=2",
                             "--set", "train.ema_decay=0",
                             "--out", str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Skipping tag" not in result.stderr and "warning:" not in result.stderr, result.stderr


def test_an_off_standard_exif_tag_beside_the_orientation_still_turns_the_image(tmp_path):
    """A RATIONAL value stored under a tag the standard types SHORT: Pillow's exif_transpose raises
    on it (struct.error), where viewers turn the image and go on."""
    exif = Image.Exif()
    exif[0x0112], exif[0x011A] = 6, (72, 1)  # orientation 6, XResolution 72/1 (RATIONAL)
    image = Image.new("RGB", (12, 8), RED)
    image.paste(BLUE, (6, 0, 12, 8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), quality=100)
    data = buffer.getvalue()
    entry = data.find(b"\x01\x1a\x00\x05")  # the XResolution entry, little-endian
    assert entry > 0
    (tmp_path / "x.jpg").write_bytes(data[:entry] + b"\x01\x19" + data[entry + 2:])  # -> MaxSampleValue, a SHORT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's nameless "Metadata Warning"
        upright = np.asarray(read_rgb(tmp_path / "x.jpg")).astype(int)
        assert header_size(tmp_path / "x.jpg") == (8, 12)
    assert upright.shape == (12, 8, 3)
    assert abs(upright[1, 4] - RED).max() < 40 and abs(upright[-2, 4] - BLUE).max() < 40


def test_an_upright_a_beside_an_exif_rotated_b_is_a_pair_of_one_shape(tmp_path):
    root = tmp_path / "pairs"
    for side in ("A", "B"):
        (root / side).mkdir(parents=True)
    Image.new("RGB", (8, 16), RED).save(root / "A" / "x.png")
    sideways_jpeg(root / "B" / "x.jpg")
    dataset, messages = caught_warnings(lambda: paired_dataset(root, "all", 8, load_size=0, train=False))
    assert not [message for message in messages if "aspect" in message], messages
    a_image, b_image = dataset.load(0)
    assert a_image.size == b_image.size == (8, 16)


def test_a_colour_keyed_png_is_composited_over_white(tmp_path):
    rgb = Image.new("RGB", (8, 8), RED)
    rgb.paste((0, 128, 0), (0, 0, 4, 8))
    rgb.save(tmp_path / "rgb.png", transparency=RED)
    grey = Image.new("L", (8, 8), 10)
    grey.paste(200, (0, 0, 4, 8))
    grey.save(tmp_path / "grey.png", transparency=10)
    for name, kept in (("rgb.png", (0, 128, 0)), ("grey.png", (200, 200, 200))):
        pixels = np.asarray(read_rgb(tmp_path / name))
        assert tuple(pixels[0, 7]) == (255, 255, 255), name  # the keyed colour: transparent
        assert tuple(pixels[0, 0]) == kept, name


def _bgra_bmp(path, bgra, header_size: int) -> None:
    """A 32-bit BMP of `bgra` (H, W, 4) uint8 whose BI_BITFIELDS header (56 bytes: V3; 124: V5) names an
    alpha mask, as Windows programs write X8R8G8B8 with every alpha byte 0."""
    height, width = bgra.shape[:2]
    dib = struct.pack("<IiiHHIIiiII", header_size, width, -height, 1, 32, 3, bgra.nbytes, 2835, 2835, 0, 0)
    dib += struct.pack("<IIII", 0xFF0000, 0xFF00, 0xFF, 0xFF000000).ljust(header_size - 40, b"\0")
    offset = 14 + header_size
    path.write_bytes(b"BM" + struct.pack("<IHHI", offset + bgra.nbytes, 0, 0, offset) + dib + bgra.tobytes())


@pytest.mark.parametrize("header_size", [56, 124])
def test_a_bmp_whose_alpha_is_0_everywhere_is_read_opaque_as_windows_shows_it(tmp_path, header_size):
    # Pillow opens it as RGBA: laid over white, every pixel was white, in silence
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 2] = 200  # red
    _bgra_bmp(tmp_path / "red.bmp", bgra, header_size)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no blank image said)
        assert np.asarray(read_rgb(tmp_path / "red.bmp")).reshape(-1, 3).tolist() == [[200, 0, 0]] * 16
    bgra[0, 1, 3] = 255  # one opaque pixel: the alpha is in use, the others transparent
    _bgra_bmp(tmp_path / "alpha.bmp", bgra, header_size)
    assert np.asarray(read_rgb(tmp_path / "alpha.bmp"))[0, :2].tolist() == [[255, 255, 255], [200, 0, 0]]


def test_an_image_transparent_everywhere_is_read_white_and_named_once(tmp_path):
    # it trained as a white square without a word
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "blank.png")
    Image.new("P", (8, 8), 3).save(tmp_path / "blank.gif", transparency=3)  # (a palette's transparent index)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # (the command line's: once a file)
        for name in ("blank.png", "blank.png", "blank.gif"):
            assert np.asarray(read_rgb(tmp_path / name)).min() == 255
    said = [(one.category.__name__, str(one.message)) for one in caught if "alpha" in str(one.message)]
    assert said == [("TransparentImageWarning", f"'{tmp_path / name}': its alpha is 0 everywhere: read as a blank "
                     "white image; save it without its alpha channel to use its colours")
                    for name in ("blank.png", "blank.gif")], said


def test_the_colour_key_of_a_2_or_4_bit_grey_png_blanks_its_own_grey(tmp_path):
    # Pillow decodes the stored values 0..3 (2 bits) as 0, 85, 170, 255 but keeps the key at 1
    write_raw_png(tmp_path / "two.png", 4, 1, 2, 0, [bytes([0b00011011])], struct.pack(">H", 1))
    write_raw_png(tmp_path / "four.png", 2, 1, 4, 0, [bytes([0x5A])], struct.pack(">H", 5))
    assert np.asarray(read_rgb(tmp_path / "two.png"))[0, :, 0].tolist() == [0, 255, 170, 255]
    assert np.asarray(read_rgb(tmp_path / "four.png"))[0, :, 0].tolist() == [255, 170]


def test_the_colour_key_of_a_16_bit_rgb_png_is_warned_of_by_name_not_matched_at_8_bits(tmp_path):
    # 8-bit matching would blank (0, 0, 1), whose high bytes equal the key (0, 0, 0)'s
    write_png16(tmp_path / "deep.png", np.array([[[0, 0, 1], [5000, 6000, 7000]]]), struct.pack(">HHH", 0, 0, 0))
    with pytest.warns(UserWarning, match=r"deep.png': the colour key \(tRNS\) of this 16-bit RGB PNG"):
        pixels = np.asarray(read_rgb(tmp_path / "deep.png"))
    assert pixels[0].tolist() == [[0, 0, 0], [19, 23, 27]]


def test_16_bit_colour_is_within_one_level_of_scaled_grey_and_exact_for_8_bit_values(tmp_path):
    # Pillow keeps each colour sample's high byte, where grey is scaled (v / 257, rounded): for
    # v = 256h + l the two differ only when |l - h| > 128, and then by one level, either way.
    values = np.random.default_rng(0).integers(0, 65536, (64, 64, 3))
    write_png16(tmp_path / "colour.png", values)
    Image.fromarray(values[..., 0].astype(np.uint16)).save(tmp_path / "grey.png")
    colour = np.asarray(read_rgb(tmp_path / "colour.png")).astype(int)
    scaled = np.round(values / 257).astype(int)
    assert np.abs(colour - scaled).max() == 1 and abs((colour - scaled).mean()) < 0.02  # no bias
    assert np.array_equal(np.asarray(read_rgb(tmp_path / "grey.png"))[..., 0], scaled[..., 0])
    eight_bit = np.random.default_rng(1).integers(0, 256, (16, 16, 3))
    write_png16(tmp_path / "stored_at_16.png", eight_bit * 257)
    assert np.array_equal(np.asarray(read_rgb(tmp_path / "stored_at_16.png")), eight_bit)


def _grey_tiff(path, values, bits: int, photometric: int, sample_format: int, dtype: str) -> None:
    """A one-row uncompressed grey TIFF with the given tags (Pillow does not write these layouts)."""
    data = np.array([values], dtype).tobytes()
    tags = [(256, 3, len(values)), (257, 3, 1), (258, 3, bits), (259, 3, 1), (262, 3, photometric), (273, 4, 8),
            (277, 3, 1), (278, 3, 1), (279, 4, len(data)), (339, 3, sample_format)]
    entries = b"".join(struct.pack("<HHI", tag, kind, 1)
                       + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
                       for tag, kind, value in tags)
    path.write_bytes(b"II*\0" + struct.pack("<I", 8 + len(data)) + data + struct.pack("<H", len(tags)) + entries
                     + b"\0" * 4)


def test_a_16_bit_white_is_zero_tiff_is_inverted_as_pillow_inverts_8_bit_ones(tmp_path):
    _grey_tiff(tmp_path / "negative.tif", [0, 16384, 65535], 16, 0, 1, "<u2")
    assert np.asarray(read_rgb(tmp_path / "negative.tif"))[0, :, 0].tolist() == [255, 191, 0]


@pytest.mark.parametrize("values, bits, dtype", [([-32768, 0, 17968], 16, "<i2"), ([0, 70000, 100], 32, "<u4")])
def test_signed_and_32_bit_integer_tiffs_are_refused_naming_their_values(tmp_path, values, bits, dtype):
    _grey_tiff(tmp_path / "deep.tif", values, bits, 1, 2 if dtype.startswith("<i") else 1, dtype)
    with pytest.raises(ImageReadError, match=rf"deep.tif': I image has pixel values from {min(values)} to "
                                             rf"{max(values)}: a signed or 32-bit integer image"):
        read_rgb(tmp_path / "deep.tif")


def test_a_signed_8_bit_tiff_is_refused_naming_its_values_not_read_wrapped(tmp_path):
    # Pillow reads its samples as unsigned: -1 became 255 (white), -128 became 128, in silence.
    _grey_tiff(tmp_path / "signed.tif", [-128, -1, 0, 127], 8, 1, 2, "<i1")
    with pytest.raises(ImageReadError, match=r"signed.tif': signed 8-bit L image has pixel values from -128 to 127: "
                                             r"a signed integer image"):
        read_rgb(tmp_path / "signed.tif")
    _grey_tiff(tmp_path / "positive.tif", [0, 1, 127], 8, 1, 2, "<i1")  # (read the same either way)
    assert np.asarray(read_rgb(tmp_path / "positive.tif"))[0, :, 0].tolist() == [0, 1, 127]


def test_an_image_too_large_for_the_memory_left_is_named_not_a_traceback(tmp_path, monkeypatch):
    from gan.data import decode

    random_rgb((8, 8), 0).save(tmp_path / "huge.png")

    def no_memory(image):
        raise MemoryError()  # what Pillow raises under a memory limit (ulimit -v), with no message

    monkeypatch.setattr(decode, "to_rgb", no_memory)
    with pytest.raises(ImageReadError, match=r"huge.png': not enough memory to decode it"):
        read_rgb(tmp_path / "huge.png")


def test_a_dark_16_bit_ppm_is_scaled_as_16_bit(tmp_path):
    # a 16-bit PGM named .png: Pillow opens it as mode I; 200 of 65535 is 1 of 255, not 200
    Image.fromarray(np.full((8, 8), 200, np.uint16)).save(tmp_path / "dark.png", format="PPM")
    assert np.asarray(read_rgb(tmp_path / "dark.png")).max() == 1


def test_a_float_image_with_nan_pixels_is_refused_naming_the_file(tmp_path):
    array = np.full((8, 8), 0.5, np.float32)
    array[2, 3] = np.nan
    Image.fromarray(array, "F").save(tmp_path / "nan.png", format="TIFF")
    with pytest.raises(ImageReadError, match=r"nan\.png.*NaN"):
        read_rgb(tmp_path / "nan.png")


def test_a_signed_float_image_is_refused_not_clipped(tmp_path):
    # a -1..1 float image lost its negative half to black without a word
    array = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(array, "F").save(tmp_path / "signed.tif", format="TIFF")
    with pytest.raises(ImageReadError, match=r"signed\.tif.*pixel values from -1 to 1: gan reads float images "
                                             r"of 0\.\.1 \(or 0\.\.255\), not signed ones"):
        read_rgb(tmp_path / "signed.tif")
    Image.fromarray(array + 1, "F").save(tmp_path / "two.tif", format="TIFF")  # 0..2: read as 0..255
    assert np.asarray(read_rgb(tmp_path / "two.tif")).max() == 2


def test_a_float_image_of_0_to_1_with_a_few_highlights_above_1_is_read_as_0_to_1_and_said(tmp_path):
    # an HDR merge's or a linear render's highlights at 1.3 made it read as 0..255: nearly black, in silence
    array = np.random.default_rng(0).uniform(0.2, 0.8, (16, 16)).astype(np.float32)
    array.flat[:2] = 1.3  # (under 1%)
    Image.fromarray(array, "F").save(tmp_path / "hdr.tif")
    pixels, messages = caught_warnings(lambda: np.asarray(read_rgb(tmp_path / "hdr.tif"))[..., 0].astype(int))
    assert np.array_equal(pixels.flat[2:], np.round(array.flat[2:] * 255)) and pixels.flat[:2].tolist() == [255, 255]
    assert messages == [f"'{tmp_path / 'hdr.tif'}': read as a float image of 0..1 (99% of its pixels are within it), "
                        "its highlights up to 1.3 clipped to white; tone-map it to 0..1 to keep them"], messages


def test_a_float_image_above_255_is_refused_not_clipped_to_white(tmp_path):
    # a 0..65535 float TIFF decoded 99.6% white, trained on and scored in silence
    array = np.linspace(0, 65535, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(array, "F").save(tmp_path / "deep.tif", format="TIFF")
    with pytest.raises(ImageReadError, match=r"deep\.tif.*pixel values from 0 to 6\.55e\+04: gan reads float "
                                             r"images of 0\.\.1 \(or 0\.\.255\), not ones above 255"):
        read_rgb(tmp_path / "deep.tif")
    Image.fromarray(np.full((8, 8), 255.3, np.float32), "F").save(tmp_path / "top.tif", format="TIFF")
    assert np.asarray(read_rgb(tmp_path / "top.tif")).min() == 255  # (rounding above 255 is still 255)


def _out_of_range_images(folder):
    _grey_tiff(folder / "a_signed.tif", [-127, 0, 123], 16, 1, 2, "<i2")
    _grey_tiff(folder / "b_signed_bytes.tif", [-1, 0, 5], 8, 1, 2, "<i1")
    Image.fromarray(np.full((8, 8), 1000, np.float32), "F").save(folder / "c_float.tif", format="TIFF")
    Image.fromarray(np.full((8, 8), np.inf, np.float32), "F").save(folder / "d_inf.tif", format="TIFF")
    # a PFM, which Pillow names PPM, under a PGM's extension
    Image.fromarray(np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8), "F").save(folder / "d.pfm")
    (folder / "d.pfm").rename(folder / "d_pfm.pgm")
    return sorted([*folder.glob("*.tif"), folder / "d_pfm.pgm"])


def test_the_start_scan_finds_pixels_out_of_range_so_max_images_counts_only_readable_ones(tmp_path):
    # found only at decode, they counted among data.max_images: a run said "2 training images"
    # and trained on one, drawn twice as often
    from gan.data.decode import readable_images

    bad = _out_of_range_images(tmp_path)
    for path in bad:
        with pytest.raises(ImageReadError) as refused:
            read_rgb(path)
        assert check_header(path) == str(refused.value).split("': ", 1)[1]
    good = [tmp_path / f"e{index}.png" for index in range(3)]
    for index, path in enumerate(good):
        random_rgb((8, 8), index).save(path)
    with pytest.warns(UnreadableImageWarning):
        readable, skipped = readable_images(bad + good, strict=False, limit=2)
    assert readable == good[:2] and skipped == bad


def test_an_image_over_pillows_size_limit_is_warned_of_by_name(tmp_path, monkeypatch):
    random_rgb((20, 20), 0).save(tmp_path / "large.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # 400 pixels: over the limit, under twice it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert check_header(tmp_path / "large.png") is None
    (warning,) = [one for one in caught if issubclass(one.category, LargeImageWarning)]
    assert "large.png" in str(warning.message) and "20x20" in str(warning.message)
    # once a file, however many steps open it (the scan, the upsampling check and the cache's decode
    # warned three times), under Python's default filter, the command line's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        assert check_header(tmp_path / "large.png") is None
        assert read_rgb(tmp_path / "large.png").size == (20, 20)
    assert len([one for one in caught if issubclass(one.category, LargeImageWarning)]) == 1
    # over twice the limit: skipped, its limit said beside the warning's (178956970 read as contradicting 89478485)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)
    assert check_header(tmp_path / "large.png") == ("its 400 pixels are more than Pillow decodes (300, twice its "
                                                    "decompression-bomb limit of 150): downscale it, e.g. to half "
                                                    "size, to use it")


def test_a_200_megapixel_photo_is_skipped_in_gans_words_with_its_size_and_what_to_do(tmp_path, monkeypatch):
    # Pillow's words were passed on: "Image size (199756800 pixels) exceeds limit of 178956970 pixels, could
    # be decompression bomb DOS attack.", for a phone's photo, with neither its size nor what to do
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89478485)  # (Pillow's own)
    Image.new("RGB", (16, 16), RED).save(tmp_path / "phone.jpg")
    data = bytearray((tmp_path / "phone.jpg").read_bytes())
    start_of_frame = data.index(b"\xff\xc0")
    data[start_of_frame + 5:start_of_frame + 9] = struct.pack(">HH", 12240, 16320)  # (height, width)
    (tmp_path / "phone.jpg").write_bytes(data)
    said = ("its 199,756,800 pixels are more than Pillow decodes (178,956,970, twice its decompression-bomb limit "
            "of 89,478,485): downscale it, e.g. to half size, to use it")
    assert check_header(tmp_path / "phone.jpg") == said
    with pytest.raises(ImageReadError) as refused:
        read_rgb(tmp_path / "phone.jpg")
    assert str(refused.value) == f"cannot read image '{tmp_path / 'phone.jpg'}': {said}"


# ----------------------------------------------------------------------------- finding files


def test_linked_folders_are_followed_once_and_hidden_folders_left_out(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    for folder in (root / "real", root / ".ipynb_checkpoints", elsewhere):
        folder.mkdir(parents=True)
    random_rgb((8, 8), 0).save(root / "real" / "a.png")
    random_rgb((8, 8), 1).save(root / ".ipynb_checkpoints" / "a-checkpoint.png")
    random_rgb((8, 8), 2).save(elsewhere / "b.png")
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    (root / "real" / "loop").symlink_to(root, target_is_directory=True)  # a link to a parent
    found = [path.relative_to(root).as_posix() for path in find_images(root)]
    assert found == ["linked/b.png", "real/a.png"]


def test_a_folder_reached_by_a_link_too_is_listed_by_its_real_path(tmp_path):
    # a link sorting before its target took the folder's one listing: its images (and the outputs
    # gan translate names after them) moved under the link's name, the real folder listed empty
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    random_rgb((8, 8), 0).save(tmp_path / "sub" / "000001.png")
    random_rgb((8, 8), 1).save(tmp_path / "sub" / "deeper" / "000002.png")
    (tmp_path / "aaa_shortcut").symlink_to(tmp_path / "sub", target_is_directory=True)
    (tmp_path / "aab_deep").symlink_to(tmp_path / "sub" / "deeper", target_is_directory=True)
    found = [path.relative_to(tmp_path).as_posix() for path in find_images(tmp_path)]
    assert found == ["sub/000001.png", "sub/deeper/000002.png"]


@POSIX_ONLY
def test_a_link_to_a_fifo_is_skipped_without_waiting_for_a_writer(tmp_path):
    random_rgb((8, 8), 0).save(tmp_path / "good.png")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "pipe.png").symlink_to(tmp_path / "pipe")
    (readable, skipped), messages = caught_warnings(lambda: readable_images(find_images(tmp_path), strict=False))
    assert [path.name for path in readable] == ["good.png"] and [path.name for path in skipped] == ["pipe.png"]
    assert any("pipe.png" in message and "not a regular file" in message for message in messages)


def test_a_file_removed_after_the_folder_was_listed_is_named_as_gone(tmp_path):
    for index in range(3):
        random_rgb((8, 8), index).save(tmp_path / f"{index}.png")
    dataset = image_folder_dataset(tmp_path, resolution=8)
    (tmp_path / "1.png").unlink()
    with pytest.warns(UserWarning, match=r"1.png': no such file \(removed after the folder was listed\?\)"):
        dataset[1]


def test_a_partition_file_with_a_byte_order_mark_keeps_its_first_entry(tmp_path):
    folder = tmp_path / "img_align_celeba"
    folder.mkdir()
    for name in ("000001.jpg", "000002.jpg", "000003.jpg"):
        random_rgb((20, 24), 0).save(folder / name)
    (tmp_path / "list_eval_partition.txt").write_text("\ufeff000001.jpg 0\r\n000002.jpg 0\r\n000003.jpg 1\r\n",
                                                      encoding="utf-8")
    dataset = celeba_dataset(tmp_path, 8, split="train")
    assert [path.name for path in dataset.paths] == ["000001.jpg", "000002.jpg"]
    (tmp_path / "list_eval_partition.txt").write_bytes(b"000001.jpg 0\n\xe9\xff.jpg 0\n")  # not text
    with pytest.raises(ValueError, match=r"list_eval_partition.txt' is not CelebA's list_eval_partition.txt: it is "
                                         "not text"):
        celeba_dataset(tmp_path, 8, split="train")
    (tmp_path / "list_eval_partition.txt").unlink()
    from gan.data import build_dataset as build

    with pytest.raises(FileNotFoundError) as missing:  # the key at fault is data.split, not data.root
        build(DataConfig(dataset="celeba", root=str(tmp_path), resolution=8, split="train"))
    assert "data.split needs CelebA's list_eval_partition.txt" in str(missing.value)
    assert "it is set by data.root" not in str(missing.value)
    (tmp_path / "list_eval_partition.txt").symlink_to(tmp_path / "gone.txt")
    with pytest.raises(FileNotFoundError, match=r"list_eval_partition.txt' is a broken or looping symbolic link"):
        celeba_dataset(tmp_path, 8, split="train")
    (tmp_path / "list_eval_partition.txt").unlink()
    (tmp_path / "list_eval_partition.txt").mkdir()  # (it said to put the file where this folder is)
    with pytest.raises(FileNotFoundError, match=r"list_eval_partition.txt' is a folder, where CelebA's "
                                                r"list_eval_partition.txt is looked for: put the file there in its"):
        celeba_dataset(tmp_path, 8, split="train")


def test_a_folder_of_undecodable_images_names_the_folder(tmp_path):
    folder = tmp_path / "cut"
    folder.mkdir()
    for index in range(2):
        random_rgb((64, 64), index).save(folder / f"{index}.jpg", quality=95)
        damage_past_the_header(folder / f"{index}.jpg")  # headers pass; decoding fails
    dataset = image_folder_dataset(folder, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageReadError, match=f"none of the 2 images under '{folder}'"):
            dataset[0]


# ----------------------------------------------------------------------------- A|B images


def test_ab_images_too_narrow_to_split_are_skipped_and_a_stray_photo_is_named(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    for index in range(3):
        random_rgb((80, 40), index).save(folder / f"{index}.png")
    random_rgb((1, 40), 5).save(folder / "sliver.png")
    random_rgb((40, 40), 6).save(folder / "photo.png")
    dataset, messages = caught_warnings(lambda: paired_dataset(tmp_path, "train", 8, load_size=0))
    assert sorted(path.name for path, _ in dataset.pairs) == ["0.png", "1.png", "2.png", "photo.png"]
    assert dataset.num_skipped == 1
    assert any("sliver.png" in message and "too narrow" in message for message in messages), messages
    assert any("photo.png 40x40" in message and "narrower than 2:1" in message for message in messages), messages
    with pytest.raises(ImageReadError, match="sliver.png"):
        paired_dataset(tmp_path, "train", 8, load_size=0, strict=True)


def test_a_one_pixel_wide_ab_image_is_refused_when_loaded(tmp_path):
    from gan.data.paired import PairedImages

    random_rgb((1, 40), 0).save(tmp_path / "sliver.png")
    dataset = PairedImages([(tmp_path / "sliver.png", None)], 8, load_size=0, strict=True)
    with pytest.raises(ImageReadError, match="too narrow to split"):
        dataset[0]


def test_split_all_over_split_folders_of_a_and_b_is_refused(tmp_path):
    for side in ("A", "B"):
        (tmp_path / "train" / side).mkdir(parents=True)
        random_rgb((16, 16), 0).save(tmp_path / "train" / side / "0.png")
    with pytest.raises(ValueError, match="set data.split to one of train"):
        paired_dataset(tmp_path, "all", 8)


def test_a_paired_root_that_is_a_file_is_named_as_a_file(tmp_path):
    random_rgb((16, 8), 0).save(tmp_path / "pair.png")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        paired_dataset(tmp_path / "pair.png", "all", 8)
    with pytest.raises(FileNotFoundError, match=r"pair.png/train' does not exist \('.*pair.png' is a file, not a "):
        paired_dataset(tmp_path / "pair.png", "train", 8)  # the split's folder under the file
    with pytest.raises(FileNotFoundError, match=r"pair.png/trainA' does not exist \('.*pair.png' is a file, not a "):
        find_images(tmp_path / "pair.png" / "trainA")  # CycleGAN's domain folder under it


# ----------------------------------------------------------------------------- names and what is derived


@POSIX_ONLY
def test_file_names_that_are_not_utf8_are_fingerprinted_and_written_to_csv(tmp_path):
    name = os.fsdecode(b"bad\xffname.png")
    random_rgb((8, 8), 0).save(tmp_path / name)
    assert len(files_fingerprint(find_images(tmp_path))) == 64
    text = csv_text([{"image": name, "psnr": 20.0}])
    (tmp_path / "scores.csv").write_text(text, encoding="utf-8")  # (as gan eval writes it: no lone surrogate left)
    # the byte as a user finds the file (ls -b, a file manager): Python's own \udcff names no byte
    assert "bad\\xffname.png,20.000000" in (tmp_path / "scores.csv").read_text()
    broken = tmp_path / os.fsdecode(b"bi\xff\nrd.png")
    broken.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (readable, skipped), messages = caught_warnings(lambda: readable_images(find_images(tmp_path), strict=False))
    assert skipped == [broken]
    said = next(message for message in messages if "skipping unreadable image" in message)
    assert said.count("bi\\xff\\nrd.png") == 2 and "\\udc" not in said and "\n" not in said, said
    from gan.commands.eval import _format_row  # gan eval's table: a row a line, whatever the name holds

    assert _format_row({"image": broken.name, "psnr": 20.0}) == "bi\\xff\\nrd.png  psnr 20.0000"


def test_broken_and_looping_links_are_fingerprinted_by_name_for_the_metrics_reference(tmp_path):
    """Training skips such links; the reference statistics of the same folder once stopped the run on them."""
    from gan.metrics.generative import GenerativeEvaluator

    for index in range(4):
        random_rgb((16, 16), index).save(tmp_path / f"{index}.png")
    os.symlink("missing.png", tmp_path / "dangling.png")
    os.symlink("loop2.png", tmp_path / "loop1.png")
    os.symlink("loop1.png", tmp_path / "loop2.png")
    data = DataConfig(dataset="folder", root=str(tmp_path), resolution=16)
    before = source_fingerprint(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the links' own skip warnings
        reference = GenerativeEvaluator(data, ["swd"], 4, torch.device("cpu"), cache_dir=tmp_path / "cache").reference()
    assert int(reference["swd"]["num_images"]) == 4
    random_rgb((16, 16), 9).save(tmp_path / "missing.png")  # the link now leads to an image
    assert source_fingerprint(data) != before


def test_cached_reference_statistics_are_keyed_by_the_files(tmp_path):
    for index in range(3):
        random_rgb((16, 16), index).save(tmp_path / f"{index}.png")
    data = DataConfig(dataset="folder", root=str(tmp_path), resolution=8)
    before = reference_key(data, 3, "swd")
    assert reference_key(data, 3, "swd") == before
    Image.new("RGB", (16, 16), "white").save(tmp_path / "1.png")  # rewritten in place, same name
    assert reference_key(data, 3, "swd") != before
    assert source_fingerprint(DataConfig(dataset="synthetic")) == ""


def test_a_reused_cache_still_names_the_files_that_failed_to_decode(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(4):
        random_rgb((24, 24), index).save(folder / f"{index}.jpg", quality=95)
    damage_past_the_header(folder / "2.jpg")
    config = DataConfig(dataset="folder", root=str(folder), resolution=8, num_workers=0, cache="mmap",
                        cache_dir=str(tmp_path / "cache"))
    for attempt in ("build", "reuse"):
        dataset = build_dataset(config)
        _, messages = caught_warnings(lambda dataset=dataset: next(training_batches(config, dataset, 4, 0, 0, CPU)))
        assert any("2.jpg" in message for message in messages), (attempt, messages)
        assert dataset.num_skipped == 1, attempt


# ----------------------------------------------------------------------------- super-resolution evaluation


def test_sr_evaluation_leaves_out_images_too_small_to_score_and_names_them(tmp_path):
    data = write_recipe_data(tmp_path)
    small = tmp_path / "val"
    small.mkdir()
    random_rgb((48, 48), 0).save(small / "big.png")
    random_rgb((3, 3), 1).save(small / "three.png")
    random_rgb((12, 12), 2).save(small / "twelve.png")
    config = tiny_recipe_config("srresnet", data, f"data.val_root={small}")
    dataset, messages = caught_warnings(lambda: evaluation_set(config.data))
    assert [path.name for path in dataset.paths] == ["big.png"]
    assert any("three.png" in message and "twelve.png" in message for message in messages), messages
    (small / "big.png").unlink()
    with pytest.raises(ImageReadError, match="every evaluation image is smaller"):
        evaluation_set(config.data)


def test_latent_i_is_the_same_whatever_the_count():
    from gan.nets.running import random_latents

    for latent_dim in (100, 128, 7):
        reference = random_latents(33, latent_dim, seed=3)
        for count in (1, 2, 5, 7, 32):
            assert torch.equal(random_latents(count, latent_dim, seed=3), reference[:count]), (latent_dim, count)
    plain = torch.randn(64, 100, generator=torch.Generator().manual_seed(3))
    assert torch.equal(random_latents(64, 100, seed=3), plain)  # what earlier runs drew, where it was whole


def test_tiff_gif_and_jfif_files_are_read_and_other_formats_are_counted_in_one_warning(tmp_path):
    for name in ("a.tif", "b.TIFF", "c.gif", "d.jfif", "e.jpe", "f.png"):
        Image.new("RGB", (8, 8), RED).save(tmp_path / name, format={"jfif": "JPEG", "jpe": "JPEG"}.get(
            name.rsplit(".", 1)[1], None))
    Image.new("RGB", (8, 8), RED).save(tmp_path / "g.ico")
    Image.new("RGB", (8, 8), RED).save(tmp_path / "h.ico")
    Image.new("RGB", (8, 8), RED).save(tmp_path / "i.pdf")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "IMG_0001.HEIC").write_bytes(b"\0\0\0\x18ftypheic")  # a phone's photo, which Pillow cannot open
    paths, messages = caught_warnings(lambda: find_images(tmp_path))
    assert [path.name for path in paths] == ["a.tif", "b.TIFF", "c.gif", "d.jfif", "e.jpe", "f.png"]
    assert len(messages) == 1 and "4 files" in messages[0] and "1 .heic, 2 .ico, 1 .pdf" in messages[0], messages
    assert str(tmp_path) in messages[0] and ".txt" not in messages[0]
    for path in paths:
        assert abs(np.asarray(read_rgb(path))[4, 4].astype(int) - RED).max() < 8, path  # JPEG: lossy


def test_camera_raw_files_are_counted_and_a_folder_of_only_such_photos_names_them(tmp_path):
    # RAW files were left out without a word, and a folder of them (or of phones' HEIC) said only "no images
    # found"; the advice for RAW files is theirs
    advice = ("convert them to PNG or JPEG to use them (camera RAW files with the camera maker's software, "
              "darktable or dcraw, to PNG, JPEG or TIFF)")
    (tmp_path / "mixed").mkdir()
    random_rgb((8, 8), 0).save(tmp_path / "mixed" / "a.png")
    (tmp_path / "mixed" / "IMG_0001.CR2").write_bytes(b"II*\0\x10\0\0\0CR\x02\0")
    paths, messages = caught_warnings(lambda: find_images(tmp_path / "mixed"))
    assert [path.name for path in paths] == ["a.png"]
    assert messages == [f"left out 1 files under '{tmp_path / 'mixed'}' in formats gan does not read as training "
                        f"images (1 .cr2); {advice}"], messages
    (tmp_path / "camera").mkdir()
    for name in ("DSC_0001.NEF", "DSC_0002.nef", "_1000001.RW2", "IMG_0003.dng", "IMG_0004.HEIC"):
        (tmp_path / "camera" / name).write_bytes(b"\0" * 16)
    with pytest.raises(FileNotFoundError) as refused:
        caught_warnings(lambda: find_images(tmp_path / "camera"))
    assert str(refused.value).endswith(", but 5 files in formats gan does not read as training images (1 .dng, "
                                       f"1 .heic, 2 .nef, 1 .rw2); {advice}"), refused.value


def test_an_animated_png_is_read_by_its_first_frame_as_animated_gifs_are(tmp_path):
    # Pillow reads APNG, yet .apng was counted among the formats gan does not read: "convert to PNG"
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, BLUE)]
    frames[0].save(tmp_path / "a.apng", format="PNG", save_all=True, append_images=frames[1:])
    paths, messages = caught_warnings(lambda: find_images(tmp_path))
    assert [path.name for path in paths] == ["a.apng"] and not messages, messages
    dataset = image_folder_dataset(tmp_path, resolution=8)
    assert len(dataset) == 1 and dataset[0]["image"][:, 4, 4].tolist() == [1.0, -1.0, -1.0]  # red, in [-1, 1]


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow was built without AVIF")
def test_avif_photos_are_read_where_pillow_reads_them(tmp_path):
    # They were counted among the formats gan does not read, although Pillow decodes them.
    Image.new("RGB", (16, 16), RED).save(tmp_path / "a.AVIF")
    paths, messages = caught_warnings(lambda: find_images(tmp_path))
    assert [path.name for path in paths] == ["a.AVIF"] and not messages
    assert abs(np.asarray(read_rgb(paths[0]))[8, 8].astype(int) - RED).max() < 8  # lossy


def test_a_pillow_that_knows_no_avif_is_asked_for_it_without_a_warning():
    """Pillow before 11.2 knows no "avif": gan.data.decode's features.check("avif") warned "Unknown feature
    'avif'." as it was imported, the first line every command printed."""
    code = ("import warnings\n"
            "from PIL import features\n"
            "features.modules.pop('avif', None)  # (as Pillow before 11.2 has them)\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    from gan.data.decode import AVIF, PHOTO_FORMATS_WITHOUT_PILLOW\n"
            "print(AVIF, '.avif' in PHOTO_FORMATS_WITHOUT_PILLOW, [str(warning.message) for warning in caught])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 2)[:2] == ["()", "True"] and "avif" not in result.stdout, result.stdout


def swapped_primaries_profile() -> bytes:
    """An RGB ICC profile whose red and blue primaries are sRGB's swapped: a colour-managed viewer
    shows a pixel stored as red as blue."""
    import struct

    from PIL import ImageCms

    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack(">I", profile[128:132])[0]
    entries = {bytes(profile[132 + 12 * i:136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    profile[red + 4:red + 12], profile[blue + 4:blue + 12] = profile[blue + 4:blue + 12], profile[red + 4:red + 12]
    return bytes(profile)


def test_a_colour_key_and_a_palette_are_read_under_their_colour_profile(tmp_path):
    """The profile's transform used to drop a PNG's colour key (the keyed pixel showed), and a
    palette image's profile was not applied at all."""
    stored = Image.new("RGB", (8, 8), (200, 30, 30))
    stored.putpixel((0, 0), (10, 200, 40))
    stored.save(tmp_path / "keyed.png", icc_profile=swapped_primaries_profile(), transparency=(10, 200, 40))
    keyed = np.asarray(read_rgb(tmp_path / "keyed.png")).astype(int)
    assert keyed[0, 0].tolist() == [255, 255, 255]  # the key: composited over white
    assert keyed[4, 4, 2] > 150 and keyed[4, 4, 0] < 80  # the rest: under the profile, red shows as blue
    stored.quantize(4).save(tmp_path / "palette.png", icc_profile=swapped_primaries_profile())
    palette = np.asarray(read_rgb(tmp_path / "palette.png")).astype(int)
    assert palette[4, 4, 2] > 150 and palette[4, 4, 0] < 80


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_an_embedded_colour_profile_is_applied_as_colour_managed_viewers_do(tmp_path, suffix):
    stored = Image.new("RGB", (8, 8), (200, 30, 30))
    stored.save(tmp_path / f"tagged{suffix}", icc_profile=swapped_primaries_profile(), quality=100)
    red, green, blue = (int(value) for value in np.asarray(read_rgb(tmp_path / f"tagged{suffix}"))[4, 4])
    assert blue > 150 and red < 80 and green < 80, (red, green, blue)
    (tmp_path / "damaged").mkdir()
    stored.save(tmp_path / "damaged" / f"x{suffix}", icc_profile=b"not a profile", quality=100)
    with pytest.warns(UserWarning, match=rf"x{suffix}': its embedded colour profile cannot be applied"):
        as_stored = np.asarray(read_rgb(tmp_path / "damaged" / f"x{suffix}"))[4, 4].astype(int)
    assert abs(as_stored - (200, 30, 30)).max() < 8


def test_an_sr_run_reads_its_evaluation_set_once_for_every_validation_and_preview(tmp_path):
    # Each validation scanned the folder again (and warned again of the images it leaves out), and
    # scored whatever the folder held by then: one run's val/psnr were of different sets.
    from gan.training.loop import train

    data = write_recipe_data(tmp_path)
    small = tmp_path / "val"
    small.mkdir()
    for index in range(2):
        random_rgb((48, 48), index).save(small / f"big{index}.png")
    random_rgb((3, 3), 1).save(small / "three.png")
    config = tiny_recipe_config("srresnet", data, f"data.val_root={small}", "train.steps=3", "log.eval_every=1",
                                "log.image_every=1")
    _, messages = caught_warnings(lambda: train(config, tmp_path / "run", CPU))
    assert sum("three.png" in message for message in messages) == 1, messages


def test_a_file_name_with_a_new_line_keeps_the_skip_warning_on_one_line(tmp_path):
    # "skipping unreadable image" was printed over two lines for 'new\nline.jpg'
    (tmp_path / "new\nline.jpg").write_bytes(b"not a jpeg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        readable_images([tmp_path / "new\nline.jpg"], strict=False)
    (warning,) = [one for one in caught if issubclass(one.category, UnreadableImageWarning)]
    assert "\n" not in str(warning.message) and "new\\nline.jpg" in str(warning.message)


def test_the_upsampling_warning_keeps_a_file_name_with_a_new_line_on_one_line(tmp_path):
    random_rgb((8, 8), 0).save(tmp_path / "small\nname.png", format="PNG")
    with pytest.warns(UserWarning, match="upsampled") as caught:
        image_folder_dataset(tmp_path, 32)
    (said,) = [str(one.message) for one in caught if "upsampled" in str(one.message)]
    assert "\n" not in said and "small\\nname.png" in said


def test_a_palette_image_with_alpha_is_composited_over_white():
    # (guards a mutation probe found open: a "PA" image's transparent pixels showed their hidden colour)
    from gan.data.decode import to_rgb

    image = Image.new("PA", (2, 1))
    image.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    image.putpixel((0, 0), (0, 0))  # red, fully transparent
    image.putpixel((1, 0), (0, 255))  # red, opaque
    assert list(to_rgb(image).getdata()) == [(255, 255, 255), (255, 0, 0)]


def test_a_colour_keyed_16_bit_grey_pixel_is_white():
    # (guards a mutation probe found open: the keyed grey value turned black, not white)
    from gan.data.decode import to_rgb

    image = Image.new("I;16", (2, 1))
    image.putpixel((0, 0), 1000)  # the key: transparent
    image.putpixel((1, 0), 30000)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=1000)
    buffer.seek(0)
    pixels = np.asarray(to_rgb(Image.open(buffer)))
    assert pixels[0, 0].tolist() == [255, 255, 255] and pixels[0, 1].tolist() == [117, 117, 117]


def test_a_folder_named_in_another_unicode_form_than_typed_is_pointed_at(tmp_path):
    """macOS writes `Fotos Café` decomposed; typed on a command line it is composed: two names here
    that print alike, and 'does not exist' left the user looking at a listing that showed it."""
    import unicodedata

    from gan.commands.main import main

    folder = tmp_path / unicodedata.normalize("NFD", "Fotos Café")
    folder.mkdir()
    random_rgb((16, 16), seed=0).save(folder / "0.png")
    typed = tmp_path / "Fotos Café"
    with pytest.raises(FileNotFoundError, match=f"does not exist \\('{folder}' is there: a name that prints alike, "
                                                "its letters in another Unicode form"):
        find_images(typed / "faces")
    result = CliRunner().invoke(main, ["export", str(typed / "0.png"), str(tmp_path / "g.safetensors")])
    assert result.exit_code == 2 and "another Unicode form" in result.output, result.output
    with pytest.raises(FileNotFoundError, match="image folder '.*' does not exist$"):  # (none there: nothing said)
        find_images(tmp_path / "Fotos Cafe")


def test_a_folder_copied_through_macos_is_the_same_data_for_a_resume(tmp_path):
    """Its names come back decomposed: a resume said "the training data differ ... or files renamed"."""
    import unicodedata

    from gan.data import data_signature

    signatures = []
    for form in ("NFC", "NFD"):
        folder = tmp_path / form
        folder.mkdir()
        for index, name in enumerate(("Zoë.png", "Åsa.png", "b.png")):
            random_rgb((16, 16), seed=index).save(folder / unicodedata.normalize(form, name))
        signatures.append(data_signature(image_folder_dataset(folder, resolution=8)))
    assert signatures[0] == signatures[1]


def test_a_phones_heic_photo_renamed_jpg_is_told_to_be_converted(tmp_path):
    """A .heic file is counted and told to be converted; the same photo named IMG_0001.jpg (a transfer
    that renamed it) was "cannot identify image file", saying nothing of what it is."""
    for brand, told in ((b"heic", "HEIC"), (b"mif1", "HEIF")):
        photo = tmp_path / f"IMG_{brand.decode()}.jpg"
        photo.write_bytes(b"\0\0\0\x18ftyp" + brand + bytes(64))
        with pytest.raises(ImageReadError, match=f"IMG_{brand.decode()}.jpg.*: it is a {told} photo under another "
                                                 "extension, which gan does not read; convert it to PNG or JPEG"):
            read_rgb(photo)
    # not one: Pillow's words alone (a damaged .avif is no AVIF under another name, and this Pillow may read AVIF)
    (tmp_path / "junk.jpg").write_bytes(bytes(64))
    (tmp_path / "cut.avif").write_bytes(b"\0\0\0\x1cftypavif" + bytes(64))
    (tmp_path / "cut.heic").write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    names = ["junk.jpg", "cut.avif", "cut.heic"] + (["renamed.jpg"] if features.check("avif") else [])
    (tmp_path / "renamed.jpg").write_bytes(b"\0\0\0\x1cftypavif" + bytes(64))
    for name in names:
        with pytest.raises(ImageReadError) as refused:
            read_rgb(tmp_path / name)
        assert "photo under another extension" not in str(refused.value), name
