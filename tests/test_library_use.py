"""`gan` called as a library in one long-lived process (a notebook, a sweep script): a call leaves
the user's modules and the process's state as it found them."""

import io
import random
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import invoke, random_rgb, tiny_config, tiny_recipe_config, write_recipe_data

from gan.core.checkpoint import list_checkpoints, load_checkpoint
from gan.core.registry import ConfigError
from gan.inference.exported import export_generator
from gan.inference.generators import load_generator
from gan.inference.tiling import TiledNormalisationWarning, load_translator, translate_tensor
from gan.metrics.generative import generated_images
from gan.metrics.swd import patch_descriptors, sliced_wasserstein
from gan.nets import network_spec
from gan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan.nets.patchgan import PatchDiscriminator, PixelDiscriminator
from gan.nets.resnet import ResnetGenerator
from gan.nets.running import generate, interpolation_latents, random_latents
from gan.nets.srresnet import SRGANDiscriminator, SRResNet
from gan.nets.unet import UNetGenerator
from gan.training.loop import train
from gan.training.process_state import RunInProgress
from gan.training.run_dir import start_or_resume

CPU = torch.device("cpu")


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in module.state_dict().items()}


def _assert_same_state(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = module.state_dict()
    assert after.keys() == before.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert not changed, f"the call changed {changed}"


def test_generate_runs_a_generator_left_in_train_mode_in_eval_mode_and_leaves_it_as_it_was():
    generator = network_spec("generator", "dcgan", {"channels": 8}, "g", resolution=32).build().train()
    before = _state(generator)
    latents = random_latents(8, generator.latent_dim, seed=0)
    batch = generate(generator, latents)
    alone = generate(generator, latents[:1])
    # (equal up to the rounding of batched kernels; a batch's statistics would change it throughout)
    torch.testing.assert_close(batch[:1], alone, rtol=1e-4, atol=1e-9, msg="image 0 depends on its batch")
    assert generator.training
    _assert_same_state(generator, before)  # (BatchNorm's running statistics and its count unmoved)
    assert torch.equal(batch, generate(generator.eval(), latents))
    assert not generator.training


def test_translate_tensor_runs_a_translator_left_in_train_mode_in_eval_mode_and_leaves_it_as_it_was():
    unet = network_spec("generator", "unet", {"num_downs": 6, "channels": 8}, "g").build().train()
    before = _state(unet)
    image = torch.rand(1, 3, 64, 64) * 2 - 1  # (one decoder block with dropout)
    first, second = translate_tensor(unet, image), translate_tensor(unet, image)
    assert torch.equal(first, second), "dropout ran in the translation"
    assert unet.training
    _assert_same_state(unet, before)


def _train(config, run_dir: Path):
    return train(config, run_dir, CPU, progress_stream=io.StringIO())


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(list_checkpoints(run_dir)[-1])["networks"]["generator"]


def _random_streams():
    return random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state()


def test_train_leaves_the_process_random_streams_as_it_found_them_however_it_ends(tmp_path):
    torch.manual_seed(1234)
    random.seed(1234)
    np.random.seed(1234)
    before = _random_streams()
    _train(tiny_config(), tmp_path / "done")
    after = _random_streams()
    assert after[0] == before[0] and after[1] == before[1] and torch.equal(after[2], before[2])

    class Failing(Exception):
        pass

    def fail_at_once(*args, **kwargs):
        raise Failing

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gan.recipes.dcgan.DCGANRecipe.step", fail_at_once)
        with pytest.raises(Failing):
            _train(tiny_config(), tmp_path / "failed")
    assert torch.equal(torch.get_rng_state(), before[2])


def test_train_trains_the_same_under_a_callers_no_grad_inference_mode_and_float64_default(tmp_path):
    _train(tiny_config(), tmp_path / "plain")
    with torch.no_grad():
        _train(tiny_config(), tmp_path / "no_grad")
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        _train(tiny_config(), tmp_path / "inference_mode")
        assert torch.is_inference_mode_enabled()
    torch.set_default_dtype(torch.float64)
    try:
        _train(tiny_config(), tmp_path / "float64")
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
    expected = _weights(tmp_path / "plain")
    for name in ("no_grad", "inference_mode", "float64"):
        got = _weights(tmp_path / name)
        assert all(torch.equal(expected[key], got[key]) for key in expected), name


def test_a_second_run_in_another_thread_of_the_process_is_refused_as_runs_share_the_random_streams(tmp_path):
    started, release = threading.Event(), threading.Event()
    errors = []

    def on_first_step(*args, **kwargs):
        started.set()
        release.wait(60)
        return original(*args, **kwargs)

    from gan.recipes.dcgan import DCGANRecipe
    original = DCGANRecipe.step
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DCGANRecipe, "step", on_first_step)
        first = threading.Thread(target=lambda: _train(tiny_config(), tmp_path / "first"))
        first.start()
        try:
            assert started.wait(60)
            with pytest.raises(RunInProgress, match="a gan training run is in progress in this process already"):
                _train(tiny_config(), tmp_path / "second")
        except BaseException as error:  # noqa: BLE001 - reported after the first run is let go
            errors.append(error)
        finally:
            release.set()
            first.join(60)
    assert not errors, errors
    assert list_checkpoints(tmp_path / "first") and not (tmp_path / "second").exists()


def test_a_run_given_a_relative_folder_as_text_stays_in_it_when_the_working_folder_changes(tmp_path, monkeypatch):
    """A notebook's `%cd` while a run trained in a thread: its checkpoints and grids went to another
    folder, unlocked, and the path it returned named none; a folder or device given as text was an
    AttributeError after the folder was made."""
    import os

    from gan.training import loop

    write_previews = loop._write_previews

    def elsewhere_then_write(*args):
        os.chdir(tmp_path / "elsewhere")
        return write_previews(*args)

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(loop, "_write_previews", elsewhere_then_write)
    result = train(tiny_config("train.steps=4", "log.image_every=2", "train.checkpoint_every=2"), "runs/a", "cpu")
    assert result.checkpoint == tmp_path / "runs" / "a" / "checkpoint-00000004.pt" and result.checkpoint.is_file()
    assert [path.name for path in list_checkpoints(tmp_path / "runs" / "a")] == ["checkpoint-00000002.pt",
                                                                                "checkpoint-00000004.pt"]
    assert not list((tmp_path / "elsewhere").iterdir())


def test_loading_a_generator_leaves_the_global_random_stream_as_it_was(tiny_demo_run):
    torch.manual_seed(0)
    expected = torch.randn(3)
    torch.manual_seed(0)
    loaded = load_generator(tiny_demo_run, CPU)
    assert torch.equal(torch.randn(3), expected)
    assert not loaded.generator.training


def test_a_generator_gives_the_same_images_from_a_seed_under_a_callers_float64_default_dtype(tiny_demo_run):
    """A notebook's `torch.set_default_dtype(torch.float64)` drew float64 latents and built a float64
    generator: the same seed gave other images (up to 171 levels off). Both are float32 now, and the
    caller's default dtype is left as it was."""
    expected = generated_images(load_generator(tiny_demo_run, CPU).generator, 8)
    torch.set_default_dtype(torch.float64)
    try:
        generator = load_generator(tiny_demo_run, CPU).generator
        latents = random_latents(8, generator.latent_dim, seed=0)
        got = generated_images(generator, 8)
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
    assert latents.dtype == torch.float32
    assert {parameter.dtype for parameter in generator.parameters()} == {torch.float32}
    assert torch.equal(got, expected)


def test_what_gan_feeds_its_float32_networks_is_float32_under_a_callers_float64_default_dtype(tiny_demo_run,
                                                                                               tmp_path):
    """Networks are built in float32 whatever the default dtype, but some inputs gan made were still in the
    caller's float64: interpolation's fractions ("expected m1 and m2 to have the same dtype"), the memory
    probe before a >1 Mpx translation, ONNX's example input, a tiled output's buffers and SWD's directions."""
    pytest.importorskip("onnxscript")
    pix2pix = train(tiny_recipe_config("pix2pix", write_recipe_data(tmp_path / "data"), "train.steps=2",
                                       "train.keep_best=", "log.eval_every=0", "log.image_every=1000"),
                    tmp_path / "pix2pix", CPU, progress_stream=io.StringIO()).run_dir
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    torch.set_default_dtype(torch.float64)
    try:
        generator = load_generator(tiny_demo_run, CPU).generator
        interpolated = generate(generator, interpolation_latents(2, 5, generator.latent_dim, 0))
        translator = load_translator(pix2pix, CPU)
        translated = translator(random_rgb((1280, 1024), 0))  # (over LARGE_PASS_PIXELS: the probe runs first)
        with pytest.warns(TiledNormalisationWarning):  # (the U-Net's InstanceNorm)
            tiled = translate_tensor(translator.generator, torch.rand(1, 3, 96, 64, dtype=torch.float32), 32,
                                     tile=64, overlap=16)
        export_generator(pix2pix, tmp_path / "pix2pix.onnx")
        descriptors = patch_descriptors(images)[0][:256].float()
        distance = sliced_wasserstein(descriptors, descriptors)
    finally:
        torch.set_default_dtype(torch.float32)
    assert interpolated.shape == (10, 3, 32, 32) and translated.size == (1280, 1024)
    assert tiled.dtype == torch.float32 and tiled.shape == (1, 3, 96, 64)
    assert (tmp_path / "pix2pix.onnx").stat().st_size > 0 and distance == 0


def test_a_command_called_in_process_leaves_the_warnings_filters_and_format_as_they_were(tiny_demo_run, tmp_path):
    filters, formatwarning, streams = list(warnings.filters), warnings.formatwarning, (sys.stdout, sys.stderr)
    result = invoke("sample", tiny_demo_run, "--n", "2", "--out", tmp_path / "two.png")
    assert result.exit_code == 0, result.output
    assert warnings.filters == filters and warnings.formatwarning is formatwarning
    assert (sys.stdout, sys.stderr) == streams
    assert "warning:" not in warnings.formatwarning("mine", UserWarning, "notebook.py", 1)


def test_a_new_run_in_a_folder_where_a_start_stopped_before_its_first_checkpoint_is_refused(tmp_path):
    """A library run that failed at step 2 left its event file; a new run there added its own, and
    TensorBoard showed the two runs' curves as one."""
    from gan.recipes.dcgan import DCGANRecipe

    original, calls = DCGANRecipe.step, []

    def fail_at_the_second_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a step that fails")
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DCGANRecipe, "step", fail_at_the_second_step)
        with pytest.raises(RuntimeError, match="a step that fails"):
            _train(tiny_config(), tmp_path / "run")
    (events,) = (tmp_path / "run").glob("events.out.tfevents.*")
    kept = {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir() if path.is_file()}
    with pytest.raises(ConfigError, match=rf"'.*run' holds a start that stopped before its first checkpoint \(its "
                                          rf"event file '{events.name}'\): gan.training.run_dir.start_or_resume"):
        _train(tiny_config(), tmp_path / "run")
    assert {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir() if path.is_file()} == kept
    assert not start_or_resume(tmp_path / "run")  # (set aside: a new run starts clean)
    assert _train(tiny_config(), tmp_path / "run").step == 4


def test_the_functions_a_notebook_calls_on_runs_take_their_paths_as_text(tiny_demo_run, tmp_path, monkeypatch):
    """start_or_resume("runs/dbl"), as train()'s refusal of a stopped start says to call it, raised
    AttributeError: 'str' object has no attribute 'is_dir'; load_checkpoint of a path as text, 'is_file'."""
    from gan.core.checkpoint import resolve_checkpoint
    from gan.training.run_dir import create_run_dir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "dbl").mkdir(parents=True)
    (tmp_path / "runs" / "dbl" / ".lock").touch()
    (tmp_path / "runs" / "dbl" / "events.out.tfevents.1.host.1.0").touch()
    assert start_or_resume("runs/dbl") is False and [path.name for path in (tmp_path / "runs").iterdir()] == [
        "dbl.abandoned-0"]
    newest = list_checkpoints(tiny_demo_run)[-1]
    assert start_or_resume(str(tiny_demo_run)) is True
    assert list_checkpoints(str(tiny_demo_run))[-1] == resolve_checkpoint(str(tiny_demo_run)) == newest
    assert load_checkpoint(str(newest))["step"] == 4
    assert create_run_dir("runs", "demo") == Path("runs") / "00000-demo"


@pytest.mark.parametrize("device, expected", [
    ("meta", r"gan runs on CUDA GPUs and the CPU, not on 'meta'; use auto, cpu, cuda or cuda:N"),
    ("cuda:99", r"device=cuda:99 (was asked for, but PyTorch sees no CUDA GPU; use device=cpu|: only \d+ CUDA GPU)"),
    ("tpu", r"unknown device 'tpu'; use auto, cpu, cuda or cuda:N"),
])
def test_a_device_gan_cannot_use_is_refused_from_python_as_the_commands_refuse_it(tiny_demo_run, tmp_path, device,
                                                                                  expected):
    """train() and load_generator() took any device torch names: "cuda" without a GPU raised torch's "Found
    no NVIDIA driver", "meta" set up a run that failed at step 1 and left its folder (gan train --device
    refuses both, saying what to use)."""
    from gan.core.devices import DeviceUnavailable

    with pytest.raises(DeviceUnavailable, match=f"^{expected}"):
        train(tiny_config(), tmp_path / "run", device, progress_stream=io.StringIO())
    assert not (tmp_path / "run").exists()
    with pytest.raises(DeviceUnavailable, match=f"^{expected}"):
        load_generator(tiny_demo_run, device)
    from gan.inference.tiling import load_translator

    with pytest.raises(DeviceUnavailable, match=f"^{expected}"):  # (checked before the source is read)
        load_translator(tmp_path / "a pix2pix run", device)


@pytest.mark.parametrize("key, value", [
    ("log.every", 0), ("train.checkpoint_every", 0), ("train.steps", "50"), ("train.batch_size", 0),
    ("train.lr_schedule", "bogus"), ("train.steps", -3), ("metrics.names", ["bogus"]),
])
def test_a_config_edited_in_python_is_checked_as_load_config_checks_a_files(tmp_path, key, value):
    """A config edited after load_config was never checked again: log.every = 0 or checkpoint_every = 0
    divided by zero once the run was set up, steps = "50" was a TypeError, batch_size = 0 torch's
    ValueError, steps = -3 "nothing to do" with a config.toml recording it. load_config's own error now,
    before anything is written."""
    from gan.core.config import toml_value

    with pytest.raises(ConfigError) as from_a_file:
        tiny_config(f"{key}={toml_value(value)}")
    config = tiny_config()
    section, name = key.split(".")
    setattr(getattr(config, section), name, value)
    with pytest.raises(ConfigError) as edited:
        _train(config, tmp_path / "run")
    assert str(edited.value) == str(from_a_file.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("outcome", ["trains", "fails at step 1"])
def test_a_new_run_in_a_folder_of_ones_own_files_is_refused_and_leaves_them_as_they_were(tmp_path, outcome):
    """A notebook's train() into the folder holding the user's own config.toml replaced the file with
    the run's, and a start that failed at step 1 deleted it with its own files (gan train --run-dir
    refuses such a folder, touching nothing); beside a lock a start left, it was replaced as a dead
    start's."""
    folder, mine = tmp_path / "exp4", "# my experiment\nrecipe = \"dcgan\"\n"
    folder.mkdir()
    (folder / "config.toml").write_text(mine)
    config = tiny_config(*(["train.divergence_bound=0.001"] if outcome == "fails at step 1" else []))
    with pytest.raises(ConfigError, match=rf"^run_dir '{folder}' holds files gan did not write \(config.toml\) and "
                                          "no checkpoint: .*nothing in it was touched; give a new or empty folder"):
        _train(config, folder)
    assert [path.name for path in folder.iterdir()] == ["config.toml"] and (folder / "config.toml").read_text() == mine
    (folder / ".lock").touch()
    with pytest.raises(ConfigError, match=r"holds a start that stopped before its first checkpoint \(its "
                                          r"config.toml\): gan.training.run_dir.start_or_resume\(run_dir\) sets it"):
        _train(config, folder)
    assert (folder / "config.toml").read_text() == mine


def test_a_start_that_fails_at_step_1_leaves_no_folder_it_made_and_a_mount_points_lost_found_is_no_users_file(
        tmp_path):
    """A failed train() from Python left the folders it made, holding its .lock (gan train removes them);
    a fresh ext4 volume's lost+found at the mount point given as run_dir was "files gan did not write"."""
    from gan.training.errors import NonFiniteLossError

    with pytest.raises(NonFiniteLossError):
        _train(tiny_config("train.divergence_bound=0.001"), tmp_path / "made" / "run")
    assert list(tmp_path.iterdir()) == []
    mount = tmp_path / "scratch"
    (mount / "lost+found").mkdir(parents=True)
    assert _train(tiny_config("train.steps=2"), mount).step == 2
    assert (mount / "lost+found").is_dir() and list_checkpoints(mount)


@pytest.mark.parametrize("inside", ["sub", "samples"])
def test_a_new_run_inside_a_run_is_refused(tmp_path, inside):
    """train() into runs/ref/samples (or any folder in a run) started a run inside the run: its
    checkpoints, config.toml and event file among the run's preview grids (gan train refuses it)."""
    run_dir = _train(tiny_config(), tmp_path / "ref").run_dir
    before = sorted(path.relative_to(run_dir) for path in run_dir.rglob("*"))
    with pytest.raises(ConfigError, match=rf"^run_dir's parent '{run_dir}' is the run directory '{run_dir}': new "
                                          rf"runs there would mix with its files; give a folder of runs, such as "
                                          rf"'{tmp_path}'"):
        _train(tiny_config(), run_dir / inside)
    assert sorted(path.relative_to(run_dir) for path in run_dir.rglob("*")) == before


@pytest.mark.parametrize("build,name", [
    (lambda: DCGANGenerator(32, channels=0), "channels"),
    (lambda: DCGANGenerator(32, latent_dim=0), "latent_dim"),
    (lambda: DCGANDiscriminator(32, image_channels=0), "image_channels"),
    (lambda: UNetGenerator(channels=0), "channels"),
    (lambda: ResnetGenerator(in_channels=0), "in_channels"),
    (lambda: PatchDiscriminator(3, channels=0), "channels"),
    (lambda: PixelDiscriminator(0), "in_channels"),
    (lambda: SRResNet(4, channels=-1), "channels"),
    (lambda: SRGANDiscriminator(channels=2.5), "channels"),
])
def test_a_network_built_directly_refuses_a_size_below_one(build, name):
    """Built as plain nn.Modules (not through a config), they made layers of no channels, which failed
    in the first forward deep inside BatchNorm (`select(): index 0 out of range`)."""
    with pytest.raises(ValueError, match=rf"^{name} must be a whole number of at least 1, got "):
        build()


def test_a_network_built_directly_takes_numpy_sizes():
    """Sizes drawn from numpy (np.arange sweeps) built before the size check, and must still."""
    network = DCGANGenerator(32, channels=np.int64(8), latent_dim=np.int64(16))
    assert network(torch.zeros(2, 16)).shape == (2, 3, 32, 32)
