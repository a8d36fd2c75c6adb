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
    assert len(late) == 1 and "damaged.jpg" in late[0]  # warned once, then its slot takes its stand-in


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


def test_records_nested_thousands_deep_are_damaged_records_not_tracebacks(tmp_path):
    # json and tomllib raise RecursionError on arrays nested thousands deep: a stranger's sidecar,
    # metrics.jsonl, best.json, config.toml or sweep.toml ended seven commands in a traceback
    from gan.core.checkpoint import BestCheckpoint, export_source
    from gan.core.registry import ConfigError
    from gan.tools.compare import CompareError, read_configs, sweep_runs_not_started
    from gan.tools.sweep import write_manifest
    from gan.training.records import drop_metrics_after

    deep_json, deep_toml = "[" * 100_000 + "]" * 100_000, "junk = " + "[" * 3000 + "]" * 3000 + "\n"
    (tmp_path / "g.safetensors.json").write_text(deep_json)
    assert export_source(tmp_path / "g.safetensors") is None
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n' + deep_json + "\n" + '{"step": 3}\n')
    drop_metrics_after(tmp_path / "metrics.jsonl", 2, lambda line: None)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1}\n' + deep_json + "\n"  # (kept as it is)
    (tmp_path / "best.json").write_text(deep_json)
    assert BestCheckpoint(tmp_path, "swd/mean", "lower").value is None
    run = tmp_path / "runs" / "00000-x"
    run.mkdir(parents=True)
    (run / "config.toml").write_text(deep_toml)
    with pytest.raises(CompareError, match="cannot read the settings of run '.*00000-x': .*config.toml: nested too "
                                           "deeply to read"):
        read_configs([run])
    (tmp_path / "runs" / "sweep.toml").write_text(deep_toml)
    assert sweep_runs_not_started([tmp_path / "runs"]) == []
    with pytest.raises(ConfigError, match="sweep.toml' is not a sweep manifest"):
        write_manifest(tmp_path / "runs", "config = 'x'\n")
