"""CycleGAN: ResNet generator, image pool, the recipe's losses, end-to-end run and resume."""

import csv
import re
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import (
    REPO,
    TINY_CYCLEGAN,
    TINY_PIX2PIX,
    assert_one_error_line,
    damage_past_the_header,
    only_run,
    random_rgb,
    write_recipe_data,
)
from PIL import Image
from torch import nn

from gan.commands.main import main
from gan.core.checkpoint import list_checkpoints, load_checkpoint
from gan.core.registry import ConfigError
from gan.nets import network_spec
from gan.recipes.cyclegan import CycleGANRecipe
from gan.recipes.image_pool import ImagePool
from gan.training.loop import train
from gan.training.resolve import load_config

CONFIG = REPO / "experiments" / "cyclegan_horse2zebra.toml"
TINY = TINY_CYCLEGAN


@pytest.mark.parametrize("name, blocks, size", [("resnet_9blocks", 9, (64, 64)), ("resnet_6blocks", 6, (32, 48)),
                                                 ("resnet", 9, (20, 28))])
def test_resnet_generator_shapes(name, blocks, size):
    generator = network_spec("generator", name, {"channels": 8}, "g").build()
    images = torch.rand(2, 3, *size) * 2 - 1
    output = generator(images)
    assert output.shape == images.shape and output.abs().max() <= 1
    residual = [m for m in generator.modules() if type(m).__name__ == "ResidualBlock"]
    assert len(residual) == blocks
    assert any(isinstance(m, nn.ReflectionPad2d) for m in generator.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in generator.modules())  # InstanceNorm by default
    assert generator.size_multiple == 4


def test_resnet_matches_cyclegan_parameter_count():
    """The reference's resnet_9blocks with ngf=64 and InstanceNorm has 11,378,179 parameters."""
    generator = network_spec("generator", "resnet_9blocks", {}, "g").build()
    assert sum(p.numel() for p in generator.parameters()) == 11_378_179


def reference_pool_queries(size: int, batches: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    """The reference's rule (a Python list, image by image), fed the draws the device pool makes."""
    generator = ImagePool(size, seed=seed).generator
    stored, results = [], []
    for images in batches:
        swap_draws = torch.rand(len(images), generator=generator)
        slot_draws = torch.randint(size, (len(images),), generator=generator)
        returned = []
        for image, draw, slot in zip(images, swap_draws, slot_draws):
            if len(stored) < size:
                stored.append(image.clone())
                returned.append(image)
            elif draw < 0.5:
                returned.append(stored[slot].clone())
                stored[slot] = image.clone()
            else:
                returned.append(image)
        results.append(torch.stack(returned))
    return results


def test_the_device_pool_follows_the_reference_rule_draw_for_draw():
    # Fills over a query (3 + 2 images into 4 slots), then swaps; a batch may swap twice into one slot.
    batches = [torch.rand(n, 3, 2, 2, generator=torch.Generator().manual_seed(n + 10 * k))
               for k, n in enumerate([3, 2, 4, 1, 5, 3, 4, 4])]
    pool = ImagePool(size=4, seed=7)
    for images, expected in zip(batches, reference_pool_queries(4, batches, seed=7), strict=True):
        assert torch.equal(pool.query(images), expected)


def test_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(size=4)
    first = torch.arange(4.0).reshape(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: the new images come back
    assert int(pool.count) == 4 and torch.equal(pool.images, first)
    returned_old = 0
    for round_ in range(200):
        images = torch.full((2, 1, 1, 1), 100.0 + round_)
        before = pool.images.flatten().tolist()
        result = pool.query(images)
        for value in result.flatten().tolist():
            assert value in before or value == 100.0 + round_  # an old stored image, or the new one
            returned_old += value in before and value != 100.0 + round_
        # The pool holds what it held plus the new images, less what it returned.
        assert sorted(pool.images.flatten().tolist() + result.flatten().tolist()) == \
            sorted(before + images.flatten().tolist())
    assert int(pool.count) == 4 and pool.images.shape == (4, 1, 1, 1)
    assert 0.4 < returned_old / 400 < 0.6  # about half once full
    assert torch.equal(ImagePool(size=0).query(first), first)


def test_image_pool_state_round_trip_continues_the_same_draws():
    pool = ImagePool(size=3, seed=1)
    pool.query(torch.rand(2, 3, 4, 4))
    restored = ImagePool(size=3, seed=99)
    restored.load_state_dict(pool.state_dict(), torch.device("cpu"))
    assert torch.equal(restored.images[:2], pool.images[:2]) and int(restored.count) == 2
    for _ in range(5):
        images = torch.rand(2, 3, 4, 4)
        assert torch.equal(restored.query(images), pool.query(images))


def test_a_pool_saved_before_it_had_a_generator_loads():
    images = torch.rand(2, 3, 4, 4)
    pool = ImagePool(size=3)
    pool.load_state_dict({"images": images}, torch.device("cpu"))  # the earlier list-based pool's state
    assert int(pool.count) == 2 and torch.equal(pool.images[:2], images)
    pool.query(torch.rand(1, 3, 4, 4))
    assert int(pool.count) == 3


def test_a_resume_of_pools_without_their_stream_says_it_is_not_exact():
    # pools checkpointed before they had their own generator resumed on a fresh stream, unsaid
    recipe = CycleGANRecipe(load_config(CONFIG, [*TINY, "data.root=unused"]), torch.device("cpu"), _null)
    side = recipe.config.data.resolution
    old = {f"pool_{domain}": {"images": torch.rand(2, 3, side, side)} for domain in ("A", "B")}
    with pytest.warns(UserWarning, match="image pools predate their own random stream") as caught:
        recipe.load_per_process_state(old)
    assert len([one for one in caught if "predate" in str(one.message)]) == 1  # (once, not once a pool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recipe.load_per_process_state(recipe.per_process_state())
        # no pool (loss.pool_size = 0) draws nothing: its resume is exact, and was warned of
        without_pools = CycleGANRecipe(load_config(CONFIG, [*TINY, "data.root=unused", "loss.pool_size=0"]),
                                       torch.device("cpu"), _null)
        without_pools.load_per_process_state({f"pool_{domain}": {"images": torch.zeros(0, 3, side, side)}
                                              for domain in ("A", "B")})


def _scaling_conv(factor: float) -> nn.Conv2d:
    conv = nn.Conv2d(3, 3, 1)
    conv.weight.data = factor * torch.eye(3).reshape(3, 3, 1, 1)
    conv.bias.data.zero_()
    return conv


def test_losses_match_hand_computed_values():
    """G_AtoB(x) = x/2 and G_BtoA(x) = 2x: cycles reconstruct exactly, identities are known."""
    config = load_config(CONFIG, [*TINY, "data.root=unused"])
    recipe = CycleGANRecipe(config, torch.device("cpu"), _null)
    recipe.generators = {"AtoB": _scaling_conv(0.5), "BtoA": _scaling_conv(2.0)}
    mean_over_channels = nn.Conv2d(3, 1, 1)
    mean_over_channels.weight.data.fill_(1 / 3)
    mean_over_channels.bias.data.zero_()
    recipe.discriminators = {"A": mean_over_channels, "B": mean_over_channels}
    real_a, real_b = torch.rand(2, 3, 4, 4) - 0.5, torch.rand(2, 3, 4, 4) - 0.5
    metrics = recipe.step({"a": real_a, "b": real_b}, step=1)

    def d(images):
        return images.mean(1)

    expected = {
        "loss/g_B": ((d(real_a / 2) - 1) ** 2).mean(),  # LSGAN: the fake B should score 1
        "loss/g_A": ((d(2 * real_b) - 1) ** 2).mean(),
        "loss/cycle_A": torch.tensor(0.0), "loss/cycle_B": torch.tensor(0.0),
        "loss/identity_A": (2 * real_a - real_a).abs().mean(),
        "loss/identity_B": (real_b / 2 - real_b).abs().mean(),
        "loss/d_A": 0.5 * (((d(real_a) - 1) ** 2).mean() + (d(2 * real_b) ** 2).mean()),
        "loss/d_B": 0.5 * (((d(real_b) - 1) ** 2).mean() + (d(real_a / 2) ** 2).mean()),
    }
    for name, value in expected.items():
        assert metrics[name].item() == pytest.approx(value.item(), abs=1e-6), name
    identity_weight = 0.5 * 10
    total = (expected["loss/g_A"] + expected["loss/g_B"]
             + identity_weight * (expected["loss/identity_A"] + expected["loss/identity_B"]))
    assert metrics["loss/g"].item() == pytest.approx(total.item(), abs=1e-6)
    # the tags every recipe logs, so runs of any recipe overlay and `gan compare` reads them
    assert metrics["loss/d"].item() == pytest.approx((expected["loss/d_A"] + expected["loss/d_B"]).item(), abs=1e-6)
    for kind in ("real", "fake"):
        both = (metrics[f"d_A/{kind}"] + metrics[f"d_B/{kind}"]) / 2
        assert metrics[f"d/{kind}"].item() == pytest.approx(both.item(), abs=1e-6)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture(scope="module")
def unpaired_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("unpaired")
    for folder, count, offset in (("trainA", 3, 0), ("trainB", 5, 10), ("testA", 2, 20), ("testB", 2, 30)):
        (root / folder).mkdir()
        for index in range(count):
            random_rgb((24 + index, 20), offset + index).save(root / folder / f"{index}.png")
    return root


def test_unpaired_items_sample_b_independently(unpaired_root):
    from gan.data.unpaired import domain_folders, unpaired_dataset

    dataset = unpaired_dataset(*domain_folders(unpaired_root, "train"), resolution=16, load_size=20)
    assert len(dataset) == 5  # max(|A|, |B|)
    b_images = {dataset[(0, seed)]["b"].sum().item() for seed in range(30)}
    assert len(b_images) > 3  # the partner of A[0] varies with the seed
    assert torch.equal(dataset[(2, 7)]["b"], dataset[(2, 7)]["b"])  # and is reproducible


def test_resume_is_bit_identical_and_the_pool_is_restored(unpaired_root, tmp_path):
    def run(directory, *overrides, resume=False):
        config = load_config(CONFIG, [*TINY, f"data.root={unpaired_root}", *overrides])
        return train(config, directory, torch.device("cpu"), resume=resume, progress_stream=sys.stdout)

    run(tmp_path / "straight")
    run(tmp_path / "split", "train.steps=2")
    run(tmp_path / "split", resume=True)
    straight = load_checkpoint(list_checkpoints(tmp_path / "straight")[-1])
    split = load_checkpoint(list_checkpoints(tmp_path / "split")[-1])
    assert straight["step"] == split["step"] == 4
    for name, weights in straight["networks"].items():
        for key, value in weights.items():
            assert torch.equal(value, split["networks"][name][key]), (name, key)
    assert torch.equal(straight["recipe"]["pool_A"]["images"], split["recipe"]["pool_A"]["images"])
    assert len(straight["recipe"]["pool_A"]["images"]) == 3  # full: never more than its size
    strips = sorted(p.name for p in (tmp_path / "straight" / "samples").glob("00000004-*"))
    assert strips == ["00000004-A_fakeB_recA.png", "00000004-B_fakeA_recB.png"]


def test_a_resume_at_another_resolution_empties_the_pools_with_a_warning(unpaired_root, tmp_path):
    # the restored pools held 16 px fakes: the first step at 24 px failed inside ImagePool.query
    config = load_config(CONFIG, [*TINY, f"data.root={unpaired_root}", "train.steps=2"])
    train(config, tmp_path, torch.device("cpu"), progress_stream=sys.stdout)
    larger = load_config(CONFIG, [*TINY, f"data.root={unpaired_root}", "data.resolution=24", "data.load_size=28"])
    with pytest.warns(UserWarning, match="the image pools hold fakes of 16x16 px from before this resume's "
                                         "data.resolution = 24: they start empty"):
        result = train(larger, tmp_path, torch.device("cpu"), resume=True, progress_stream=sys.stdout)
    pool = load_checkpoint(result.checkpoint)["recipe"]["pool_A"]["images"]
    assert result.step == 4 and tuple(pool.shape[-2:]) == (24, 24)


def test_translate_directions_and_cycle_eval(unpaired_root, tmp_path):
    runner = CliRunner()
    sets = [arg for item in [*TINY, f"data.root={unpaired_root}"] for arg in ("--set", item)]
    assert runner.invoke(main, ["train", str(CONFIG), *sets, "--out", str(tmp_path / "runs")]).exit_code == 0
    run_dir = only_run(tmp_path / "runs")
    image = unpaired_root / "testA" / "0.png"
    for direction in ("AtoB", "BtoA"):
        result = runner.invoke(main, ["translate", str(run_dir), str(image), str(tmp_path / f"{direction}.png"),
                                      "--direction", direction])
        assert result.exit_code == 0, result.output
        assert Image.open(tmp_path / f"{direction}.png").size == (24, 20)
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "AtoB.png")), np.asarray(Image.open(tmp_path / "BtoA.png")))
    result = runner.invoke(main, ["eval", str(run_dir), "--data", str(unpaired_root), "--csv", str(tmp_path / "c.csv")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "c.csv")))
    assert [row["image"] for row in rows] == ["A/0.png", "A/1.png", "B/0.png", "B/1.png", "mean"]
    assert 0 < float(rows[-1]["cycle_l1"]) < 1
    exported = tmp_path / "AtoB.safetensors"
    assert runner.invoke(main, ["export", str(run_dir), "--direction", "AtoB", "--out", str(exported)]).exit_code == 0
    other = runner.invoke(main, ["translate", str(exported), str(image), str(tmp_path / "x.png"), "--direction",
                                 "BtoA"])
    assert other.exit_code == 2 and "has no BtoA generator, only AtoB" in other.output, other.output
    assert "--direction BtoA` writes that one" in other.output
    # a folder translation's record names the generator it ran: a BtoA export's was recorded as AtoB (the
    # run's default), and the same translation with its --direction given refused to --continue it
    exported = tmp_path / "BtoA.safetensors"
    assert runner.invoke(main, ["export", str(run_dir), "--direction", "BtoA", "--out", str(exported)]).exit_code == 0
    assert runner.invoke(main, ["translate", str(exported), str(image.parent), str(tmp_path / "o")]).exit_code == 0
    (tmp_path / "o" / "1.png").unlink()
    went_on = runner.invoke(main, ["translate", str(exported), str(image.parent), str(tmp_path / "o"), "--continue",
                                   "--direction", "BtoA"])
    assert went_on.exit_code == 0 and "1 of 2 output(s) are there, kept; 1 to translate" in went_on.output, \
        went_on.output
    # an empty testB/ is refused before testA's rows are printed as if scoring went well
    half = tmp_path / "half"
    shutil.copytree(unpaired_root / "testA", half / "testA")
    (half / "testB").mkdir()
    empty = runner.invoke(main, ["eval", str(run_dir), "--data", str(half), "--csv", str(tmp_path / "h.csv")])
    assert empty.exit_code == 2 and "testB" in empty.output and "cycle_l1" not in empty.output, empty.output
    assert not (tmp_path / "h.csv").exists()


def test_direction_needs_a_cyclegan_checkpoint(tmp_path):

    root = tmp_path / "ab"
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    for split in ("train", "val"):
        Image.fromarray(np.zeros((40, 80, 3), np.uint8)).save(root / split / "0.png")
    sets = [arg for item in [*TINY_PIX2PIX, f"data.root={root}"] for arg in ("--set", item)]
    runner = CliRunner()
    assert runner.invoke(main, ["train", str(REPO / "experiments" / "pix2pix_facades.toml"), *sets,
                                "--out", str(tmp_path / "runs")]).exit_code == 0
    run_dir = only_run(tmp_path / "runs")
    result = runner.invoke(main, ["translate", str(run_dir), str(root / "val" / "0.png"), str(tmp_path / "x.png"),
                                  "--direction", "BtoA"])
    assert result.exit_code == 2 and "--direction is for CycleGAN checkpoints" in result.output


def test_a_broken_file_in_either_domain_is_named_and_counted_once_per_domain(tmp_path):
    """Each domain keeps its own record of the files that failed: A's index 0 failing must not
    hide B's index 0 failing, nor be counted for it."""
    import warnings

    from gan.data.unpaired import unpaired_dataset

    for side in ("trainA", "trainB"):
        (tmp_path / side).mkdir()
        for index in range(2):
            random_rgb((64, 64), index).save(tmp_path / side / f"{index}.jpg", quality=95)
        broken = tmp_path / side / "0.jpg"
        damage_past_the_header(broken)  # passes the header scan
    dataset = unpaired_dataset(tmp_path / "trainA", tmp_path / "trainB", 8, load_size=0, train=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        item = dataset[0]
    named = sorted(str(warning.message) for warning in caught if "skipping" in str(warning.message))
    assert len(named) == 2 and "trainA" in named[0] and "trainB" in named[1], named
    assert dataset.num_skipped == 2 and item["a"].shape == item["b"].shape == (3, 8, 8)


def test_validation_and_previews_leave_out_a_test_image_that_fails_to_decode(tmp_path):
    """CycleGAN's validation took the dataset's items as they came, and a file that fails to decode
    comes back as its neighbour: val/cycle_l1 counted that image twice and disagreed with gan eval."""
    import warnings

    for folder, count in (("trainA", 3), ("trainB", 3), ("testA", 3), ("testB", 2)):
        (tmp_path / folder).mkdir()
        for index in range(count):
            random_rgb((40, 40), 10 * len(folder) + index).save(tmp_path / folder / f"{index}.jpg", quality=95)
    broken = tmp_path / "testA" / "1.jpg"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 3])  # passes the header scan
    config = load_config(REPO / "experiments" / "cyclegan_horse2zebra.toml",
                         [*TINY_CYCLEGAN, f"data.root={tmp_path}", "log.num_samples=3"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the broken file's own warning)
        recipe = CycleGANRecipe(config, torch.device("cpu"), _null)
        images = recipe.test_images()
        previews = recipe.load_preview_items()
    assert len(images["A"]) == 2 and len(images["B"]) == 2  # testA's 0 and 2, each once
    assert not torch.equal(images["A"][0], images["A"][1])
    assert torch.equal(previews["a"], images["A"])  # the items of testA's 0 and 2, not 1's stand-in


def test_a_domain_with_fewer_test_images_than_log_num_samples_shows_each_of_its_own_once(tmp_path):
    # testA's one image showed three times in A_fakeB_recA beside testB's three
    for folder, count in (("trainA", 2), ("trainB", 2), ("testA", 1), ("testB", 3)):
        (tmp_path / folder).mkdir()
        for index in range(count):
            random_rgb((40, 40), 10 * len(folder) + index).save(tmp_path / folder / f"{index}.png")
    config = load_config(REPO / "experiments" / "cyclegan_horse2zebra.toml",
                         [*TINY_CYCLEGAN, f"data.root={tmp_path}", "log.num_samples=3"])
    recipe = CycleGANRecipe(config, torch.device("cpu"), _null)
    with pytest.warns(UserWarning, match=r"log.num_samples = 3: the evaluation images of domain A hold 1 readable "
                                         r"image\(s\), so its preview grid shows 1") as said:
        previews = recipe.load_preview_items()
    assert not [warning for warning in said if "domain B" in str(warning.message)]
    assert previews["a"].shape[0] == 1 and previews["b"].shape[0] == 3
    assert len({previews["b"][index].sum().item() for index in range(3)}) == 3  # three distinct images
    strips = recipe.preview()
    assert strips["A_fakeB_recA"].shape[0] == 1 and strips["B_fakeA_recB"].shape[0] == 3


def test_a_test_image_that_cannot_be_read_is_warned_of_once_and_not_counted_as_training_data(tmp_path):
    # The previews and the validation each read testB, and each named its broken file; the closing
    # count said "1 unreadable image file(s) were skipped" of the training set's alone.
    data = write_recipe_data(tmp_path / "data")
    (data["unpaired"] / "testB" / "broken.jpg").write_bytes(b"not an image")
    (data["unpaired"] / "trainA" / "broken.jpg").write_bytes(b"not an image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "cyclegan_horse2zebra.toml"),
                                           *[arg for item in [*TINY_CYCLEGAN, f"data.root={data['unpaired']}",
                                                              "log.eval_every=2"] for arg in ("--set", item)],
                                           "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    named = [str(warning.message) for warning in caught if "testB/broken.jpg" in str(warning.message)]
    assert len(named) == 1, named
    assert "1 unreadable image file(s) of the training set were skipped" in result.output


def test_a_cycle_weight_of_0_says_the_identity_weight_changes_nothing_and_a_sweep_refuses_it(tmp_path):
    # The identity term weighs identity_weight × cycle_weight: an ablation of the cycle term lost it too, unsaid.
    config = load_config(REPO / "experiments" / "cyclegan_horse2zebra.toml", ["loss.cycle_weight=0"])
    assert "loss.identity_weight = 0.5" in CycleGANRecipe.inert_keys(config)["loss.identity_weight"]
    with pytest.warns(UserWarning, match=r"loss.identity_weight = 0.5 \(the identity term weighs loss.identity_weight "
                                         r"× loss.cycle_weight, and loss.cycle_weight = 0\): it changes nothing"):
        CycleGANRecipe(load_config(REPO / "experiments" / "cyclegan_horse2zebra.toml",
                                   [*TINY_CYCLEGAN, "loss.cycle_weight=0"]), torch.device("cpu"), lambda: None)
    result = CliRunner().invoke(main, ["sweep", str(REPO / "experiments" / "cyclegan_horse2zebra.toml"), "--grid",
                                       "loss.identity_weight=0.5,1", "--set", "loss.cycle_weight=0", "--out",
                                       str(tmp_path / "sweep"), "--print-commands"])
    assert result.exit_code == 2 and "would train the same" in result.output, result.output
    assert not CycleGANRecipe.inert_keys(load_config(REPO / "experiments" / "cyclegan_horse2zebra.toml", []))


def test_init_generator_is_refused_for_cyclegans_two_generators(tiny_demo_run, tmp_path):
    # It was warned of as ignored ("srgan and srresnet only"), and the run trained from random weights.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = load_config(REPO / "experiments" / "cyclegan_horse2zebra.toml",
                             [*TINY_CYCLEGAN, f"model.init_generator={tiny_demo_run}"])
    assert not [str(warning.message) for warning in caught if "init_generator" in str(warning.message)]
    with pytest.raises(ConfigError, match=r"^model.init_generator = '.*': recipe 'cyclegan' trains 2 generators "
                                          r"\(generator_AtoB, generator_BtoA\), not one network named generator"):
        CycleGANRecipe.check(config)
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "cyclegan_horse2zebra.toml"),
                                       *[arg for item in TINY_CYCLEGAN for arg in ("--set", item)], "--set",
                                       f"model.init_generator={tiny_demo_run}", "--out", str(tmp_path / "runs")])
    assert_one_error_line(result, "recipe 'cyclegan' trains 2 generators", "leave model.init_generator out")


@pytest.mark.parametrize("metric", ["val/swd_AtoB", "val/swd"])
def test_a_cyclegan_run_keeps_its_best_by_the_swd_of_one_direction_or_both(tmp_path, metric):
    # val/swd, which the docs offered "for translations", was no CycleGAN score, and its own were refused
    from conftest import tiny_recipe_config, write_recipe_data

    data = write_recipe_data(tmp_path)
    config = tiny_recipe_config("cyclegan", data, "log.eval_every=2", f"train.keep_best={metric}")
    train(config, tmp_path / "run", torch.device("cpu"))
    best = load_checkpoint(tmp_path / "run" / "best.pt")["best"]
    assert best["metric"] == metric and best["value"] > 0


def test_cycle_eval_scores_the_runs_validation_split_or_the_one_given(unpaired_root, tmp_path):
    # It always scored testA/ and testB/ (or refused a root without them) while training validated on
    # data.val_split, and --split was refused for CycleGAN.
    root = Path(shutil.copytree(unpaired_root, tmp_path / "root"))
    for domain in "AB":
        shutil.copytree(root / f"test{domain}", root / f"val{domain}")
        (root / f"val{domain}" / "1.png").unlink()  # one image a domain: told apart from test's two
    runner = CliRunner()
    sets = [arg for item in [*TINY, f"data.root={root}", "data.val_split=val"] for arg in ("--set", item)]
    assert runner.invoke(main, ["train", str(CONFIG), *sets, "--out", str(tmp_path / "runs")]).exit_code == 0
    run_dir = only_run(tmp_path / "runs")
    for split, images in ((None, ["A/0.png", "B/0.png"]), ("test", ["A/0.png", "A/1.png", "B/0.png", "B/1.png"])):
        scored = runner.invoke(main, ["eval", str(run_dir), "--data", str(root), *(["--split", split] if split else [])])
        assert scored.exit_code == 0, scored.output
        name = f"eval-root-{split or 'val'}-{load_checkpoint(list_checkpoints(run_dir)[-1])['step']:08d}.csv"
        assert [row["image"] for row in csv.DictReader(open(run_dir / name))][:-1] == images
        assert f"of {split or 'val'}A/ and {split or 'val'}B/ in '{root}'" in scored.output
    missing = runner.invoke(main, ["eval", str(run_dir), "--data", str(root), "--split", "nope"])
    assert missing.exit_code == 2 and "holds no nopeA/ and nopeB/ (--split nope): it holds testA/, testB/, " \
        "trainA/, trainB/, valA/, valB/" in missing.output, missing.output
    every = runner.invoke(main, ["eval", str(run_dir), "--data", str(root), "--split", "all"])  # (a paired run's)
    assert every.exit_code == 2 and "(--split all) ('all' is for paired checkpoints; a CycleGAN run scores one " \
        "<split>A/ and <split>B/)" in every.output, every.output


@pytest.mark.parametrize("name", ["cyclegan_horse2zebra.toml", "cyclegan_photo2manga128.toml"])
def test_the_shipped_configs_validate_so_gan_compare_has_its_default_metric(name):
    """gan compare ranks CycleGAN runs by val/cycle_l1, which neither shipped config logged."""
    from gan.tools.compare import default_metric
    from gan.training.resolve import load_config

    config = load_config(REPO / "experiments" / name, [])
    assert default_metric({Path(name): {"recipe": config.recipe}}) == "val/cycle_l1"
    assert 0 < config.log.eval_every <= config.train.steps and config.data.val_split


def test_validations_cycle_l1_is_the_number_gan_eval_gives_the_checkpoint(unpaired_root, tmp_path):
    """Validation measured the round trip on float outputs, gan eval on the 8-bit images a file
    holds: 0.2313 against 0.2312 for one checkpoint, which gan compare ranks runs by."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sets = [arg for item in [*TINY_CYCLEGAN, f"data.root={unpaired_root}", "train.steps=2", "log.eval_every=2"]
            for arg in ("--set", item)]
    assert CliRunner().invoke(main, ["train", str(CONFIG), *sets, "--out", str(tmp_path / "runs")]).exit_code == 0
    run_dir = only_run(tmp_path / "runs")
    (logged,) = [event.value for event in EventAccumulator(str(run_dir)).Reload().Scalars("val/cycle_l1")]
    result = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(unpaired_root), "--csv",
                                       str(tmp_path / "c.csv")])
    assert result.exit_code == 0, result.output
    mean = [row for row in csv.DictReader(open(tmp_path / "c.csv")) if row["image"] == "mean"][0]
    # (to the CSV's 6 decimals and the odd 8-bit level that a batch's float noise rounds the other way:
    # the float round trip was 1e-5 away)
    assert float(mean["cycle_l1"]) == pytest.approx(logged, abs=5e-6)


def test_domain_folders_that_share_images_are_refused_before_anything_is_written(tmp_path):
    # data.a_root = data.b_root trained A -> A; a domain folder holding the other (read with its
    # subfolders) put every B image in domain A: both without a word
    unpaired = write_recipe_data(tmp_path)["unpaired"]
    config = str(REPO / "experiments" / "cyclegan_horse2zebra.toml")
    for a_root, b_root, said in (
            (unpaired / "trainA", unpaired / "trainA", f"domains A and B are one folder, '{unpaired / 'trainA'}'"),
            (unpaired, unpaired / "trainB", f"domain B's folder '{unpaired / 'trainB'}' is inside domain A's, "
                                            f"'{unpaired}', which is read with its subfolders")):
        out = tmp_path / f"runs-{a_root.name}"
        result = CliRunner().invoke(main, ["train", config, *[f"--set={item}" for item in TINY_CYCLEGAN],
                                           f"--set=data.root={unpaired}", f"--set=data.a_root={a_root}",
                                           f"--set=data.b_root={b_root}", "--out", str(out)])
        assert_one_error_line(result, said)
        assert not any(out.rglob("*.pt")), sorted(out.rglob("*"))


def test_a_link_that_puts_one_domains_images_in_the_other_is_refused(tmp_path):
    # a link inside trainA/ to trainB/ put every B image in domain A too: the folders' own check
    # compared the two roots alone, and the run trained on in silence
    unpaired = write_recipe_data(tmp_path)["unpaired"]
    (unpaired / "trainA" / "more").symlink_to(unpaired / "trainB", target_is_directory=True)
    config = str(REPO / "experiments" / "cyclegan_horse2zebra.toml")
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["train", config, *[f"--set={item}" for item in TINY_CYCLEGAN],
                                       f"--set=data.root={unpaired}", "--out", str(out)])
    assert_one_error_line(result, "image file(s) are in both domains through a link (the first: "
                                  f"'{unpaired / 'trainA' / 'more'}")
    assert not any(out.rglob("*.pt"))


def test_a_pool_size_that_cannot_fit_is_refused_before_step_1_naming_it(tmp_path, monkeypatch):
    """loss.pool_size=1000000 (a typo of 100) made two pools of a million images at step 1: the kernel
    killed the process without a word (under a memory limit: "a smaller train.batch_size")."""
    from gan.training import preflight

    unpaired = write_recipe_data(tmp_path)["unpaired"]
    sets = [arg for item in (*TINY_CYCLEGAN, f"data.root={unpaired}", "loss.pool_size=1000000000")
            for arg in ("--set", item)]
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "cyclegan_horse2zebra.toml"), *sets,
                                       "--out", str(tmp_path / "runs")])
    line = assert_one_error_line(result, "loss.pool_size 1000000000 keeps 2 pools of that many generated 16x16 "
                                         "images (5.6 TiB), and cpu has ")
    assert re.search(r"available: at most about [\d,]+ fit beside training \(the reference keeps 50\)", line), line
    assert not list(tmp_path.glob("runs/*/checkpoint-*.pt"))
    config = load_config(REPO / "experiments" / "cyclegan_horse2zebra.toml",
                         [*TINY_CYCLEGAN, f"data.root={unpaired}", "loss.pool_size=100"])
    pools = {"A": ImagePool(100), "B": ImagePool(100)}  # (2 x 100 x 3 x 16 x 16 x 4 bytes)
    monkeypatch.setattr(preflight, "available_memory", lambda device: 2 * 614_400 - 1)
    with pytest.warns(UserWarning, match="the run may be stopped for lack of memory; at most about 99 fit"):
        preflight.check_pools_fit(pools, config, torch.device("cpu"))
    monkeypatch.setattr(preflight, "available_memory", lambda device: 2 * 614_400)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preflight.check_pools_fit(pools, config, torch.device("cpu"))
