"""Nonsense is refused before anything runs, in one line naming the key and what was expected:
values that would train something else than asked, or crash later with a raw traceback."""

import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, random_rgb, save_torchscript

from gan.commands.main import main
from gan.core.config import dump_config
from gan.core.registry import ConfigError
from gan.data.paired import paired_dataset
from gan.training.resolve import load_config


@pytest.mark.parametrize("assignment, expected", [
    ("train.g_lr=1" + "0" * 400, "train.g_lr must be a finite number, got an integer of 401 digits"),  # OverflowError
    ("train.g_lr=1e400", "train.g_lr must be a finite number >= 0, got inf"),
    # an integer key's range check overflowed float(): a traceback
    ("train.steps=1" + "0" * 400, "train.steps = an integer of 401 digits does not fit in 64 bits"),
    ("data.resolution=-1" + "0" * 400, "data.resolution = an integer of 401 digits does not fit in 64 bits"),
    ("train.d_lr=inf", "train.d_lr must be a finite number >= 0, got inf"),
    ("data.synthetic_size=0", "data.synthetic_size must be in [1, 10000000], got 0"),  # a ZeroDivisionError before
    ("loss.gp_weight=-10", "loss.gp_weight must be >= 0.0, got -10"),  # the penalty would become a reward
    ("loss.vgg_feature_scale=-1", "loss.vgg_feature_scale must be a finite number > 0, got -1"),
    # (0: a perceptual loss of 0 on every step, and the generator trained on nothing)
    ("loss.vgg_feature_scale=0", "loss.vgg_feature_scale must be a finite number > 0, got 0"),
    ("log.num_samples=100000000", "log.num_samples must be in [1, 1024], got 100000000"),  # allocation error
    ("data.resolution=1000000", "data.resolution must be in [1, 8192]"),
    ("metrics.root=/data/held-out", "metrics.root is read as [data] says, and data.dataset 'synthetic' has no"),
])
def test_values_that_would_crash_or_mislead_are_refused(assignment, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", "\\[").replace("(", "\\(")):
        load_config(REPO / "experiments" / "dcgan_demo.toml", [assignment])


def test_an_integer_of_thousands_of_digits_is_refused_not_pythons_traceback(tmp_path):
    # past 4,300 digits Python's own int() raises ValueError, inside TOML's reader: a traceback
    digits = "1" + "0" * 5000
    with pytest.raises(ConfigError, match=r"--set train.steps: an integer too long to read .*5001 digits"):
        load_config(REPO / "experiments" / "dcgan_demo.toml", [f"train.steps={digits}"])
    (tmp_path / "big.toml").write_text(f'recipe = "dcgan"\n[train]\nsteps = {digits}\n')
    with pytest.raises(ConfigError, match=r"big.toml: an integer too long to read"):
        load_config(tmp_path / "big.toml")


def test_every_string_written_to_config_toml_reads_back(tmp_path):
    # Control characters once made a config.toml that the next --resume could not read.
    text = "".join(chr(code) for code in range(1, 32)) + "\x7f quote\" back\\slash é ☃"
    config = load_config(None, [f"data.root={text}", "metrics.cache_dir=a\tb\rc"])
    path = tmp_path / "config.toml"
    path.write_text(dump_config(config), encoding="utf-8")
    again = load_config(path)
    assert again.data.root == text and again.metrics.cache_dir == "a\tb\rc"
    assert again == config


def test_command_line_bytes_that_are_not_utf8_are_refused_not_written():
    # A shell passes undecodable bytes as lone surrogates; config.toml could not hold them.
    with pytest.raises(ConfigError, match="data.root holds bytes that are not UTF-8 text"):
        load_config(None, ["data.root=/data/caf\udce9"])


def test_a_value_that_is_not_utf8_is_named_by_its_bytes_with_what_to_do():
    # the message showed '/data/caf\\udce9' (a doubled backslash and a surrogate, no byte a user can find)
    # and said nothing of what to do
    with pytest.raises(ConfigError) as error:
        load_config(None, ["data.root=/data/caf\udce9"])
    assert "('/data/caf\\xe9': bytes of another encoding)" in str(error.value) and "rename it, or link to it from a " \
        "path that is UTF-8 text" in str(error.value), str(error.value)


def test_a_config_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('recipe = "dcgan"\n[data]\nroot = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.toml: not UTF-8 text"):
        load_config(path)
    result = CliRunner().invoke(main, ["train", str(path)])
    assert result.exit_code == 2 and "not UTF-8 text" in result.output and "Traceback" not in result.output


def test_keys_of_another_recipe_are_warned_about():
    with pytest.warns(UserWarning, match=r"recipe 'dcgan' ignores loss.l1_weight = 5.0 \(pix2pix only\); "
                                         r"loss.cycle_weight = 3.0 \(cyclegan only\)"):
        load_config(REPO / "experiments" / "dcgan_demo.toml", ["loss.cycle_weight=3", "loss.l1_weight=5"])


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.toml")), ids=lambda path: path.name)
def test_no_shipped_config_sets_a_key_its_recipe_ignores(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(path)


def test_a_split_folder_named_in_other_case_is_pointed_at(tmp_path):
    """A root of Train/ and Val/ (a Windows user's) was "'root/train' does not exist", naming neither."""
    for split in ("Train", "Val"):
        (tmp_path / split).mkdir()
        random_rgb((32, 16), seed=0).save(tmp_path / split / "0.png")
    with pytest.raises(FileNotFoundError, match="holds 'Train/' \\(folder names are case-sensitive\\): name the "
                                                "split \"Train\""):
        paired_dataset(tmp_path, "train", 16)
    assert len(paired_dataset(tmp_path, "Train", 16, load_size=16)) == 1


def test_paired_folders_with_two_files_of_one_name_are_refused(tmp_path):
    # A/0.png and A/0.jpg: one of them was silently dropped.
    for side in ("A", "B"):
        (tmp_path / "train" / side).mkdir(parents=True)
        for index in range(2):
            random_rgb((16, 16), seed=index).save(tmp_path / "train" / side / f"{index}.png")
    random_rgb((16, 16), seed=9).save(tmp_path / "train" / "A" / "0.jpg")
    with pytest.raises(ValueError, match=r"0\.(png|jpg)' and .*0\.(png|jpg)' have the same name without extension"):
        paired_dataset(tmp_path, "train", 16)


def test_paired_files_whose_names_differ_only_in_unicode_form_are_said_to(tmp_path):
    """A/café.png written by macOS (decomposed) beside a café.png typed here (composed): the error
    showed two paths that print alike."""
    import unicodedata

    for side in ("A", "B"):
        (tmp_path / "train" / side).mkdir(parents=True)
        random_rgb((16, 16), seed=0).save(tmp_path / "train" / side / "café.png")
    random_rgb((16, 16), seed=1).save(tmp_path / "train" / "A" / unicodedata.normalize("NFD", "café.jpg"))
    with pytest.raises(ValueError, match=r"have the same name without extension \(their names differ only in "
                                         "Unicode form"):
        paired_dataset(tmp_path, "train", 16)
    (tmp_path / "train" / "A" / unicodedata.normalize("NFD", "café.jpg")).unlink()
    for folder in (unicodedata.normalize("NFC", "Zoë"), unicodedata.normalize("NFD", "Zoë")):  # (folders that differ)
        for side in ("A", "B"):
            (tmp_path / "train" / side / folder).mkdir()
            random_rgb((16, 16), seed=2).save(tmp_path / "train" / side / folder / "x.png")
    with pytest.raises(ValueError, match=r"x.png' have the same name without extension \(their names differ only in "
                                         "Unicode form"):
        paired_dataset(tmp_path, "train", 16)


def test_a_vgg_weights_file_holding_pickled_objects_is_refused_in_one_line(tmp_path):
    import datetime

    import torch

    from gan.nets.vgg import VGGFeatures

    path = tmp_path / "vgg19.pth"
    torch.save({"features.0.weight": torch.zeros(1), "payload": datetime.datetime(2026, 1, 1)}, path)
    with pytest.raises(ValueError, match=r"vgg19.pth' is not a plain PyTorch state dict of vgg19 weights "
                                         r"\(loss.vgg_weights\): it holds Python objects besides tensors") as error:
        VGGFeatures("relu2_2", "vgg19", str(path))
    assert "weights_only" not in str(error.value)


def test_a_torchscript_archive_as_vgg_or_inception_weights_is_named_as_one_without_torchs_warning(tmp_path):
    """clean-fid's inception-2015-12-05.pt (TorchScript) was "a damaged or truncated torch file", after torch's
    warning that it looks like a TorchScript archive: the same file downloaded again met the same error."""
    from gan.metrics.inception import read_inception_weights
    from gan.nets.vgg import VGGFeatures

    archive = save_torchscript(tmp_path / "inception-2015-12-05.pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=r"\(loss.vgg_weights\): a TorchScript archive \(compiled code, which gan "
                                             r"does not load\); give torchvision's vgg19 state dict, vgg19-dcbb9e9d.pth"):
            VGGFeatures("relu2_2", "vgg19", str(archive))
        with pytest.raises(ValueError, match=r"Inception-v3 weights .*: a TorchScript archive \(compiled code, which gan "
                                             r"does not load\); give the plain state dict torch-fidelity and pytorch-fid "
                                             r"read \(not clean-fid's TorchScript inception-2015-12-05.pt\)$"):
            read_inception_weights(archive)
    assert not [str(warning.message) for warning in caught], [str(warning.message) for warning in caught]
    assert torch.jit.load(archive) is not None  # (whole: a TorchScript archive, not a damaged file)


@pytest.mark.parametrize("legacy", [False, True])
def test_a_truncated_weights_file_is_called_truncated(tmp_path, legacy):
    # It was "not a torch file, or it holds pickled objects": a cut download reads as neither.
    import torch

    from gan.metrics.inception import WEIGHTS_FILE, load_inception
    from gan.nets.vgg import VGGFeatures

    whole = tmp_path / "whole.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, whole, _use_new_zipfile_serialization=not legacy)
    for name in ("vgg19.pth", WEIGHTS_FILE):
        (tmp_path / name).write_bytes(whole.read_bytes()[:len(whole.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"\(loss.vgg_weights\): a damaged or truncated torch file"):
        VGGFeatures("relu2_2", "vgg19", str(tmp_path / "vgg19.pth"))
    with pytest.raises(ValueError, match=r"Inception-v3 weights .*: a damaged or truncated torch file"):
        load_inception(str(tmp_path / WEIGHTS_FILE), torch.device("cpu"))


def test_a_read_only_or_misplaced_output_folder_ends_in_one_line_naming_it(tmp_path, monkeypatch):
    """Root ignores permissions, so a read-only disk is stood in for by mkdir raising EROFS; a
    file where a folder belongs is real."""
    import errno
    from pathlib import Path

    demo = str(REPO / "experiments" / "dcgan_demo.toml")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("a file, not a folder")
    sweep = CliRunner().invoke(main, ["sweep", demo, "--grid", "train.steps=1", "--out", str(a_file / "sweeps")])
    assert sweep.exit_code == 2 and "Traceback" not in sweep.output, sweep.output
    assert f"error: '{a_file / 'sweeps'}': Not a directory (a part of the path is a file" in sweep.output

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    train = CliRunner().invoke(main, ["train", demo, "--set", "train.steps=1", "--out", str(tmp_path / "runs")])
    assert train.exit_code == 2 and "Traceback" not in train.output, train.output
    assert f"error: '{tmp_path / 'runs'}': Read-only file system (the file system is read-only" in train.output


def test_outputs_into_a_read_only_folder_are_refused_before_any_work(tiny_demo_run, tmp_path, monkeypatch):
    """gan eval of a run on a read-only disk once computed every score, then failed to write them.
    (Root ignores permissions: a read-only folder is stood in for by os.access.)"""
    import os

    from gan.inference import outputs

    real_access = os.access
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: False if Path(path) == tiny_demo_run and
                        mode & os.W_OK else real_access(path, mode))
    evaluation = CliRunner().invoke(main, ["eval", str(tiny_demo_run), "--metrics", "swd", "--n", "8"])
    assert evaluation.exit_code == 2, evaluation.output
    assert f"metrics-00000004.json' cannot be written: '{tiny_demo_run}' is read-only" in evaluation.output
    assert "SWD direction" not in evaluation.output  # refused before scoring
    grid = CliRunner().invoke(main, ["sample", str(tiny_demo_run), "--out", str(tmp_path / "new" / "grid.png")])
    assert grid.exit_code == 0, grid.output  # a writable folder elsewhere is fine


def _tiny_sets(*items):
    from conftest import TINY

    return [arg for item in (*TINY, *items) for arg in ("--set", item)]


def test_the_same_run_dir_line_given_as_dot_from_inside_the_run_is_safe_to_repeat(tmp_path, monkeypatch):
    demo = str(REPO / "experiments" / "dcgan_demo.toml")
    first = CliRunner().invoke(main, ["train", demo, *_tiny_sets(), "--run-dir", str(tmp_path / "run")])
    assert first.exit_code == 0, first.output
    monkeypatch.chdir(tmp_path / "run")
    again = CliRunner().invoke(main, ["train", demo, *_tiny_sets(), "--run-dir", "."])
    assert again.exit_code == 0 and "nothing to do" in again.output, again.output


def test_a_missing_metrics_root_is_named_as_metrics_root_and_an_out_under_a_file_gets_advice(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(4):
        random_rgb((16, 16), index).save(faces / f"{index}.png")
    demo = str(REPO / "experiments" / "dcgan_demo.toml")
    missing = CliRunner().invoke(main, ["train", demo, *_tiny_sets("data.dataset=folder", f"data.root={faces}",
                                                                  "metrics.every=2", f"metrics.root={tmp_path / 'nope'}"),
                                        "--out", str(tmp_path / "runs")])
    assert missing.exit_code == 2 and "- metrics.root: image folder" in missing.output, missing.output
    assert "set by data.root" not in missing.output and "set by metrics.root" in missing.output
    (tmp_path / "afile").write_text("")
    under = CliRunner().invoke(main, ["train", demo, *_tiny_sets(), "--out", str(tmp_path / "afile" / "runs")])
    assert under.exit_code == 2 and "[Errno" not in under.output, under.output
    assert "a part of the path is a file, not a folder" in under.output


@pytest.mark.parametrize("recipe, key", [("pix2pix", "loss.l1_weight"), ("cyclegan", "loss.cycle_weight")])
def test_a_generator_with_no_loss_for_the_whole_run_is_refused_and_idle_first_steps_are_warned(tmp_path, recipe, key):
    # Its reconstruction weighted 0 and its adversarial term starting after the last step: the run trained
    # nothing, said "done" and kept its random generator as best.pt (pix2pix refused it only at adversarial_weight 0).
    from conftest import (
        RECIPE_CONFIGS,
        TINY_CYCLEGAN,
        TINY_PIX2PIX,
        assert_one_error_line,
        invoke,
        tiny_recipe_config,
        write_recipe_data,
    )

    from gan.recipes import RECIPES

    data = write_recipe_data(tmp_path / "data")
    idle = (f"{key}=0", "train.steps=3", "train.adversarial_start=3")
    with pytest.raises(ConfigError, match=f"{key} = 0 and train.adversarial_start = 3 is not below train.steps = 3: "
                                          "the generator would learn nothing"):
        RECIPES.get(recipe).check(tiny_recipe_config(recipe, data, *idle))
    settings = [*(TINY_PIX2PIX if recipe == "pix2pix" else TINY_CYCLEGAN),
                f"data.root={data['paired' if recipe == 'pix2pix' else 'unpaired']}", *idle]
    result = invoke("train", REPO / "experiments" / RECIPE_CONFIGS[recipe], *[f"--set={item}" for item in settings],
                    "--out", tmp_path / "runs")
    assert_one_error_line(result, f"{key} = 0", "the generator would learn nothing", f"set {key} above 0")
    assert not list((tmp_path / "runs").glob("*/checkpoint-*.pt")), "a refused run wrote a checkpoint"
    for allowed in ((f"{key}=0", "train.steps=3", "train.adversarial_start=0"),  # the adversarial term alone
                    (f"{key}=1", "train.steps=3", "train.adversarial_start=3")):  # reconstruction alone
        RECIPES.get(recipe).check(tiny_recipe_config(recipe, data, *allowed))
    with pytest.warns(UserWarning, match=rf"{key} = 0 with train.adversarial_start = 2: the first 2 steps train "
                                         r"nothing .* --set train.adversarial_start=0 trains from the first step"):
        RECIPES.get(recipe)(tiny_recipe_config(recipe, data, f"{key}=0", "train.steps=3", "train.adversarial_start=2"),
                            torch.device("cpu"), lambda: None)
