import math
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from gan.data.paired import matched_folders, paired_dataset


def _pattern(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth random RGB pattern (no sharp edges, so resampling never overshoots)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    channels = [np.sin(2 * np.pi * (rng.uniform(4, 8) * x + rng.uniform(4, 8) * y) + rng.uniform(0, 6))
                for _ in range(3)]
    return ((np.stack(channels, -1) * 0.4 + 0.5) * 255).round().astype(np.uint8)


def _ab_folder(root, count=3, height=256):
    """AB images whose right half (B) is the colour negative of the left half (A)."""
    root.mkdir(parents=True)
    for index in range(count):
        a = _pattern(256, height, index)
        Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / f"{index}.png")
    return root


def test_both_sides_get_the_same_crop_and_flip(tmp_path):
    """Pixel alignment after resize-to-286, random 256 crop and flip: target == -input everywhere."""
    dataset = paired_dataset(_ab_folder(tmp_path / "ab"), "all", 256, load_size=286, train=True)
    flipped = 0
    for seed in range(12):
        item = dataset[(seed % 3, seed)]
        assert item["input"].shape == item["target"].shape == (3, 256, 256)
        assert (item["input"] + item["target"]).abs().max() <= 2 / 127.5 + 1e-6  # B = 255 - A, up to rounding
        shifted = item["input"][:, :, 1:] + item["target"][:, :, :-1]
        assert shifted.abs().max() > 10 / 127.5  # while one pixel of misalignment would show
        plain = dataset[(seed % 3, seed)]
        assert torch.equal(plain["input"], item["input"])  # the same seed, the same augmentation
        flipped += not torch.equal(item["input"], dataset[(seed % 3, seed + 100)]["input"])
    assert flipped > 3  # different seeds give different crops/flips


def test_direction_and_evaluation_transform(tmp_path):
    root = _ab_folder(tmp_path / "ab")
    a_to_b = paired_dataset(root, "all", 128, load_size=0, train=False)[0]
    b_to_a = paired_dataset(root, "all", 128, load_size=0, direction="BtoA", train=False)[0]
    assert torch.equal(a_to_b["input"], b_to_a["target"]) and torch.equal(a_to_b["target"], b_to_a["input"])
    expected = np.asarray(Image.fromarray(_pattern(256, 256, 0)).resize((128, 128), Image.Resampling.BICUBIC))
    assert np.abs((a_to_b["input"].permute(1, 2, 0).numpy() + 1) * 127.5 - expected).max() < 0.51


def test_short_images_are_resized_to_the_crop_and_their_upsampling_is_said(tmp_path):
    # the folder and CelebA readers said so; pix2pix and CycleGAN blew a 1x1 image up 36x in silence
    with pytest.warns(UserWarning, match=r"each A\|B half's shorter side is smaller than data.resolution = 256 in every "
                                         r"image \(smallest: 194 px, in the 512x194 '.*0.png'\), so they are "
                                         r"upsampled, up to 1.5x"):  # (to data.load_size's 286)
        dataset = paired_dataset(_ab_folder(tmp_path / "ab", count=1, height=194), "all", 256, load_size=286)
    assert dataset[(0, 1)]["input"].shape == (3, 256, 256)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (evaluation sizes images to the crop: no upsampling said there)
        paired_dataset(tmp_path / "ab", "all", 256, load_size=286, train=False)
        paired_dataset(tmp_path / "ab", "all", 128, load_size=143)


def test_upsampled_pairs_and_unpaired_images_are_named_by_side_and_domain(tmp_path):
    from gan.data.unpaired import unpaired_dataset

    for side, size in (("A", 40), ("B", 1)):
        (tmp_path / "pairs" / side).mkdir(parents=True)
        Image.fromarray(_pattern(size, size, 0)).save(tmp_path / "pairs" / side / "tiny.png")
    with pytest.warns(UserWarning, match=r"the images' shorter side is smaller than data.resolution = 32 in 1 of 2 "
                                         r"images \(smallest: 1 px, in the 1x1 '.*B/tiny.png'\), so they are upsampled, "
                                         r"up to 36.0x"):
        paired_dataset(tmp_path / "pairs", "all", 32, load_size=36)
    for domain, size in (("A", 40), ("B", 2)):
        (tmp_path / f"train{domain}").mkdir()
        Image.fromarray(_pattern(size, size, 1)).save(tmp_path / f"train{domain}" / "one.png")
    with pytest.warns(UserWarning, match=r"the shorter side of domain B's images is smaller than data.resolution = 32 "
                                         r"in every image \(smallest: 2 px") as said:
        unpaired_dataset(tmp_path / "trainA", tmp_path / "trainB", 32, load_size=36)
    assert not [warning for warning in said if "domain A" in str(warning.message)]


def test_split_subfolders(tmp_path):
    _ab_folder(tmp_path / "facades" / "train", count=3)
    _ab_folder(tmp_path / "facades" / "val", count=2)
    assert len(paired_dataset(tmp_path / "facades", "train", 64)) == 3
    assert len(paired_dataset(tmp_path / "facades", "val", 64)) == 2
    with pytest.raises(FileNotFoundError, match="facades/test' does not exist"):
        paired_dataset(tmp_path / "facades", "test", 64)
    # data.root naming a split folder itself, or CycleGAN's layout: said as what it likely is
    with pytest.raises(FileNotFoundError, match=rf"train/train' does not exist .*train' holds images itself, so it may "
                                                rf"be a split folder: set data.root to '{tmp_path / 'facades'}'"):
        paired_dataset(tmp_path / "facades" / "train", "train", 64)
    (tmp_path / "unpaired" / "trainA").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="unpaired' holds trainA/-style folders, CycleGAN's unpaired layout"):
        paired_dataset(tmp_path / "unpaired", "train", 64)
    # read whole, the splits would train together, and validation would score the pairs trained on
    for split in ("all", ""):
        with pytest.raises(ValueError, match=r"holds the split folders train/, val/, which data.split = \"all\" "
                                             r"would read together .* set data.split to one of train, val"):
            paired_dataset(tmp_path / "facades", split, 64)


def test_a_folder_of_single_photos_read_as_pairs_is_warned_of(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(3):  # portrait faces, as CelebA's: their halves are no pair
        Image.fromarray(_pattern(89, 109, index)).save(photos / f"{index}.png")
    with pytest.warns(UserWarning, match=r"3 of the 3 images in '.*photos' are narrower than 2:1 \(the first: 0.png "
                                         r"89x109\).* left and right halves would train as input and target"):
        assert len(paired_dataset(photos, "all", 32)) == 3


def test_a_and_b_folders_match_by_name(tmp_path):
    for side in ("A", "B"):
        (tmp_path / side / "sub").mkdir(parents=True)
    for name in ("x", "y", "sub/z"):
        a = _pattern(64, 48, len(name))
        Image.fromarray(a).save(tmp_path / "A" / f"{name}.png")
        Image.fromarray(255 - a).save(tmp_path / "B" / f"{name}.png")
    pairs = matched_folders(tmp_path)
    assert [(a.relative_to(tmp_path).as_posix(), b.relative_to(tmp_path).as_posix()) for a, b in pairs] == [
        ("A/sub/z.png", "B/sub/z.png"), ("A/x.png", "B/x.png"), ("A/y.png", "B/y.png")]
    item = paired_dataset(tmp_path, "all", 32, load_size=40)[(1, 5)]
    assert (item["input"] + item["target"]).abs().max() <= 2 / 127.5 + 1e-6


def test_split_folders_inside_a_and_b_are_refused_with_the_moves_that_make_splits(tmp_path):
    # combine_A_and_B.py's input layout, A/{train,val,test} beside B/{...}: data.split = "all" (or gan eval)
    # paired A/test/1 with B/test/1 and so on, and trained and scored every split together in silence
    from gan.inference.scoring import _evaluation_pairs

    for split in ("train", "val", "test"):
        for side in ("A", "B"):
            (tmp_path / side / split).mkdir(parents=True)
            Image.fromarray(_pattern(40, 40, len(split))).save(tmp_path / side / split / "1.png")
    together = re.escape(f"'{tmp_path}' holds split folders inside A/ and B/ (A/test, A/train, A/val, the layout "
                         "pix2pix's combine_A_and_B.py takes), which would be read together: gan reads a split's pairs "
                         f"from {tmp_path}/<split>/A and {tmp_path}/<split>/B")
    with pytest.raises(ValueError, match=together):
        paired_dataset(tmp_path, "all", 32, load_size=40)
    with pytest.raises(ValueError, match=together):
        _evaluation_pairs(tmp_path, "auto")
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"paired data folder '{tmp_path / 'train'}' does not exist: '{tmp_path}' holds split folders inside A/ and "
            f"B/ (A/train, ") + ".*" + re.escape(f"(mkdir {tmp_path / 'train'} && mv {tmp_path / 'A' / 'train'} "
                                                 f"{tmp_path / 'train' / 'A'} && mv {tmp_path / 'B' / 'train'} "
                                                 f"{tmp_path / 'train' / 'B'}; and so on)")):
        paired_dataset(tmp_path, "train", 32, load_size=40)
    for split in ("train", "val", "test"):  # the moves it says: each split then reads alone
        (tmp_path / split).mkdir()
        for side in ("A", "B"):
            (tmp_path / side / split).rename(tmp_path / split / side)
    assert len(paired_dataset(tmp_path, "train", 32, load_size=40)) == 1


def test_lower_case_a_and_b_folders_are_sides_and_two_other_folders_of_single_images_are_refused(tmp_path):
    """Read as A|B images, each 64x48 photo of a/ or input/ would be cut in two halves silently."""
    for sides in (("a", "b"), ("input", "target")):
        root = tmp_path / sides[0]
        for side in sides:
            (root / side).mkdir(parents=True)
            for name in ("x", "y"):
                Image.fromarray(_pattern(64, 48, len(name))).save(root / side / f"{name}.png")
    pairs = matched_folders(tmp_path / "a")
    assert [(a.parent.name, b.parent.name, a.name) for a, b in pairs] == [("a", "b", "x.png"), ("a", "b", "y.png")]
    assert paired_dataset(tmp_path / "a", "all", 32, load_size=0)[0]["input"].shape == (3, 32, 32)
    with pytest.raises(ValueError, match=r"two folders of single images \(input/ and target/\).*name them A/ and B/"):
        paired_dataset(tmp_path / "input", "all", 32)
    # a file of its own that is no image (macOS's .DS_Store, a README) let them through, cut in halves
    (tmp_path / "input" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "input" / "README.txt").write_text("inputs and targets")
    with pytest.raises(ValueError, match=r"two folders of single images \(input/ and target/\)"):
        paired_dataset(tmp_path / "input", "all", 32)
    # so did an empty system folder beside them (ext4's lost+found, a USB drive's $RECYCLE.BIN)
    for system in ("lost+found", "$RECYCLE.BIN"):
        (tmp_path / "input" / system).mkdir()
    with pytest.raises(ValueError, match=r"two folders of single images \(input/ and target/\)"):
        paired_dataset(tmp_path / "input", "all", 32)


def test_a_b_images_beside_a_and_b_folders_are_warned_of_as_left_out(tmp_path):
    # they were dropped without a word
    for side in ("A", "B"):
        (tmp_path / side).mkdir()
        Image.fromarray(_pattern(40, 40, 1)).save(tmp_path / side / "0.png")
    for index in range(5):
        Image.fromarray(_pattern(80, 40, index)).save(tmp_path / f"ab{index}.png")
    with pytest.warns(UserWarning, match=r"holds 5 image file\(s\) beside its A/ and B/ folders, which are left out "
                                         r"\(pairs are read from A/ and B/ alone\): ab0.png, ab1.png, ab2.png and 2 more"):
        assert len(paired_dataset(tmp_path, "all", 32, load_size=0)) == 1


def test_the_folders_layout_on_a_b_images_says_it_reads_a_and_b_folders(tmp_path):
    # It warned of the images "beside its A/ and B/ folders", which were not there, and then said
    # that train/A does not exist, naming data.root and data.split but not data.layout.
    for index in range(2):
        Image.fromarray(_pattern(80, 40, index)).save(tmp_path / f"ab{index}.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(FileNotFoundError, match=re.escape(f'data.layout = "folders" reads pairs from '
                                                              f"'{tmp_path}/A' and '{tmp_path}/B', and '{tmp_path}' "
                                                              "has neither A/ nor B/; for A|B images side by side set "
                                                              "data.layout=aligned")):
            paired_dataset(tmp_path, "all", 32, layout="folders")
    assert not caught
    (tmp_path / "a").mkdir()  # (either case)
    with pytest.raises(FileNotFoundError, match="has no B/;"):
        paired_dataset(tmp_path, "all", 32, layout="folders")
    assert len(paired_dataset(tmp_path, "all", 32, layout="auto")) == 2


def test_an_a_b_image_too_narrow_to_split_is_skipped_in_a_sentence(tmp_path):
    # "skipping '.../one.png' is 1x1, too narrow to split into A|B halves"
    for index in range(2):
        Image.fromarray(_pattern(80, 40, index)).save(tmp_path / f"ab{index}.png")
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    with pytest.warns(UserWarning, match=re.escape(f"skipping '{tmp_path / 'one.png'}': it is 1x1, too narrow to "
                                                   "split into A|B halves")):
        assert len(paired_dataset(tmp_path, "all", 32)) == 2


def test_unmatched_files_are_an_error_listing_them(tmp_path):
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    for index in range(25):
        Image.new("RGB", (8, 8)).save(tmp_path / "A" / f"{index:02d}.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "B" / "00.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "B" / "extra.png")
    with pytest.raises(ValueError) as error:
        paired_dataset(tmp_path, "all", 8)
    message = str(error.value)
    assert "24 file(s) in A/ have no partner in B/" in message and "A/01" in message
    assert "1 file(s) in B/ have no partner in A/: B/extra" in message
    assert "A/20" in message and "A/21" not in message and "and 4 more" in message  # at most 20 names a side
    assert "in case alone" not in message


def test_unmatched_names_that_differ_in_case_alone_are_said_so(tmp_path):
    # "unmatched pairs" of A/UPPER.PNG and B/upper.png gave no hint that case was the only difference
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "A" / "UPPER.PNG")
    Image.new("RGB", (8, 8)).save(tmp_path / "B" / "upper.png")
    with pytest.raises(ValueError, match=r"1 of them differ from a partner in case alone \(the first: 'A/UPPER' and "
                                         r"'B/upper'\): names pair exactly, case included, so rename one side"):
        paired_dataset(tmp_path, "all", 8)
    (tmp_path / "B" / "upper.png").rename(tmp_path / "B" / "other.png")  # two names of one side are no pair
    Image.new("RGB", (8, 8)).save(tmp_path / "A" / "upper.png")
    with pytest.raises(ValueError) as unmatched:
        paired_dataset(tmp_path, "all", 8)
    assert "in case alone" not in str(unmatched.value)



def test_names_pair_whatever_their_unicode_normal_form(tmp_path):
    # A folder copied from macOS holds decomposed names (e + combining accent): they did not pair with
    # the same names typed on Linux, and the error listed two names that looked identical.
    for side, name in (("A", "caf\u00e9"), ("B", "cafe\u0301")):
        (tmp_path / side).mkdir()
        Image.fromarray(_pattern(16, 16, 0)).save(tmp_path / side / f"{name}.png")
    [(a_path, b_path)] = matched_folders(tmp_path)
    assert (a_path.stem, b_path.stem) == ("caf\u00e9", "cafe\u0301")


def test_the_partner_of_an_unreadable_file_is_named_as_left_out(tmp_path):
    for side in "AB":
        (tmp_path / side).mkdir()
        for name in ("kept", "orphan"):
            Image.fromarray(_pattern(16, 16, 0)).save(tmp_path / side / f"{name}.png")
    (tmp_path / "A" / "orphan.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning) as caught:
        dataset = paired_dataset(tmp_path, "all", 16, load_size=0)
    assert len(dataset) == 1
    messages = [str(warning.message) for warning in caught]
    assert any("A/orphan.png" in message for message in messages)
    assert any("1 readable file(s)" in message and "left out with their unreadable partner: B/orphan.png" in message
               for message in messages)

def test_load_size_smaller_than_the_crop_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="load_size \\(200\\) must be 0 or at least data.resolution \\(256\\)"):
        paired_dataset(_ab_folder(tmp_path / "ab", count=1), "all", 256, load_size=200)


def test_real_paired_folder(shared_data):
    """The pix2pix AB set beside the checkout: contours -> photos, some images shorter than 256."""
    dataset = paired_dataset(shared_data / "paired", "val", 256, direction="BtoA", train=False)
    assert len(dataset) == 155
    item = dataset[0]
    assert item["input"].shape == item["target"].shape == (3, 256, 256)
    assert item["input"].mean() > item["target"].mean()  # a contour drawing is mostly white paper


def test_pairs_whose_sides_differ_in_aspect_ratio_are_named_in_one_warning_or_refused_with_strict(tmp_path):
    from gan.data.decode import ImageReadError

    for side in ("A", "B"):
        (tmp_path / side).mkdir()
    sizes = {"same": ((64, 64), (64, 64)), "scaled": ((64, 48), (128, 96)), "odd": ((64, 64), (100, 50))}
    for name, (a_size, b_size) in sizes.items():
        Image.new("RGB", a_size).save(tmp_path / "A" / f"{name}.png")
        Image.new("RGB", b_size).save(tmp_path / "B" / f"{name}.png")
    with pytest.warns(UserWarning) as caught:
        assert len(paired_dataset(tmp_path, "all", 32, load_size=40)) == 3
    (message,) = [str(warning.message) for warning in caught]
    assert "1 pair(s)" in message and "odd.png 64x64 / B" in message and "odd.png 100x50" in message
    assert "same" not in message and "scaled" not in message  # a proportional size is fine
    with pytest.raises(ImageReadError, match="odd.png 100x50"):
        paired_dataset(tmp_path, "all", 32, load_size=40, strict=True)


def test_a_validation_image_that_fails_to_decode_is_left_out_of_the_mean_not_replaced(tmp_path):
    """A training set puts another image in a broken one's place; a validation mean doing so
    would count that image twice."""
    import warnings

    from torch import nn

    from gan.core.config import DataConfig
    from gan.recipes.image_to_image import pair_scores

    for root, names in ((tmp_path / "with", ("0", "1", "2")), (tmp_path / "without", ("1", "2"))):
        for side in ("A", "B"):
            (root / side).mkdir(parents=True)
        for index, name in enumerate(("0", "1", "2")):
            if name in names:
                a = _pattern(64, 64, index + 1)
                Image.fromarray(a).save(root / "A" / f"{name}.jpg", quality=95)
                Image.fromarray(255 - a if index == 1 else a).save(root / "B" / f"{name}.jpg", quality=95)
    broken = tmp_path / "with" / "B" / "0.jpg"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 3])  # passes the header scan
    data = DataConfig(dataset="paired", resolution=32)
    scores = {}
    for name in ("with", "without"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = paired_dataset(tmp_path / name, "all", 32, load_size=0, train=False)
            scores[name] = pair_scores(nn.Identity(), dataset, data, torch.device("cpu"), 1)
    assert scores["with"] == pytest.approx(scores["without"])


def test_validation_leaves_an_output_equal_to_its_target_out_of_the_mean_psnr(tmp_path):
    """Its infinite PSNR made val/psnr infinite whatever the other images scored (and best.pt by it
    meaningless)."""
    from torch import nn

    from gan.core.config import DataConfig
    from gan.recipes.image_to_image import pair_scores

    for side in ("A", "B"):
        (tmp_path / side).mkdir()
    for index in range(2):
        a = _pattern(64, 64, index + 1)
        Image.fromarray(a).save(tmp_path / "A" / f"{index}.png")
        Image.fromarray(255 - a if index == 1 else a).save(tmp_path / "B" / f"{index}.png")  # 0: B equals A
    dataset = paired_dataset(tmp_path, "all", 32, load_size=0, train=False)
    with pytest.warns(UserWarning, match="val/psnr and val/ssim leave out 1 of the 2 validation images: their outputs equal"):
        scores = pair_scores(nn.Identity(), dataset, DataConfig(dataset="paired", resolution=32), torch.device("cpu"), 1)
    only_other = pair_scores(nn.Identity(), torch.utils.data.Subset(dataset, [1]),
                             DataConfig(dataset="paired", resolution=32), torch.device("cpu"), 1)
    assert math.isfinite(scores["val/psnr"]) and scores == pytest.approx(only_other)  # (the same images in both)


def test_eval_of_a_model_trained_on_a_and_b_folders_refuses_a_folder_of_single_photos(tmp_path):
    """Such a model used to score single photos cut in halves (left: input, right: target), and a
    CycleGAN-style root's train and test images together, as pairs, without a word."""
    from click.testing import CliRunner
    from conftest import REPO, TINY_PIX2PIX, random_rgb

    from gan.commands.main import main
    from gan.training.loop import train
    from gan.training.resolve import load_config

    for split in ("train", "val"):
        for side, offset in (("A", 0), ("B", 50)):
            (tmp_path / "pairs" / split / side).mkdir(parents=True)
            for index in range(3):
                random_rgb((40, 40), offset + index).save(tmp_path / "pairs" / split / side / f"{index}.png")
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(3):
        random_rgb((60, 50), 100 + index).save(photos / f"{index}.png")
    config = load_config(REPO / "experiments" / "pix2pix_facades.toml",
                         [*TINY_PIX2PIX, f"data.root={tmp_path / 'pairs'}"])
    run_dir = train(config, tmp_path / "run", torch.device("cpu")).run_dir
    refused = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(photos), "--csv", str(tmp_path / "e.csv")])
    assert refused.exit_code == 2 and "holds single images, which would be cut in halves" in refused.output, \
        refused.output
    assert "trained on pairs in A/ and B/ folders" in refused.output and not (tmp_path / "e.csv").exists()
    scored = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(tmp_path / "pairs"),
                                       "--csv", str(tmp_path / "e.csv")])
    assert scored.exit_code == 0 and "3 pairs" in scored.output, scored.output


def test_pix2pix_with_l1_alone_trains_no_discriminator_and_says_what_it_ignores(tmp_path):
    # At loss.adversarial_weight = 0 a discriminator trained every step for nothing, its settings
    # (d_lr, label smoothing, ...) changed nothing without a word, and both weights at 0 "trained".
    import warnings

    from conftest import tiny_recipe_config, write_recipe_data

    from gan.core.checkpoint import load_checkpoint
    from gan.core.registry import ConfigError
    from gan.recipes.pix2pix import Pix2PixRecipe
    from gan.training.loop import train

    data = write_recipe_data(tmp_path / "data")
    alone = ("loss.adversarial_weight=0", "train.steps=2", "train.keep_best=", "log.eval_every=0")
    inert = Pix2PixRecipe.inert_keys(tiny_recipe_config("pix2pix", data, *alone, "train.d_lr=1e-3"))
    assert inert["train.d_lr"] == "train.d_lr = 0.001" and "model.discriminator_args.channels" in inert
    assert Pix2PixRecipe.inert_keys(tiny_recipe_config("pix2pix", data, "train.d_lr=1e-3")) == {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = train(tiny_recipe_config("pix2pix", data, *alone, "train.d_lr=1e-3"), tmp_path / "run",
                    torch.device("cpu"))
    said = [str(warning.message) for warning in caught]
    assert any(message.startswith("train.d_lr = 0.001; model.discriminator_args.channels = 4")
               and message.endswith("they change nothing, as loss.adversarial_weight = 0 trains no discriminator")
               for message in said), said
    saved = load_checkpoint(run.checkpoint)
    assert "discriminator" not in saved["networks"] and "discriminator" not in saved["optimizers"]
    assert "discriminator" not in saved["specs"]
    for regulariser, value in (("loss.r1_gamma", "1"), ("loss.diffaugment", "color")):
        with pytest.raises(ConfigError, match=f"{regulariser} regularises a discriminator, and loss.adversarial_weight"):
            Pix2PixRecipe.check(tiny_recipe_config("pix2pix", data, *alone, f"{regulariser}={value}"))
    with pytest.raises(ConfigError, match="loss.l1_weight and loss.adversarial_weight are both 0"):
        Pix2PixRecipe.check(tiny_recipe_config("pix2pix", data, *alone, "loss.l1_weight=0"))


def test_max_images_counts_only_pairs_that_split(tmp_path):
    # A 1 px wide A|B file counted among data.max_images, then was dropped: 3 pairs where 4 were asked for.
    import warnings

    root = _ab_folder(tmp_path / "ab" / "train", count=5, height=32)
    Image.new("RGB", (1, 20)).save(root / "1a-one.png")  # sorts among the first four
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = paired_dataset(tmp_path / "ab", "train", 32, 36, max_images=4)
    assert len(dataset) == 4 and dataset.num_skipped == 1
    assert any("1a-one.png" in str(warning.message) for warning in caught)


def test_validation_leaves_out_the_strays_gan_eval_leaves_out_so_the_two_agree(tmp_path):
    # val/psnr (which picks best.pt) scored a stray single photo among the A|B pairs; gan eval skipped it.
    import csv
    import json
    import warnings

    from click.testing import CliRunner
    from conftest import random_rgb, tiny_recipe_config, write_recipe_data

    from gan.commands.main import main
    from gan.training.loop import train

    data = write_recipe_data(tmp_path / "data")
    for index in (2, 3):  # more pairs, so that the stray is one among a majority
        a = np.asarray(random_rgb((40, 40), 50 + index))
        Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(data["paired"] / "val" / f"{index}.png")
    random_rgb((40, 40), 99).save(data["paired"] / "val" / "stray.png")
    config = tiny_recipe_config("pix2pix", data, "train.steps=2", "log.eval_every=2", "train.keep_best=val/psnr")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = train(config, tmp_path / "run", torch.device("cpu"))
    assert any("leaving out 1 evaluation image(s) narrower than 2:1" in str(warning.message) and "stray.png"
               in str(warning.message) for warning in caught)
    logged = json.loads((tmp_path / "run" / "best.json").read_text())["value"]
    result = CliRunner().invoke(main, ["eval", str(run.run_dir), "--data", str(data["paired"] / "val"),
                                       "--csv", str(tmp_path / "val.csv")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "val.csv")))
    assert [row["image"] for row in rows] == ["0.png", "1.png", "2.png", "3.png", "mean"]
    assert float(rows[-1]["psnr"]) == pytest.approx(logged, abs=1e-3)


@pytest.mark.parametrize("recipe", ["pix2pix", "srresnet", "cyclegan"])
def test_validation_scores_in_fp32_whatever_autocast_the_training_steps_use(tmp_path, recipe):
    """On a GPU `train.amp` runs the steps in bf16 autocast; validation ran in it too, so val/psnr
    (and best.pt chosen by it) was not the number `gan eval` gives the same checkpoint in fp32."""
    import contextlib

    from conftest import tiny_recipe_config, write_recipe_data

    from gan.recipes import RECIPES

    config = tiny_recipe_config(recipe, write_recipe_data(tmp_path), "log.eval_every=2")
    cpu = torch.device("cpu")
    scores = {}
    for name, autocast in (("fp32", contextlib.nullcontext), ("bf16", lambda: torch.autocast("cpu", dtype=torch.bfloat16))):
        torch.manual_seed(0)
        scores[name] = RECIPES.get(recipe)(config, cpu, autocast).validation_metrics()
    assert scores["bf16"] == scores["fp32"]


def test_a_and_b_folders_that_share_images_are_refused(tmp_path):
    # B/ a link to A/ (or to the folder holding A/): each image trained as its own target, without a word
    (tmp_path / "same" / "A").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "same" / "A" / "0.png")
    (tmp_path / "same" / "B").symlink_to(tmp_path / "same" / "A")
    with pytest.raises(ValueError, match=r"'.*same/A' and '.*same/B' are one folder: A/ holds the inputs and B/ "
                                         r"the targets, each its own files"):
        paired_dataset(tmp_path / "same", "all", 8)
    (tmp_path / "outer" / "A").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "outer" / "A" / "0.png")
    (tmp_path / "outer" / "B").symlink_to(tmp_path / "outer")
    with pytest.raises(ValueError, match=r"share images \(one is inside the other\)"):
        paired_dataset(tmp_path / "outer", "all", 8)


def test_an_a_folder_without_its_b_folder_is_said_so(tmp_path):
    # A/ alone was read as A|B images: square photos with a warning of "single photos", 2:1 ones cut in halves
    # and trained as their own input and target without a word
    (tmp_path / "train" / "A").mkdir(parents=True)
    for index in range(2):
        Image.new("RGB", (80, 40)).save(tmp_path / "train" / "A" / f"{index}.png")
    with pytest.raises(ValueError, match=r"'.*train' has A/ but no B/: pairs in folders take both"):
        paired_dataset(tmp_path, "train", 8)
