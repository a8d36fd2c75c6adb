"""gan translate / gan eval, and the pix2pix recipe end to end on tiny data."""

import csv
import os
import shutil
import unicodedata
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, TINY_PIX2PIX, assert_one_error_line, only_run, random_rgb
from PIL import Image
from torch import nn

from gan.commands.main import main
from gan.inference.tiling import translate_tensor


def _sets(*items):
    return [arg for item in items for arg in ("--set", item)]


class LocalNet(nn.Module):
    """Two 3x3 convolutions: a receptive radius of 2 px, so tiles overlapping by >= 8 px are exact."""

    def __init__(self, upscale: int = 1):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 3 * upscale**2, 3, padding=1))
        self.shuffle = nn.PixelShuffle(upscale)

    def forward(self, images):
        return self.shuffle(self.body(images))


@pytest.mark.parametrize("upscale", [1, 2])
def test_tiles_blend_to_the_untiled_result(upscale):
    torch.manual_seed(0)
    network = LocalNet(upscale).eval()
    images = torch.rand(1, 3, 45, 70) * 2 - 1
    whole = translate_tensor(network, images, tile=1000)
    tiled = translate_tensor(network, images, tile=24, overlap=8)
    assert tiled.shape == whole.shape == (1, 3, 45 * upscale, 70 * upscale)
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_a_batch_is_tiled_image_by_image_as_each_alone():
    """A batch of 2 through tiles failed: "output with shape [1, 3, 32, 32] doesn't match the broadcast
    shape [2, ...]"."""
    torch.manual_seed(0)
    network = LocalNet(2).eval()
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    tiled = translate_tensor(network, images, tile=32, overlap=8)
    assert tiled.shape == (2, 3, 128, 128)
    assert torch.allclose(tiled, torch.cat([translate_tensor(network, image[None], tile=32, overlap=8)
                                            for image in images]), atol=1e-6)
    assert torch.allclose(tiled, translate_tensor(network, images), atol=1e-5)


def test_a_slow_tiled_image_shows_its_tiles_progress(monkeypatch, capsys):
    """One large image through --tile was silent until done (39 s for 35 tiles here; minutes for a
    12-megapixel SR): a progress line of tiles once they take over 2 s."""
    from gan.core import progress as progress_module

    now = [0.0]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: now[0])

    class SlowNet(LocalNet):
        def forward(self, images):
            now[0] += 1.0  # (a second per tile)
            return super().forward(images)

    images = torch.rand(1, 3, 45, 70) * 2 - 1
    translate_tensor(SlowNet().eval(), images, tile=24, overlap=8, show_tiles=True)
    said = capsys.readouterr().err
    assert "tile 12/12 (100%)" in said and "tile/s" in said, said
    translate_tensor(SlowNet().eval(), images, tile=24, overlap=8)  # (gan eval's: its own line counts images)
    assert "tile" not in capsys.readouterr().err


class NormalisingNet(nn.Module):
    """A 1x1 convolution after InstanceNorm: each pixel depends on the whole image's statistics."""

    def __init__(self):
        super().__init__()
        self.norm, self.conv = nn.InstanceNorm2d(3), nn.Conv2d(3, 3, 1)

    def forward(self, images):
        return self.conv(self.norm(images))


def test_images_go_through_whole_by_default_and_tiles_of_a_normalising_network_are_warned_of():
    torch.manual_seed(0)
    network = NormalisingNet().eval()
    images = torch.rand(1, 3, 40, 600) * 2 - 1
    images[..., 300:] = images[..., 300:] * 0.2 + 0.6  # a bright right half: tiles see other statistics
    torch.testing.assert_close(translate_tensor(network, images), network(images))  # 600 px: not tiled
    with pytest.warns(UserWarning, match="normalised one by one by this network's per-image normalisation"):
        tiled = translate_tensor(network, images, tile=256, overlap=32)
    assert (tiled - network(images)).abs().max() > 0.1  # what the warning is about
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        translate_tensor(LocalNet().eval(), images, tile=256, overlap=32)  # nothing normalised per image


@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 80000000000 bytes"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:72] data. DefaultCPUAllocator: not enough memory: you tried to "
                 "allocate 80000000000 bytes."),  # torch's wording on Windows
    MemoryError(),  # Python's and NumPy's, under a memory limit (ulimit -v)
])
def test_an_image_that_runs_out_of_memory_is_named_with_the_way_round_it(monkeypatch, error):
    from gan.inference import tiling

    def out_of_memory(*args, **kwargs):
        raise error

    monkeypatch.setattr(tiling, "run_padded", out_of_memory)
    image = random_rgb((70, 45), 0)
    whole = tiling.Translator(LocalNet(), torch.device("cpu"))
    with pytest.raises(tiling.ImageTooLargeError, match=r"a 70x45 px image does not fit in cpu memory \(\w+\): "
                                                        "pass --tile 512"):
        whole(image)
    tiled = tiling.Translator(LocalNet(), torch.device("cpu"), tile=32, overlap=8)  # a tile too large as well
    with pytest.raises(tiling.ImageTooLargeError, match="pass a smaller --tile than 32"):
        tiled(image)
    monkeypatch.setattr(tiling, "run_padded", lambda *args: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):  # other errors pass through as they are
        whole(image)


def test_a_cpu_pass_larger_than_the_memory_available_is_refused_before_the_kernel_kills_the_process(monkeypatch):
    """On the CPU an allocation too large does not fail: the out-of-memory killer ended `gan translate`
    mid-folder without a word. The pass is now estimated from the network's largest layer output."""
    from gan.inference import tiling

    network = nn.Sequential(nn.Conv2d(3, 64, 1), nn.Conv2d(64, 3, 1))  # 256 bytes a pixel
    assert tiling.largest_layer_bytes_per_pixel(network, 1, torch.device("cpu")) == 256
    monkeypatch.setattr(tiling, "LARGE_PASS_PIXELS", 64 * 64)  # (a megapixel: small images for the test)
    image = random_rgb((128, 100), 0)  # 128 * 100 * 256 * 4 bytes: 12.5 MiB
    monkeypatch.setattr(tiling, "available_memory", lambda device: 10 * 2**20)
    with pytest.raises(tiling.ImageTooLargeError, match=r"a 128x100 px image would need about 12.5 MiB of memory "
                                                        r"in one pass, and 10.0 MiB are available: pass --tile 512"):
        tiling.Translator(network, torch.device("cpu"))(image)
    assert tiling.Translator(network, torch.device("cpu"), tile=64, overlap=8)(image).size == image.size  # tiles fit
    monkeypatch.setattr(tiling, "available_memory", lambda device: 20 * 2**20)
    assert tiling.Translator(network, torch.device("cpu"))(image).size == image.size


def test_a_u_net_pass_is_estimated_with_the_encoder_outputs_its_skip_connections_keep_alive(monkeypatch):
    # 4x its largest layer output let passes through that measured 7.2-7.8x: the kernel then killed
    # gan translate mid-folder, which the check exists to prevent
    from gan.inference import tiling
    from gan.nets.unet import UNetGenerator

    network = UNetGenerator(num_downs=5, channels=4, dropout=0).eval()
    per_pixel = tiling.largest_layer_bytes_per_pixel(network, network.size_multiple, torch.device("cpu"))
    monkeypatch.setattr(tiling, "LARGE_PASS_PIXELS", 32 * 32)
    image = random_rgb((128, 128), 0)
    largest = 128 * 128 * per_pixel
    monkeypatch.setattr(tiling, "available_memory", lambda device: 6 * largest)  # (room for 4x, not for 8x)
    with pytest.raises(tiling.ImageTooLargeError, match="a 128x128 px image would need about"):
        tiling.Translator(network, torch.device("cpu"), size_multiple=network.size_multiple)(image)
    monkeypatch.setattr(tiling, "available_memory", lambda device: 11 * largest)
    assert tiling.Translator(network, torch.device("cpu"), size_multiple=network.size_multiple)(image).size == (128, 128)


def test_a_tiled_output_too_large_for_memory_is_refused_without_offering_a_smaller_tile(monkeypatch):
    """`--tile` bounds the network's passes, not the full-size output they are blended into: an x4
    output of 4800x4800 took 1.8 GiB at --tile 48 as at 128, and a run out of memory was told to
    pass a smaller --tile (or, on the CPU, was killed mid-folder). The output's buffers are counted
    now, and the way round named."""
    from gan.inference import tiling

    monkeypatch.setattr(tiling, "LARGE_PASS_PIXELS", 64 * 64)
    image = random_rgb((40, 30), 0)  # x4: 160x120 = 19,200 output pixels, 450 KiB at 24 bytes a pixel
    translator = tiling.Translator(LocalNet(upscale=4), torch.device("cpu"), output_upscale=4, tile=16, overlap=4)
    monkeypatch.setattr(tiling, "available_memory", lambda device: 400 * 2**10)
    with pytest.raises(tiling.ImageTooLargeError, match=r"^a 40x30 px image makes a 160x120 px output, which alone "
                                                        r"needs about 450.0 KiB of memory as it is blended from tiles, "
                                                        r"and 400.0 KiB are available: no --tile makes that smaller"):
        translator(image)
    monkeypatch.setattr(tiling, "available_memory", lambda device: 500 * 2**10)
    assert translator(image).size == (160, 120)


def test_an_images_conversion_to_8_bits_in_place_gives_the_copys_pixels_and_spares_the_input_otherwise():
    from gan.core.images import signed_to_uint8

    images = torch.rand(2, 3, 5, 7) * 2.4 - 1.2  # beyond [-1, 1] too: clamped
    kept = images.clone()
    copied = signed_to_uint8(images)
    assert torch.equal(images, kept)  # (the input untouched)
    assert torch.equal(signed_to_uint8(images, in_place=True), copied)
    assert torch.equal(signed_to_uint8(kept.bfloat16(), in_place=False), signed_to_uint8(kept.bfloat16().float()))


def test_padding_to_the_size_multiple_is_cropped_back():
    network = LocalNet().eval()
    for height, width in ((37, 53), (5, 3)):  # the second needs more padding than the image has: replicate
        images = torch.rand(1, 3, height, width)
        assert translate_tensor(network, images, size_multiple=32).shape == (1, 3, height, width)


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("paired")
    for split, count in (("train", 4), ("val", 2)):
        (root / split).mkdir()
        for index in range(count):
            a = random_rgb((40, 40), index)
            Image.fromarray(np.concatenate([np.asarray(a), 255 - np.asarray(a)], axis=1)).save(
                root / split / f"{index}.png")
    out = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "pix2pix_facades.toml"),
                                       *_sets(*TINY_PIX2PIX, f"data.root={root}"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    run_dir = only_run(out)
    return run_dir, root


def test_pix2pix_run_writes_strips_and_logs_every_term(pix2pix_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = pix2pix_run
    strip = Image.open(run_dir / "samples" / "00000002-input_output_target.png")
    assert strip.size == (2 + 2 * (3 * 32 + 2), 2 + 34)  # 2 strips of 3 images, side by side
    scalars = set(EventAccumulator(str(run_dir)).Reload().Tags()["scalars"])
    assert {"loss/d", "loss/g", "loss/g_adversarial", "loss/g_l1", "d/real", "d/fake"} <= scalars


def test_translate_keeps_odd_sizes_and_relative_names(pix2pix_run, tmp_path):
    run_dir, _ = pix2pix_run
    inputs = tmp_path / "in"
    (inputs / "nested").mkdir(parents=True)
    random_rgb((37, 53), 1).save(inputs / "odd.png")
    random_rgb((70, 45), 2).save(inputs / "nested" / "other.jpg")
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(inputs), str(tmp_path / "out"), "--tile", "32", "--overlap", "8"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "odd.png").size == (37, 53)
    assert Image.open(tmp_path / "out" / "nested" / "other.jpg").size == (70, 45)
    single = CliRunner().invoke(main, ["translate", str(run_dir), str(inputs / "odd.png"),
                                       str(tmp_path / "strip.png"), "--side-by-side"])
    assert single.exit_code == 0, single.output
    assert Image.open(tmp_path / "strip.png").size == (74, 53)


def test_a_folder_translated_into_a_log_writes_a_progress_line_per_10_seconds_not_per_image(pix2pix_run, tmp_path):
    """Output to a log (CI, nohup) had a line per image: 202,599 for CelebA, where sample and eval write one per 10 s."""
    run_dir, _ = pix2pix_run
    (tmp_path / "in").mkdir()
    for index in range(6):
        random_rgb((32, 32), index).save(tmp_path / "in" / f"{index}.png")
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("image ")]
    assert len(lines) == 2 and lines[0].startswith("image 1/6") and lines[1].startswith("image 6/6"), result.output


def test_translate_skips_a_looping_link_in_its_input_folder(pix2pix_run, tmp_path):
    run_dir, _ = pix2pix_run
    inputs = tmp_path / "in"
    inputs.mkdir()
    random_rgb((40, 40), 1).save(inputs / "photo.png")
    (inputs / "loop1.png").symlink_to("loop2.png")
    (inputs / "loop2.png").symlink_to("loop1.png")
    with pytest.warns(UserWarning, match="skipping an unreadable input: cannot read image .*loop1.png': a broken or "
                                         "looping symbolic link"):
        result = CliRunner().invoke(main, ["translate", str(run_dir), str(inputs), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "skipped 2 unreadable input(s)" in result.output
    assert sorted(path.name for path in (tmp_path / "out").glob("[!.]*")) == ["photo.png"]


def test_eval_on_paired_data_writes_a_csv_with_the_mean(pix2pix_run, tmp_path):
    run_dir, root = pix2pix_run
    result = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(root / "val"),
                                       "--csv", str(tmp_path / "val.csv")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "val.csv")))
    assert [row["image"] for row in rows] == ["0.png", "1.png", "mean"]
    assert float(rows[-1]["psnr"]) == pytest.approx((float(rows[0]["psnr"]) + float(rows[1]["psnr"])) / 2, abs=1e-4)


def test_a_csv_whose_json_record_would_be_named_best_json_is_refused_saying_so(pix2pix_run, tmp_path):
    """`--best --csv best.csv` was refused as "'best.json' is a name gan keeps", a file the user never
    named (the CSV's JSON record beside it)."""
    run_dir, root = pix2pix_run
    result = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(root), "--csv", str(tmp_path / "best.csv")])
    assert result.exit_code == 2, result.output
    assert f"'{tmp_path / 'best.csv'}' would have its JSON record beside it as 'best.json', a name gan keeps for a " \
           "run's state (best.json): give the CSV another name, e.g. best-eval.csv" in " ".join(result.output.split())
    assert not list(tmp_path.iterdir())


def test_super_resolution_run_and_eval_beside_bicubic(tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    for index in range(2):
        random_rgb((48, 44), index).save(hr / f"{index}.png")
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "sr_pix2pix_x4.toml"), *_sets(
        *TINY_PIX2PIX, "data.load_size=0", f"data.root={hr}", f"data.val_root={hr}"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    run_dir = only_run(out)
    evaluated = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(hr)])
    assert evaluated.exit_code == 0, evaluated.output
    (csv_path,) = run_dir.glob("eval-hr-00000002.csv")
    rows = list(csv.DictReader(open(csv_path)))
    assert list(rows[0]) == ["image", "psnr", "ssim", "psnr_rgb", "ssim_rgb", "bicubic_psnr", "bicubic_ssim",
                             "bicubic_psnr_rgb", "bicubic_ssim_rgb"]
    assert 5 < float(rows[-1]["bicubic_psnr"]) < 40
    upscaled = CliRunner().invoke(main, ["translate", str(run_dir), str(hr / "0.png"), str(tmp_path / "big.png")])
    assert upscaled.exit_code == 0, upscaled.output
    assert Image.open(tmp_path / "big.png").size == (4 * 48, 4 * 44)


def test_translate_refuses_unconditional_checkpoints(tmp_path):
    from conftest import TINY

    out = tmp_path / "runs"
    CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"), *_sets(*TINY), "--out", str(out)])
    run_dir = only_run(out)
    (tmp_path / "photos").mkdir()
    random_rgb((16, 16), 0).save(tmp_path / "photos" / "a.png")
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "photos"), str(tmp_path / "o")])
    assert result.exit_code == 2 and "use `gan sample`" in result.output


def test_tile_and_overlap_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"--tile \(16\) must be more than twice --overlap \(8\)"):
        translate_tensor(LocalNet(), torch.rand(1, 3, 8, 8), tile=16, overlap=8)


def test_an_exported_generator_translates_like_its_checkpoint(pix2pix_run, tmp_path):
    run_dir, _ = pix2pix_run
    photo = tmp_path / "photo.png"
    random_rgb((52, 44), 7).save(photo)
    export = tmp_path / "pix2pix.safetensors"
    result = CliRunner().invoke(main, ["export", str(run_dir), "--out", str(export)])
    assert result.exit_code == 0, result.output
    outputs = []
    for source in (run_dir, export):
        out = tmp_path / f"{source.name}.png"
        result = CliRunner().invoke(main, ["translate", str(source), str(photo), str(out), "--device", "cpu"])
        assert result.exit_code == 0, result.output
        outputs.append(np.asarray(Image.open(out)))
    assert outputs[0].shape == (44, 52, 3) and np.array_equal(outputs[0], outputs[1])


def test_sampling_an_image_to_image_run_says_to_translate(pix2pix_run, tmp_path):
    run_dir, _ = pix2pix_run
    result = CliRunner().invoke(main, ["sample", str(run_dir), "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 2, result.output
    assert "image-to-image generator (recipe 'pix2pix')" in result.output and "gan translate" in result.output


def test_output_names_without_an_image_extension_are_refused_before_any_work(pix2pix_run, tmp_path):
    run_dir, root = pix2pix_run
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(root / "val" / "0.png"), str(tmp_path / "out")])
    assert_one_error_line(result, f"OUTPUT '{tmp_path / 'out'}' has no image extension", "(.png, .jpg, .webp")
    assert not (tmp_path / "out").exists()
    sample = CliRunner().invoke(main, ["sample", str(run_dir), "--out", str(tmp_path / "x.txt")])
    assert sample.exit_code == 2 and "'.txt': expected one of .png" in sample.output


def test_the_norm_statistics_benchmark_runs_a_generator_each_way(pix2pix_run):
    import importlib.util

    from gan.core.checkpoint import list_checkpoints, load_checkpoint
    from gan.core.config import config_from_dict
    from gan.data import build_dataset
    from gan.nets import NetworkSpec
    from gan.recipes.image_to_image import pair_scores

    spec = importlib.util.spec_from_file_location("norm_statistics", REPO / "benchmarks" / "norm_statistics.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    run_dir, _ = pix2pix_run
    config = config_from_dict(load_checkpoint(list_checkpoints(run_dir)[-1])["config"])
    config.data.resolution, config.data.load_size = 64, 72  # crops this U-Net (6 downsamplings) can take
    generator = NetworkSpec("generator", "unet", {"num_downs": 6, "channels": 4, "norm": "batch"}).build()  # has dropout
    runs = benchmark.variants(generator, config, [2])
    assert list(runs) == ["eval", "batch", "reference", "standing-2"]

    def modes(network, kind):
        return {module.training for module in network.modules() if isinstance(module, kind)}

    assert modes(runs["batch"], torch.nn.BatchNorm2d) == {True} and modes(runs["batch"], torch.nn.Dropout) == {False}
    assert modes(runs["reference"], torch.nn.Dropout) == {True}
    standing = [module for module in runs["standing-2"].modules() if isinstance(module, torch.nn.BatchNorm2d)]
    assert all(module.num_batches_tracked == 2 and not module.training for module in standing)
    dataset = build_dataset(config.data, train=False)
    scores = {name: pair_scores(network, dataset, config.data, torch.device("cpu"), 64)
              for name, network in runs.items()}
    assert scores["eval"] != scores["batch"] and all(0 < score["val/psnr"] < 100 for score in scores.values())
    # the script whole, as paired-translation.md runs it (a caller of pair_scores left behind ended in a traceback)
    import json
    import subprocess
    import sys

    out = run_dir.parent / "norm-eval"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "norm_statistics.py"), str(run_dir), "--standing",
                           "1", "--out", str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((out / "norm_statistics.json").read_text())
    assert "eval" in {row["mode"] for row in rows} and all(0 < row["val/psnr"] < 100 for row in rows)


@pytest.mark.parametrize("where", ["network", "metrics"])
def test_sr_evaluation_names_the_image_that_runs_out_of_memory_once(where, monkeypatch, tmp_path):
    """Whether the network or the scores run out of memory, the error names the image (once) and
    the way round it."""
    from gan.data.super_resolution import Degradation
    from gan.inference import scoring, tiling

    random_rgb((64, 48), 0).save(tmp_path / "big.png")
    random_rgb((64, 48), 1).save(tmp_path / "next.png")

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(*((tiling, "run_padded") if where == "network" else (scoring, "ssim")), no_memory)
    translator = tiling.Translator(LocalNet(upscale=4), torch.device("cpu"))
    rows = scoring.evaluate_super_resolution(translator, tmp_path, Degradation(4))
    with pytest.raises(tiling.ImageTooLargeError) as raised:
        list(rows)
    size = "16x12" if where == "network" else "64x48"  # the network's input is the LR image
    assert str(raised.value) == (f"'{tmp_path / 'big.png'}': a {size} px image does not fit in cpu memory "
                                 "(MemoryError): pass --tile 512 (or smaller) to process it in overlapping tiles")


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (100, 4), (4, 4)])
def test_a_cyclegan_generator_translates_images_of_a_few_pixels(size):
    """The ResNet generator's residual blocks reflect-pad a map of a quarter the size: an input of
    4 px or less used to fail there with a traceback, stopping a whole folder's translation."""
    from gan.inference.tiling import Translator
    from gan.nets.resnet import ResnetGenerator

    torch.manual_seed(0)
    generator = ResnetGenerator(channels=4, num_blocks=1).eval()
    output = Translator(generator, torch.device("cpu"), size_multiple=generator.size_multiple)(random_rgb(size, 0))
    assert output.size == size


def test_outputs_are_written_near_lossless_and_gif_outputs_are_warned_of(tmp_path):
    """Pillow's defaults (JPEG quality 75 at 4:2:0, lossy WebP) cost a translation about 10 dB."""
    from gan.commands.translate import planned_translations
    from gan.core.images import save_image

    image = random_rgb((64, 64), 0)
    save_image(image, tmp_path / "out.webp")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.webp").convert("RGB")), np.asarray(image))
    save_image(image, tmp_path / "out.jpg")
    error = np.abs(np.asarray(Image.open(tmp_path / "out.jpg"), dtype=float) - np.asarray(image, dtype=float))
    assert 10 * np.log10(255**2 / (error**2).mean()) > 30  # (random pixels: 35.8 dB; Pillow's default 12.4 dB)
    (tmp_path / "in").mkdir()
    image.save(tmp_path / "in" / "a.gif")
    with pytest.warns(UserWarning, match=r"'.*a.gif' is a GIF: GIF keeps 256 colours and one frame"):
        planned_translations(tmp_path / "in", tmp_path / "out")
    with pytest.warns(UserWarning, match=r"'.*one.gif' is a GIF: GIF keeps 256 colours"):
        planned_translations(tmp_path / "in" / "a.gif", tmp_path / "one.gif")


def test_colour_is_never_written_under_a_grey_only_name(pix2pix_run, tmp_path):
    from gan.commands.translate import planned_translations

    run_dir, root = pix2pix_run
    for output in (tmp_path / "out.pgm", tmp_path / "out.PBM", tmp_path / "out.xbm"):
        result = CliRunner().invoke(main, ["translate", str(run_dir), str(root / "val" / "0.png"), str(output)])
        assert result.exit_code == 2 and f"cannot write the image '{output}'" in result.output, result.output
        assert not output.exists()
    grey = CliRunner().invoke(main, ["sample", str(run_dir), "--out", str(tmp_path / "s.pgm")])
    assert grey.exit_code == 2 and "holds grey images only, and these are in colour (.ppm is its colour kin)" in \
        grey.output, grey.output
    (tmp_path / "in").mkdir()
    random_rgb((32, 32), 0).convert("L").save(tmp_path / "in" / "a.pgm")
    with pytest.warns(UserWarning, match=r"1 output\(s\) are named like grey-only inputs .* written as .ppm"):
        assert planned_translations(tmp_path / "in", tmp_path / "out") == [(tmp_path / "in" / "a.pgm",
                                                                             tmp_path / "out" / "a.ppm")]
    # an input skipped as unreadable writes nothing to warn of ("3 outputs are GIFs", of which 2 were written)
    (tmp_path / "in" / "broken.pgm").write_bytes(b"P5\n32 32\n255\n")
    (tmp_path / "in" / "broken.gif").write_bytes(b"GIF89a")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        planned_translations(tmp_path / "in", tmp_path / "out")
    assert [str(warning.message).split(" output(s)")[0] for warning in said if "grey-only" in str(warning.message)] \
        == ["1"] and not [warning for warning in said if "GIF" in str(warning.message)]
    (tmp_path / "in" / "broken.pgm").unlink(), (tmp_path / "in" / "broken.gif").unlink()
    # beside an a.ppm of its own, a.pgm's colour kin takes the whole name: both were a.ppm, "written twice"
    random_rgb((32, 32), 1).save(tmp_path / "in" / "a.ppm")
    with pytest.warns(UserWarning, match="named like grey-only inputs"):
        result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "in"), str(tmp_path / "both")])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "both").glob("[!.]*")) == ["a.pgm.ppm", "a.ppm"]
    # and beside an a.pgm.ppm too, the first numbered name free: it was "written twice; give its outputs
    # distinct names", which a folder's outputs cannot be given
    random_rgb((32, 32), 2).save(tmp_path / "in" / "a.pgm.ppm")
    with pytest.warns(UserWarning, match="named like grey-only inputs"):
        result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "in"), str(tmp_path / "all")])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "all").glob("[!.]*")) == ["a.pgm-2.ppm", "a.pgm.ppm", "a.ppm"]
    # beside an A.ppm (one file with a.ppm on macOS's and Windows' disks), the whole name too
    for name in ("a.ppm", "a.pgm.ppm"):
        (tmp_path / "in" / name).unlink()
    random_rgb((32, 32), 1).save(tmp_path / "in" / "A.ppm")
    with pytest.warns(UserWarning, match="named like grey-only inputs"):
        planned = planned_translations(tmp_path / "in", tmp_path / "case")
    assert sorted(path.name for _, path in planned) == ["A.ppm", "a.pgm.ppm"]


def test_a_folder_named_like_an_image_is_skipped_not_a_refusal_of_the_whole_folder(pix2pix_run, tmp_path):
    # x.png/ (holding inner.png) planned an output x.png and the folder x.png/ for inner.png's:
    # the whole translation was refused as "both a file and the folder of" an output.
    run_dir, _ = pix2pix_run
    (tmp_path / "in" / "x.png").mkdir(parents=True)
    random_rgb((32, 32), 0).save(tmp_path / "in" / "x.png" / "inner.png")
    random_rgb((32, 32), 1).save(tmp_path / "in" / "a.png")
    with pytest.warns(UserWarning, match="x.png"):
        result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "wrote 2 image(s)" in result.output and "skipped 1 unreadable input(s)" in result.output, result.output
    assert (tmp_path / "out" / "a.png").is_file() and (tmp_path / "out" / "x.png" / "inner.png").is_file()


def test_an_input_in_a_format_gan_reads_but_does_not_write_comes_out_as_png(pix2pix_run, tmp_path):
    # An .avif in a folder was translated, then its output name stopped the command with a traceback.
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow reads no AVIF")
    run_dir, _ = pix2pix_run
    (tmp_path / "in").mkdir()
    random_rgb((32, 32), 0).save(tmp_path / "in" / "a.png")
    random_rgb((32, 32), 1).save(tmp_path / "in" / "b.avif")
    with pytest.warns(UserWarning, match=r"1 output\(s\) are named like inputs in a format gan reads but does not "
                                         r"write \(the first: '.*b.avif'\): written as .png instead"):
        result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "out").glob("[!.]*")) == ["a.png", "b.png"]


def test_a_stopped_folder_translation_keeps_whole_outputs_counts_them_and_restores_the_handlers(
        pix2pix_run, tmp_path, monkeypatch):
    # SIGTERM and SIGHUP killed it mid-write, leaving '.tmp' files and no word of what was written.
    import signal

    from gan.core import images, processes

    run_dir, _ = pix2pix_run
    (tmp_path / "in").mkdir()
    for index in range(4):
        random_rgb((32, 32), index).save(tmp_path / "in" / f"{index}.png")
    (tmp_path / "in" / "2.png").write_bytes(b"not an image")  # skipped, and still counted by the progress line
    save_image, calls, handlers = images.save_image, {"n": 0}, {}

    def terminated_during_the_third(image, path, new_only=False):
        calls["n"] += 1
        if calls["n"] == 3:
            handlers.update({signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)})
            signal.raise_signal(signal.SIGTERM)
        return save_image(image, path, new_only=new_only)

    monkeypatch.setattr(images, "save_image", terminated_during_the_third)
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)}
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 128 + signal.SIGTERM, result.output
    assert "image 1/4" in result.output and "stopped: 2 of 4 image(s) were written, each complete" in result.output
    assert sorted(path.name for path in (tmp_path / "out").glob("[!.]*")) == ["0.png", "1.png"]
    assert all(handler is processes._raise_terminated for handler in handlers.values())  # raised, not killed
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_a_stopped_folder_translation_goes_on_with_continue_as_the_one_it_was(pix2pix_run, tmp_path, monkeypatch):
    """The only way on was --overwrite, which translated every image again: a stop at 90,000 of 100,000
    cost the whole job. --continue keeps the outputs there and translates the rest, the same bytes an
    unstopped translation writes; it refuses an OUTPUT whose record is of another translation."""
    import signal

    from gan.core import images

    run_dir, _ = pix2pix_run
    inputs, out, whole = tmp_path / "in", tmp_path / "out", tmp_path / "whole"
    inputs.mkdir()
    for index in range(5):
        random_rgb((32, 32), index).save(inputs / f"{index}.png")
    assert CliRunner().invoke(main, ["translate", str(run_dir), str(inputs), str(whole)]).exit_code == 0
    save_image, calls = images.save_image, {"n": 0}

    def stopped_at_the_third(image, path, new_only=False):
        calls["n"] += 1
        if calls["n"] == 3:
            signal.raise_signal(signal.SIGINT)
        return save_image(image, path, new_only=new_only)

    with monkeypatch.context() as patched:
        patched.setattr(images, "save_image", stopped_at_the_third)
        stopped = CliRunner().invoke(main, ["translate", str(run_dir), str(inputs), str(out)])
    assert stopped.exit_code == 130 and "stopped: 2 of 5 image(s) were written, each complete (the same command " \
                                       "with --continue translates the rest)" in stopped.output, stopped.output
    again = CliRunner().invoke(main, ["translate", str(run_dir), str(inputs), str(out)])
    assert_one_error_line(again, "2 of 5 output file(s) already exist", "or --continue to keep them and translate "
                                                                        "the rest")
    other = CliRunner().invoke(main, ["translate", str(run_dir), str(inputs), str(out), "--continue", "--side-by-side"])
    assert_one_error_line(other, f"--continue: '{out}' holds a translation other than this one (settings "
                                 '{"side_by_side": false')
    unrecorded = tmp_path / "mine"
    shutil.copytree(out, unrecorded)
    for record in unrecorded.glob(".gan-translation-*.json"):
        record.unlink()
    refused = CliRunner().invoke(main, ["translate", str(run_dir), str(inputs), str(unrecorded), "--continue"])
    assert_one_error_line(refused, f"--continue: '{unrecorded}' holds no record of a translation of this INPUT gan")
    kept = {name: (out / name).stat().st_mtime_ns for name in ("0.png", "1.png")}
    os.utime(inputs / "1.png", ns=(kept["1.png"] + 1000, kept["1.png"] + 1000))  # (edited since: translated again)
    went_on = CliRunner().invoke(main, ["translate", str(run_dir), str(inputs), str(out), "--continue"])
    assert went_on.exit_code == 0, went_on.output
    assert "--continue: 1 of 5 output(s) are there, kept; 4 to translate (1 of them again: not this translation's " \
           "as its log has them, or their inputs changed since)" in went_on.output
    assert "wrote 4 image(s) (and kept the 1 written before the stop)" in went_on.output
    assert (out / "0.png").stat().st_mtime_ns == kept["0.png"]
    assert {path.name: path.read_bytes() for path in out.glob("*.png")} == \
        {path.name: path.read_bytes() for path in whole.glob("*.png")}
    done = CliRunner().invoke(main, ["translate", str(run_dir), str(inputs), str(out), "--continue"])
    assert done.exit_code == 0 and "nothing to do: every output is in" in done.output, done.output
    # An --overwrite by other weights stopped after its first output: the 4 left are the first weights',
    # and were kept ("not older than their inputs"); they are older than its record.
    exported = tmp_path / "g.safetensors"
    assert CliRunner().invoke(main, ["export", str(run_dir), "--out", str(exported)]).exit_code == 0
    calls["n"] = 1
    with monkeypatch.context() as patched:
        patched.setattr(images, "save_image", stopped_at_the_third)
        stopped = CliRunner().invoke(main, ["translate", str(exported), str(inputs), str(out), "--overwrite"])
    assert "stopped: 1 of 5 image(s) were written, each complete (the same command with --continue in place of " \
           "--overwrite translates the rest)" in stopped.output, stopped.output
    copied = tmp_path / "copied"  # (`cp -r`: every file new, the record too; times told nothing)
    shutil.copytree(out, copied, copy_function=shutil.copyfile)
    for folder in (out, copied):
        went_on = CliRunner().invoke(main, ["translate", str(exported), str(inputs), str(folder), "--continue"])
        assert "--continue: 1 of 5 output(s) are there, kept; 4 to translate" in went_on.output, went_on.output
        assert {path.name: path.read_bytes() for path in folder.glob("*.png")} == \
            {path.name: path.read_bytes() for path in whole.glob("*.png")}
    # an input replaced by `mv` or `cp -p` keeps an old modified time: its output is still made again
    (out / "3.png").unlink()
    (out / "4.png").unlink()
    before = (inputs / "2.png").stat()
    random_rgb((32, 32), 99).save(tmp_path / "edited.png")
    os.replace(tmp_path / "edited.png", inputs / "2.png")
    os.utime(inputs / "2.png", ns=(before.st_atime_ns, before.st_mtime_ns))
    went_on = CliRunner().invoke(main, ["translate", str(exported), str(inputs), str(out), "--continue"])
    assert "--continue: 2 of 5 output(s) are there, kept; 3 to translate (1 of them again" in went_on.output, \
        went_on.output
    assert (out / "2.png").read_bytes() != (whole / "2.png").read_bytes()
    # another folder translated into OUTPUT meanwhile (no name in common) left this one's record to go on with
    others = tmp_path / "others"
    others.mkdir()
    random_rgb((32, 32), 50).save(others / "other.png")
    assert CliRunner().invoke(main, ["translate", str(exported), str(others), str(out)]).exit_code == 0
    (out / "4.png").unlink()
    went_on = CliRunner().invoke(main, ["translate", str(exported), str(inputs), str(out), "--continue"])
    assert "--continue: 4 of 5 output(s) are there, kept; 1 to translate" in went_on.output, went_on.output
    missing = CliRunner().invoke(main, ["translate", str(exported), str(inputs), str(tmp_path / "none"), "--continue"])
    assert_one_error_line(missing, f"--continue: OUTPUT '{tmp_path / 'none'}' does not exist: there is no translation")
    # an OUTPUT typed composed where macOS wrote it decomposed: a twin folder was made (and --continue: "no record")
    decomposed = tmp_path / unicodedata.normalize("NFD", "Café")
    out.rename(decomposed)
    typed = tmp_path / "Café"
    twin = CliRunner().invoke(main, ["translate", str(exported), str(inputs), str(typed), "--continue"])
    assert_one_error_line(twin, f"--continue: OUTPUT '{typed}' does not exist ('{decomposed}' is there: a name that "
                                "prints alike")
    with pytest.warns(UserWarning, match="OUTPUT '.*' is new \\('.*' is there: a name that prints alike"):
        CliRunner().invoke(main, ["translate", str(exported), str(inputs), str(typed)])


def test_a_log_the_disk_refuses_is_given_up_with_a_warning_not_the_translation(tmp_path):
    """An OSError writing the log's line (a full disk) ended the translation in a traceback after the
    output itself was written."""
    from gan.inference.translation_record import TranslationLog, left_to_translate

    record = {"input": str(tmp_path / "in"), "settings": {}}
    log = TranslationLog(tmp_path / "out", record)
    log.begin()
    log.log_path.unlink()
    log.log_path.mkdir()  # (appending to it fails, as on a full disk)
    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "in" / name).write_bytes(b"x")
        (tmp_path / "out" / name).write_bytes(b"y")
    with pytest.warns(UserWarning, match="the translation goes on, and a --continue after a stop translates again"):
        log.written(tmp_path / "in" / "a.png", tmp_path / "out" / "a.png")
    log.written(tmp_path / "in" / "b.png", tmp_path / "out" / "b.png")  # (said once)
    log.close()
    pairs = [(tmp_path / "in" / name, tmp_path / "out" / name) for name in ("a.png", "b.png")]
    assert left_to_translate(pairs, tmp_path / "out", record) == (pairs, 0, 2)


def test_a_translations_record_tells_checkpoints_of_one_name_step_and_size_apart(tmp_path):
    """A run retrained in place writes a checkpoint of the same path, step and size: --continue kept the
    first weights' outputs beside the second's."""
    from gan.inference.translation_record import translation_record

    checkpoint = tmp_path / "checkpoint-00000002.pt"
    checkpoint.write_bytes(b"a" * 64)
    first = translation_record(checkpoint, 2, tmp_path, {})
    checkpoint.write_bytes(b"b" * 64)
    assert translation_record(checkpoint, 2, tmp_path, {}) != first


def test_a_tile_smaller_than_the_networks_size_multiple_is_warned_of(pix2pix_run, tmp_path):
    """Each tile is padded to the multiple: --tile 8 on a U-Net of multiple 32 took 5x the time of 32
    with the same memory, and the out-of-memory advice ("a smaller --tile") led there."""
    run_dir, _ = pix2pix_run
    random_rgb((48, 48), 0).save(tmp_path / "in.png")
    with pytest.warns(UserWarning, match="--tile 8 is smaller than the network's size multiple, 32 px, which each "
                                         "tile is padded to: .*give --tile 32 or more"):
        result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "in.png"),
                                           str(tmp_path / "out.png"), "--tile", "8", "--overlap", "0"])
    assert result.exit_code == 0, result.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the tiled normalisation's own)
        warnings.filterwarnings("error", message=".*size multiple")
        result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "in.png"),
                                           str(tmp_path / "out32.png"), "--tile", "32", "--overlap", "0"])
    assert result.exit_code == 0, result.output


def test_a_stop_just_after_an_output_is_renamed_into_place_counts_it(pix2pix_run, tmp_path, monkeypatch):
    # A Ctrl-C as the second output's folder was flushed (the file renamed into place, and kept) said
    # "1 of 3 image(s) were written" beside two whole outputs: an image was counted once its write returned.
    import signal

    from gan.core import files

    run_dir, _ = pix2pix_run
    (tmp_path / "in").mkdir()
    for name in ("a", "b", "c"):
        random_rgb((32, 32), ord(name)).save(tmp_path / "in" / f"{name}.png")
    fsync_folder, calls = files._fsync_folder, []

    def stopped_at_the_second(folder):
        calls.append(folder)
        if len(calls) == 4:  # (the first two flush the record and the log --continue reads)
            signal.raise_signal(signal.SIGINT)
        return fsync_folder(folder)

    monkeypatch.setattr(files, "_fsync_folder", stopped_at_the_second)
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 130 and "stopped: 2 of 3 image(s) were written, each complete" in result.output, \
        result.output
    assert sorted(path.name for path in (tmp_path / "out").glob("[!.]*")) == ["a.png", "b.png"]


def test_paired_input_refuses_photos_and_skips_a_stray_among_pairs_as_gan_eval_does(pix2pix_run, tmp_path):
    """`--paired-input` on square photos halved each one silently, translating its right half and
    showing its left as the "target"; a stray photo among the pairs the same."""
    run_dir, root = pix2pix_run
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(2):
        random_rgb((40, 40), index).save(photos / f"{index}.png")
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(photos), str(tmp_path / "out"), "--paired-input"])
    assert_one_error_line(result, f"'{photos}' is not a folder of A|B pairs like those this model trained on (2.00:1)",
                          "2 of its 2 images are narrower than 2:1", "pass --whole-input")
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(photos / "0.png"), str(tmp_path / "o.png"),
                                       "--paired-input"])
    assert_one_error_line(result, f"'{photos / '0.png'}' is 40x40, narrower than the 2:1 of the A|B pairs")
    mixed = tmp_path / "mixed"
    shutil.copytree(root / "val", mixed)
    shutil.copy(photos / "0.png", mixed / "stray.png")
    with pytest.warns(UserWarning, match=r"skipping '.*stray.png': it is 40x40, narrower than the 2:1 of an A\|B pair"):
        result = CliRunner().invoke(main, ["translate", str(run_dir), str(mixed), str(tmp_path / "mixed_out"),
                                           "--paired-input"])
    assert result.exit_code == 0, result.output
    assert "wrote 2 image(s)" in result.output and "skipped 1 not shaped like an A|B pair" in result.output
    assert sorted(path.name for path in (tmp_path / "mixed_out").glob("[!.]*")) == ["0.png", "1.png"]


def test_paired_input_refuses_photos_for_a_model_trained_on_a_and_b_folders_as_gan_eval_does(tmp_path):
    """A model trained on A/ and B/ folders of square images: `--paired-input` on square photos cut each in
    halves as input | target without a word, while `gan eval` refused them."""
    root = tmp_path / "folders"
    for split in ("train", "val"):
        for side in ("A", "B"):
            (root / split / side).mkdir(parents=True)
            for index in range(2):
                random_rgb((40, 40), index + (side == "B")).save(root / split / side / f"{index}.png")
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "pix2pix_facades.toml"),
                                       *_sets(*TINY_PIX2PIX, f"data.root={root}"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    run_dir = only_run(out)
    photos = root / "val" / "A"
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(photos), str(tmp_path / "out"), "--paired-input"])
    assert_one_error_line(result, f"'{photos}' is not a folder of A|B pairs like those this model trained on (2.00:1)",
                          "2 of its 2 images are narrower than 2:1", "pass --whole-input")
    pairs = tmp_path / "side_by_side"
    pairs.mkdir()
    for index in range(2):  # an A image beside its B: the pair as --paired-input takes it
        a, b = (Image.open(root / "val" / side / f"{index}.png") for side in ("A", "B"))
        Image.fromarray(np.concatenate([np.asarray(a), np.asarray(b)], axis=1)).save(pairs / f"{index}.png")
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(pairs), str(tmp_path / "out"), "--paired-input"])
    assert result.exit_code == 0 and "wrote 2 image(s)" in result.output, result.output


def test_output_names_with_no_extension_and_the_smallest_tiles_get_the_way_round(pix2pix_run, tmp_path):
    """`newdir/` (its slash gone: `newdir`) said "cannot write the image 'newdir' from its extension ''";
    `--tile 1` offered "--overlap 0 or less"."""
    run_dir, _ = pix2pix_run
    random_rgb((32, 32), 0).save(tmp_path / "s.png")
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "s.png"), str(tmp_path / "newdir") + "/"])
    assert_one_error_line(result, f"OUTPUT '{tmp_path / 'newdir'}' has no image extension",
                          f"'{tmp_path / 'newdir.png'}' or '{tmp_path / 'newdir' / 's.png'}'")
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "s.png"), str(tmp_path / "o.png"),
                                       "--tile", "2", "--overlap", "1"])
    assert_one_error_line(result, "give --tile 3 or more, or --overlap 0")
    assert "or less" not in result.output


def test_an_output_another_command_writes_meanwhile_is_not_replaced_without_overwrite(pix2pix_run, tmp_path,
                                                                                      monkeypatch):
    """Two translations into one new folder both passed the check that no output exists, then replaced
    each other's files: the folder held a mix of two models' outputs, and both said they wrote all."""
    from gan.inference.tiling import Translator

    run_dir, _ = pix2pix_run
    (tmp_path / "in").mkdir()
    for index in range(2):
        random_rgb((32, 32), index).save(tmp_path / "in" / f"{index}.png")
    translate = Translator.__call__

    def another_writes_first(self, image):  # (the other command's output lands while this one translates)
        (tmp_path / "out").mkdir(exist_ok=True)
        (tmp_path / "out" / "1.png").write_bytes(b"the other command's")
        return translate(self, image)

    monkeypatch.setattr(Translator, "__call__", another_writes_first)
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "in"), str(tmp_path / "out")])
    assert_one_error_line(result, f"'{tmp_path / 'out' / '1.png'}' appeared while this command wrote it (another "
                                  "command's?): nothing was replaced", "1 of 2 image(s) were written before it")
    assert (tmp_path / "out" / "1.png").read_bytes() == b"the other command's"
    result = CliRunner().invoke(main, ["translate", str(run_dir), str(tmp_path / "in"), str(tmp_path / "out"),
                                       "--overwrite"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / "1.png") as written:
        assert written.size == (32, 32)


def test_whole_input_for_a_run_not_trained_on_pairs_is_warned_of(tmp_path):
    """--paired-input on an SR or CycleGAN run is refused in one line; --whole-input was accepted and
    ignored without a word."""
    from conftest import TINY_SR, write_recipe_data

    data = write_recipe_data(tmp_path / "data")
    sets = [arg for item in [*TINY_SR, f"data.root={data['hr']}", f"data.val_root={data['hr']}"]
            for arg in ("--set", item)]
    made = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "srresnet_x4.toml"), *sets,
                                     "--run-dir", str(tmp_path / "run")])
    assert made.exit_code == 0, made.output
    random_rgb((16, 16), 0).save(tmp_path / "small.png")
    with pytest.warns(UserWarning, match=r"--whole-input changes nothing: .* trained on 'sr_pairs' data, not A\|B pairs"):
        result = CliRunner().invoke(main, ["translate", str(tmp_path / "run"), str(tmp_path / "small.png"),
                                           str(tmp_path / "big.png"), "--whole-input"])
    assert result.exit_code == 0, result.output
