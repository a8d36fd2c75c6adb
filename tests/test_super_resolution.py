import random
import re
import warnings

import numpy as np
import pytest
import torch
from conftest import REPO, random_rgb
from PIL import Image

from gan.data.super_resolution import Degradation, bicubic_resize, super_resolution_dataset


@pytest.fixture
def hr_folder(tmp_path):
    for index in range(3):
        random_rgb((100 + 7 * index, 90), index).save(tmp_path / f"{index}.png")
    return tmp_path


def test_pairs_are_deterministic_under_a_seed(hr_folder):
    dataset = super_resolution_dataset(hr_folder, Degradation(4, noise_std=3.0, jpeg_quality=60), 64)
    first, again, other = dataset[(1, 42)], dataset[(1, 42)], dataset[(1, 43)]
    assert torch.equal(first["input"], again["input"]) and torch.equal(first["target"], again["target"])
    assert not torch.equal(first["target"], other["target"])  # another crop


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_input_sizes(hr_folder, scale):
    size = 12 * scale
    upsampled = super_resolution_dataset(hr_folder, Degradation(scale), size, upsample_input=True)[(0, 1)]
    low = super_resolution_dataset(hr_folder, Degradation(scale), size, upsample_input=False)[(0, 1)]
    assert upsampled["input"].shape == upsampled["target"].shape == (3, size, size)
    assert low["input"].shape == (3, size // scale, size // scale)
    assert torch.equal(upsampled["target"], low["target"])


def test_downsampling_is_antialiased():
    """A one-pixel checkerboard averages to grey; point sampling would keep black or white."""
    board = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    lr_image = Degradation(4)(Image.fromarray(board).convert("RGB"), random.Random(0))
    assert lr_image.size == (16, 16)
    assert np.abs(np.asarray(lr_image)[2:-2, 2:-2].astype(float) - 127.5).max() < 3


def test_degradations_change_the_input_only_when_switched_on():
    image = random_rgb((64, 64), 0)
    clean = np.asarray(Degradation(4)(image, random.Random(0)), dtype=float)
    for options in ({"blur_sigma": 2.0}, {"noise_std": 10.0}, {"jpeg_quality": 20}):
        degraded = np.asarray(Degradation(4, **options)(image, random.Random(0)), dtype=float)
        assert np.abs(degraded - clean).mean() > 1.0, options
    noisy = [np.asarray(Degradation(4, noise_std=10.0)(image, random.Random(seed))) for seed in (0, 0, 1)]
    assert np.array_equal(noisy[0], noisy[1]) and not np.array_equal(noisy[0], noisy[2])
    # the noise is zero-mean in the 8-bit LR image too: rounded, not truncated (half a grey level darker)
    grey = Image.new("RGB", (512, 512), (128, 128, 128))
    shift = np.asarray(Degradation(4, noise_std=3.0)(grey, random.Random(0)), dtype=float).mean() - 128
    assert abs(shift) < 0.1, shift


def test_evaluation_uses_the_whole_image_cropped_to_the_scale(hr_folder):
    item = super_resolution_dataset(hr_folder, Degradation(4), 64, train=False)[0]
    assert item["target"].shape == (3, 88, 100)  # 90x100 cropped to multiples of 4
    expected = bicubic_resize(bicubic_resize(random_rgb((100, 90), 0).crop((0, 0, 100, 88)), (25, 22)), (100, 88))
    assert np.abs((item["input"].permute(1, 2, 0).numpy() + 1) * 127.5 - np.asarray(expected)).max() < 0.51


def test_bad_sizes(hr_folder):
    with pytest.raises(ValueError, match="must be a multiple of data.scale"):
        super_resolution_dataset(hr_folder, Degradation(3), 64)
    random_rgb((40, 40), 9).save(hr_folder / "small.png")
    with pytest.warns(UserWarning, match="leaving out 1 image\\(s\\) .* smaller than the 64 px training crop: "
                                         ".*small.png' \\(40x40\\)"):
        dataset = super_resolution_dataset(hr_folder, Degradation(4), 64)
    assert len(dataset) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the largest named, which tell what crop the folder can give (every one of 91 was named, 1,900 characters)
        with pytest.raises(OSError, match=r"no usable images .* 4 smaller than the 256 px training crop; the largest: "
                                          r"'[^']*0.png' \(100x90\); '[^']*1.png' \(107x90\); '[^']*2.png' \(114x90\)\)$"):
            super_resolution_dataset(hr_folder, Degradation(4), 256)


def test_gan_eval_degrades_sr_inputs_as_the_runs_validation_and_scores_the_same(tmp_path):
    """A run trained on blurred, noisy, JPEG-compressed inputs is scored by `gan eval` on inputs made
    the same way (noise seeded per image as validation seeds it), so its PSNR is the run's val/psnr."""
    import csv
    import dataclasses
    import shutil

    from click.testing import CliRunner
    from conftest import tiny_recipe_config, write_recipe_data

    from gan.commands.main import main
    from gan.inference.tiling import load_translator
    from gan.recipes.image_to_image import evaluation_set, validation_scores
    from gan.training.loop import train

    data = write_recipe_data(tmp_path / "data")
    (data["hr"] / "1.png").write_bytes((data["hr"] / "1.png").read_bytes()[:300])  # a header, then nothing
    config = tiny_recipe_config("srresnet", data, "data.blur_sigma=1.5", "data.noise_std=12", "data.jpeg_quality=60")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=str(tmp_path / "train")))
    shutil.copytree(data["hr"], tmp_path / "train", ignore=shutil.ignore_patterns("1.png"))
    run_dir = train(config, tmp_path / "run", torch.device("cpu")).run_dir
    translator = load_translator(run_dir, torch.device("cpu"))
    # the truncated 1.png keeps its place in validation: 2.png's noise is seeded as the third image's
    expected = validation_scores(translator.generator, evaluation_set(config.data), config.data, torch.device("cpu"),
                                 translator.size_multiple)
    result = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(data["hr"]), "--csv", str(tmp_path / "e.csv")])
    assert result.exit_code == 0, result.output
    assert ("LR inputs are made as in the run's training: Gaussian blur sigma 1.5, bicubic x4, noise std 12, "
            "JPEG quality 60") in result.output
    with open(tmp_path / "e.csv", newline="") as file:
        mean = [row for row in csv.DictReader(file) if row["image"] == "mean"][0]
    assert float(mean["psnr"]) == pytest.approx(expected["val/psnr"], abs=1e-5)
    assert float(mean["ssim"]) == pytest.approx(expected["val/ssim"], abs=1e-5)


def test_gan_eval_of_images_the_run_trained_on_says_so(tmp_path, monkeypatch):
    # a run trained on DIV2K's parent folder, scored on its DIV2K_valid_HR: a fit taken for generalisation;
    # its data.root relative, as typed, and gan eval run from another folder (the run's record is absolute)
    import dataclasses
    import shutil

    from click.testing import CliRunner
    from conftest import tiny_recipe_config, write_recipe_data

    from gan.commands.main import main
    from gan.training.loop import train

    data = write_recipe_data(tmp_path / "data")
    shutil.copytree(data["hr"], tmp_path / "DIV2K" / "DIV2K_valid_HR")
    shutil.copytree(data["hr"], tmp_path / "held_out")
    config = tiny_recipe_config("srresnet", data)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, root="DIV2K"))
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the held-out folder name, warned of at training)
        run_dir = train(config, tmp_path / "run", torch.device("cpu")).run_dir
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    said = "holds images this run trained on (its training folder: "
    with pytest.warns(UserWarning, match=re.escape(f"{said}'{tmp_path / 'DIV2K'}')")):
        inside = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(tmp_path / "DIV2K" / "DIV2K_valid_HR")])
    assert inside.exit_code == 0, inside.output
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apart = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(tmp_path / "held_out")])
    assert apart.exit_code == 0 and not [one for one in caught if said in str(one.message)], apart.output
    # a checkpoint written before the record of its folders: its config's data.root, where absolute
    from gan.core.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint

    state = load_checkpoint(resolve_checkpoint(run_dir))
    state.pop("data")
    state["config"]["data"]["root"] = str(tmp_path / "DIV2K")
    (tmp_path / "old").mkdir()
    save_checkpoint(state, tmp_path / "old" / "checkpoint-00000002.pt")
    with pytest.warns(UserWarning, match=re.escape(f"{said}'{tmp_path / 'DIV2K'}')")):
        old = CliRunner().invoke(main, ["eval", str(tmp_path / "old" / "checkpoint-00000002.pt"), "--data",
                                        str(tmp_path / "DIV2K" / "DIV2K_valid_HR")])
    assert old.exit_code == 0, old.output


def test_gan_eval_never_writes_over_the_images_it_scores_nor_over_another_folders_evaluation(tmp_path):
    """`--csv` naming one of the --data images replaced it, even though no output may be an input;
    and an SR evaluation of another folder of the same name replaced the first without --overwrite
    (SR wrote no JSON record beside its CSV to tell them apart)."""
    import json
    import shutil

    from click.testing import CliRunner
    from conftest import tiny_recipe_config, write_recipe_data

    from gan.commands.main import main
    from gan.training.loop import train

    data = write_recipe_data(tmp_path / "data")
    run_dir = train(tiny_recipe_config("srresnet", data), tmp_path / "run", torch.device("cpu")).run_dir
    image = sorted(data["hr"].glob("*.png"))[0]
    before = image.read_bytes()
    onto = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(data["hr"]), "--csv", str(image),
                                     "--overwrite"])
    assert onto.exit_code == 2 and "input" in onto.output, onto.output
    assert image.read_bytes() == before
    first = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(data["hr"])])
    assert first.exit_code == 0, first.output
    (csv_path,) = run_dir.glob(f"eval-{data['hr'].name}-*.csv")
    record = json.loads(csv_path.with_suffix(".json").read_text())
    assert record["data"] == str(data["hr"].resolve()) and set(record["mean"]) >= {"psnr", "ssim"}
    elsewhere = tmp_path / "other" / data["hr"].name
    shutil.copytree(data["hr"], elsewhere)
    second = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(elsewhere)])
    assert second.exit_code == 2 and "holds an evaluation of" in second.output, second.output
    assert "pass --csv PATH to keep both" in second.output
    again = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(data["hr"])])  # the same one: replaced
    assert again.exit_code == 0, again.output
    # the same folder holding other images now is another data set: its record was replaced in silence
    kept = csv_path.with_suffix(".json").read_text()
    random_rgb((52, 44), 7).save(image)
    changed = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(data["hr"])])
    assert changed.exit_code == 2 and "as its images were then (files added, removed or changed since): pass " \
        "--csv PATH to keep both, or --overwrite to replace it" in changed.output, changed.output
    assert csv_path.with_suffix(".json").read_text() == kept
    replaced = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(data["hr"]), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    import os

    here = os.getcwd()
    os.chdir(data["hr"])
    try:  # `--data .` names its CSV by the folder it is
        dot = CliRunner().invoke(main, ["eval", str(run_dir), "--data", ".", "--overwrite"])
    finally:
        os.chdir(here)
    assert dot.exit_code == 0 and f"eval-{data['hr'].name}-" in dot.output, dot.output
    assert not list(run_dir.glob("eval--*"))


def test_low_resolution_copies_beside_hr_images_are_warned_of_where_they_would_be_scored(tmp_path):
    # EDSR's benchmark pack unpacked whole: Set5/LR_bicubic/X4/babyx4.png was scored as ground truth
    # beside Set5/HR/baby.png, and the mean PSNR fell without a word
    (tmp_path / "Set5" / "HR").mkdir(parents=True)
    (tmp_path / "Set5" / "LR_bicubic" / "X4").mkdir(parents=True)
    random_rgb((66, 64), 0).save(tmp_path / "Set5" / "HR" / "baby.png")
    random_rgb((16, 16), 1).save(tmp_path / "Set5" / "LR_bicubic" / "X4" / "babyx4.png")
    random_rgb((48, 48), 2).save(tmp_path / "Set5" / "HR" / "bird.png")
    random_rgb((12, 12), 3).save(tmp_path / "Set5" / "HR" / "other.png")  # 1/4 of bird's size, another name
    with pytest.warns(UserWarning, match=r"1 image\(s\) under '.*Set5' are 1/4 the size of another named like them, "
                                         r"low-resolution copies scored as ground truth\? \(the first: '.*babyx4.png', "
                                         r"beside '.*baby.png'\): give the folder of the HR images alone"):
        super_resolution_dataset(tmp_path / "Set5", Degradation(4), 16, train=False)
    # the whole pack, x2 and x3 copies too, is checked whatever the model's scale, and each copy counted: an x4
    # model scored the x2 copies in silence, and the warning counted only the x4 ones
    for factor, (width, height) in ((2, (33, 32)), (3, (22, 21))):
        (tmp_path / "Set5" / "LR_bicubic" / f"X{factor}").mkdir()
        random_rgb((width, height), factor).save(tmp_path / "Set5" / "LR_bicubic" / f"X{factor}" / f"babyx{factor}.png")
    with pytest.warns(UserWarning, match=r"3 image\(s\) under '.*Set5' are 1/2, 1/3, 1/4 the size of another"):
        super_resolution_dataset(tmp_path / "Set5", Degradation(4), 16, train=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the HR folder alone: nothing to say
        super_resolution_dataset(tmp_path / "Set5" / "HR", Degradation(4), 16, train=False)
    # DIV2K_train_HR/ beside DIV2K_train_LR_bicubic/X4/ given as the training folder: the LR copies trained as HR
    # targets without a word
    (tmp_path / "DIV2K" / "DIV2K_train_HR").mkdir(parents=True)
    (tmp_path / "DIV2K" / "DIV2K_train_LR_bicubic" / "X4").mkdir(parents=True)
    for index in range(2):
        random_rgb((64, 48), index).save(tmp_path / "DIV2K" / "DIV2K_train_HR" / f"000{index}.png")
        random_rgb((16, 12), index).save(tmp_path / "DIV2K" / "DIV2K_train_LR_bicubic" / "X4" / f"000{index}x4.png")
    # sides that are no multiple of 4: MATLAB's imresize (and BasicSR's port) rounds the LR size up, and such
    # copies trained as HR targets unnamed
    random_rgb((66, 50), 2).save(tmp_path / "DIV2K" / "DIV2K_train_HR" / "0002.png")
    random_rgb((17, 13), 2).save(tmp_path / "DIV2K" / "DIV2K_train_LR_bicubic" / "X4" / "0002x4.png")
    with pytest.warns(UserWarning, match=r"3 image\(s\) under '.*DIV2K' are 1/4 the size of another named like them, "
                                         r"low-resolution copies trained on as HR targets\?.*DIV2K_train_HR"):
        super_resolution_dataset(tmp_path / "DIV2K", Degradation(4), 12, train=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        super_resolution_dataset(tmp_path / "DIV2K" / "DIV2K_train_HR", Degradation(4), 12, train=True)
    selfexsr = tmp_path / "Set14" / "image_SRF_4"
    selfexsr.mkdir(parents=True)
    random_rgb((40, 40), 4).save(selfexsr / "img_001_SRF_4_HR.png")
    random_rgb((10, 10), 5).save(selfexsr / "img_001_SRF_4_LR.png")
    with pytest.warns(UserWarning, match=r"img_001_SRF_4_LR.png', beside '.*img_001_SRF_4_HR.png'"):
        super_resolution_dataset(tmp_path / "Set14", Degradation(4), 8, train=False)


def test_training_images_in_folders_named_as_held_out_splits_are_warned_of(tmp_path):
    # DIV2K's parent folder as data.root trained on DIV2K_valid_HR beside DIV2K_train_HR without a word
    for folder, count in (("DIV2K_train_HR", 3), ("DIV2K_valid_HR", 2)):
        (tmp_path / "DIV2K" / folder).mkdir(parents=True)
        for index in range(count):
            random_rgb((40, 40), index).save(tmp_path / "DIV2K" / folder / f"{folder[6]}{index}.png")
    with pytest.warns(UserWarning, match=r"2 training image\(s\) under '.*DIV2K' are in folders named as a held-out "
                                         r"split \(the first: '.*DIV2K_valid_HR'\)"):
        super_resolution_dataset(tmp_path / "DIV2K", Degradation(4), 16, train=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the held-out folder given itself, or scored: nothing to say
        super_resolution_dataset(tmp_path / "DIV2K" / "DIV2K_valid_HR", Degradation(4), 16, train=True)
        super_resolution_dataset(tmp_path / "DIV2K", Degradation(4), 16, train=False)
        (tmp_path / "DIV2K" / "DIV2K_valid_HR").rename(tmp_path / "DIV2K" / "contestants")  # (a word, not a part)
        super_resolution_dataset(tmp_path / "DIV2K", Degradation(4), 16, train=True)


def test_a_validation_image_too_large_for_memory_is_refused_before_step_1(tmp_path, monkeypatch):
    # a 10000x10000 Set5-style image: the kernel killed the run at its first validation, before that step's
    # checkpoint, and a resume was killed there again
    from conftest import tiny_recipe_config, write_recipe_data

    from gan.core.registry import ConfigError
    from gan.training import preflight
    from gan.training.loop import train

    data = write_recipe_data(tmp_path / "data")
    val = tmp_path / "val"
    val.mkdir()
    random_rgb((480, 400), 0).save(val / "large.png")  # (the largest: an LR input of 120x100)
    random_rgb((40, 40), 1).save(val / "small.png")
    monkeypatch.setattr(preflight, "LARGE_PASS_PIXELS", 100)  # (a megapixel: small images for the test)
    config = tiny_recipe_config("srresnet", data, f"data.val_root={val}")
    # 2 MiB: a training batch fits (300 KiB); the large image's pass does not (12,000 LR pixels, 8 float32 channels
    # of the widest layer at least, 4 layers alive: 1.5 MiB, and several times that at the upsampled layers)
    monkeypatch.setattr(preflight, "available_memory", lambda device: 2 * 2**20)
    with pytest.raises(ConfigError, match=rf"the validation image '{val / 'large.png'}' \(480x400\) would need about "
                                          r".* to go through the generator whole, and cpu has .* available: validation "
                                          r"scores each image of data.val_root whole"):
        train(config, tmp_path / "run", torch.device("cpu"))
    assert not list((tmp_path / "run").glob("checkpoint-*.pt"))
    monkeypatch.setattr(preflight, "available_memory", lambda device: 2**30)
    assert train(config, tmp_path / "run2", torch.device("cpu")).step == 2


def test_the_validation_memory_check_probes_a_u_net_at_its_own_size_multiple(tmp_path, monkeypatch):
    # sr_pix2pix's U-Net takes a multiple of 2^num_downs px: the check's 64 px probe failed inside the check
    from types import SimpleNamespace

    from gan.core.registry import ConfigError
    from gan.nets.unet import UNetGenerator
    from gan.training import preflight
    from gan.training.resolve import load_config

    random_rgb((300, 300), 0).save(tmp_path / "large.png")
    generator = UNetGenerator(num_downs=7, channels=2, dropout=0)  # (inputs of a multiple of 128 px)
    recipe = SimpleNamespace(generator=generator, size_multiple=generator.size_multiple, evaluation_images=
                             SimpleNamespace(get=lambda: SimpleNamespace(paths=[tmp_path / "large.png"])))
    config = load_config(REPO / "experiments" / "sr_pix2pix_x4.toml", [f"data.val_root={tmp_path}"])
    monkeypatch.setattr(preflight, "LARGE_PASS_PIXELS", 100)
    monkeypatch.setattr(preflight, "available_memory", lambda device: 2**10)
    with pytest.raises(ConfigError, match=r"the validation image .*large.png' \(300x300\) would need about"):
        preflight.check_validation_fits(recipe, config, torch.device("cpu"))


def test_a_validation_image_that_runs_out_of_memory_is_said_with_its_size_and_the_way_round(tmp_path, monkeypatch):
    # an allocation that failed (a memory limit) stopped the run with torch's "can't allocate memory: you tried to
    # allocate 3200000000 bytes", naming no image and nothing to do
    from conftest import tiny_recipe_config, write_recipe_data

    from gan.recipes import image_to_image
    from gan.training.errors import SideTaskError
    from gan.training.loop import train

    run_padded = image_to_image.run_padded

    def refused(generator, images, size_multiple):
        if len(images) > 1:  # (the previews' batch: cropped to a common size)
            return run_padded(generator, images, size_multiple)
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 3200000000 bytes. Error code 12 (Cannot allocate memory)")

    data = write_recipe_data(tmp_path / "data")
    monkeypatch.setattr(image_to_image, "run_padded", refused)
    with pytest.raises(SideTaskError) as error:
        train(tiny_recipe_config("srresnet", data), tmp_path / "run", torch.device("cpu"))
    said = str(error.value)
    assert re.search(r"validation failed at step 2 \(MemoryError: validation image 1 of \d+, of \d+x\d+ px, does not "
                     r"fit in cpu memory \(RuntimeError\): validation scores each image of data.val_root whole, so take "
                     r"the largest out", said), said
    assert "checkpoint of step 2" in said, said
