"""A folder of every kind of bad input: each file is read, or skipped with a warning naming it,
and a run over it never stops mid-epoch."""

import io
import os
import re
import struct
import sys
import warnings
import zlib

import numpy as np
import pytest
import torch
from conftest import damage_past_the_header, random_rgb, tiny_config, write_png16
from PIL import Image

from gan.data.decode import UnreadableImageWarning
from gan.data.image_files import image_folder_dataset
from gan.data.sampling import batches
from gan.training.loop import train

CPU = torch.device("cpu")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(
        b"IEND", b"")


# file name -> what must happen: "read" (a usable image) or "skipped" (warned about, named)
EXPECTED = {
    "good_0.png": "read", "good_1.png": "read", "good_2.jpg": "read",
    "png_named_as.jpg": "read", "sixteen_bit.png": "read", "cmyk.jpg": "read", "one_pixel.png": "read",
    "damaged.jpg": "read-then-skipped",  # its header and end marker are fine; decoding fails, at load time
    "truncated.jpg": "skipped",  # its header is fine, its end is missing
    "zero_bytes.jpg": "skipped", "bomb.png": "skipped", "not_an_image.png": "skipped",
    "folder_named.png": "skipped", "broken_symlink.png": "skipped", "no_permission.png": "skipped",
}


@pytest.fixture
def bad_folder(tmp_path):
    root = tmp_path / "fuzz"
    root.mkdir()
    for index in range(2):
        random_rgb((40, 30), index).save(root / f"good_{index}.png")
    random_rgb((40, 30), 2).save(root / "good_2.jpg", quality=90)
    random_rgb((20, 20), 3).save(root / "png_named_as.jpg", format="PNG")
    write_png16(root / "sixteen_bit.png", np.random.default_rng(0).integers(0, 65536, (12, 12, 3)))
    Image.fromarray(np.full((16, 16, 4), 80, np.uint8), "CMYK").save(root / "cmyk.jpg")
    random_rgb((1, 1), 4).save(root / "one_pixel.png")
    jpeg = io.BytesIO()
    random_rgb((64, 64), 5).save(jpeg, format="JPEG", quality=95)
    (root / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (root / "damaged.jpg").write_bytes(jpeg.getvalue())
    damage_past_the_header(root / "damaged.jpg")
    (root / "zero_bytes.jpg").write_bytes(b"")
    (root / "bomb.png").write_bytes(png_header_only(200_000, 200_000))
    (root / "not_an_image.png").write_text("just text, not pixels\n")
    (root / "folder_named.png").mkdir()
    (root / "broken_symlink.png").symlink_to(root / "gone.png")
    random_rgb((8, 8), 6).save(root / "no_permission.png")
    os.chmod(root / "no_permission.png", 0)
    if os.geteuid() == 0:  # root reads any file: the case cannot happen here, so do not expect it
        os.chmod(root / "no_permission.png", 0o644)
        EXPECTED_HERE = {**EXPECTED, "no_permission.png": "read"}
    else:
        EXPECTED_HERE = EXPECTED
    yield root, EXPECTED_HERE
    os.chmod(root / "no_permission.png", 0o644)


def test_each_bad_file_is_read_or_skipped_with_a_warning_naming_it(bad_folder):
    root, expected = bad_folder
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = image_folder_dataset(root, 16)
    messages = [str(w.message) for w in caught if issubclass(w.category, UnreadableImageWarning)]
    for name, outcome in expected.items():
        named = [message for message in messages if name in message]
        assert bool(named) == (outcome == "skipped"), (name, messages)
    read = sorted(path.name for path in dataset.paths)
    assert read == sorted(name for name, outcome in expected.items() if outcome != "skipped")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stream = batches(dataset, 4, seed=0, start_sample=0, num_workers=0)
        images = torch.cat([next(stream)["image"] for _ in range(2 * len(dataset))])  # 8 epochs
    assert images.shape[1:] == (3, 16, 16) and torch.isfinite(images).all()
    assert images.min() >= -1 and images.max() <= 1
    late = [str(w.message) for w in caught if issubclass(w.category, UnreadableImageWarning)]
    assert len(late) == 1 and "damaged.jpg" in late[0]  # warned once, then its slot takes the next image


def test_a_training_run_over_the_bad_folder_finishes_and_reports_the_skips(bad_folder, tmp_path, capsys):
    root, expected = bad_folder
    config = tiny_config("data.dataset=folder", f"data.root='{root}'", "data.num_workers=2", "train.steps=12")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(config, tmp_path / "run", CPU, progress_stream=sys.stdout)
    assert result.step == 12 and result.interrupted_by is None
    skipped = sum(outcome == "skipped" for outcome in expected.values())
    reported = re.search(r"warning: (\d+) unreadable image file\(s\) of the training set were skipped",
                         capsys.readouterr().err)
    # the truncated file is counted once by each process that met it: the loader workers, and the
    # main one where it is among the health watch's real images (the stream's first)
    assert reported and skipped + 1 <= int(reported.group(1)) <= skipped + 3
