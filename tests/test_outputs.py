"""Outputs never clobber what a command reads or what a run wrote (issue 27).

`gan translate`, `gan sample` and `gan export` refuse an output that is one of their inputs,
a checkpoint's name or an existing file of a run directory (even with --overwrite), and any
other existing file without --overwrite; all before writing anything. Also: translate counts
what it really wrote, export's format follows its extension, sample's --seed and --n are
bounded with one-line errors.
"""

import os
import re
import shutil
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, TINY_PIX2PIX, only_run, random_rgb
from PIL import Image

from gan.commands.main import main


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def contents(folder) -> dict:
    """{relative path: bytes} of every file under `folder`, to show that nothing changed."""
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def assert_clean_error(result, *phrases):
    """Exit 2 through `fail` or click, with every phrase in the output and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    for phrase in phrases:
        assert phrase in result.output, (phrase, result.output)


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory):
    """A tiny pix2pix run: an image-to-image checkpoint for `gan translate`."""
    root = tmp_path_factory.mktemp("paired")
    for split in ("train", "val"):
        (root / split).mkdir()
        for index in range(2):
            a = np.asarray(random_rgb((40, 40), index))
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / split / f"{index}.png")
    out = tmp_path_factory.mktemp("runs")
    sets = [arg for item in [*TINY_PIX2PIX, f"data.root={root}"] for arg in ("--set", item)]
    result = invoke("train", REPO / "experiments" / "pix2pix_facades.toml", *sets, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    return only_run(out)


@pytest.fixture
def demo_run(tiny_demo_run, tmp_path):
    """A copy of the tiny DCGAN run that a test may try (and must fail) to damage."""
    return shutil.copytree(tiny_demo_run, tmp_path / "run")


@pytest.fixture
def inputs(tmp_path):
    """in/a.png and in/in/a.png: a folder of inputs with a nested folder of the same name."""
    folder = tmp_path / "in"
    (folder / "in").mkdir(parents=True)
    random_rgb((36, 28), 1).save(folder / "a.png")
    random_rgb((20, 24), 2).save(folder / "in" / "a.png")
    return folder


# ----------------------------------------------------------------------------- translate: inputs are never outputs


@pytest.mark.parametrize("source,output", [
    ("in/a.png", "in/a.png"),                # the input file itself
    ("in/a.png", "./in/in/../a.png"),        # the same file through another spelling
    ("in/a.png", "link/a.png"),              # through a symlinked folder
    ("in", "in"),                            # the folder of inputs
    ("in", "./in/../in"),
    ("in", "link"),
    ("in", "in/in"),                         # in/in/a.png is both an input and in/a.png's output
])
@pytest.mark.parametrize("flags", [[], ["--side-by-side"], ["--overwrite"]])
def test_translate_never_writes_over_an_input(pix2pix_run, inputs, tmp_path, monkeypatch, source, output, flags):
    monkeypatch.chdir(tmp_path)
    os.symlink(inputs, tmp_path / "link")
    before = contents(inputs)
    result = invoke("translate", pix2pix_run, source, output, "--device", "cpu", *flags)
    assert_clean_error(result, "would overwrite the input" if source != "in" else "give an OUTPUT folder outside INPUT")
    assert contents(inputs) == before


def test_translate_refuses_existing_outputs_without_overwrite_before_writing_any(pix2pix_run, inputs, tmp_path):
    out = tmp_path / "out"
    (out / "in").mkdir(parents=True)
    (out / "in" / "a.png").write_bytes(b"an earlier result")
    result = invoke("translate", pix2pix_run, inputs, out, "--device", "cpu")
    assert_clean_error(result, "1 of 2 output file(s) already exist", f"'{out / 'in' / 'a.png'}'", "--overwrite")
    assert contents(out) == {(out / "in" / "a.png").relative_to(out): b"an earlier result"}  # a.png not written
    result = invoke("translate", pix2pix_run, inputs, out, "--device", "cpu", "--overwrite")
    assert result.exit_code == 0, result.output
    assert Image.open(out / "in" / "a.png").size == (20, 24) and Image.open(out / "a.png").size == (36, 28)


def test_translate_into_a_file_where_a_folder_is_needed_is_a_clear_error(pix2pix_run, inputs, tmp_path):
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"a file")
    assert_clean_error(invoke("translate", pix2pix_run, inputs, taken, "--device", "cpu"), f"'{taken}' is a file")


def test_translate_says_which_output_an_input_needs(pix2pix_run, inputs, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    one = invoke("translate", pix2pix_run, inputs / "a.png", folder, "--device", "cpu")
    assert_clean_error(one, f"OUTPUT '{folder}' is a folder", f"such as '{folder / 'a.png'}'")
    many = invoke("translate", pix2pix_run, inputs, tmp_path / "single.png", "--device", "cpu")
    assert_clean_error(many, "is named as an image file", "give a folder name")
    assert list(folder.iterdir()) == [] and not (tmp_path / "single.png").exists()
    # into the image's own folder: the name it offered was the input's, which is refused
    own = invoke("translate", pix2pix_run, inputs / "a.png", inputs, "--device", "cpu")
    assert_clean_error(own, f"such as '{inputs / 'a-translated.png'}'")


def test_translate_into_a_folder_inside_its_input_is_refused_before_anything_is_written(pix2pix_run, inputs, tmp_path):
    # A first run into a new subfolder was accepted; the next, into another, translated the first's
    # outputs again (an x16 image among x4 ones) without a word
    before = contents(inputs)
    elsewhere = tmp_path / "elsewhere"  # (a linked subfolder of INPUT, whose images are read with it)
    elsewhere.mkdir()
    os.symlink(elsewhere, inputs / "linked")
    for out in (inputs / "out", inputs / "out" / "deeper", inputs, inputs / "linked" / "out"):
        refused = invoke("translate", pix2pix_run, inputs, out, "--device", "cpu", "--overwrite")
        assert_clean_error(refused, f"OUTPUT '{out}' is inside INPUT '{inputs}'", "give an OUTPUT folder outside INPUT")
    assert contents(inputs) == before and not (inputs / "out").exists() and not list(elsewhere.iterdir())
    # INPUT holding a link to the OUTPUT folder (or above it): its images are read too
    refused = invoke("translate", pix2pix_run, inputs, elsewhere / "out", "--device", "cpu")
    assert_clean_error(refused, f"OUTPUT '{elsewhere / 'out'}' is inside INPUT", "give an OUTPUT folder outside INPUT")
    beside = invoke("translate", pix2pix_run, inputs, tmp_path / "out", "--device", "cpu")
    assert beside.exit_code == 0, beside.output


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_translate_never_writes_over_a_file_of_a_run(pix2pix_run, demo_run, inputs, flags):
    before = contents(demo_run)
    grid = demo_run / "samples" / "00000004-generator_ema.png"
    result = invoke("translate", pix2pix_run, inputs / "a.png", grid, "--device", "cpu", *flags)
    assert_clean_error(result, f"run directory '{demo_run}'")
    assert contents(demo_run) == before


# ----------------------------------------------------------------------------- translate: what it really wrote


def test_translate_reports_what_it_wrote_and_skipped(pix2pix_run, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    random_rgb((24, 24), 3).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"not a png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = invoke("translate", pix2pix_run, folder, tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "wrote 1 image(s)" in result.output and "skipped 1 unreadable" in result.output
    assert sorted(path.name for path in (tmp_path / "out").glob("[!.]*")) == ["good.png"]


def test_translate_that_writes_nothing_fails(pix2pix_run, tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("broken.png", "other.png"):
        (tmp_path / "in" / name).write_bytes(b"not a png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = invoke("translate", pix2pix_run, tmp_path / "in", tmp_path / "out", "--device", "cpu")
    assert_clean_error(result, "wrote nothing", "2 input image(s)", "broken.png")
    assert "wrote 1 image(s)" not in result.output and not (tmp_path / "out").exists()
    # one image alone: its error, once (it was a warning, then an error saying the same)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke("translate", pix2pix_run, tmp_path / "in" / "broken.png", tmp_path / "out.png")
    assert_clean_error(result, "broken.png")
    assert not [warning for warning in caught if "broken.png" in str(warning.message)]
    assert not (tmp_path / "out.png").exists()


def test_translate_names_its_inputs_of_odd_bytes_on_one_line(pix2pix_run, tmp_path):
    # an input named `bad_\xff\nname\x1b[31m.png` split the error line in two (a real line break) and sent
    # a raw escape to the terminal
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / os.fsdecode(b"bad_\xff\nname\x1b[31m.png")).write_bytes(b"not a png")
    (tmp_path / "in" / "other.png").write_bytes(b"not a png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = invoke("translate", pix2pix_run, tmp_path / "in", tmp_path / "out", "--device", "cpu")
    assert_clean_error(result, "(the first: '", "/bad_\\xff\\nname\\x1b[31m.png', unreadable)")
    assert "\x1b" not in result.output, result.output


# ----------------------------------------------------------------------------- export


@pytest.mark.parametrize("name", ["checkpoint-00000004.pt", "checkpoint-00000099.pt", "best.pt",
                                  "../run/checkpoint-00000002.pt"])
@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_export_never_writes_a_checkpoint(demo_run, name, flags):
    before = contents(demo_run)
    result = invoke("export", demo_run, "--out", demo_run / name, *flags)
    assert_clean_error(result, "checkpoint-*.pt, best.pt or best.json")
    assert contents(demo_run) == before


def test_export_takes_no_checkpoint_name_outside_a_run_either(tiny_demo_run, tmp_path):
    result = invoke("export", tiny_demo_run, "--out", tmp_path / "checkpoint-00000001.pt")
    assert_clean_error(result, "checkpoint-*.pt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_export_never_writes_over_its_source(demo_run, tmp_path, flags):
    source = shutil.copy(demo_run / "checkpoint-00000004.pt", tmp_path / "mine.pt")
    before = source.read_bytes()
    assert_clean_error(invoke("export", source, "--out", source, *flags), "would overwrite the input")
    assert source.read_bytes() == before


def test_export_replaces_an_existing_file_or_its_json_only_with_overwrite(tiny_demo_run, tmp_path):
    out, sidecar = tmp_path / "g.safetensors", tmp_path / "g.safetensors.json"
    assert invoke("export", tiny_demo_run, "--out", out).exit_code == 0
    before = out.read_bytes()
    assert_clean_error(invoke("export", tiny_demo_run, "--out", out), "2 of 2 output file(s) already exist",
                       "--overwrite")
    out.unlink()
    assert_clean_error(invoke("export", tiny_demo_run, "--out", out), f"'{sidecar}'")
    assert not out.exists()
    result = invoke("export", tiny_demo_run, "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == before


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_a_file_written_into_a_run_directory_is_then_the_runs(demo_run, flags):
    out = demo_run / "g.safetensors"
    assert invoke("export", demo_run, "--out", out).exit_code == 0  # a new file beside the run's own
    before = contents(demo_run)
    assert_clean_error(invoke("export", demo_run, "--out", out, *flags), f"run directory '{demo_run}'")
    assert contents(demo_run) == before


def test_export_format_follows_the_extension(tiny_demo_run, tmp_path):
    result = invoke("export", tiny_demo_run, "--out", tmp_path / "g.pt")
    assert result.exit_code == 0, result.output
    assert torch.load(tmp_path / "g.pt", weights_only=True)["format"] == "gan.export/1"


@pytest.mark.parametrize("args,phrases", [
    (["--format", "pt", "--out", "g.safetensors"], ["--format pt", "'.safetensors'"]),
    (["--format", "safetensors", "--out", "g.pt"], ["--format safetensors", "'.pt'"]),
    (["--out", "g.bin"], ["'.bin'", ".safetensors", ".pt"]),
    (["--format", "pt", "--out", "g.onnx"], ["(an ONNX file): name it .pt or .pth"]),  # was "(a onnx file)"
    (["--out", ".safetensors"], ["from its name, which has no extension", "'.safetensors' alone is a hidden file's "
                                                                         "name"]),  # was "extension ''"
])
def test_export_refuses_an_extension_its_format_contradicts(tiny_demo_run, tmp_path, monkeypatch, args, phrases):
    monkeypatch.chdir(tmp_path)
    assert_clean_error(invoke("export", tiny_demo_run, *args), *phrases)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- sample


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_sample_never_writes_over_a_file_of_a_run(demo_run, flags):
    before = contents(demo_run)
    grid = demo_run / "samples" / "00000004-generator_ema.png"
    result = invoke("sample", demo_run, "--n", "4", "--out", grid, *flags)
    assert_clean_error(result, f"run directory '{demo_run}'")
    assert contents(demo_run) == before


def test_sample_refuses_existing_files_without_overwrite(tiny_demo_run, tmp_path):
    separate = tmp_path / "each"
    separate.mkdir()
    (separate / "00003.png").write_bytes(b"kept")
    result = invoke("sample", tiny_demo_run, "--n", "6", "--out", tmp_path / "grid.png", "--separate", separate)
    assert_clean_error(result, "1 of 7 output file(s) already exist", "00003.png", "--overwrite")
    assert list(separate.iterdir()) == [separate / "00003.png"] and not (tmp_path / "grid.png").exists()
    result = invoke("sample", tiny_demo_run, "--n", "6", "--separate", separate, "--overwrite")
    assert result.exit_code == 0, result.output
    assert len(list(separate.iterdir())) == 6


def test_sample_refuses_a_grid_that_one_of_its_own_pngs_would_replace(tiny_demo_run, tmp_path):
    result = invoke("sample", tiny_demo_run, "--n", "4", "--out", tmp_path / "each" / "00001.png",
                    "--separate", tmp_path / "each")
    assert_clean_error(result, "twice")
    assert not (tmp_path / "each").exists()


@pytest.mark.parametrize("seed", ["99999999999999999999", "-1", str(2**32)])
def test_sample_seed_out_of_range_is_one_line(tiny_demo_run, tmp_path, seed):
    result = invoke("sample", tiny_demo_run, "--seed", seed, "--out", tmp_path / "s.png")
    assert_clean_error(result, seed, "0 .. 4294967295")
    assert ("low 32 bits" in result.output) == (int(seed) > 0), result.output  # (no reason about large seeds for -1)
    assert not (tmp_path / "s.png").exists()


def test_the_largest_seed_samples(tiny_demo_run, tmp_path):
    result = invoke("sample", tiny_demo_run, "--n", "2", "--seed", str(2**32 - 1), "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args,phrases", [
    (["--n", "1000000000"], ["1,000,000,000 images", "more than the 100,000"]),
    (["--n", "1000", "--interpolate", "1000"], ["1,000,000 images", "more than the 100,000"]),
])
def test_sample_count_beyond_one_command_is_one_line(tiny_demo_run, tmp_path, args, phrases):
    result = invoke("sample", tiny_demo_run, *args, "--separate", tmp_path / "each")
    assert_clean_error(result, *phrases)
    assert not (tmp_path / "each").exists()


@pytest.mark.parametrize("steps", ["0", "1", "-2"])
def test_an_interpolation_of_fewer_than_two_steps_is_refused(tiny_demo_run, tmp_path, steps):
    result = invoke("sample", tiny_demo_run, "--n", "2", "--interpolate", steps, "--out", tmp_path / "i.png")
    assert result.exit_code == 2 and "--interpolate must be at least 2 (the two ends)" in result.output, result.output
    assert not (tmp_path / "i.png").exists()


def test_sample_grid_too_large_to_open_is_refused_with_its_size(tiny_demo_run, tmp_path):
    result = invoke("sample", tiny_demo_run, "--n", "80000", "--out", tmp_path / "huge.png",
                    "--separate", tmp_path / "each")
    assert_clean_error(result, "80,000 images of 32×32", "9,624×9,624", "--separate")
    assert list(tmp_path.iterdir()) == []


def test_a_sample_grid_the_memory_cannot_hold_is_refused_before_it_is_drawn(tiny_demo_run, tmp_path, monkeypatch):
    # 20,000 faces at 64 px under a 1 GB limit: every image generated, then the kernel killed it unsaid
    from gan.core import memory
    from gan.core.images import grid_size

    width, height = grid_size(4, 32, 32, None)
    canvas = width * height * 3
    monkeypatch.setattr(memory, "available_memory", lambda device: 2 * canvas - 1)
    result = invoke("sample", tiny_demo_run, "--n", "4", "--out", tmp_path / "grid.png")
    assert_clean_error(result, "--out: a grid of 4 images of 32×32", "needs at least", "--separate alone")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(memory, "available_memory", lambda device: 2 * canvas)
    assert invoke("sample", tiny_demo_run, "--n", "4", "--out", tmp_path / "grid.png").exit_code == 0


def test_a_stopped_sample_removes_the_part_of_the_set_it_wrote_and_counts_with_a_progress_line(tiny_demo_run,
                                                                                                 tmp_path, monkeypatch):
    # Ctrl-C left hundreds of a --separate set's PNGs, which FID would later score as a whole set.
    from gan.core import images

    save_image, calls = images.save_image, {"n": 0}

    def stopped_at_the_100th(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 100:
            raise KeyboardInterrupt
        return save_image(*args, **kwargs)

    monkeypatch.setattr(images, "save_image", stopped_at_the_100th)
    result = invoke("sample", tiny_demo_run, "--n", "130", "--separate", tmp_path / "new" / "each")
    assert result.exit_code == 130 and "removed the 99 file(s) it had written" in result.output, result.output
    assert "image 64/130 (49%)" in result.output and not (tmp_path / "new").exists()


@pytest.mark.slow
def test_a_sample_stopped_by_sigterm_removes_its_part_of_the_set_too(tiny_demo_run, tmp_path):
    # Python's default SIGTERM ends the process at once, leaving hundreds of a set's PNGs.
    import signal
    import subprocess
    import sys
    import time

    from gan.commands.sample import STAGING_PREFIX

    folder = tmp_path / "new" / "each"
    process = subprocess.Popen([sys.executable, "-m", "gan", "sample", str(tiny_demo_run), "--n", "20000",
                                "--separate", str(folder)], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})

    def writing() -> bool:  # (its images go to a staging folder beside the set's, renamed at the end)
        return any(any(staging.iterdir()) for staging in folder.parent.glob(f"{STAGING_PREFIX}*"))

    deadline = time.monotonic() + 60  # (waiting on the set's own folder, which appears only at the end, took it all)
    while not (folder.parent.is_dir() and writing()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert time.monotonic() < deadline, "the sample wrote nothing within 60 s"
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM and "error: stopped by SIGTERM" in errors, errors
    assert "file(s) it had written" in errors and not (tmp_path / "new").exists()


def test_sample_in_chunks_gives_the_images_of_one_batch(tiny_demo_run, tmp_path):
    from gan.core.images import signed_to_pil
    from gan.inference.generators import load_generator
    from gan.nets.running import generate, random_latents

    result = invoke("sample", tiny_demo_run, "--n", "130", "--seed", "5", "--separate", tmp_path / "each")
    assert result.exit_code == 0, result.output
    generator = load_generator(tiny_demo_run, torch.device("cpu")).generator
    expected = generate(generator, random_latents(130, generator.latent_dim, 5))
    for index in (0, 64, 129):
        written = np.asarray(Image.open(tmp_path / "each" / f"{index:05d}.png"))
        assert np.array_equal(written, np.asarray(signed_to_pil(expected[index]))), index


# ----------------------------------------------------------------------------- the rules themselves


def test_the_names_training_writes_are_protected_everywhere(tmp_path):
    from gan.core.checkpoint import BEST_NAME, BEST_RECORD, checkpoint_path
    from gan.inference.outputs import OutputRefused, check_outputs

    for path in (checkpoint_path(tmp_path, 8), tmp_path / BEST_NAME, tmp_path / BEST_RECORD):
        with pytest.raises(OutputRefused, match="checkpoint-\\*.pt, best.pt or best.json"):
            check_outputs([path], overwrite=True)



def test_an_output_into_another_users_folder_names_its_owner_not_a_read_only_disk(tmp_path, monkeypatch):
    """`gan eval` of a colleague's run (its folder 755, theirs) said the run directory "is read-only (a read-only disk
    or folder)"."""
    import pwd

    from gan.inference.outputs import OutputRefused, check_outputs

    owner = pwd.getpwuid(os.stat(tmp_path).st_uid).pw_name
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: Path(path) != tmp_path and real_access(path, mode))
    with pytest.raises(OutputRefused, match=re.escape(f"'{tmp_path}' is read-only (a read-only disk or folder)")):
        check_outputs([tmp_path / "metrics-00000004.json"])
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(tmp_path).st_uid + 1)
    with pytest.raises(OutputRefused, match=re.escape(f"'{tmp_path}' belongs to another user ('{owner}'); write the "
                                                      "outputs elsewhere")):
        check_outputs([tmp_path / "metrics-00000004.json"])

def test_an_output_name_longer_than_a_file_name_holds_is_refused_before_any_is_written(tmp_path):
    # (a strip name gan eval made of an image's was refused by the disk only when its turn came, the
    # strips before it written and the scores never)
    from gan.inference.outputs import OutputRefused, check_outputs

    name = "x" * 252 + ".png"
    with pytest.raises(OutputRefused, match=rf"'.*{name}': its name is 256 bytes, more than a file name holds \(at most "
                                            r"255 on most file systems\); give a shorter one"):
        check_outputs([tmp_path / "a.png", tmp_path / name])
    with pytest.raises(OutputRefused, match=r"the name of its folder 'd{256}' is 256 bytes"):
        check_outputs([tmp_path / ("d" * 256) / "a.png"])
    check_outputs([tmp_path / ("é" * 125 + ".png")])  # (254 bytes: fine)


def test_a_hard_link_to_an_input_is_the_input(tmp_path):
    from gan.inference.outputs import OutputRefused, check_outputs

    source = tmp_path / "a.png"
    source.write_bytes(b"input")
    os.link(source, tmp_path / "b.png")
    with pytest.raises(OutputRefused, match="would overwrite the input"):
        check_outputs([tmp_path / "b.png"], inputs=[source], overwrite=True)
    check_outputs([tmp_path / "c.png"], inputs=[source])  # a new file is fine


@pytest.mark.parametrize("count,columns", [(1, None), (6, None), (80, None), (10, 5), (3, 5)])
def test_grid_size_is_the_size_image_grid_writes(count, columns):
    from gan.core.images import grid_size, image_grid

    grid = image_grid(torch.zeros(count, 3, 7, 5), num_columns=columns)
    assert grid_size(count, 7, 5, columns) == (grid.shape[2], grid.shape[1])


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("count,columns", [(1, None), (2, None), (7, 3), (16, None), (3, 8)])
def test_image_grid_lays_out_the_pixels_as_torchvisions_make_grid(count, columns, channels):
    # (gan draws its grids itself since torchvision's import, for make_grid alone, held up every command;
    # a grey batch, which make_grid drew in 3 equal channels, was then refused as "not (H, W, 3)")
    from torchvision.utils import make_grid

    from gan.core.images import GRID_PADDING, grid_columns, image_grid

    images = torch.rand(count, channels, 6, 9, generator=torch.Generator().manual_seed(count)) * 2 - 1
    expected = make_grid(images, nrow=grid_columns(count, columns), padding=GRID_PADDING, pad_value=-1.0)
    assert torch.equal(image_grid(images, num_columns=columns), expected)


def test_signed_to_pil_refuses_uint8_pixels_and_batches_saying_what_to_do_instead():
    """uint8 pixels (what generated_images gives) were read as [-1, 1] values: an all-white image
    without a word; a batch failed in torch's words ("permute(sparse_coo): number of dimensions ...")."""
    from gan.core.images import signed_to_pil

    pixels = torch.full((3, 8, 8), 100, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"got a torch.uint8 tensor of shape \(3, 8, 8\): uint8 pixels \(what "
                                         r"generated_images gives\) are an image as they are: Image.fromarray"):
        signed_to_pil(pixels)
    with pytest.raises(ValueError, match=r"^signed_to_pil takes one floating \(3, H, W\) image in \[-1, 1\]; got a "
                                         r"torch.float32 tensor of shape \(2, 3, 8, 8\): of a batch take one image "
                                         r"\(images\[0\]\) or draw them all with image_grid\(images\)$"):
        signed_to_pil(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(8, 8, 3\): give it its 3 channels first"):
        signed_to_pil(torch.zeros(8, 8, 3))
    # (a grey image was told "not (H, W, 3)", which it never was)
    with pytest.raises(ValueError, match=r"\(1, 8, 8\): it has one channel \(grey\): repeat it to 3 first, "
                                         r"image.expand\(3, -1, -1\)$"):
        signed_to_pil(torch.zeros(1, 8, 8))
    assert signed_to_pil(torch.zeros(3, 8, 8)).getpixel((0, 0)) == (128, 128, 128)


def test_sample_names_the_option_that_is_out_of_range(tiny_demo_run, tmp_path):
    from click.testing import CliRunner

    from gan.commands.main import main

    result = CliRunner().invoke(main, ["sample", str(tiny_demo_run), "--n", "0", "--out", str(tmp_path / "a.png")])
    assert result.exit_code == 2 and "--n must be at least 1, got 0" in result.output
    assert "interpolate" not in result.output


def test_a_checkpoint_pruned_between_its_choice_and_its_read_is_passed_for_the_next_newest(tiny_demo_run,
                                                                                          monkeypatch):
    """A run training on with keep_checkpoints=1 prunes its checkpoints as `gan sample RUN` reads them:
    about 1 call in 60 failed with "does not exist" for the one it had just chosen."""
    import gan.inference.exported as exported

    chosen = []
    resolve = exported.resolve_checkpoint

    def pruned_once(source, *options):
        path = resolve(source, *options)
        if not chosen:  # the first choice: a checkpoint the run has just pruned
            chosen.append(path)
            return path.with_name("checkpoint-99999999.pt")
        return path

    monkeypatch.setattr(exported, "resolve_checkpoint", pruned_once)
    path, state = exported.load_source(tiny_demo_run)
    assert path == chosen[0] and "networks" in state


def test_tensorboards_sample_grid_is_the_png_grid_pixel_for_pixel(tmp_path):
    """TensorBoard's grid was the float grid truncated to 8 bits, the PNG's rounded: a grey level apart."""
    import io

    from conftest import tiny_config
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gan.training.loop import train

    run = train(tiny_config("train.steps=2"), tmp_path / "run", torch.device("cpu")).run_dir
    events = EventAccumulator(str(run), size_guidance={"images": 0}).Reload()
    for name in ("generator", "generator_ema"):
        (logged,) = [image for image in events.Images(f"samples/{name}") if image.step == 2]
        with Image.open(io.BytesIO(logged.encoded_image_string)) as shown, \
                Image.open(run / "samples" / f"00000002-{name}.png") as written:
            assert np.array_equal(np.asarray(shown.convert("RGB")), np.asarray(written.convert("RGB"))), name


def test_each_preview_grid_is_encoded_once_for_its_png_and_tensorboard(tmp_path, monkeypatch):
    """Each grid was encoded to PNG twice, for samples/ and again by TensorBoard's add_image (0.6 to
    0.7 s for a 128 px 8x8 grid): the event file now holds the samples/ PNG's own bytes."""
    from conftest import tiny_config
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gan.training.loop import train

    encoded, save = [], Image.Image.save

    def counted(image, fp, format=None, **params):
        encoded.append(str(format).upper())
        return save(image, fp, format, **params)

    monkeypatch.setattr(Image.Image, "save", counted)
    run = train(tiny_config("train.steps=2"), tmp_path / "run", torch.device("cpu")).run_dir
    monkeypatch.undo()
    written = sorted((run / "samples").iterdir())
    assert [path.name for path in written] == ["00000002-generator.png", "00000002-generator_ema.png"]
    assert encoded.count("PNG") == len(written)
    events = EventAccumulator(str(run), size_guidance={"images": 0}).Reload()
    for path in written:
        (logged,) = events.Images(f"samples/{path.stem.split('-', 1)[1]}")
        with Image.open(path) as image:
            assert (logged.step, logged.width, logged.height) == (2, *image.size)
        assert logged.encoded_image_string == path.read_bytes()


def test_an_output_larger_than_its_format_holds_is_named_with_the_limit(demo_run, pix2pix_run, tmp_path,
                                                                         monkeypatch):
    # WebP ended in a traceback past 16,383 px a side; JPEG's failure past 65,500 read as a disk fault.
    # An output's size follows from its input's: refused before the translation (minutes of tiles were thrown away)
    from gan.inference.tiling import Translator

    translated, translate = [], Translator.__call__
    monkeypatch.setattr(Translator, "__call__", lambda self, image: translated.append(image.size) or translate(self, image))
    walk = invoke("sample", demo_run, "--n", "1", "--interpolate", "600", "--out", tmp_path / "walk.webp")
    assert_clean_error(walk, "WEBP images are at most 16,383 px a side", "write it as .png or .tif")
    assert not (tmp_path / "walk.webp").exists()
    wide = tmp_path / "wide.png"
    Image.fromarray(np.zeros((32, 16416, 3), np.uint8)).save(wide)
    result = invoke("translate", pix2pix_run, wide, tmp_path / "wide.webp")
    assert_clean_error(result, f"'{tmp_path / 'wide.webp'}': WEBP images are at most 16,383 px a side, and this one "
                               "is 16,416x32: write it as .png or .tif; 0 of 1 image(s) were written before it")
    assert not (tmp_path / "wide.webp").exists()
    assert translated == []
    # in a folder the output keeps the input's name and format, which no option changes: convert the input
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((32, 8208, 3), np.uint8)).save(tmp_path / "in" / "wide.webp", lossless=True)
    folder = invoke("translate", pix2pix_run, tmp_path / "in", tmp_path / "out", "--side-by-side")  # 16,416 px
    assert_clean_error(folder, f"(outputs keep their inputs' formats: convert '{tmp_path / 'in' / 'wide.webp'}' to "
                               ".png or .tif first); 0 of 1 image(s) were written before it")
    # among others it is skipped, named: the images after it were left untranslated
    random_rgb((32, 32), 0).save(tmp_path / "in" / "z_after.png")
    with pytest.warns(UserWarning, match=r"skipping: .*wide.webp': WEBP images are at most 16,383 px a side.*convert"):
        folder = invoke("translate", pix2pix_run, tmp_path / "in", tmp_path / "out", "--side-by-side")
    assert folder.exit_code == 0, folder.output
    assert "wrote 1 image(s)" in folder.output and "skipped 1 too large for its format" in folder.output
    assert sorted(path.name for path in (tmp_path / "out").glob("[!.]*")) == ["z_after.png"]
    assert translated == [(32, 32)]  # (the strip too wide for WebP refused before its translation, twice)


def test_a_grid_named_like_a_sample_in_the_separate_folder_is_refused(demo_run, tmp_path):
    """FID scores the --separate folder: a grid saved there as 00005.png was one more "sample"."""
    folder = tmp_path / "sep"
    result = invoke("sample", demo_run, "--n", "4", "--separate", folder, "--out", folder / "00005.png")
    assert_clean_error(result, f"--out '{folder / '00005.png'}' is in the --separate folder")
    # (in a folder inside it too: FID reads the folder with its subfolders)
    for name in ("grid.png", "00004.PNG", "00004.jpg", "grid/all.png"):
        result = invoke("sample", demo_run, "--n", "4", "--separate", folder, "--out", folder / name)
        assert_clean_error(result, f"--out '{folder / name}' is in the --separate folder")
    assert not folder.exists()
    result = invoke("sample", demo_run, "--n", "1", "--separate", folder, "--out", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output
    assert "wrote 1 PNG to" in result.output and "(1 image)" in result.output


def test_a_walk_too_wide_for_its_format_is_told_to_be_shorter(demo_run, tmp_path):
    walk = invoke("sample", demo_run, "--n", "1", "--interpolate", "600", "--out", tmp_path / "walk.webp")
    assert_clean_error(walk, "WEBP images are at most 16,383 px a side", "or shorter walks with --interpolate")


def test_separate_over_a_larger_earlier_set_is_refused_not_mixed(demo_run, tmp_path):
    # --overwrite replaced 00000-00002 and left 00003-00004 of another seed among them
    folder = tmp_path / "sep"
    assert invoke("sample", demo_run, "--n", "5", "--separate", folder).exit_code == 0
    before = contents(folder)
    result = invoke("sample", demo_run, "--n", "3", "--seed", "7", "--separate", folder, "--overwrite")
    assert_clean_error(result, f"--separate '{folder}' holds 2 sample(s) past the 3 this command writes (the first: "
                               "00003.png): the folder would mix two sets")
    assert contents(folder) == before
    assert invoke("sample", demo_run, "--n", "5", "--seed", "7", "--separate", folder, "--overwrite").exit_code == 0


def test_separate_into_a_folder_holding_other_images_is_refused_not_mixed(demo_run, tmp_path):
    """A grid written there earlier (`--out DIR/grid.png`), photos, or images in a subfolder were left among
    the samples, "wrote 4 PNGs" said nothing, and FID tools then scored the mix."""
    grid_folder, photos = tmp_path / "grid", tmp_path / "photos"
    assert invoke("sample", demo_run, "--n", "4", "--out", grid_folder / "grid.png").exit_code == 0
    (photos / "holiday").mkdir(parents=True)
    for name in ("a.jpg", "b.JPEG"):
        random_rgb((8, 8), 0).save(photos / "holiday" / name)
    for folder, first, count in ((grid_folder, "grid.png", "1 image file"), (photos, "holiday/a.jpg", "2 image files")):
        before = contents(folder)
        result = invoke("sample", demo_run, "--n", "4", "--separate", folder, "--overwrite")
        assert_clean_error(result, f"--separate '{folder}' holds {count} other than its numbered samples (the "
                                   f"first: {first}), which FID tools would score", "give an empty folder, or remove")
        assert contents(folder) == before
    # what scorers pass over (hidden names, files of no image format) stays, and a set goes in again as before
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.txt").write_text("seed 0")
    (notes / ".thumbnail.png").write_bytes(b"")
    for options in ((), ("--overwrite",)):
        result = invoke("sample", demo_run, "--n", "3", "--separate", notes, *options)
        assert result.exit_code == 0, result.output
    assert sorted(path.name for path in notes.iterdir()) == [".thumbnail.png", "00000.png", "00001.png", "00002.png",
                                                             "README.txt"]


def _run_reading_relative_folders(tmp_path: Path, monkeypatch) -> Path:
    """A 2-step run of tmp_path's faces/ (data.root) and held_out/ (metrics.root), given relative to it."""
    from conftest import tiny_config

    from gan.training.loop import train

    for folder, count in (("faces", 8), ("held_out", 4)):
        (tmp_path / folder).mkdir()
        for index in range(count):
            random_rgb((40, 40), index).save(tmp_path / folder / f"{index}.png")
    monkeypatch.chdir(tmp_path)
    config = tiny_config("data.dataset=folder", "data.root=faces", "metrics.root=held_out", "metrics.every=2",
                         "metrics.num_samples=4", 'metrics.names=["swd"]', "train.steps=2")
    return train(config, tmp_path / "run", torch.device("cpu")).run_dir


def test_samples_never_go_among_the_images_their_run_reads(tmp_path, monkeypatch):
    """`--separate faces/fakes` (a new folder inside data.root) was written: a resume trained on the
    samples as real faces, and a metrics.root holding them scored them as real."""
    run = _run_reading_relative_folders(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path / "run")  # (elsewhere: the run's relative folders as its checkpoint recorded them)
    for options in (("--separate", tmp_path / "faces" / "fakes"), ("--out", tmp_path / "held_out" / "grid.png")):
        result = invoke("sample", run, "--n", "2", *options)
        assert_clean_error(result, "which its run reads", "give a folder outside it")
    assert sorted(path.name for path in (tmp_path / "faces").iterdir()) == [f"{index}.png" for index in range(8)]
    assert len(list((tmp_path / "held_out").iterdir())) == 4
    assert invoke("sample", run, "--n", "2", "--separate", tmp_path / "fakes").exit_code == 0
    # a folder of the same name elsewhere is not the run's (its config's "faces" was read from where it trained)
    (tmp_path / "elsewhere" / "faces").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert invoke("sample", run, "--n", "2", "--separate", "faces/mine").exit_code == 0


def test_samples_from_an_export_never_go_among_the_images_its_run_reads(tmp_path, monkeypatch):
    """An export left out the checkpoint's record of the folders its run read, and its config's were
    relative: `gan sample faces.safetensors --out faces/grid.png`, refused from the run, wrote the grid
    among the training images, and a resume trained on it as a real face."""
    import json

    run = _run_reading_relative_folders(tmp_path, monkeypatch)
    exports = [tmp_path / "g.safetensors", tmp_path / "g.pt"]
    for export in exports:
        assert invoke("export", run, "--out", export).exit_code == 0
    for options in (("--separate", Path("faces") / "fakes"), ("--out", Path("held_out") / "grid.png")):
        for export in exports:
            assert_clean_error(invoke("sample", export, "--n", "2", *options), "which its run reads",
                               "give a folder outside it")
    recorded = json.loads(Path(f"{exports[0]}.json").read_text())["data"]
    assert recorded["folders"]["data.root"] == str(tmp_path / "faces")  # (absolute, wherever it is read)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # (moved away: its folders as recorded, not as typed)
    result = invoke("sample", exports[0], "--n", "2", "--out", tmp_path / "faces" / "grid.png")
    assert_clean_error(result, "which its run reads")
    assert sorted(path.name for path in (tmp_path / "faces").iterdir()) == [f"{index}.png" for index in range(8)]
    assert len(list((tmp_path / "held_out").iterdir())) == 4
    # an export written before it carried the record loads and samples as before
    older = {key: value for key, value in torch.load(exports[1], weights_only=True).items() if key != "data"}
    torch.save(older, tmp_path / "older.pt")
    assert invoke("sample", tmp_path / "older.pt", "--n", "2", "--out", "grid.png").exit_code == 0


def test_translations_from_an_export_never_go_among_the_images_its_run_reads(tmp_path, monkeypatch):
    """An export of a pix2pix run (data.root relative) had no record of its folders: `gan translate` from
    it wrote into the run's train/ and val/ splits, which the run refused from its checkpoint."""
    from conftest import tiny_recipe_config, write_recipe_data

    from gan.training.loop import train

    data = write_recipe_data(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    config = tiny_recipe_config("pix2pix", data, "data.root=data/paired", "log.eval_every=0", 'train.keep_best=""')
    run = train(config, tmp_path / "run", torch.device("cpu")).run_dir
    assert invoke("export", run, "--out", tmp_path / "g.safetensors").exit_code == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    before = contents(data["paired"])
    for split in ("train", "val"):
        result = invoke("translate", tmp_path / "g.safetensors", data["paired"] / "val" / "0.png",
                        data["paired"] / split / "out.png", "--paired-input")
        assert_clean_error(result, f"which its run reads (data.split = '{split}')")
    assert contents(data["paired"]) == before


def test_an_unpaired_runs_held_out_folders_are_its_data_even_where_its_domains_are_given(tmp_path):
    """With data.a_root and b_root, the run still validates from data.root's testA/ and testB/, but those
    were taken for replaced too: `gan translate RUN x.png horse2zebra/testA/x.png` joined its validation."""
    from gan.inference.outputs import OutputRefused, refuse_joining_run_data, run_data_folders

    root = tmp_path / "horse2zebra"
    config = {"data": {"dataset": "unpaired", "root": str(root), "split": "train", "val_split": "test",
                       "a_root": str(tmp_path / "horses"), "b_root": str(tmp_path / "zebras")}}
    folders = run_data_folders(config)
    for folder in ("testA", "testB"):
        with pytest.raises(OutputRefused, match=re.escape("which its run reads (data.split = 'test')")):
            refuse_joining_run_data([root / folder / "x.png"], folders)
    refuse_joining_run_data([root / "trainA" / "x.png"], folders)  # (not read: data.a_root is trained from)
    with pytest.raises(OutputRefused, match="data.a_root"):
        refuse_joining_run_data([tmp_path / "horses" / "x.png"], folders)


def test_samples_may_go_beside_celeba_images_or_anywhere_from_a_run_of_data_root_dot(tmp_path, monkeypatch):
    """CelebA reads img_align_celeba/'s own files: `--separate celeba/fid_samples` was refused as inside
    data.root; a run of `data.root = "."` refused every output below the folder a command ran in."""
    from conftest import tiny_config

    from gan.training.loop import train

    faces = tmp_path / "celeba" / "img_align_celeba"
    faces.mkdir(parents=True)
    for index in range(8):
        random_rgb((40, 48), index).save(faces / f"{index:06d}.jpg")
    monkeypatch.chdir(tmp_path)
    run = train(tiny_config("data.dataset=celeba", "data.root=celeba", "train.steps=2"), tmp_path / "run", "cpu").run_dir
    assert invoke("sample", run, "--n", "2", "--separate", tmp_path / "celeba" / "fid_samples").exit_code == 0
    # Inside the image folder, though CelebA reads its files alone: a run of data.dataset = "folder" on it
    # (which the shape warning of other faces advises) trained on the samples there as faces
    for inside in (faces / "grid.png", faces / "sub" / "grid.png"):
        assert_clean_error(invoke("sample", run, "--n", "2", "--out", inside), "which its run reads")
    assert_clean_error(invoke("sample", run, "--n", "2", "--separate", faces / "sub"), "which its run reads")
    assert not (faces / "sub").exists()
    monkeypatch.chdir(faces)
    dot = train(tiny_config("data.dataset=folder", "data.root=.", "train.steps=2"), tmp_path / "dot", "cpu").run_dir
    assert invoke("export", dot, "--out", tmp_path / "dot.safetensors").exit_code == 0
    monkeypatch.chdir(tmp_path / "celeba")  # (the run's "." was faces/, recorded absolute: not read from here)
    for source in (dot, tmp_path / "dot.safetensors"):
        assert invoke("sample", source, "--n", "2", "--separate", f"sets/{source.name}").exit_code == 0
    assert_clean_error(invoke("sample", dot, "--n", "2", "--out", faces / "dot.png"), "which its run reads")


def test_a_grid_or_a_set_into_a_folder_holding_a_sample_set_is_refused(demo_run, tmp_path, monkeypatch):
    """`--out DIR/preview.png` into the folder of an earlier --separate set put the grid among the samples."""
    folder = tmp_path / "sep"
    assert invoke("sample", demo_run, "--n", "3", "--separate", folder).exit_code == 0
    before = contents(folder)
    for options in ((), ("--overwrite",)):
        result = invoke("sample", demo_run, "--n", "4", "--out", folder / "preview.png", *options)
        assert_clean_error(result, f"--out '{folder / 'preview.png'}' is in '{folder}', which holds a --separate set "
                                   "of 3 samples (the first: 00000.png): FID would score the grid as one more")
    # nor in a folder below it (FID tools read subfolders too), from the folder the command runs in
    monkeypatch.chdir(tmp_path)
    result = invoke("sample", demo_run, "--n", "4", "--out", Path("sep") / "sub" / "grid.png")
    assert_clean_error(result, f"is in '{folder}', which holds a --separate set")
    assert contents(folder) == before and not (folder / "sub").exists()
    # nor a second set in a folder below it: FID of the folder scored the two sets as one
    result = invoke("sample", demo_run, "--n", "2", "--seed", "3", "--separate", Path("sep") / "inner")
    assert_clean_error(result, "--separate 'sep/inner' is in '" + str(folder.resolve()) + "', which holds a --separate "
                               "set of 3 samples (the first: 00000.png): FID would score the two sets as one")
    assert contents(folder) == before and not (folder / "inner").exists()


def test_a_set_of_samples_moves_in_holding_its_folder(demo_run, tmp_path, monkeypatch):
    """Two `gan sample --separate D --overwrite` at once left 00000-00001 of one seed beside 00002-00007
    of the other, both saying "wrote 8 PNGs": a set moves in holding the folder, so sets take turns."""
    import os
    from pathlib import Path

    from conftest import folder_is_held

    folder, real_replace, held = tmp_path / "sep", os.replace, []

    def replace(source, target):
        if Path(target).parent == folder:
            held.append(folder_is_held(folder))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    folder.mkdir()  # (a new folder comes into place whole, in one rename)
    assert invoke("sample", demo_run, "--n", "3", "--separate", folder, "--overwrite").exit_code == 0
    assert held == [True] * 3



@pytest.mark.parametrize("stop", ["ctrl-c", "full disk"])
def test_an_overwrite_that_stops_half_way_leaves_the_earlier_set_whole(tiny_demo_run, tmp_path, monkeypatch, stop):
    # Stopped after 71 of 3,000, --overwrite removed the 71 it had written, which had replaced the
    # earlier set's 00000-00070: the folder held 2,929 images of the old set, passing for one.
    from gan.core import images
    from gan.core.files import WriteError

    folder, grid = tmp_path / "sep", tmp_path / "g.png"
    assert invoke("sample", tiny_demo_run, "--n", "5", "--separate", folder, "--out", grid).exit_code == 0
    before, grid_before = contents(folder), grid.read_bytes()
    save_image, calls = images.save_image, {"n": 0}

    def stopped_at_the_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt if stop == "ctrl-c" else WriteError("No space left on device")
        return save_image(*args, **kwargs)

    monkeypatch.setattr(images, "save_image", stopped_at_the_third)
    result = invoke("sample", tiny_demo_run, "--n", "5", "--seed", "7", "--separate", folder, "--out", grid,
                    "--overwrite")
    assert result.exit_code in (2, 130) and "removed the 2 file(s) it had written; the files it would have " \
        "replaced are as they were" in " ".join(result.output.split()), result.output
    assert contents(folder) == before and grid.read_bytes() == grid_before
    monkeypatch.undo()
    result = invoke("sample", tiny_demo_run, "--n", "5", "--seed", "7", "--separate", folder, "--out", grid,
                    "--overwrite")
    assert result.exit_code == 0 and sorted(contents(folder)) == sorted(before)
    assert contents(folder) != before and grid.read_bytes() != grid_before


def test_a_file_another_command_wrote_while_sampling_is_not_replaced(tiny_demo_run, tmp_path, monkeypatch):
    """Outputs are checked before sampling, which can take minutes: a second gan sample to the same
    --out finished first, and the first then replaced its grid without --overwrite."""
    from gan.core import images

    grid = tmp_path / "g.png"
    save_image = images.save_image

    def another_command_writes_first(*args, **kwargs):
        if not grid.exists():
            grid.write_bytes(b"another command's grid")
        return save_image(*args, **kwargs)

    monkeypatch.setattr(images, "save_image", another_command_writes_first)
    result = invoke("sample", tiny_demo_run, "--n", "4", "--out", grid)
    assert result.exit_code == 2 and "1 output(s) appeared while sampling" in result.output, result.output
    assert "would have replaced" not in result.output  # (without --overwrite it would have replaced nothing)
    assert grid.read_bytes() == b"another command's grid" and sorted(os.listdir(tmp_path)) == ["g.png"]
    result = invoke("sample", tiny_demo_run, "--n", "4", "--out", grid, "--overwrite")
    assert result.exit_code == 0 and grid.read_bytes() != b"another command's grid"


def test_the_staging_folder_a_killed_sample_left_goes_at_the_next_sample_there(tiny_demo_run, tmp_path):
    import subprocess

    from gan.core.files import host_tag

    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid names no process now, as a killed sample's
    folder = tmp_path / "sep"
    stale, live, elsewhere = (folder / f".gan-sample-staging.{pid}.{host}.tmp"
                              for pid, host in ((finished.pid, host_tag()), (os.getppid(), host_tag()),
                                                (finished.pid, "h0000beef")))
    for staging in (stale, live, elsewhere):
        staging.mkdir(parents=True)
        (staging / "00000.png").write_bytes(b"part of a set")
    assert invoke("sample", tiny_demo_run, "--n", "2", "--separate", folder).exit_code == 0
    assert not stale.exists()
    # a live one is another sample's, under way; so may be one of another machine sharing the folder
    assert (live / "00000.png").is_file() and (elsewhere / "00000.png").is_file()
    assert sorted(path.name for path in folder.iterdir()) == sorted([live.name, elsewhere.name, "00000.png",
                                                                     "00001.png"])


def test_a_stop_that_comes_while_the_set_moves_into_place_leaves_it_whole_and_says_so(tiny_demo_run, tmp_path,
                                                                                    monkeypatch):
    # It is held back until every file is in place; the command then said "stopped by SIGTERM" with exit
    # 143, over a whole set that a retry was refused to replace.
    import signal

    link, calls = os.link, []

    def stopped_midway(source, target):
        if ".gan-sample-staging." in str(source) and ".gan-sample-staging." not in str(target):  # a move into place
            calls.append(target)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
        return link(source, target)

    monkeypatch.setattr(os, "link", stopped_midway)  # (how a file moves in without --overwrite: never over another)
    # Another thread that takes signals (torch's, a writer's): the kernel may hand the signal to it, and
    # Python then raises in the main thread all the same (a mask of the main thread alone did not hold)
    import threading

    done = threading.Event()
    other = threading.Thread(target=done.wait, daemon=True)
    other.start()
    (tmp_path / "sep").mkdir()  # (into a folder that is there, the files move in one by one)
    try:
        result = invoke("sample", tiny_demo_run, "--n", "5", "--separate", tmp_path / "sep")
    finally:
        done.set()
    monkeypatch.undo()
    assert result.exit_code == 0 and "stopped once every file was in place: nothing is missing" in result.output, \
        result.output
    assert sorted(path.name for path in (tmp_path / "sep").iterdir()) == [f"{index:05d}.png" for index in range(5)]


def test_a_ctrl_c_once_the_set_is_in_place_ends_nothing(tiny_demo_run, tmp_path, monkeypatch):
    # A Ctrl-C as the `wrote` line was said (the files all in place) said "stopped by Ctrl-C", exit 130, over a
    # whole set that a retry was refused to replace.
    import signal

    import click

    echo = click.echo

    def stopped_as_it_says_so(message=None, *args, **kwargs):
        echo(message, *args, **kwargs)
        if str(message).startswith("wrote"):
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(click, "echo", stopped_as_it_says_so)
    result = invoke("sample", tiny_demo_run, "--n", "4", "--out", tmp_path / "g.png")
    assert result.exit_code == 0 and "stopped" not in result.output, result.output
    assert (tmp_path / "g.png").is_file()


def test_a_sample_set_is_flushed_to_disk_once_a_file_and_all_before_any_moves_into_place(tiny_demo_run, tmp_path,
                                                                                         monkeypatch):
    # Each staged PNG was flushed as it was written, and its staging folder after it: two flushes a file,
    # a third of the time `gan sample --n 3000 --separate` took. Staged files are flushed together now,
    # once each, and still all of them before the first moves into place.
    fsync, events = os.fsync, []
    rename = os.rename

    def recorded_fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        return fsync(descriptor)

    def recorded_rename(source, target):
        events.append(("move", str(target)))
        return rename(source, target)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to name the files flushed")
    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(os, "rename", recorded_rename)
    folder = tmp_path / "sep"
    result = invoke("sample", tiny_demo_run, "--n", "6", "--separate", folder, "--out", tmp_path / "grid.png")
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    flushed = [path for kind, path in events if kind == "fsync" and path.endswith(".png")]
    assert sorted(Path(path).name for path in flushed) == sorted([f"{index:05d}.png" for index in range(6)]
                                                                 + ["grid.png"]), flushed
    first_move = next(index for index, (kind, _) in enumerate(events) if kind == "move")
    assert all(kind == "fsync" for kind, _ in events[:first_move]) and events[first_move][1] == str(folder), events
    assert sorted(os.listdir(folder)) == [f"{index:05d}.png" for index in range(6)]



def test_a_large_sample_set_is_flushed_with_one_sync_of_its_file_system_before_any_moves(tiny_demo_run, tmp_path,
                                                                                         monkeypatch):
    """An fsync a file took 0.26 ms on ext4 alone, 3.6 ms beside other writers: up to 3 minutes of a 50,000-image
    FID set. Past MANY_FILES the set's file system is flushed whole (syncfs), once, and still before the first
    file moves into place; a full disk found there is one line, and what the command wrote is removed."""
    import ctypes
    import errno

    from gan.core import files

    real = files.syncfs_function()
    if real is None:
        pytest.skip("needs Linux's syncfs")
    events = []

    def recorded_syncfs(descriptor):
        events.append(("syncfs", os.readlink(f"/proc/self/fd/{descriptor}")))
        return real(descriptor)

    def full_disk(descriptor):
        ctypes.set_errno(errno.ENOSPC)
        return -1

    monkeypatch.setattr(files, "syncfs_function", lambda: recorded_syncfs)
    monkeypatch.setattr(os, "fsync", lambda descriptor: events.append(("fsync", descriptor)))
    rename = os.rename
    monkeypatch.setattr(os, "rename", lambda source, target: (events.append(("move", str(target))),
                                                              rename(source, target))[1])
    count = files.MANY_FILES + 1
    folder = tmp_path / "sep"
    result = invoke("sample", tiny_demo_run, "--n", str(count), "--separate", folder)
    assert result.exit_code == 0, result.output
    assert [kind for kind, _ in events] == ["syncfs", "move"], events
    assert len(os.listdir(folder)) == count

    monkeypatch.setattr(files, "syncfs_function", lambda: full_disk)
    result = invoke("sample", tiny_demo_run, "--n", str(count), "--separate", tmp_path / "new" / "each")
    assert_clean_error(result, "could not write the files in", "No space left on device",
                       f"removed the {count} file(s) it had written")
    assert not (tmp_path / "new").exists()

def test_a_new_separate_folder_comes_into_place_whole_in_one_step(tiny_demo_run, tmp_path, monkeypatch):
    # its files moved in one by one: a kill -9 among the moves (5,000 take seconds) left 1,311 of a set of
    # 5,000 under their final names, which FID would score as a set
    link, replace = os.link, os.replace

    def refusing_moves_one_by_one(real):
        def move(source, target):
            if ".gan-sample-staging." in str(source) and ".gan-sample-staging." not in str(target):
                raise AssertionError(f"moved file by file: {target}")
            return real(source, target)
        return move

    monkeypatch.setattr(os, "link", refusing_moves_one_by_one(link))
    monkeypatch.setattr(os, "replace", refusing_moves_one_by_one(replace))
    folder = tmp_path / "new" / "sep"
    result = invoke("sample", tiny_demo_run, "--n", "5", "--separate", folder)
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(folder)) == [f"{index:05d}.png" for index in range(5)]
    assert os.listdir(tmp_path / "new") == ["sep"]  # (no staging folder left beside it)


def test_a_new_separate_folder_that_appears_meanwhile_takes_the_set_file_by_file_and_leaves_no_staging(
        tiny_demo_run, tmp_path, monkeypatch):
    from gan.core import images

    folder, save_image = tmp_path / "new", images.save_image

    def another_makes_the_folder(*args, **kwargs):
        folder.mkdir(exist_ok=True)  # (empty: an unrelated process, at the last moment)
        return save_image(*args, **kwargs)

    monkeypatch.setattr(images, "save_image", another_makes_the_folder)
    result = invoke("sample", tiny_demo_run, "--n", "3", "--separate", folder)
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(folder)) == ["00000.png", "00001.png", "00002.png"] and os.listdir(tmp_path) == ["new"]


def test_a_new_separate_folder_does_not_wait_for_its_parent_folder(tiny_demo_run, tmp_path, monkeypatch):
    # the rename of the new folder took a lock on its parent: anything holding the parent (a job wrapper's
    # flock) cost the whole set after a minute's wait
    import fcntl

    from gan.core import files

    monkeypatch.setattr(files, "FOLDER_PATIENCE_S", 1.0)
    parent = os.open(tmp_path, os.O_RDONLY)
    try:
        fcntl.flock(parent, fcntl.LOCK_EX)  # (held by another open file: as another process's flock)
        result = invoke("sample", tiny_demo_run, "--n", "3", "--separate", tmp_path / "new")
    finally:
        os.close(parent)
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path / "new")) == [f"{index:05d}.png" for index in range(3)]


def test_a_larger_set_another_command_moved_in_while_sampling_is_not_mixed_with_this_one(tiny_demo_run, tmp_path,
                                                                                          monkeypatch):
    # two gan sample --separate into one folder at once, the smaller with --overwrite: the larger set's
    # 00000-00099 were replaced by the other model's, and both said "wrote"
    from gan.core import images

    folder, save_image = tmp_path / "sep", images.save_image

    def another_command_moves_in_ten(*args, **kwargs):
        if not folder.exists():
            folder.mkdir()
            for index in range(10):
                (folder / f"{index:05d}.png").write_bytes(b"the other set")
        return save_image(*args, **kwargs)

    monkeypatch.setattr(images, "save_image", another_command_moves_in_ten)
    result = invoke("sample", tiny_demo_run, "--n", "3", "--separate", folder, "--overwrite")
    assert_clean_error(result, f"--separate '{folder}' holds 7 sample(s) past the 3 this command writes", "another "
                       "command wrote them while this one sampled): nothing was replaced")
    assert sorted(os.listdir(folder)) == [f"{index:05d}.png" for index in range(10)]
    assert {(folder / name).read_bytes() for name in os.listdir(folder)} == {b"the other set"}


def test_a_second_ctrl_c_while_the_written_files_are_removed_does_not_leave_them(tiny_demo_run, tmp_path,
                                                                                 monkeypatch):
    # removing thousands of staged PNGs takes seconds: a second Ctrl-C left them in a hidden folder, unsaid
    import shutil
    import signal

    from gan.core import images

    save_image, rmtree, calls = images.save_image, shutil.rmtree, {"n": 0}

    def stopped_at_the_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return save_image(*args, **kwargs)

    def a_second_ctrl_c(path, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return rmtree(path, *args, **kwargs)

    monkeypatch.setattr(images, "save_image", stopped_at_the_third)
    monkeypatch.setattr(shutil, "rmtree", a_second_ctrl_c)
    folder = tmp_path / "sep"
    result = invoke("sample", tiny_demo_run, "--n", "5", "--separate", folder)
    assert result.exit_code == 130 and "removed the 2 file(s) it had written" in result.output, result.output
    assert os.listdir(tmp_path) == []


def test_a_move_into_place_that_fails_says_the_folder_holds_part_of_the_new_set(tiny_demo_run, tmp_path, monkeypatch):
    # It could not be undone, yet the message said the replaced files were as they were
    folder = tmp_path / "sep"
    assert invoke("sample", tiny_demo_run, "--n", "3", "--separate", folder).exit_code == 0
    replace, moves = os.replace, []

    def failing_second(source, target):
        if ".gan-sample-staging." in str(source) and ".gan-sample-staging." not in str(target):
            moves.append(target)
            if len(moves) == 2:
                raise OSError(21, "Is a directory")
        return replace(source, target)

    monkeypatch.setattr(os, "replace", failing_second)
    result = invoke("sample", tiny_demo_run, "--n", "3", "--seed", "7", "--separate", folder, "--overwrite")
    assert_clean_error(result, "after 1 of 3 files", "the folder holds part of the new set until the command runs "
                       "again")
    assert "as they were" not in result.output


def test_the_run_file_names_spelled_without_torch_agree_with_those_training_writes(tmp_path):
    import fnmatch

    from gan.core.checkpoint import BEST_NAME, BEST_RECORD, METRICS_RECORD, checkpoint_path
    from gan.core.run_folders import TRAINING_STATE_NAMES
    from gan.inference.outputs import RUN_RECORD_NAMES

    for name in (BEST_NAME, BEST_RECORD, checkpoint_path(tmp_path, 7).name):
        assert any(fnmatch.fnmatch(name, pattern) for pattern in TRAINING_STATE_NAMES), name
    assert METRICS_RECORD in RUN_RECORD_NAMES


@pytest.mark.parametrize("command, out", [("export", "new/g.safetensors/"), ("sample", "new/g.png/")])
def test_a_file_option_given_as_a_folder_with_a_trailing_slash_is_refused(tiny_demo_run, tmp_path, monkeypatch,
                                                                          command, out):
    # The slash was dropped: `--out new/g.safetensors/` wrote the file `new/g.safetensors`.
    monkeypatch.chdir(tmp_path)
    result = invoke(command, tiny_demo_run, "--out", out, *(["--n", "2"] if command == "sample" else []))
    assert result.exit_code == 2 and f"'{out}' ends with '/', which names a folder" in result.output, result.output
    assert not (tmp_path / "new").exists()


def test_a_failed_overwrite_of_a_grid_keeps_the_grid_it_would_have_replaced(tiny_demo_run, tmp_path, monkeypatch):
    # (a stop must not leave a new file behind, nor may a failed write cost the file it would replace)
    from gan.core import images
    from gan.core.files import WriteError

    grid = tmp_path / "grid.png"
    grid.write_bytes(b"the user's grid")

    def full(*args, **kwargs):
        raise WriteError(f"could not write '{grid}' (0.0 MiB free): No space left on device")

    monkeypatch.setattr(images, "save_image", full)
    result = invoke("sample", tiny_demo_run, "--n", "2", "--out", grid, "--overwrite")
    assert result.exit_code == 2 and "No space left" in result.output, result.output
    assert grid.read_bytes() == b"the user's grid"


def test_a_grid_named_as_the_folder_of_the_separate_images_is_refused_before_any_work(tiny_demo_run, tmp_path):
    # Every image was written into the folder g.png/, then the grid's rename onto it failed, in a
    # message of a temp name and free space.
    grid = tmp_path / "out" / "g.png"
    result = invoke("sample", tiny_demo_run, "--n", "4", "--out", grid, "--separate", grid)
    assert_clean_error(result, f"'{grid}' would be both a file this command writes and the folder of")
    assert not (tmp_path / "out").exists()


def test_a_sample_set_the_disk_cuts_short_removes_what_it_wrote_and_says_how_many(tiny_demo_run, tmp_path,
                                                                                  monkeypatch):
    # Only Ctrl-C said how many it removed; a full disk's one line did not, as the docs promise.
    from gan.core import images
    from gan.core.files import WriteError

    save_image, calls = images.save_image, {"n": 0}

    def full_at_the_31st(image, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 31:
            raise WriteError(f"could not write '{path}' (0.0 MiB free): [Errno 28] No space left on device")
        return save_image(image, path, *args, **kwargs)

    monkeypatch.setattr(images, "save_image", full_at_the_31st)
    result = invoke("sample", tiny_demo_run, "--n", "40", "--separate", tmp_path / "new" / "each")
    # (named as the file it would have been: the staging folder's name is none the user gave)
    assert_clean_error(result, f"could not write '{tmp_path / 'new' / 'each' / '00030.png'}' (0.0 MiB free)",
                       "; removed the 30 file(s) it had written")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("count, num_columns", [(1, None), (5, None), (7, 3), (9, 2)])
def test_a_grid_drawn_batch_by_batch_in_uint8_is_the_float_grids_pixels(count, num_columns):
    """gan sample kept every image as float for the grid: 6 GB for 20,000 faces."""
    from gan.core.images import GridCanvas, image_grid, signed_to_pil

    images = torch.rand(count, 3, 6, 5, generator=torch.Generator().manual_seed(count)) * 2 - 1
    canvas = GridCanvas(count, 6, 5, num_columns)
    for batch in images.split(2):
        canvas.add(batch)
    assert np.array_equal(np.asarray(canvas.image()), np.asarray(signed_to_pil(image_grid(images, num_columns))))


def test_a_pipe_or_socket_where_an_output_goes_is_refused_even_with_overwrite(demo_run, tmp_path):
    """`gan bench --json /dev/full --overwrite` replaced the device node with a JSON file (as root): a
    device, FIFO or socket is never written into or over."""
    import socket

    from gan.inference.outputs import OutputRefused, check_outputs

    os.mkfifo(tmp_path / "pipe.json")
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(tmp_path / "sock.png"))
        for name, kind in (("pipe.json", "a pipe (FIFO)"), ("sock.png", "a socket")):
            with pytest.raises(OutputRefused, match=f"'{tmp_path / name}' is {re.escape(kind)}, not a file"):
                check_outputs([tmp_path / name], overwrite=True)
    os.mkfifo(tmp_path / "pipe.png")
    result = CliRunner().invoke(main, ["sample", str(demo_run), "--n", "1", "--out", str(tmp_path / "pipe.png"),
                                       "--overwrite"])
    assert result.exit_code == 2 and f"'{tmp_path / 'pipe.png'}' is a pipe (FIFO), not a file" in result.output
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe.png").st_mode)
    (tmp_path / "plain.json").write_text("{}")
    check_outputs([tmp_path / "plain.json"], overwrite=True)  # (a regular file: replaced with --overwrite)


def test_a_symlink_to_a_pipe_and_the_systems_own_paths_are_refused_before_any_work(demo_run, tmp_path):
    """A link to a FIFO hung sample, eval and export for ever (the checkpoint check opened it to read);
    `--json /dev/stdout --overwrite`, which the refusal without --overwrite advised, replaced the
    system's /dev/stdout link with a JSON file (as root: every later `> /dev/stdout` of the machine
    wrote into it), and /dev/fd/1 failed after the whole evaluation. '-' wrote a file named '-'."""
    import signal

    from gan.inference.outputs import OutputRefused, check_outputs

    os.mkfifo(tmp_path / "fifo")
    for name in ("link.png", "link.safetensors", "link.json"):
        (tmp_path / name).symlink_to(tmp_path / "fifo")
    def hung(signum, frame):
        raise TimeoutError("the command waited on the FIFO")

    earlier = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # (a hang fails the test rather than the suite)
    try:
        for command in (["sample", str(demo_run), "--n", "1", "--out", str(tmp_path / "link.png")],
                        ["export", str(demo_run), "--out", str(tmp_path / "link.safetensors"), "--overwrite"],
                        ["eval", str(demo_run), "--metrics", "swd", "--n", "4", "--json", str(tmp_path / "link.json"),
                         "--overwrite"]):
            result = CliRunner().invoke(main, command)
            assert result.exit_code == 2, result.output
            assert "is a symlink to a pipe (FIFO), not a file" in result.output, result.output
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, earlier)
    assert (tmp_path / "link.png").is_symlink() and stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)
    # (never with --overwrite here: on code without the check, that replaced the system's link)
    for path in ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1", "/dev/new.json"):
        with pytest.raises(OutputRefused, match=f"'{re.escape(path)}' is in /(dev|proc)[^ ]*, the system's devices "
                                                "and processes, not a folder of files"):
            check_outputs([Path(path)])
    with pytest.raises(OutputRefused, match="'-' is no standard output here"):
        check_outputs([Path("-")])
    # a folder of one's own that links into /dev is /dev; /dev/shm is a folder of files (in memory)
    (tmp_path / "devlink").symlink_to("/dev")
    with pytest.raises(OutputRefused, match="is in /dev, the system's devices"):
        check_outputs([tmp_path / "devlink" / "stdout"])
    if Path("/dev/shm").is_dir():
        check_outputs([Path("/dev/shm") / f"gan-test-{os.getpid()}.png"])


def test_a_symlink_loop_where_outputs_go_is_one_line_not_a_traceback(demo_run, tmp_path):
    """Path.resolve raises RuntimeError on a looping link (Python 3.11): sample, compare, train --out,
    translate, export, eval and bench each ended in a traceback."""
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    loop = tmp_path / "loop_a"
    for command in (["sample", str(demo_run), "--n", "1", "--out", str(loop / "x.png")],
                    ["compare", str(demo_run), "--out", str(loop)],
                    ["train", str(REPO / "experiments" / "dcgan_demo.toml"), "--out", str(loop)]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code in (1, 2) and "Traceback" not in result.output and "RuntimeError" not in result.output \
            and result.output.count("\n") <= 3 and f"'{loop}' is a symlink to '{tmp_path / 'loop_b'}', which does not " \
            "exist (or links round in a loop)" in result.output.replace("': File exists (", "' is "), (command, result.output)


def test_lock_files_are_never_opened_through_a_symlink_or_a_pipe(tmp_path):
    """A run folder copied as a symlink tree (`cp -rs`): .run-numbers.lock emptied the file it pointed at,
    and .lock wrote the holder's pid into it; a FIFO named so hung gan train for ever."""
    from gan.core.files import RunLock, WriteError
    from gan.training.run_dir import create_run_dir

    precious = tmp_path / "precious.txt"
    precious.write_text("mine")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / ".run-numbers.lock").symlink_to(precious)
    with pytest.raises(WriteError, match=r"runs/.run-numbers.lock' is a symlink where gan keeps a lock file"):
        create_run_dir(tmp_path / "runs", "dcgan_demo")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").symlink_to(precious)
    with pytest.raises(WriteError, match=r"run/.lock' is a symlink where gan keeps a lock file"):
        with RunLock(tmp_path / "run"):
            pass
    assert precious.read_text() == "mine"
    (tmp_path / "piped").mkdir()
    os.mkfifo(tmp_path / "piped" / ".run-numbers.lock")
    with pytest.raises(WriteError, match=r"is a pipe, socket or device where gan keeps a lock file"):
        create_run_dir(tmp_path / "piped", "dcgan_demo")
