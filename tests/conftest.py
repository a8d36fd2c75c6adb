"""Shared fixtures: tiny configs, image files of every awkward kind, the real data folder."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan.config import load_config

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout (real images); tests skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the checkout on project machines)")
    return SHARED_DATA


TINY = [
    "data.dataset=synthetic", "data.resolution=32", "data.num_workers=0", "data.synthetic_size=64",
    "model.generator_args.channels=8", "model.discriminator_args.channels=8",
    "train.batch_size=8", "train.steps=4", "train.checkpoint_every=2",
    "log.every=1", "log.image_every=2", "log.num_samples=4", "metrics.every=0",
]


def tiny_config(*overrides: str):
    """The demo recipe shrunk to run a step in milliseconds on the CPU."""
    return load_config(REPO / "experiments" / "dcgan_demo.toml", [*TINY, *overrides])


def write_png16(path: Path, array: np.ndarray) -> None:
    """Write a 16-bit RGB or RGBA PNG (Pillow cannot write these itself)."""
    height, width, channels = array.shape
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    colour_type = {3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def random_rgb(size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def only_run(out: Path) -> Path:
    """The single run directory inside a runs folder (which also holds a hidden lock file)."""
    (run_dir,) = [path for path in out.iterdir() if path.is_dir()]
    return run_dir


@pytest.fixture(scope="session")
def tiny_demo_run(tmp_path_factory) -> Path:
    """The demo config shrunk to TINY, trained 4 steps through `gan train`; tests only read it."""
    from click.testing import CliRunner

    from gan.cli import main

    out = tmp_path_factory.mktemp("runs")
    sets = [arg for item in TINY for arg in ("--set", item)]
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"), *sets,
                                       "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return only_run(out)
