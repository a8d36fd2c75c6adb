"""The command surface end to end: gan train, gan sample, --help, errors."""

import signal
import warnings

import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, TINY, TINY_PIX2PIX, assert_one_error_line, invoke, only_run, run_folders, write_recipe_data
from PIL import Image

from gan.commands.main import main
from gan.data.decode import UnreadableImageWarning
from gan.nets.running import interpolation_latents, slerp

DEMO = str(REPO / "experiments" / "dcgan_demo.toml")


def _sets(*items):
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """The demo config, shrunk, trained for a few steps through the CLI."""
    out = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(main, ["train", DEMO, *_sets(*TINY), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    run_dir = only_run(out)
    return run_dir


def test_train_writes_a_complete_run_directory(trained_run):
    assert (trained_run / "config.toml").is_file()
    assert "resolution = 32" in (trained_run / "config.toml").read_text()
    assert sorted(p.name for p in trained_run.glob("*.pt")) == ["checkpoint-00000002.pt", "checkpoint-00000004.pt"]
    assert list(trained_run.glob("events.out.tfevents.*"))
    grid = Image.open(trained_run / "samples" / "00000004-generator_ema.png")
    assert grid.mode == "RGB" and grid.size == (2 + 2 * 34, 2 + 2 * 34)  # 4 samples of 32 px, 2 px padding


def test_sample_grid_separate_and_seed(trained_run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["sample", str(trained_run), "--n", "6", "--out", str(tmp_path / "a.png"),
                                  "--separate", str(tmp_path / "each"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "a.png").size == (2 + 3 * 34, 2 + 2 * 34)  # 6 images in 3 columns
    assert len(list((tmp_path / "each").glob("*.png"))) == 6
    runner.invoke(main, ["sample", str(trained_run / "checkpoint-00000004.pt"), "--n", "6",
                         "--out", str(tmp_path / "b.png"), "--seed", "3"])
    runner.invoke(main, ["sample", str(trained_run), "--n", "6", "--out", str(tmp_path / "c.png"), "--seed", "4"])
    same = Image.open(tmp_path / "a.png").tobytes() == Image.open(tmp_path / "b.png").tobytes()
    different = Image.open(tmp_path / "a.png").tobytes() != Image.open(tmp_path / "c.png").tobytes()
    assert same and different
    assert "EMA generator" in result.output


def test_sample_interpolation_strip(trained_run, tmp_path):
    result = CliRunner().invoke(main, ["sample", str(trained_run), "--interpolate", "5", "--n", "2",
                                       "--out", str(tmp_path / "walk.png")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "walk.png").size == (2 + 5 * 34, 2 + 2 * 34)  # 2 rows of 5


def test_sample_and_export_say_what_they_wrote_on_stderr_as_every_command_of_files_does(trained_run, tmp_path):
    """Their "wrote ..." lines were on stdout, where gan eval, translate, compare and bench keep results alone."""
    sampled = invoke("sample", trained_run, "--n", "2", "--out", tmp_path / "a.png", "--separate", tmp_path / "each")
    exported = invoke("export", trained_run, "--out", tmp_path / "g.safetensors")
    for result in (sampled, exported):
        assert result.exit_code == 0 and result.stdout == "", result.output
    assert f"wrote {tmp_path / 'a.png'} (2 images)" in sampled.stderr and f"wrote 2 PNGs to {tmp_path / 'each'}" in \
        sampled.stderr
    assert f"wrote {tmp_path / 'g.safetensors'} (" in exported.stderr
    assert f") and {tmp_path / 'g.safetensors.json'} from " in exported.stderr  # (its folder too: a name alone)


def test_slerp_ends_at_its_endpoints():
    start, end = torch.randn(3, 8), torch.randn(3, 8)
    path = slerp(start, end, torch.linspace(0, 1, 4))
    assert path.shape == (3, 4, 8)
    assert torch.allclose(path[:, 0], start, atol=1e-5) and torch.allclose(path[:, -1], end, atol=1e-5)
    assert interpolation_latents(2, 5, 8, seed=0).shape == (10, 8)


def test_an_interpolation_row_is_the_same_whatever_the_number_of_rows():
    """Row i ended at latent rows + i, so --n changed every walk but the first one's start."""
    from gan.nets.running import random_latents

    three, two = interpolation_latents(3, 4, 8, seed=1), interpolation_latents(2, 4, 8, seed=1)
    assert torch.equal(three[:8], two)
    samples = random_latents(6, 8, seed=1)  # row 1 walks from sample 2 to sample 3
    assert torch.allclose(three[4], samples[2], atol=1e-5) and torch.allclose(three[7], samples[3], atol=1e-5)


def command_paths(group=main, prefix=()) -> list[tuple[str, ...]]:
    """Every command of the group, as the words that invoke it (`("cache", "list")`)."""
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if hasattr(command, "commands"):
            paths += command_paths(command, (*prefix, name))
    return paths


def test_every_command_has_help_with_examples():
    runner = CliRunner()
    for command in (["--help"], ["train", "--help"], ["sample", "--help"]):
        result = runner.invoke(main, command)
        assert result.exit_code == 0
        assert "gan train" in result.output or "gan sample" in result.output
    assert "Examples" in runner.invoke(main, ["train", "--help"]).output
    assert {path[0] for path in command_paths()} == {"train", "sweep", "compare", "sample", "translate", "eval",
                                                    "export", "bench", "cache"}
    for path in command_paths():
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert f"Usage: main {' '.join(path)}" in result.output
        if len(path) == 1:  # each top-level command shows how it is used
            assert "Examples" in result.output and f"gan {path[0]}" in result.output, path


def test_every_default_cache_folder_a_help_names_is_the_one_used_under_xdg_cache_home():
    """gan eval --help gave ~/.cache/gan/reference-statistics alone, where $XDG_CACHE_HOME/gan/... is used when set."""
    import os
    import re
    from pathlib import Path

    from gan.data.cache import user_cache_dir

    named = set()
    for path in command_paths():
        output = CliRunner().invoke(main, [*path, "--help"]).output
        for folder in re.findall(r"~/\.cache/gan/([\w-]+)", output):
            named.add(folder)
            assert f"$XDG_CACHE_HOME/gan/{folder}" in output, (path, output)
    assert named == {"decoded", "reference-statistics"}
    # (the folder the helps name is where gan looks: conftest sets XDG_CACHE_HOME)
    assert all(user_cache_dir(folder) == Path(os.environ["XDG_CACHE_HOME"]) / "gan" / folder for folder in named)


def test_every_command_is_run_for_real_by_some_test():
    """Each command (and `gan cache` subcommand) is invoked with real arguments somewhere in tests/."""
    sources = "".join(path.read_text() for path in (REPO / "tests").glob("test_*.py"))
    untested = [path for path in command_paths()
                if not any(pattern in sources for pattern in (
                    "invoke(main, [" + ", ".join(f'"{word}"' for word in path) + ",",
                    "invoke(group, [" + ", ".join(f'"{word}"' for word in path) + ","))]
    assert untested == []


@pytest.mark.parametrize("args, message", [
    (["train", DEMO, "--set", "train.stepz=3"], "unknown config key 'train.stepz'"),
    (["train", DEMO, "--set", "train.steps=many"], "train.steps: expected int"),
    (["train", DEMO, "--set", "data.dataset=folder", "--set", "data.root=/no/such/folder"],
     "image folder '/no/such/folder' does not exist"),
    (["train"], "give a CONFIG file, or --resume RUN_DIR"),
])
def test_train_errors_are_clear_and_make_no_run(tmp_path, args, message):
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "runs").exists() or not any(p.is_dir() for p in (tmp_path / "runs").iterdir())


def test_resume_given_a_checkpoint_file_names_its_run_directory(tmp_path):
    # click answered "Directory '...pt' is a file." with no way on
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    checkpoint = run_dir / "checkpoint-00000004.pt"
    checkpoint.write_bytes(b"")
    result = CliRunner().invoke(main, ["train", "--resume", str(checkpoint)])
    assert result.exit_code == 2
    assert (f"--resume takes a run directory, and '{checkpoint}' is a file: give --resume {run_dir}, which "
            "continues from the newest checkpoint there") in " ".join(result.output.split())


def test_ctrl_c_before_a_command_handles_it_exits_130_not_click_abort(tmp_path, monkeypatch):
    # Ctrl-C while torch imports (before train's handlers) printed "Aborted!" and exited with 1
    def pressed():
        raise KeyboardInterrupt

    monkeypatch.setattr("gan.commands.train.interrupt_on_sigterm", pressed)
    result = CliRunner().invoke(main, ["train", DEMO, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 130 and "Aborted!" not in result.output
    assert "error: stopped by Ctrl-C" in result.output
    assert not (tmp_path / "runs").exists()


def test_a_warning_of_a_check_made_twice_in_a_run_is_said_once(tmp_path):
    # The U-Net's inert dropout was said twice: the recipe's networks are checked when the config is
    # loaded and again when built, and any catch_warnings between them clears Python's once-per-line record
    data = write_recipe_data(tmp_path / "data")
    settings = [*TINY_PIX2PIX, f"data.root={data['paired']}", "model.generator_args.dropout=0.5", "train.steps=1"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke("train", REPO / "experiments" / "pix2pix_facades.toml", *_sets(*settings),
                        "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    said = [str(warning.message) for warning in caught if "dropout = 0.5 changes nothing" in str(warning.message)]
    assert len(said) == 1, said


def test_torch_that_cannot_be_mapped_under_an_address_space_limit_is_one_line(tmp_path, monkeypatch):
    # Under `ulimit -v 3000000` every command ended in an ImportError traceback from the dynamic loader
    def unmappable():
        raise ImportError("libtorch_cpu.so: failed to map segment from shared object")

    monkeypatch.setattr("gan.commands.train.interrupt_on_sigterm", unmappable)
    result = invoke("train", DEMO, "--out", tmp_path / "runs")
    assert_one_error_line(result, "torch's libraries could not be loaded (libtorch_cpu.so: failed to map segment "
                                  "from shared object): this process's address-space limit (ulimit -v) is below")
    monkeypatch.setattr("gan.commands.train.interrupt_on_sigterm", lambda: (_ for _ in ()).throw(ImportError("x")))
    assert isinstance(invoke("train", DEMO, "--out", tmp_path / "runs").exception, ImportError)  # (another: as it is)


def test_sample_errors(tmp_path):
    result = CliRunner().invoke(main, ["sample", str(tmp_path), "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "is no run directory: it holds no checkpoint-*.pt and no config.toml" in \
        result.output


def test_the_demo_config_itself_runs(tmp_path):
    """The shipped demo config, unshrunk, for two steps."""
    result = CliRunner().invoke(main, ["train", DEMO, "--set", "train.steps=2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    run_dir = only_run(tmp_path)
    assert (run_dir / "checkpoint-00000002.pt").is_file()


def test_a_file_that_fails_in_a_loader_worker_under_strict_is_one_line_after_a_checkpoint(tmp_path):
    """A damaged file passes the scan and fails mid-run in a DataLoader worker, which re-raises it
    wrapped in the worker's traceback: the error is the file's one line, and the steps trained are kept."""
    from conftest import damage_past_the_header, random_rgb

    images = tmp_path / "images"
    images.mkdir()
    for index in range(40):
        random_rgb((20, 20), index).save(images / f"{index:02d}.png")
    damage_past_the_header(images / "30.png")
    args = ["train", DEMO, *_sets(*TINY, "data.dataset=folder", f"data.root={images}", "train.steps=20",
                                  "train.batch_size=8", "data.num_workers=2", "train.checkpoint_every=20"),
            "--strict", "--out", str(tmp_path / "runs")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "Original Traceback" not in result.output and "Caught ImageReadError" not in result.output
    assert "reading the training data failed at step" in result.output
    assert "(ImageReadError: cannot read image '" in result.output and "30.png': image file is truncated" in result.output
    run_dir = only_run(tmp_path / "runs")
    checkpoints = sorted(run_dir.glob("checkpoint-*.pt"))
    assert len(checkpoints) == 1 and f"training stopped with a checkpoint of step {int(checkpoints[0].stem[-8:])}" \
        in result.output and f"gan train --resume {run_dir}" in result.output


def test_loader_workers_out_of_shared_memory_say_so_and_end_at_once(tmp_path, monkeypatch):
    """Docker's 64 MB /dev/shm is too small for the workers' batches: torch's "unable to allocate shared
    memory(shm) ... No space left on device" read as a full disk, with no advice; and the error's traceback
    kept the loader, so its workers lived to the exit, which waited 10 s for them (they outlive a SIGTERM
    by WORKER_SIGTERM_GRACE_S) and ended in torch's traceback of workers killed by SIGALRM."""
    from torch.utils.data import get_worker_info

    import gan.training.loop as loop
    from gan.data.synthetic import SyntheticFaces

    fetched = []  # (each forked worker appends to its own copy)
    item = SyntheticFaces.__getitem__

    def out_of_shared_memory(self, key):
        if get_worker_info() is not None:
            fetched.append(key)
            if len(fetched) > 16:  # (each worker's third batch of 8: steps 1-4 train)
                raise RuntimeError("unable to allocate shared memory(shm) for file </torch_27199_2797678509_2>: "
                                   "No space left on device (28)")
        return item(self, key)

    monkeypatch.setattr(SyntheticFaces, "__getitem__", out_of_shared_memory)
    loaders, batches = [], loop.training_batches
    monkeypatch.setattr(loop, "training_batches", lambda *args, **kwargs: loaders.append(batches(*args, **kwargs))
                        or loaders[-1])
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", DEMO, *_sets(*TINY, "data.num_workers=2", "train.steps=20",
                                                            "train.checkpoint_every=1"), "--run-dir", str(run)])
    line = assert_one_error_line(result, "reading the training data failed at step 4 (the shared memory that the 2 "
                                 "loader workers hand their batches over in is too small: /dev/shm",
                                 "a checkpoint of step 4", "docker run --shm-size=2g, or --ipc=host",
                                 'data.cache = "mmap"', "fewer data.num_workers", "a smaller train.batch_size",
                                 f"then: gan train --resume {run}")
    assert "No space left on device" not in line
    assert loaders[0]._workers and not any(worker.is_alive() for worker in loaders[0]._workers)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_strict_data_error_before_the_first_step_leaves_no_run_directory(workers, tmp_path):
    """Every file passes the scan and fails to decode: the run fails before its first step (in the
    collapse checks' first real images, or the first batch), so nothing of it is worth keeping:
    config.toml and an empty event file used to stay, and made it look like a run to resume."""
    from conftest import random_rgb

    images = tmp_path / "images"
    images.mkdir()
    for index in range(16):
        random_rgb((20, 20), index).save(images / f"{index:02d}.png")
        (images / f"{index:02d}.png").write_bytes((images / f"{index:02d}.png").read_bytes()[:-200])
    args = ["train", DEMO, *_sets(*TINY, "data.dataset=folder", f"data.root={images}",
                                  f"data.num_workers={workers}"), "--strict", "--out", str(tmp_path / "runs")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "image file is truncated" in result.output
    assert run_folders(tmp_path / "runs") == []
    assert "--resume" not in result.output


def test_bad_files_are_skipped_and_counted_or_fatal_with_strict(tmp_path):
    from conftest import random_rgb

    images = tmp_path / "images"
    images.mkdir()
    for index in range(4):
        random_rgb((40, 40), index).save(images / f"{index}.png")
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    args = ["train", DEMO, *_sets(*TINY, "data.dataset=folder", f"data.root={images}", "train.steps=1"),
            "--out", str(tmp_path / "runs")]
    runner = CliRunner()
    with pytest.warns(UnreadableImageWarning, match="broken.jpg"):
        result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "1 unreadable image file(s) of the training set were skipped" in result.output
    strict = runner.invoke(main, [*args, "--strict"])
    assert strict.exit_code == 2 and "broken.jpg" in strict.output


def test_values_rejected_by_a_network_constructor_are_config_errors(tmp_path):
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "pix2pix_facades.toml"),
                                       "--set", "model.generator_args.norm=layer", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown norm 'layer'" in result.output


def test_a_resolution_the_unet_cannot_take_is_a_config_error(tmp_path):
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "pix2pix_facades.toml"),
                                       "--set", "data.resolution=200", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "data.resolution (200) must be a multiple of 256" in result.output


def test_a_resolution_the_resnet_generator_cannot_take_is_a_config_error(tmp_path):
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "cyclegan_horse2zebra.toml"),
                                       "--set", "data.resolution=30", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "data.resolution (30) must be a multiple of 4" in result.output, result.output
    # A multiple of 4 below the ResNet's smallest input: its norms failed at step 1, with a traceback.
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "cyclegan_horse2zebra.toml"),
                                       "--set", "data.resolution=4", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "data.resolution (4) must be at least 8 for generator 'resnet_9blocks'" \
        in result.output, result.output


def test_a_crop_the_srgan_discriminator_cannot_take_is_a_config_error(tmp_path, monkeypatch):
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "srgan_x4.toml"), "--set",
                                       "model.init_generator=none", "--set", "data.resolution=16", "--set",
                                       "train.batch_size=1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "data.resolution = 16 with train.batch_size = 1 is too small for the SRGAN " \
        "discriminator" in result.output, result.output
    # Under torchrun each process's BatchNorm sees its share: 2 over 2 processes is 1 each.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    from gan.core.registry import ConfigError
    from gan.recipes.srgan import SRGANRecipe
    from gan.training.resolve import load_config

    config = load_config(REPO / "experiments" / "srgan_x4.toml", ["model.init_generator=none", "data.resolution=16",
                                                                  "train.batch_size=2"])
    with pytest.raises(ConfigError, match=r"train.batch_size = 2 over 2 processes \(1 each\) is too small"):
        SRGANRecipe.network_specs(config)


def test_one_lr_pixel_of_one_image_is_refused_for_the_batchnorm_generator(tmp_path):
    # srresnet's BatchNorm on a 1x1 LR crop of one image: a traceback at step 1 before
    command = ["train", str(REPO / "experiments" / "srresnet_x4.toml"), "--set", "data.resolution=4", "--set",
               "train.batch_size=1", "--set", "model.generator_args.num_blocks=1", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2 and "data.resolution = 4 at data.scale = 4 (1x1 LR crops) with train.batch_size = 1 " \
        "is too small for the srresnet generator's BatchNorm" in result.output, result.output
    assert not [path for path in tmp_path.iterdir() if path.is_dir()]  # no run left behind
    from gan.recipes.srgan import SRGANRecipe
    from gan.training.resolve import load_config

    for fits in (["train.batch_size=2"], ["data.resolution=8"], ["model.generator_args.batch_norm=false"]):
        config = load_config(REPO / "experiments" / "srresnet_x4.toml", [*command[3:6:2], *fits])
        assert "generator" in SRGANRecipe.network_specs(config)


def test_weights_that_do_not_fit_their_spec_are_a_clear_error(trained_run, tmp_path):
    from gan.core.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(trained_run / "checkpoint-00000004.pt")
    state["specs"]["generator"]["kwargs"]["channels"] = 16  # the stored weights were trained with 8
    edited = tmp_path / "edited.pt"
    save_checkpoint(state, edited)
    result = CliRunner().invoke(main, ["sample", str(edited), "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "do not fit generator 'dcgan'" in result.output


def test_unknown_device_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["train", DEMO, "--device", "tpu", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown device 'tpu'" in result.output


def test_gan_and_python_m_gan_are_one_command_group():
    """The installed `gan` script and `python -m gan` start the same group (issue 30 moved it)."""
    import importlib
    import subprocess
    import sys
    import tomllib

    module, attribute = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["gan"].split(":")
    assert getattr(importlib.import_module(module), attribute) is main
    result = subprocess.run([sys.executable, "-m", "gan", "--help"], capture_output=True, text=True, cwd=REPO,
                            timeout=120)
    assert result.returncode == 0, result.stderr

    def commands(help_text: str) -> list[str]:
        return [line.split()[0] for line in help_text.split("Commands:")[1].splitlines() if line.startswith("  ")
                and not line.startswith("   ")]

    assert commands(result.stdout) == commands(CliRunner().invoke(main, ["--help"]).output)
    assert {"train", "sweep", "compare", "sample", "translate", "eval", "export", "bench", "cache"} <= set(
        commands(result.stdout))


def test_eval_refuses_options_the_checkpoint_kind_does_not_read(trained_run, tmp_path):
    result = CliRunner().invoke(main, ["eval", str(trained_run), "--metrics", "swd", "--n", "8",
                                       "--csv", str(tmp_path / "e.csv"), "--tile", "64"])
    assert result.exit_code == 2 and "--csv, --tile apply to image-to-image checkpoints" in result.output, result.output
    assert "is an unconditional (dcgan) checkpoint" in result.output and not (tmp_path / "e.csv").exists()
    # Inception weights where the metrics asked for use none were checked, then dropped without a word
    (tmp_path / "weights.pt").write_bytes(b"not weights")
    result = CliRunner().invoke(main, ["eval", str(trained_run), "--metrics", "swd", "--n", "8", "--inception-weights",
                                       str(tmp_path / "weights.pt"), "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 2 and "--metrics swd uses no weights" in result.output, result.output
    assert not (tmp_path / "e.json").exists()
    # a --data folder none of whose images decode is --data's, not data.root's
    (tmp_path / "bogus").mkdir()
    (tmp_path / "bogus" / "0.png").write_bytes(b"no png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(main, ["eval", str(trained_run), "--metrics", "swd", "--n", "8", "--data",
                                           str(tmp_path / "bogus"), "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 2 and result.output.rstrip().endswith("the folder is set by --data"), result.output


def test_a_usage_error_is_one_error_line_as_every_other_refusal(tmp_path):
    # click's three lines ("Usage: ...", "Try ...", "Error: ...") ended `--out` with `--resume`, an unknown option
    # or a --seed out of range in a capital "Error:", where gan's own refusals of the same command say "error:"
    for arguments, said in ((["train", "--bogus"], "--bogus"),  # (click's words for it differ between versions)
                            (["sample", str(tmp_path / "gone"), "--out", "s.png"], "Path '"),
                            (["trian"], "No such command 'trian'")):
        result = CliRunner().invoke(main, arguments)
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and result.output.startswith("error: ") and said in result.output
        where = "main" if arguments[0] == "trian" else f"main {arguments[0]}"
        assert result.output.endswith(f" (see '{where} --help')\n"), result.output


def test_a_usage_error_is_one_line_on_a_click_without_no_args_is_help_error(monkeypatch):
    """click before 8.2 has no NoArgsIsHelpError: every usage error (`gan train --bogus`, `gan trian`) was an
    AttributeError's traceback as gan asked whether it was `gan` alone."""
    bare = CliRunner().invoke(main, [])
    assert bare.exit_code == 2 and "Commands:" in bare.output  # (this click: `gan` alone still shows the help)
    monkeypatch.delattr("click.exceptions.NoArgsIsHelpError")
    for arguments in (["train", "--bogus"], ["trian"]):
        result = CliRunner().invoke(main, arguments)
        assert result.exit_code == 2 and result.output.startswith("error: "), result.output
        assert result.output.count("\n") == 1, result.output


@pytest.mark.parametrize("rank, local_rank, quiet", [("0", "0", False), ("1", "1", True), ("2", "0", False),
                                                     ("3", "1", True)])
def test_under_torchrun_a_usage_error_is_printed_by_rank_0_alone(monkeypatch, rank, local_rank, quiet):
    # and on another machine, whose command line may differ, by its first process (it said nothing)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    monkeypatch.setattr("gan.commands.main.USAGE_ERROR_GRACE_S", 0)
    for arguments, said in ((["trian"], "No such command 'trian'"), (["train", "--stirct"], "No such option")):
        result = CliRunner().invoke(main, arguments)
        assert result.exit_code == 2 and (result.output == "" if quiet else said in result.output), result.output


def test_a_stop_request_of_another_torchrun_process_is_not_announced(capsys):
    import signal

    from gan.training.stop import StopRequest

    for announce in (True, False):
        with StopRequest(announce=announce) as stop:
            signal.raise_signal(signal.SIGTERM)
        assert stop.signal_name == "SIGTERM"
        assert ("received SIGTERM" in capsys.readouterr().err) == announce


@pytest.mark.skipif(not hasattr(signal, "SIGCHLD"), reason="SIGCHLD is POSIX")
def test_once_a_stop_is_noted_a_loader_workers_death_raises_nothing():
    """PyTorch's SIGCHLD handler raises for a loader worker that died wherever the trainer is: a worker
    killed with the job just after the trainer's SIGTERM (a scheduler's SIGKILL of every process) failed
    the step or the save, and the run ended as a dead worker (exit 1) without its checkpoint."""
    from gan.training.stop import StopRequest

    def worker_died(signum, frame):
        raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Killed.")

    previous = signal.signal(signal.SIGCHLD, worker_died)
    try:
        with StopRequest(announce=False) as stop:
            with pytest.raises(RuntimeError, match="DataLoader worker"):  # before a stop: the error, as ever
                signal.raise_signal(signal.SIGCHLD)
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGCHLD)
        assert stop.signal_name == "SIGTERM" and signal.getsignal(signal.SIGCHLD) is worker_died
    finally:
        signal.signal(signal.SIGCHLD, previous)


def test_a_quoted_tilde_in_a_path_option_is_the_home_folder_not_a_folder_named_tilde(tiny_demo_run, tmp_path,
                                                                                    monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    result = invoke("sample", tiny_demo_run, "--n", "2", "--out", "~/faces.png", "--separate", "~/each")
    assert result.exit_code == 0, result.output
    assert (home / "faces.png").is_file() and (home / "each" / "00001.png").is_file()
    assert not (work / "~").exists()


def test_a_quoted_environment_variable_in_a_path_option_is_refused_not_made_a_folder(tiny_demo_run, tmp_path,
                                                                                     monkeypatch):
    """A quoted `--out '${HOME}/faces.png'` (as a job file gives it) wrote into a folder named `${HOME}` in
    the working folder, without a word, where a config's path keys refuse a `$VARIABLE`."""
    monkeypatch.chdir(tmp_path)
    for option, value in (("--out", "${HOME}/faces.png"), ("--separate", "$HOME/each")):
        result = invoke("sample", tiny_demo_run, "--n", "2", option, value)
        assert result.exit_code == 2 and (f"'{value}': gan expands no environment variables in paths (a shell does, "
                                          f"in an unquoted {option} $HOME/...); write the path out") in " ".join(
            result.output.split()), result.output
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "$HOME" / "each").mkdir(parents=True)  # (a folder of that very name: taken as written)
    result = invoke("sample", tiny_demo_run, "--n", "2", "--separate", "$HOME/each")
    assert result.exit_code == 0 and (tmp_path / "$HOME" / "each" / "00001.png").is_file(), result.output


@pytest.mark.parametrize("option", ["--separate", "--out"])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(tiny_demo_run, tmp_path, monkeypatch, option):
    """`--separate ""` wrote the samples into the folder the command ran in, unasked (Path("") is ".")."""
    monkeypatch.chdir(tmp_path)
    result = invoke("sample", tiny_demo_run, "--n", "2", option, "")
    assert result.exit_code == 2 and "an empty path; give a" in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_a_second_stop_signal_is_not_announced_again_and_ctrl_c_is_offered_only_from_a_terminal(capsys, monkeypatch):
    import signal

    from gan.training import stop as stop_module

    for at_terminal in (True, False):
        monkeypatch.setattr(stop_module, "ctrl_c_reaches_this_process", lambda at_terminal=at_terminal: at_terminal)
        with stop_module.StopRequest() as stop:
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)  # (a sweep passing its own stop on, `timeout`'s second)
        said = capsys.readouterr().err
        assert stop.signal_name == "SIGTERM" and said.count("received SIGTERM") == 1, said
        assert ("Ctrl-C again" in said) == at_terminal, said


def test_a_numbered_run_that_does_not_exist_names_the_runs_of_that_name(tmp_path):
    """The docs' runs/00000-dcgan_celeba128 is 00001 after the demo: click said only "does not exist"."""
    for name in ("00001-dcgan_celeba128", "00002-pix2pix_facades"):
        (tmp_path / "runs" / name).mkdir(parents=True)
    for command in (["sample", str(tmp_path / "runs" / "00000-dcgan_celeba128"), "--out", str(tmp_path / "x.png")],
                    ["train", "--resume", str(tmp_path / "runs" / "00000-dcgan_celeba128")]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2 and f"'{tmp_path / 'runs'}' holds 00001-dcgan_celeba128 (gan train numbers" \
            in " ".join(result.output.split()), result.output
    other = CliRunner().invoke(main, ["sample", str(tmp_path / "runs" / "00000-cyclegan"), "--out", "x.png"])
    assert other.exit_code == 2 and "holds" not in other.output and "does not exist" in other.output


def test_a_stop_signal_is_announced_past_stderrs_buffer_which_the_handler_may_have_interrupted(monkeypatch):
    # the handler ran while the main thread was inside stderr's buffered write (a log's progress line),
    # wrote through it again: "RuntimeError: reentrant call", and the run stopped as a failed side task
    import os
    import signal
    import sys

    from gan.training import stop as stop_module

    class MidWrite:  # stderr as the handler finds it mid-write: its buffer must not be entered again
        encoding = "utf-8"

        def __init__(self, descriptor):
            self.descriptor = descriptor

        def fileno(self):
            return self.descriptor

        def isatty(self):
            return False

        def write(self, text):
            raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stderr>'>")

        def flush(self):
            raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stderr>'>")

    read_end, write_end = os.pipe()
    monkeypatch.setattr(sys, "stderr", MidWrite(write_end))
    monkeypatch.setattr(stop_module, "ctrl_c_reaches_this_process", lambda: False)
    try:
        with stop_module.StopRequest() as stop:
            signal.raise_signal(signal.SIGTERM)
        assert stop.signal_name == "SIGTERM"
        os.close(write_end)
        assert os.read(read_end, 1000).decode() == "received SIGTERM: saving a checkpoint after this step\n"
    finally:
        os.close(read_end)


def test_a_stop_signal_is_announced_where_a_notebooks_stderr_writes_not_to_its_descriptor(monkeypatch):
    # In Jupyter the notice went to the terminal the kernel was started from: ipykernel's stderr gives
    # that terminal's descriptor as its fileno(), while its write() goes to the notebook.
    import os
    import signal
    import sys

    from gan.training import stop as stop_module

    class NotebookStream:  # (not a file object of io's own: its writes need not reach its descriptor)
        encoding = "utf-8"

        def __init__(self, descriptor):
            self.descriptor = descriptor
            self.written = []

        def fileno(self):
            return self.descriptor

        def isatty(self):
            return False

        def write(self, text):
            self.written.append(text)
            return len(text)

        def flush(self):
            pass

    read_end, write_end = os.pipe()
    notebook = NotebookStream(write_end)
    monkeypatch.setattr(sys, "stderr", notebook)
    monkeypatch.setattr(stop_module, "ctrl_c_reaches_this_process", lambda: False)
    try:
        with stop_module.StopRequest() as stop:
            signal.raise_signal(signal.SIGTERM)
        assert stop.signal_name == "SIGTERM"
        assert "".join(notebook.written) == "received SIGTERM: saving a checkpoint after this step\n"
        os.close(write_end)
        assert os.read(read_end, 1000) == b""  # (nothing to the kernel's terminal)
    finally:
        os.close(read_end)


@pytest.mark.parametrize("dataset", ["folder", "paired"])
def test_a_missing_relative_data_root_names_the_folder_it_was_read_from(tmp_path, monkeypatch, dataset):
    # A resume from another folder than the run started in said only "image folder 'faces' does not exist"
    # (the run read /data/faces): nothing said the path was read from the folder gan ran in.
    from gan.core.registry import ConfigError
    from gan.data import check_data_folders
    from gan.training.resolve import load_config

    monkeypatch.chdir(tmp_path)
    config = DEMO if dataset == "folder" else str(REPO / "experiments" / "pix2pix_facades.toml")
    here = f"a relative path, read from the folder gan runs in, '{tmp_path}'"
    result = CliRunner().invoke(main, ["train", config, "--set", f"data.dataset={dataset}", "--set", "data.root=faces",
                                       "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and here in result.output and "or give it as an absolute path" in result.output, \
        result.output
    with pytest.raises(ConfigError, match=f"data.root 'faces' does not exist \\({here}"):
        check_data_folders(load_config(config, [f"data.dataset={dataset}", "data.root=faces"]).data)
    absolute = CliRunner().invoke(main, ["train", config, "--set", f"data.dataset={dataset}", "--set",
                                         f"data.root={tmp_path / 'faces'}", "--out", str(tmp_path / "runs")])
    assert absolute.exit_code == 2 and "does not exist" in absolute.output and "a relative path" not in absolute.output
