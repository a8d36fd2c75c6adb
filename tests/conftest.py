"""Shared fixtures: tiny configs, image files of every awkward kind, the real data folder."""

from __future__ import annotations

import functools
import os
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan.core.processes import STOP_SIGNALS
from gan.training.resolve import load_config

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout (real images); tests skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the checkout on project machines)")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def caches_of_the_session(tmp_path_factory):
    """gan's caches (decoded images, reference statistics) in a folder of the test session's own, for its
    processes too: in the user's ~/.cache/gan the tests' caches piled up (200 MB a run), and a cache the
    user already had could answer a test."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(scope="session", autouse=True)
def streams_buffered_as_pythons_default():
    """The commands the tests start run with Python's default buffered stdout and stderr, as a user's do:
    PYTHONUNBUFFERED, set on the project's machines, hid the "Exception ignored" exits (120) of a full or
    closed stdout, and the reentrant write of a stop signal's handler, from every earlier run of the suite."""
    previous = os.environ.pop("PYTHONUNBUFFERED", None)
    yield
    if previous is not None:
        os.environ["PYTHONUNBUFFERED"] = previous


@pytest.fixture(scope="session", autouse=True)
def not_a_requeued_slurm_job():
    """The tests' runs start as a job's first: a suite run in a requeued SLURM job (SLURM_RESTART_COUNT
    above 0) had each `gan train --out` refused, as a requeue would start a new run from step 0."""
    previous = os.environ.pop("SLURM_RESTART_COUNT", None)
    yield
    if previous is not None:
        os.environ["SLURM_RESTART_COUNT"] = previous


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_reaches_the_tests():
    """The tests of Ctrl-C need SIGINT to reach their processes: a suite started in the background of a
    script (`( pytest & )`) begins with it ignored, which gan, as Python does, leaves ignored, and its
    processes inherit. Python's own handler, as in a terminal."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture(autouse=True)
def no_signal_handler_leaks():
    """A test that leaves a stop-signal handler of its own behind fails: the handler would act in
    the tests after it (a SIGTERM raising Terminated where the default would end the process)."""
    watched = STOP_SIGNALS
    before = {signum: signal.getsignal(signum) for signum in watched}
    yield
    leaked = [signal.Signals(signum).name for signum in watched if signal.getsignal(signum) is not before[signum]]
    for signum, handler in before.items():
        signal.signal(signum, handler)
    if leaked:
        pytest.fail(f"the test left its own handler of {', '.join(leaked)} behind")


TINY = [
    "data.dataset=synthetic", "data.resolution=32", "data.num_workers=0", "data.synthetic_size=64",
    "model.generator_args.channels=8", "model.discriminator_args.channels=8",
    "train.batch_size=8", "train.steps=4", "train.checkpoint_every=2",
    "log.every=1", "log.image_every=2", "log.num_samples=4", "metrics.every=0",
]


def tiny_config(*overrides: str):
    """The demo recipe shrunk to run a step in milliseconds on the CPU."""
    return load_config(REPO / "experiments" / "dcgan_demo.toml", [*TINY, *overrides])


TINY_PIX2PIX = [
    "data.resolution=32", "data.load_size=36", "data.num_workers=0",
    "model.generator=unet", "model.generator_args.num_downs=5", "model.generator_args.dropout=0",
    "model.generator_args.channels=4",
    "model.discriminator_args.channels=4", "train.steps=2", "train.batch_size=2",
    "train.checkpoint_every=2", "log.every=1", "log.image_every=2", "log.num_samples=2",
]
TINY_CYCLEGAN = [
    "data.resolution=16", "data.load_size=20", "data.num_workers=0",
    "model.generator_args.channels=4", "model.generator_args.num_blocks=1", "model.discriminator_args.channels=4",
    "model.discriminator_args.n_layers=1", "train.steps=4", "train.checkpoint_every=2", "train.batch_size=2",
    "log.every=1", "log.image_every=2", "log.num_samples=2", "loss.pool_size=3", "train.lr_decay_steps=0",
]
TINY_SR = ["data.resolution=32", "data.num_workers=0", "model.generator_args.channels=8",
           "model.generator_args.num_blocks=1", "train.steps=2", "train.batch_size=2", "train.checkpoint_every=2",
           "log.every=1", "log.image_every=2", "log.eval_every=2", "log.num_samples=2"]


def write_recipe_data(root: Path) -> dict[str, Path]:
    """Small random image folders in every layout the recipes read: paired (A|B), unpaired, SR."""
    paired, unpaired, high_res = root / "paired", root / "unpaired", root / "hr"
    for split, count in (("train", 4), ("val", 2)):
        (paired / split).mkdir(parents=True)
        for index in range(count):
            a = np.asarray(random_rgb((40, 40), index))
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(paired / split / f"{index}.png")
    for folder, count, offset in (("trainA", 3, 0), ("trainB", 5, 10), ("testA", 2, 20), ("testB", 2, 30)):
        (unpaired / folder).mkdir(parents=True)
        for index in range(count):
            random_rgb((24 + index, 20), offset + index).save(unpaired / folder / f"{index}.png")
    high_res.mkdir()
    for index in range(3):
        random_rgb((48, 44), index).save(high_res / f"{index}.png")
    return {"paired": paired, "unpaired": unpaired, "hr": high_res}


RECIPE_CONFIGS = {"dcgan": "dcgan_demo.toml", "pix2pix": "pix2pix_facades.toml",
                  "cyclegan": "cyclegan_horse2zebra.toml", "srresnet": "srresnet_x4.toml", "srgan": "srgan_x4.toml"}


def tiny_recipe_config(recipe: str, data: dict[str, Path], *overrides: str):
    """Each recipe's shipped config shrunk to tiny networks on `write_recipe_data`'s folders,
    with previews (and validation where the recipe has it) at every other step."""
    roots = {
        "dcgan": TINY,
        "pix2pix": [*TINY_PIX2PIX, f"data.root={data['paired']}", "log.eval_every=2"],
        "cyclegan": [*TINY_CYCLEGAN, f"data.root={data['unpaired']}"],
        "srresnet": [*TINY_SR, f"data.root={data['hr']}", f"data.val_root={data['hr']}"],
        "srgan": [*TINY_SR, f"data.root={data['hr']}", f"data.val_root={data['hr']}", "loss.vgg_weights=random",
                  "loss.vgg_layer=relu2_2", "model.discriminator_args.channels=8", "model.init_generator=none"],
    }[recipe]
    return load_config(REPO / "experiments" / RECIPE_CONFIGS[recipe], [*roots, *overrides])


def write_raw_png(path: Path, width: int, height: int, bit_depth: int, colour_type: int, rows: list[bytes],
                  colour_key: bytes | None = None) -> None:
    """Write a PNG from its packed rows and optional tRNS chunk (for depths Pillow does not write)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    key = chunk(b"tRNS", colour_key) if colour_key is not None else b""
    raw = b"".join(b"\x00" + row for row in rows)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + key + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def write_png16(path: Path, array: np.ndarray, colour_key: bytes | None = None) -> None:
    """Write a 16-bit RGB or RGBA PNG (Pillow cannot write these itself)."""
    height, width, channels = array.shape
    write_raw_png(path, width, height, 16, {3: 2, 4: 6}[channels],
                  [array[y].astype(">u2").tobytes() for y in range(height)], colour_key)


def random_rgb(size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def damage_past_the_header(path: Path) -> None:
    """Damage an image file so that only decoding it finds out: its header and its end marker still
    read (a file cut short is found at the scan). A JPEG's Huffman table is made bogus; a PNG's pixel
    data is cut short before an IEND chunk."""
    data = bytearray(path.read_bytes())
    if data.startswith(b"\x89PNG"):
        path.write_bytes(bytes(data[:len(data) // 2]) + b"\x00\x00\x00\x00IEND\xaeB`\x82")
        return
    table = data.index(b"\xff\xc4") + 5  # DHT: its 16 code-length counts, now summing past 256
    data[table:table + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))


def flip_a_bit_in_record(path: Path, record: str = "data/0") -> None:
    """Flip one bit in the middle of the bytes of a torch zip's `record` (a tensor's: `data/0`), as a
    download or a copy may: the file still loads, with one weight changed."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entry = next(info for info in archive.infolist() if info.filename.partition("/")[2] == record)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[entry.header_offset + 26:entry.header_offset + 30])
    data[entry.header_offset + 30 + name_length + extra_length + entry.file_size // 2] ^= 0x04
    path.write_bytes(bytes(data))


def save_torchscript(path: Path) -> Path:
    """A tiny network compiled with torch.jit.script and saved as a TorchScript archive at `path`: what
    clean-fid's inception-2015-12-05.pt and a traced generator are."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch.jit.script is deprecated in favour of torch.export)
        torch.jit.script(torch.nn.Conv2d(3, 3, 1)).save(str(path))
    return path



@functools.cache
def _random_vgg_state(arch: str) -> dict:
    import torch
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return getattr(torchvision.models, arch)(weights=None).state_dict()


def random_vgg_state(arch: str = "vgg19", features_only: bool = False) -> dict:
    """torchvision's `arch` of random (seeded) weights as a state dict of the caller's own, whose entries it
    may replace but not change in place: built once a session (VGG19 takes 3 s to build, its file 548 MB).
    `features_only`: the convolutions alone (80 MB), which the perceptual loss reads and accepts as a file."""
    return {key: value for key, value in _random_vgg_state(arch).items()
            if not (features_only and key.startswith("classifier."))}

def invoke(*args):
    """`gan ARGS...` through click's test runner (arguments may be paths)."""
    from click.testing import CliRunner

    from gan.commands.main import main

    return CliRunner().invoke(main, [str(arg) for arg in args])


def assert_one_error_line(result, *fragments: str) -> str:
    """Exit code 2 and a single `error:` line holding every fragment: no traceback. Returns the line."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def run_folders(out: Path) -> list[Path]:
    """The run directories inside a runs folder: none when a failed start removed the folder it made."""
    return [path for path in out.iterdir() if path.is_dir()] if out.exists() else []


def only_run(out: Path) -> Path:
    """The single run directory inside a runs folder (which also holds a hidden lock file)."""
    (run_dir,) = [path for path in out.iterdir() if path.is_dir()]
    return run_dir


@pytest.fixture(scope="session")
def tiny_demo_run(tmp_path_factory) -> Path:
    """The demo config shrunk to TINY, trained 4 steps through `gan train`; tests only read it."""
    from click.testing import CliRunner

    from gan.commands.main import main

    out = tmp_path_factory.mktemp("runs")
    sets = [arg for item in TINY for arg in ("--set", item)]
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"), *sets,
                                       "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return only_run(out)


def wait_for_no_writer(run_dir: Path, seconds: float = 60) -> bool:
    """Whether the run directory's lock came free within `seconds` (every writer of it ended)."""
    import time

    from gan.core.files import RunDirectoryBusy, RunLock

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with RunLock(run_dir):
                return True
        except RunDirectoryBusy:
            time.sleep(0.2)
    return False


def folder_is_held(folder: Path) -> bool:
    """Whether another open file holds an exclusive flock on `folder` itself (`gan.core.files.folder_held`)."""
    import fcntl
    import os

    probe = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(probe)  # (closing releases a flock it took)


def poison_dcgan_step_once(monkeypatch, at_step: int, poison) -> list[int]:
    """DCGAN's step, with `poison(recipe, metrics)` applied after step `at_step` the first time it runs
    (a rollback trains it again, unpoisoned); returns the list that records the step poisoned."""
    from gan.recipes.dcgan import DCGANRecipe

    original, poisoned_once = DCGANRecipe.step, []

    def poisoned(self, batch, step):
        metrics = original(self, batch, step)
        if step == at_step and not poisoned_once:
            poisoned_once.append(step)
            poison(self, metrics)
        return metrics

    monkeypatch.setattr(DCGANRecipe, "step", poisoned)
    return poisoned_once


def as_another_users(monkeypatch, *paths: Path) -> None:
    """Play `paths` (there now) as files of another user's, made under umask 022 (mode 644), in a folder
    this one may write: this process may not open them to write, set their times, nor (a sticky folder) remove them.
    (Root, whom the tests may run as, passes permission bits, so the refusals are played here.)"""
    import errno

    others = {Path(path) for path in paths}
    real_open, real_unlink, real_utime, owner = os.open, Path.unlink, os.utime, os.stat(paths[0]).st_uid

    def refused_to_write(path, flags, *args, **kwargs):
        if Path(path) in others and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    def refused_to_remove(path, missing_ok=False):
        if path in others and os.path.lexists(path):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(path))
        return real_unlink(path, missing_ok=missing_ok)

    def refused_to_touch(path, *args, **kwargs):  # (a time set to now needs write permission, any other ownership)
        if Path(path) in others:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_utime(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused_to_write)
    monkeypatch.setattr(os, "utime", refused_to_touch)
    monkeypatch.setattr(Path, "unlink", refused_to_remove)
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # (this process: not their owner)
