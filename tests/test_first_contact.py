"""What a first user meets (issue 28): translating A|B pairs as they come, `gan eval` on a paired
root scoring one split and saying so, a 128-px pix2pix config for a CPU, and one clear line for
each mistake."""

import shutil
import subprocess

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, TINY_PIX2PIX, only_run, random_rgb, write_recipe_data
from PIL import Image

from gan.commands.main import main


def _sets(*items):
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def paired_run(tmp_path_factory):
    """A tiny pix2pix run (the facades config: BtoA) on 80x40 A|B images in train/ (4) and val/ (2)."""
    data = write_recipe_data(tmp_path_factory.mktemp("data"))
    out = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "pix2pix_facades.toml"),
                                       *_sets(*TINY_PIX2PIX, f"data.root={data['paired']}"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return only_run(out), data["paired"]


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# ----------------------------------------------------------------------------- A: translating A|B pairs


def test_paired_input_translates_the_half_the_model_takes_and_shows_the_other_as_target(paired_run, tmp_path):
    run_dir, root = paired_run
    pair = Image.open(root / "val" / "0.png")  # A = random, B = 255 - A; the run is BtoA
    a_half, b_half = np.asarray(pair)[:, :40], np.asarray(pair)[:, 40:]
    strip_path, output_path = tmp_path / "strip.png", tmp_path / "out.png"
    strip = CliRunner().invoke(main, ["translate", str(run_dir), str(root / "val" / "0.png"), str(strip_path),
                                      "--paired-input", "--side-by-side"])
    assert strip.exit_code == 0, strip.output
    strip_pixels = np.asarray(Image.open(strip_path))
    assert strip_pixels.shape == (40, 120, 3)  # input | output | target
    assert np.array_equal(strip_pixels[:, :40], b_half) and np.array_equal(strip_pixels[:, 80:], a_half)
    alone = CliRunner().invoke(main, ["translate", str(run_dir), str(root / "val" / "0.png"), str(output_path),
                                      "--paired-input"])
    assert alone.exit_code == 0, alone.output
    assert np.array_equal(np.asarray(Image.open(output_path)), strip_pixels[:, 40:80])


def test_paired_input_skips_an_image_too_narrow_to_split_and_translates_the_rest(paired_run, tmp_path):
    run_dir, root = paired_run
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.png", "c.png"):
        Image.open(root / "val" / "0.png").save(inputs / name)
    Image.new("RGB", (1, 40)).save(inputs / "b.png")
    with pytest.warns(UserWarning, match="b.png': it is 1x40, narrower than the 2:1 of an A\\|B pair"):
        result = CliRunner().invoke(main, ["translate", str(run_dir), str(inputs), str(tmp_path / "out"),
                                           "--paired-input"])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "out").glob("[!.]*")) == ["a.png", "c.png"]


def test_the_input_side_follows_the_direction(tmp_path):
    from gan.commands.translate import input_and_target

    pair = tmp_path / "pair.png"
    Image.fromarray(np.concatenate([np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)], 1)).save(pair)
    for direction, (source_value, target_value) in (("AtoB", (0, 255)), ("BtoA", (255, 0))):
        source, target = input_and_target(pair, direction)
        assert source.size == target.size == (4, 4)
        assert np.asarray(source).max() == source_value and np.asarray(target).max() == target_value


def test_an_input_shaped_like_the_training_pairs_is_refused_with_what_to_do(paired_run, tmp_path):
    run_dir, root = paired_run
    refused = CliRunner().invoke(main, ["translate", str(run_dir), str(root / "val"), str(tmp_path / "out")])
    assert refused.exit_code == 2 and len(_error_lines(refused.output)) == 1, refused.output
    line = _error_lines(refused.output)[0]
    assert "0.png' is 80x40, shaped like the A|B pairs this model trained on (2.00:1)" in line
    assert "1 more of the 2 inputs" in line
    assert "--paired-input" in line and "--whole-input" in line and "the B half" in line
    assert "Traceback" not in refused.output and not (tmp_path / "out").exists()
    whole = CliRunner().invoke(main, ["translate", str(run_dir), str(root / "val" / "0.png"),
                                      str(tmp_path / "whole.png"), "--whole-input"])
    assert whole.exit_code == 0, whole.output
    assert Image.open(tmp_path / "whole.png").size == (80, 40)
    square = tmp_path / "square.png"
    random_rgb((40, 40), 3).save(square)
    assert CliRunner().invoke(main, ["translate", str(run_dir), str(square), str(tmp_path / "s.png")]).exit_code == 0


def test_pair_shaped_inputs_are_refused_only_when_the_training_pairs_say_so(tmp_path):
    from gan.data.paired import training_pair_shapes

    def folder(name, *sizes, layout=("",)):
        for side in layout:
            (tmp_path / name / "train" / side).mkdir(parents=True)
            for index, size in enumerate(sizes):
                random_rgb(size, index).save(tmp_path / name / "train" / side / f"{index}.png")
        return {"dataset": "paired", "root": str(tmp_path / name), "split": "train", "layout": "auto"}

    aligned = training_pair_shapes(folder("aligned", (80, 40), (80, 36)))  # A|B pairs of square or wider halves
    assert aligned.fits(80, 40) and aligned.fits(160, 72) and not aligned.fits(120, 40) and not aligned.fits(40, 40)
    wide_halves = training_pair_shapes(folder("wide", (160, 40)))  # each half is 2:1 itself: a 2:1 input is one side
    assert not wide_halves.fits(80, 40) and wide_halves.fits(160, 40)
    folders = folder("folders", (80, 40), layout=("A", "B"))
    assert not training_pair_shapes(folders).fits(80, 40)
    beside = training_pair_shapes(folders, side_by_side=True)
    assert beside.fits(160, 40) and not beside.fits(80, 40)  # (--paired-input's A|B: an A beside its B)
    portrait = training_pair_shapes(folder("portrait", (60, 40), (60, 40), (80, 40)))  # mostly narrower pairs
    assert not portrait.fits(80, 40)
    assert not training_pair_shapes({**folder("sr", (80, 40)), "dataset": "sr_pairs"}).fits(80, 40)
    gone = training_pair_shapes({"dataset": "paired", "root": str(tmp_path / "gone"), "split": "train"})
    assert not gone.known and gone.fits(80, 40) and not gone.fits(120, 40)  # not here: plain 2:1


def test_a_pair_shaped_input_is_only_warned_of_when_the_training_data_is_not_here(tmp_path):
    from gan.commands.translate import refuse_pair_shaped_inputs

    wide = tmp_path / "wide.png"
    random_rgb((80, 40), 0).save(wide)
    config = {"data": {"dataset": "paired", "root": str(tmp_path / "elsewhere"), "split": "train",
                       "layout": "auto", "direction": "AtoB"}}
    with pytest.warns(UserWarning, match=r"80x40, twice as wide as high like an A\|B pair.*not here.*the A half"):
        refuse_pair_shaped_inputs(config, [wide])


def test_paired_input_is_refused_for_checkpoints_not_trained_on_pairs(tmp_path):
    from gan.commands.translate import check_paired_input

    with pytest.raises(ValueError, match="--paired-input is for checkpoints trained on paired data"):
        check_paired_input({"recipe": "srresnet", "data": {"dataset": "sr_pairs"}}, tmp_path / "x.pt")


# ----------------------------------------------------------------------------- B: gan eval on a paired root


def test_eval_on_a_paired_root_scores_the_validation_split_and_says_so(paired_run, tmp_path):
    run_dir, root = paired_run
    default = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(root), "--csv", str(tmp_path / "v.csv")])
    assert default.exit_code == 0, default.output
    assert "2 pairs of split 'val'" in default.output
    assert (tmp_path / "v.csv").read_text().count(".png") == 2
    train = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(root), "--split", "train",
                                      "--csv", str(tmp_path / "t.csv")])
    assert train.exit_code == 0 and "4 pairs of split 'train'" in train.output, train.output
    folder = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(root / "val"),
                                       "--csv", str(tmp_path / "f.csv")])
    assert folder.exit_code == 0 and "2 pairs in" in folder.output, folder.output
    missing = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(root), "--split", "test"])
    assert missing.exit_code == 2 and "--split test" in missing.output and "train, val" in missing.output


def test_eval_refuses_a_root_whose_splits_lack_the_validation_one(paired_run, tmp_path):
    run_dir, root = paired_run
    shutil.copytree(root / "train", tmp_path / "root" / "train")
    shutil.copytree(root / "val", tmp_path / "root" / "test")
    result = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(tmp_path / "root")])
    assert result.exit_code == 2 and len(_error_lines(result.output)) == 1, result.output
    assert "no val/" in result.output and "--split" in result.output


# ----------------------------------------------------------------------------- C: the 128-px config


def test_the_128px_pix2pix_config_trains_a_step_on_given_pairs(tmp_path):
    from gan.training.resolve import load_config

    config = load_config(REPO / "experiments" / "pix2pix_facades128.toml", [])
    assert (config.model.generator, config.data.resolution, config.data.load_size) == ("unet_128", 128, 143)
    assert config.train.keep_best == "val/swd"
    data = write_recipe_data(tmp_path / "data")
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "pix2pix_facades128.toml"),
                                       *_sets(f"data.root={data['paired']}", "train.steps=1", "data.num_workers=0",
                                              # narrow networks keep the test quick; the 128-px U-Net is the config's
                                              "model.generator_args.channels=8", "model.discriminator_args.channels=8"),
                                       "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert (only_run(tmp_path / "runs") / "checkpoint-00000001.pt").is_file()


# ----------------------------------------------------------------------------- D: messages


@pytest.fixture
def not_checkpoints(tmp_path):
    """Three files that are not checkpoints: text, random bytes, and a torch file of a plain list."""
    text, noise, plain = tmp_path / "notes.txt", tmp_path / "noise.pt", tmp_path / "list.pt"
    text.write_text("step 200: loss 0.3\n")
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    torch.save([1, 2, 3], plain)
    return [text, noise, plain]


@pytest.mark.parametrize("command", ["eval", "sample", "translate", "export"])
def test_a_file_that_is_not_a_checkpoint_gets_one_line_naming_it_and_what_was_expected(command, not_checkpoints,
                                                                                          tmp_path):
    image = tmp_path / "in.png"
    random_rgb((16, 16), 0).save(image)
    for path in not_checkpoints:
        arguments = {"eval": [], "sample": ["--out", str(tmp_path / "s.png")],
                     "translate": [str(image), str(tmp_path / "t.png")],
                     "export": ["--out", str(tmp_path / "e.safetensors")]}[command]
        result = CliRunner().invoke(main, [command, str(path), *arguments])
        assert result.exit_code == 2, result.output
        assert len(_error_lines(result.output)) == 1 and "Traceback" not in result.output, result.output
        line = _error_lines(result.output)[0]
        assert f"'{path}'" in line and "run directory" in line and "gan train" in line, line
        assert "weights_only" not in result.output
        if command in ("sample", "translate"):  # these take exports too
            assert "gan export" in line, line


@pytest.mark.parametrize("loss", ["hinge", "wgan-gp"])
def test_label_smoothing_with_a_loss_without_targets_says_how_to_turn_it_off(loss):
    from gan.core.registry import ConfigError
    from gan.training.resolve import load_config

    with pytest.raises(ConfigError, match=r"--set loss\.label_smoothing=0"):
        load_config(None, [f"loss.adversarial={loss}", "loss.label_smoothing=0.1"])


def test_eval_says_how_many_real_images_it_actually_uses(tiny_demo_run, tmp_path):
    result = CliRunner().invoke(main, ["eval", str(tiny_demo_run), "--metrics", "swd", "--n", "100",
                                       "--cache-dir", str(tmp_path), "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert "reference statistics of 64 real images" in result.output  # data.synthetic_size = 64
    assert "of 100 real images" not in result.output


def test_missing_inception_weights_are_warned_of_once_in_two_lines(paired_run, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    run_dir, root = paired_run
    with pytest.warns(UserWarning) as caught:
        result = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(root / "val"),
                                           "--csv", str(tmp_path / "v.csv")])
    assert result.exit_code == 0, result.output
    about_weights = [str(w.message) for w in caught if "Inception" in str(w.message)]
    assert len(about_weights) == 1 and "Inception" not in result.output, (about_weights, result.output)
    lines = about_weights[0].splitlines()
    assert len(lines) <= 2 and about_weights[0].count("weights-inception-2015-12-05-6726825d.pth") <= 2, lines
    assert "--inception-weights" in about_weights[0]


def test_sweeps_are_ignored_by_git_like_runs():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("runs/00000-x/checkpoint-00000001.pt", "sweeps/loss/00000-x/config.toml"):
        checked = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO)
        assert checked.returncode == 0, f"{path} is not ignored"


def test_compare_groups_are_labelled_by_their_full_keys(tmp_path):
    from gan.tools.compare import group_runs

    configs = {tmp_path / "a": {"log.every": 500, "train.seed": 0}, tmp_path / "b": {"log.every": 100}}
    assert set(group_runs(configs)) == {"log.every=500", "log.every=100"}
