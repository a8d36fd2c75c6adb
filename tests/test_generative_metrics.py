"""SWD, the Inception loader, the reference-statistics cache, in-loop metrics and `gan eval`."""

import hashlib
import json
import os
import random
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import (
    assert_one_error_line,
    damage_past_the_header,
    flip_a_bit_in_record,
    invoke,
    random_rgb,
    tiny_config,
)
from PIL import Image, ImageFilter

import gan.metrics.generative as generative
from gan.commands.main import main
from gan.core.config import DataConfig
from gan.core.registry import ConfigError
from gan.data.synthetic import draw_face
from gan.metrics.generative import GenerativeEvaluator, ReferenceCache, reference_key
from gan.metrics.inception import (
    WEIGHTS_FILE,
    InceptionWeightsDamaged,
    InceptionWeightsNotFoundError,
    inception_features,
    load_inception,
    read_inception_weights,
)
from gan.metrics.swd import laplacian_pyramid, patch_descriptors, pyramid_resolutions, swd_from_descriptors
from gan.training.loop import train
from gan.training.resolve import resolve_names

CPU = torch.device("cpu")


def to_uint8(images: list[Image.Image]) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(image) for image in images])).permute(0, 3, 1, 2).contiguous()


# ----------------------------------------------------------------------------- SWD


@pytest.mark.parametrize("height, width, sides", [(32, 32, [32, 16, 8]), (90, 70, [70, 35, 18])])
def test_laplacian_pyramid_levels_add_back_up_to_the_image(height, width, sides):
    # 90 and 35 are odd: each coarser level keeps ceil(side / 2) and is upsampled back to the finer size
    from gan.metrics.swd import _pyramid_up

    images = torch.rand(2, 3, height, width) * 255
    levels = laplacian_pyramid(images, 3)
    assert [level.shape[-1] for level in levels] == sides
    rebuilt = levels[-1]
    for level in reversed(levels[:-1]):
        rebuilt = level + _pyramid_up(rebuilt, level.shape[-2:])
    torch.testing.assert_close(rebuilt, images, rtol=0, atol=1e-3)
    assert pyramid_resolutions(64) == [64, 32, 16] and pyramid_resolutions(128) == [128, 64, 32, 16]
    assert pyramid_resolutions(90) == [90, 45, 23]


def test_swd_takes_sizes_whose_pyramid_has_an_odd_level():
    images = torch.randint(0, 256, (4, 3, 90, 90), dtype=torch.uint8)
    assert [level.shape for level in patch_descriptors(images)] == [(4 * 128, 147)] * 3


@pytest.fixture(scope="module")
def faces() -> list[Image.Image]:
    return [draw_face(64, random.Random(index)) for index in range(96)]  # (192: 3x the time, the same order)


def test_swd_is_near_zero_for_the_same_set_and_grows_with_blur_and_noise(faces):
    reference = patch_descriptors(to_uint8(faces), seed=1)

    def swd(images: torch.Tensor) -> float:
        return swd_from_descriptors(reference, patch_descriptors(images, seed=2), 64)["swd/mean"]

    same = swd(to_uint8(faces))  # other random patches of the same images: sampling noise only
    blurred = [swd(to_uint8([face.filter(ImageFilter.GaussianBlur(radius)) for face in faces]))
               for radius in (1, 2, 3)]
    generator = torch.Generator().manual_seed(0)
    clean = to_uint8(faces).float()
    noised = [swd((clean + std * torch.randn(clean.shape, generator=generator)).round().clamp(0, 255).byte())
              for std in (5, 15, 40)]
    assert same < blurred[0] < blurred[1] < blurred[2]
    assert same < noised[0] < noised[1] < noised[2]
    assert same < 0.2 * min(blurred[2], noised[2])


def test_descriptors_are_normalised_over_the_whole_set_whatever_the_chunks(faces):
    # the whole level is no longer joined (six times the descriptors' memory): each channel's mean and
    # deviation are still the set's, as the paper's finalize_descriptors takes them
    from gan.metrics.swd import PATCHES_PER_IMAGE, _random_patches

    images = to_uint8(faces[:40])
    for batch_size in (7, 16, 40):
        generator, levels = torch.Generator().manual_seed(3), [[] for _ in range(3)]
        for chunk in images.split(batch_size):
            for index, level in enumerate(laplacian_pyramid(chunk.float(), 3)):
                levels[index].append(_random_patches(level, PATCHES_PER_IMAGE, generator))
        for got, chunks in zip(patch_descriptors(images, seed=3, batch_size=batch_size), levels):
            patches = torch.cat(chunks)
            mean = patches.mean(dim=(0, 2, 3), dtype=torch.float64, keepdim=True)
            std = (patches.double() - mean).square().mean(dim=(0, 2, 3), keepdim=True).sqrt()
            expected = ((patches - mean.float()) / std.float().clamp_min(1e-8)).flatten(1).half()
            assert torch.equal(got, expected), batch_size


def test_swd_patches_are_whole_neighbourhoods_centred_anywhere_they_fit():
    # the paper draws a 7x7 neighbourhood around any pixel 3 from the border: on a 9x8 level that is
    # rows 3..5 and columns 3..4, the last row and column included (one short biases every level)
    from gan.metrics.swd import PATCH_SIZE, _random_patches

    height, width = 9, 8
    level = torch.arange(2 * height * width, dtype=torch.float32).reshape(2, 1, height, width)
    patches = _random_patches(level, 400, torch.Generator().manual_seed(0))
    assert patches.shape == (2 * 400, 1, PATCH_SIZE, PATCH_SIZE)
    centre = patches[:, 0, 3, 3].long()
    assert torch.equal(centre // (height * width), torch.arange(2).repeat_interleave(400))  # each image's own patches, in order
    rows, cols = (centre % (height * width)) // width, centre % width
    assert {(int(r), int(c)) for r, c in zip(rows, cols)} == {(r, c) for r in (3, 4, 5) for c in (3, 4)}
    offsets = torch.arange(-3, 4)
    expected = centre[:, None, None] + offsets[:, None] * width + offsets[None, :]
    assert torch.equal(patches[:, 0].long(), expected)  # the neighbourhood, not a shifted window


def test_swd_reports_each_level_and_their_mean(faces):
    descriptors = patch_descriptors(to_uint8(faces[:8]))
    assert [tuple(level.shape) for level in descriptors] == [(8 * 128, 147)] * 3
    assert descriptors[0].dtype == torch.float16
    scores = swd_from_descriptors(descriptors, descriptors, 64)
    assert list(scores) == ["swd/64px", "swd/32px", "swd/16px", "swd/mean"]
    assert scores["swd/mean"] == 0.0  # identical descriptor sets
    with pytest.raises(ValueError, match="equal shape"):
        swd_from_descriptors(descriptors, patch_descriptors(to_uint8(faces[:4])), 64)
    with pytest.raises(TypeError, match="uint8"):
        patch_descriptors(torch.rand(2, 3, 32, 32))


# ----------------------------------------------------------------------------- Inception weights


@pytest.fixture(scope="session")
def random_inception_weights(tmp_path_factory) -> Path:
    """torch-fidelity's Inception-v3 with random weights, saved as a plain state dict (the real file
    cannot be downloaded here; this exercises the same loading path). Not under the real file's name
    (WEIGHTS_FILE), which carries the start of its SHA-256: random weights there are another file."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    folder = tmp_path_factory.mktemp("inception")
    empty = folder / "empty.pth"
    torch.save({}, empty)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    path = folder / "random-inception-v3.pth"
    torch.save(model.state_dict(), path)
    return path


def test_missing_inception_weights_name_the_file_and_where_to_put_it(tmp_path):
    with pytest.raises(InceptionWeightsNotFoundError) as error:
        load_inception(tmp_path / "nowhere.pth", CPU)
    message = str(error.value)
    assert "nowhere.pth" in message and WEIGHTS_FILE in message and "--inception-weights" in message
    assert "hub/checkpoints" in message


def test_inception_weights_load_with_no_room_in_the_temp_folder(random_inception_weights, tmp_path, monkeypatch):
    """The weights were re-saved (95 MB) into a temp folder for torch-fidelity's loader: a small /tmp
    stopped gan eval and training with torch's "unexpected pos 20682624 vs 20682520", naming nothing."""
    import tempfile

    import gan.metrics.inception as inception

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no room"))  # (every temp file fails there)
    inception._expected_weights.cache_clear()
    model, digest = load_inception(random_inception_weights, CPU)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert torch.isfinite(inception_features(model, images)).all() and digest


def test_inception_weights_load_without_unpickling_and_give_2048_features(random_inception_weights, tmp_path):
    model, _ = load_inception(random_inception_weights, CPU)
    images = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    features = inception_features(model, images, batch_size=2)
    assert features.shape == (3, 2048) and torch.isfinite(features).all()
    torch.testing.assert_close(inception_features(model, images[:1]), features[:1], rtol=1e-4, atol=1e-5)

    pickled = tmp_path / "pickled.pth"
    torch.save({"weights": torch.zeros(1), "code": Path("x")}, pickled)  # an arbitrary object
    with pytest.raises(ValueError, match="pickled.pth.*not a plain PyTorch state dict"):
        load_inception(pickled, CPU)
    foreign = tmp_path / "foreign.pth"
    torch.save({"conv.weight": torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match="does not hold torch-fidelity's Inception-v3 weights"):
        load_inception(foreign, CPU)
    # a safetensors file was told to take the extension .safetensors, which it had, "as an export"
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(1)}, tmp_path / "weights.safetensors")
    with pytest.raises(ValueError, match=r"a safetensors file, where a torch file \(.pth\) is read$"):
        load_inception(tmp_path / "weights.safetensors", CPU)


@pytest.mark.parametrize("damage", ["nan", "integer", "another shape", "one missing"])
def test_inception_weights_are_checked_weight_by_weight_in_one_line(random_inception_weights, tmp_path, damage):
    # one NaN (a flipped exponent bit in a download) gave kid NaN, precision and recall 0 and a best.pt kept
    # on them; integer weights all-zero features; torchvision's inception_v3 or a file short of a weight
    # passed the check before training and failed at the first validation, in torch's dump of every key
    state = torch.load(random_inception_weights, weights_only=True)
    if damage == "nan":
        state["Mixed_7c.branch_pool.conv.weight"][0, 0, 0, 0] = float("nan")
    elif damage == "integer":
        state["fc.weight"] = state["fc.weight"].to(torch.int32)
    elif damage == "another shape":
        state["fc.weight"] = torch.zeros(1000, 2048)
    else:
        del state["Conv2d_1a_3x3.conv.weight"]
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    said = {"nan": r"holds non-finite \(NaN or inf\) weights \('Mixed_7c.branch_pool.conv.weight'\): the file is "
                   r"damaged",
            "integer": r"parameter 'fc.weight' is torch.int32 in the file and torch.float32 in the network",
            "another shape": r"parameter 'fc.weight' has shape \[1000, 2048\] in the file and \[1008, 2048\]",
            "one missing": r"parameter 'Conv2d_1a_3x3.conv.weight' is missing from the file \(1 missing in all\)"}
    with pytest.raises(InceptionWeightsDamaged) as error:
        load_inception(path, CPU)
    assert re.search(said[damage], str(error.value)) and "\n" not in str(error.value), str(error.value)


def test_inception_weights_without_batchnorms_step_counters_load(random_inception_weights, tmp_path):
    # (a file saved before PyTorch kept them: BatchNorm loads it, and so must the check before it)
    state = torch.load(random_inception_weights, weights_only=True)
    path = tmp_path / "weights.pth"
    torch.save({name: tensor for name, tensor in state.items() if not name.endswith("num_batches_tracked")}, path)
    model, _ = load_inception(path, CPU)
    assert inception_features(model, torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).shape == (1, 2048)


def test_inception_weights_with_a_flipped_bit_or_under_another_files_hash_are_refused(random_inception_weights,
                                                                                     tmp_path, demo_run):
    """One flipped bit in a tensor's bytes loaded, and changed FID, without a word: torch.load checks neither
    the CRC-32 of each record of the file nor the SHA-256 a torch.hub name carries."""
    contents = random_inception_weights.read_bytes()
    flipped = tmp_path / "inception.pth"
    flipped.write_bytes(contents)
    flip_a_bit_in_record(flipped, "data/0")
    with pytest.raises(InceptionWeightsDamaged, match=rf"^'{re.escape(str(flipped))}' is damaged: its record 'data/0' "
                                                      r"fails its checksum$"):
        read_inception_weights(flipped)
    assert_one_error_line(invoke("eval", demo_run, "--metrics", "fid", "--n", "4", "--inception-weights", flipped),
                          f"'{flipped}' is damaged: its record 'data/0' fails its checksum; replace it with")
    sha256 = hashlib.sha256(contents).hexdigest()
    renamed = tmp_path / WEIGHTS_FILE  # (the real file's name: its SHA-256 starts 6726825d)
    renamed.write_bytes(contents)
    with pytest.raises(InceptionWeightsDamaged, match=rf"'{re.escape(str(renamed))}' is damaged: its SHA-256 starts "
                                                      rf"{sha256[:8]} where its name says 6726825d: damaged, or another "
                                                      r"file under that name$"):
        read_inception_weights(renamed)
    named = tmp_path / f"pt_inception-2015-12-05-{sha256[:8]}.pth"  # (pytorch-fid's name, of this file's hash)
    named.write_bytes(contents)
    assert read_inception_weights(named)[1] == sha256[:16]


def test_inception_weights_saved_from_dataparallel_or_wrapped_say_how_they_are_held(random_inception_weights, tmp_path):
    """A file saved from DataParallel ("module." on every key) or wrapped in {"state_dict": ...} said only
    "parameter 'Conv2d_1a_3x3.conv.weight' is missing from the file (N missing in all)"."""
    state = torch.load(random_inception_weights, weights_only=True)
    torch.save({f"module.{name}": tensor for name, tensor in state.items()}, tmp_path / "parallel.pth")
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth")
    for file, hint in (("parallel.pth", "every key starts with 'module.' (DataParallel's): save the weights without "
                                        "it ({k.removeprefix('module.'): v for k, v in state.items()})"),
                       ("wrapped.pth", "its weights may be nested under 'state_dict': save that entry alone")):
        with pytest.raises(InceptionWeightsDamaged, match=r"is missing from the file \(\d+ missing in all\); "
                                                          + re.escape(hint) + "$"):
            read_inception_weights(tmp_path / file)


def test_a_resume_scoring_through_other_inception_weights_sets_best_pt_aside(random_inception_weights, tmp_path,
                                                                              capsys):
    # the weights file at metrics.inception_weights replaced between the stop and the resume: KID through the
    # new network was compared with best.pt's through the old one, in one curve, without a word
    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(8):
        random_rgb((32, 32), index).save(faces / f"{index}.png")
    weights = tmp_path / "inception.pth"
    weights.write_bytes(random_inception_weights.read_bytes())
    config = ("data.dataset=folder", f"data.root='{faces}'", "metrics.every=2", "metrics.num_samples=8",
              "metrics.names=['kid']", "train.keep_best=kid", f"metrics.inception_weights='{weights}'",
              f"metrics.cache_dir='{tmp_path / 'cache'}'")
    run_dir = train(tiny_config(*config, "train.steps=2"), tmp_path / "run", CPU, progress_stream=sys.stdout).run_dir
    train(tiny_config(*config, "train.steps=4"), run_dir, CPU, resume=True, progress_stream=sys.stdout)
    assert "set aside" not in capsys.readouterr().err  # the same weights: compared with best.pt
    state = torch.load(weights, weights_only=True)
    state["fc.bias"] += 1  # (other weights: a file of another release, say)
    torch.save(state, weights)
    train(tiny_config(*config, "train.steps=6"), run_dir, CPU, resume=True, progress_stream=sys.stdout)
    assert re.search(r"best.pt \(kid \S+ at step \d\) was measured through other Inception-v3 weights than "
                     r"metrics.inception_weights now .* set aside as best-other-weights-0000000\d.pt",
                     capsys.readouterr().err)
    assert json.loads((run_dir / "best.json").read_text())["step"] == 6


# ----------------------------------------------------------------------------- reference cache


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(12):
        random_rgb((40, 40), seed=index).save(folder / f"{index:02d}.png")
    return folder


def test_images_added_between_the_check_and_the_first_pass_are_in_the_statistics_filed_under_their_key(
        image_folder, tmp_path):
    # the check before training listed 12 images; 4 more came before the first metrics pass: the
    # statistics of the 12 were filed under the key of the 16, and every later run reused them
    data = DataConfig(dataset="folder", root=str(image_folder), resolution=32)
    evaluator = GenerativeEvaluator(data, ["swd"], 64, CPU, cache_dir=tmp_path / "cache")
    assert len(evaluator.dataset()) == 12  # (the check before training)
    for index in range(12, 16):
        random_rgb((40, 40), seed=index).save(image_folder / f"{index:02d}.png")
    assert evaluator.reference_size == 16
    later = GenerativeEvaluator(data, ["swd"], 64, CPU, cache_dir=tmp_path / "cache")
    assert later.reference_size == 16 and len(list((tmp_path / "cache").iterdir())) == 1  # (the cached ones)


def test_reference_statistics_are_cached_and_invalidated_when_the_key_changes(image_folder, tmp_path, monkeypatch):
    loads = []
    original = generative.load_reference_images
    monkeypatch.setattr(generative, "load_reference_images", lambda *args: loads.append(args) or original(*args))
    data = DataConfig(dataset="folder", root=str(image_folder), resolution=32)
    cache = tmp_path / "cache"

    def reference(data: DataConfig, count: int) -> dict:
        return GenerativeEvaluator(data, ["swd"], count, CPU, cache_dir=cache).reference()["swd"]

    first = reference(data, 8)
    assert len(loads) == 1 and len(list(cache.glob("swd-*.pt"))) == 1
    again = reference(data, 8)
    assert len(loads) == 1  # read back from the cache, not recomputed
    for name in first:
        assert torch.equal(first[name], again[name])

    reference(DataConfig(dataset="folder", root=str(image_folder), resolution=16), 8)  # resolution
    reference(data, 10)  # count
    assert len(loads) == 3 and len(list(cache.glob("swd-*.pt"))) == 3  # (other sets' statistics: all kept)
    earlier = ReferenceCache(cache).path(reference_key(data, 8, "swd"))
    monkeypatch.setattr(generative, "VERSION", generative.VERSION + 1)  # metric version
    reference(data, 8)
    # the earlier version's statistics of the same set, never read again, are removed (1 GB at 10,000 images)
    assert len(loads) == 4 and len(list(cache.glob("swd-*.pt"))) == 3 and not earlier.exists()

    other_folder = tmp_path / "other"
    other_folder.mkdir()
    for index in range(8):
        random_rgb((40, 40), seed=100 + index).save(other_folder / f"{index}.png")
    assert reference_key(data, 8, "swd") != reference_key(DataConfig(dataset="folder", root=str(other_folder),
                                                                      resolution=32), 8, "swd")
    reference(DataConfig(dataset="folder", root=str(other_folder), resolution=32), 8)  # dataset path
    assert len(loads) == 5


def test_reference_statistics_of_a_later_metric_version_are_left_to_the_gan_that_reads_them(image_folder, tmp_path,
                                                                                             monkeypatch):
    """Two gans sharing the cache (two checkouts, or a `git checkout` back) removed each other's statistics of
    the same set as out of date, each then computing its own again: the earlier version now leaves the later
    one's alone, and once each has its own, neither is computed again."""
    loads = []
    original = generative.load_reference_images
    monkeypatch.setattr(generative, "load_reference_images", lambda *args: loads.append(args) or original(*args))
    data = DataConfig(dataset="folder", root=str(image_folder), resolution=16)
    earlier, later = generative.VERSION, generative.VERSION + 1
    paths = {}
    for version in (later, earlier, later, earlier):
        monkeypatch.setattr(generative, "VERSION", version)
        GenerativeEvaluator(data, ["swd"], 4, CPU, cache_dir=tmp_path).reference()
        paths[version] = ReferenceCache(tmp_path).path(reference_key(data, 4, "swd"))
    assert paths[later].exists() and paths[earlier].exists() and len(loads) == 2


def test_out_of_date_statistics_another_user_keeps_stay_and_the_new_ones_are_stored(image_folder, tmp_path,
                                                                                    monkeypatch):
    """A shared metrics.cache_dir (a sticky folder): another user's out-of-date statistics, which this user may
    not remove, stopped the store ("could not cache reference statistics ... Operation not permitted"), and
    every run of this user computed them again."""
    from conftest import as_another_users

    loads = []
    original = generative.load_reference_images
    monkeypatch.setattr(generative, "load_reference_images", lambda *args: loads.append(args) or original(*args))
    data = DataConfig(dataset="folder", root=str(image_folder), resolution=16)
    GenerativeEvaluator(data, ["swd"], 4, CPU, cache_dir=tmp_path).reference()
    earlier = ReferenceCache(tmp_path).path(reference_key(data, 4, "swd"))
    as_another_users(monkeypatch, earlier)
    monkeypatch.setattr(generative, "VERSION", generative.VERSION + 1)
    with pytest.warns(UserWarning, match=rf"the out-of-date reference statistics '{re.escape(str(earlier))}' could not "
                                         r"be removed \(Operation not permitted\) and stay, unread: ask '.+' to remove"):
        GenerativeEvaluator(data, ["swd"], 4, CPU, cache_dir=tmp_path).reference()
    GenerativeEvaluator(data, ["swd"], 4, CPU, cache_dir=tmp_path).reference()  # (read back, not computed)
    assert earlier.exists() and ReferenceCache(tmp_path).path(reference_key(data, 4, "swd")).exists()
    assert len(loads) == 2


def test_statistics_another_user_keeps_from_this_one_are_said_so_not_called_damaged(image_folder, tmp_path,
                                                                                    monkeypatch):
    """Written under umask 077 by another user in a shared folder: "are damaged (it cannot be read: Permission
    denied)"."""
    data = DataConfig(dataset="folder", root=str(image_folder), resolution=16)
    GenerativeEvaluator(data, ["swd"], 4, CPU, cache_dir=tmp_path).reference()
    path = ReferenceCache(tmp_path).path(reference_key(data, 4, "swd"))
    owner, load = path.stat().st_uid, torch.load

    def refused(file, *args, **kwargs):  # (root reads past permission bits: the refusal is played here)
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return load(file, *args, **kwargs)

    monkeypatch.setattr(torch, "load", refused)
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with pytest.warns(UserWarning, match=rf"the reference statistics '{re.escape(str(path))}' cannot be read by this "
                                         r"user \(Permission denied; owned by '.+', written under a umask") as caught:
        assert ReferenceCache(tmp_path).load(reference_key(data, 4, "swd")) is None
    assert "damaged" not in str(caught[0].message) and "ask its owner to make it readable" in str(caught[0].message)


def test_a_corrupt_cache_file_is_recomputed(image_folder, tmp_path):
    data = DataConfig(dataset="folder", root=str(image_folder), resolution=16)
    key = reference_key(data, 4, "swd")
    cache = ReferenceCache(tmp_path)
    cache.path(key).write_bytes(b"truncated")
    with pytest.warns(UserWarning, match=r"the reference statistics .* are damaged \(not a torch file\): computed "
                                         "again"):  # (it said "unreadable ...: 101", torch's bare number)
        assert cache.load(key) is None
        statistics = GenerativeEvaluator(data, ["swd"], 4, CPU, cache_dir=tmp_path).reference()["swd"]
    assert int(statistics["num_images"]) == 4
    assert cache.load(key) is not None  # rewritten whole


@pytest.mark.parametrize("stored", [[1, 2, 3], {"key": None}, {"statistics": {}}], ids=["list", "no-statistics",
                                                                                       "no-key"])
def test_a_cache_file_that_loads_as_something_else_is_recomputed(image_folder, tmp_path, stored):
    """A file of another kind there stopped every gan eval and every resume of training at its metrics
    with an AttributeError ('list' object has no attribute 'get'), naming no file; it never went away."""
    data = DataConfig(dataset="folder", root=str(image_folder), resolution=16)
    cache = ReferenceCache(tmp_path)
    path = cache.path(reference_key(data, 4, "swd"))
    torch.save(stored, path)
    with pytest.warns(UserWarning, match=rf"the reference statistics '{re.escape(str(path))}' are damaged \(it holds "
                                         rf"{type(stored).__name__}, not a record .*\): computed again"):
        statistics = GenerativeEvaluator(data, ["swd"], 4, CPU, cache_dir=tmp_path).reference()["swd"]
    assert int(statistics["num_images"]) == 4 and cache.load(reference_key(data, 4, "swd")) is not None


def test_a_killed_runs_temp_of_reference_statistics_is_removed_when_the_next_are_stored(image_folder, tmp_path):
    """A run killed as it wrote its statistics left a 2.4 MB temp that nothing ever removed."""
    import subprocess

    from gan.core.files import host_tag

    finished = subprocess.Popen(["true"])
    finished.wait()
    data = DataConfig(dataset="folder", root=str(image_folder), resolution=16)
    path = ReferenceCache(tmp_path).path(reference_key(data, 4, "swd"))
    dead = tmp_path / f"{path.name}.{finished.pid}.{host_tag()}.0badc0de.tmp"
    live = tmp_path / f"{path.name}.{os.getpid()}.{host_tag()}.0c0ffee0.tmp"
    own = tmp_path / "budget.2023.20231231.tmp"  # (a person's, in an earlier gan's form of temp: the folder is theirs)
    for temp in (dead, live, own):
        temp.write_bytes(b"PK")
    GenerativeEvaluator(data, ["swd"], 4, CPU, cache_dir=tmp_path).reference()
    assert path.is_file() and not dead.exists() and live.exists() and own.exists()


def test_reference_statistics_damaged_inside_are_recomputed_not_scored_against(image_folder, tmp_path):
    """torch.load checks no CRC: bytes flipped inside the cached descriptors loaded as they were, and
    SWD came out at 1e7 (best.pt kept by it) in every later run and gan eval."""
    import zipfile

    data = DataConfig(dataset="folder", root=str(image_folder), resolution=16)
    evaluator = GenerativeEvaluator(data, ["swd"], 4, CPU, cache_dir=tmp_path)
    good = {name: value.clone() for name, value in evaluator.reference()["swd"].items()}
    (path,) = tmp_path.glob("swd-*.pt")
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)  # the descriptors
    start = record.header_offset + 30 + len(record.filename) + len(record.extra) + record.file_size // 2
    raw[start:start + 16] = bytes(byte ^ 0xFF for byte in raw[start:start + 16])
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match=r"the reference statistics .* are damaged \(its record .* fails its "
                                         r"checksum\): computed again"):
        again = GenerativeEvaluator(data, ["swd"], 4, CPU, cache_dir=tmp_path).reference()["swd"]
    assert all(torch.equal(again[name], good[name]) for name in good)


def test_inception_statistics_cache_and_scores(image_folder, tmp_path, random_inception_weights):
    data = DataConfig(dataset="folder", root=str(image_folder), resolution=32)
    evaluator = GenerativeEvaluator(data, ["fid", "kid", "pr", "swd"], 12, CPU, str(random_inception_weights),
                                    tmp_path)
    real = generative.load_reference_images(data, 12)
    scores = evaluator.score(real)
    assert scores["fid"] == pytest.approx(0.0, abs=1e-3)  # the reference set against itself
    assert scores["precision"] == scores["recall"] == 1.0
    assert {"kid", "swd/32px", "swd/16px", "swd/mean"} <= set(scores)
    assert "kid_std" not in scores  # 12 images against 12: one subset of both, no spread
    assert sorted(path.name.split("-")[0] for path in tmp_path.glob("*.pt")) == ["inception", "swd"]


def test_the_files_of_the_reference_set_are_fingerprinted_once_for_all_kinds(image_folder, tmp_path,
                                                                               random_inception_weights, monkeypatch):
    """Taking the fingerprint stats every file (seconds at CelebA's 200k): once per evaluator."""
    import gan.data

    calls = []
    original = gan.data.source_fingerprint
    monkeypatch.setattr(gan.data, "source_fingerprint", lambda data: calls.append(data) or original(data))
    data = DataConfig(dataset="folder", root=str(image_folder), resolution=32)
    evaluator = GenerativeEvaluator(data, ["fid", "swd"], 12, CPU, str(random_inception_weights), tmp_path)
    assert set(evaluator.reference()) == {"inception", "swd"} and len(calls) == 1


# ----------------------------------------------------------------------------- in the loop and `gan eval`


def test_training_shows_the_progress_of_its_metric_passes(tmp_path):
    # A metrics pass said nothing while it ran (a minute at 2,000 images; FID's Inception, minutes more)
    import io

    stream = io.StringIO()
    train(tiny_config("metrics.every=2", "metrics.num_samples=16", "metrics.names=['swd']", "train.ema_decay=0",
                      f"metrics.cache_dir='{tmp_path / 'cache'}'"), tmp_path / "run", CPU, progress_stream=stream)
    said = stream.getvalue()
    assert "real image 16/16" in said and "SWD direction" in said, said


@pytest.mark.parametrize("recipe", ["pix2pix", "cyclegan"])
def test_a_translation_runs_named_weights_that_are_absent_are_refused_before_step_1(recipe, tmp_path):
    """Its validation scores FID and KID of translations with them: it warned of skipping them at the
    first validation, telling the user to set the key they had set."""
    from conftest import tiny_recipe_config, write_recipe_data

    data = write_recipe_data(tmp_path / "data")
    config = tiny_recipe_config(recipe, data, "log.eval_every=2", f"metrics.inception_weights='{tmp_path / 'absent.pth'}'")
    with warnings.catch_warnings(record=True) as caught, pytest.raises(
            ConfigError, match="metrics.inception_weights: Inception-v3 weights not found at .*absent.pth"):
        warnings.simplefilter("always")
        train(config, tmp_path / "run", CPU, progress_stream=sys.stdout)
    assert not [w for w in caught if "skipping" in str(w.message)] and not (tmp_path / "run" / "samples").exists()


@pytest.mark.parametrize("recipe", ["pix2pix", "cyclegan"])
@pytest.mark.parametrize("named", [True, False])
def test_a_translation_runs_damaged_weights_are_refused_before_step_1(recipe, named, tmp_path, monkeypatch):
    """A damaged file was found, not read, before step 1: the run trained to its first validation
    (log.eval_every steps) and stopped there. Unnamed, at the default place, it was blamed on
    metrics.inception_weights, which the user never set."""
    from conftest import tiny_recipe_config, write_recipe_data

    from gan.metrics.inception import WEIGHTS_FILE

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    damaged = tmp_path / "torch-home" / "hub" / "checkpoints" / WEIGHTS_FILE
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"PK\x03\x04 not the weights")
    setting = [f"metrics.inception_weights='{damaged}'"] if named else []
    config = tiny_recipe_config(recipe, write_recipe_data(tmp_path / "data"), "log.eval_every=2", *setting)
    blamed = ("metrics.inception_weights" if named else
              "the Inception-v3 weights at their default place (metrics.inception_weights is unset)")
    with pytest.raises(ConfigError, match=re.escape(f"{blamed}: '{damaged}' is not a plain PyTorch state dict")):
        train(config, tmp_path / "run", CPU, progress_stream=sys.stdout)
    assert not (tmp_path / "run" / "samples").exists()


def test_too_few_samples_for_precision_recall_are_refused_before_anything_is_scored(tmp_path):
    """pr with 3 samples per set failed at the first metrics pass (training), or after both sets had
    passed through Inception (gan eval), naming neither metrics.num_samples nor --n."""
    with pytest.raises(ConfigError, match=r"metrics.num_samples = 3 is too few for metrics.names = \['pr'\]: at "
                                          r"least 4 \(pr compares each image with its 3 nearest neighbours\)"):
        train(tiny_config("metrics.every=2", "metrics.num_samples=3", "metrics.names=['pr']"), tmp_path / "run", CPU)
    assert not (tmp_path / "run" / "samples").exists()
    run = train(tiny_config("train.steps=2", "train.ema_decay=0"), tmp_path / "ok", CPU)
    result = CliRunner().invoke(main, ["eval", str(run.run_dir), "--metrics", "pr,swd", "--n", "3"])
    assert result.exit_code == 2 and "--n must be at least 4 (pr compares each image with its 3 nearest " \
        "neighbours), got 3" in " ".join(result.output.split()), result.output


def test_building_inception_for_fid_leaves_the_training_alone(random_inception_weights, tmp_path):
    # torch-fidelity's Inception-v3 draws its initial weights from the global generator: a run with FID
    # on (or with the weights file merely present) trained other weights than one without
    from gan.core.checkpoint import list_checkpoints, load_checkpoint

    plain = train(tiny_config("train.steps=2", "train.checkpoint_every=2"), tmp_path / "plain", CPU,
                  progress_stream=sys.stdout)
    measured = train(tiny_config("train.steps=2", "train.checkpoint_every=2", "metrics.every=100",
                                 "metrics.names=['swd', 'fid']", "metrics.num_samples=16",
                                 f"metrics.cache_dir='{tmp_path / 'cache'}'",
                                 f"metrics.inception_weights='{random_inception_weights}'"),
                     tmp_path / "measured", CPU, progress_stream=sys.stdout)
    weights = [load_checkpoint(list_checkpoints(run.run_dir)[-1])["networks"] for run in (plain, measured)]
    for name, state in weights[0].items():
        assert all(torch.equal(value, weights[1][name][key]) for key, value in state.items()), name


def test_training_logs_swd_and_skips_fid_without_weights(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # where the weights would be by default: absent
    settings = ("metrics.every=2", "metrics.num_samples=16", "metrics.names=['swd', 'fid', 'kid']",
                f"metrics.cache_dir='{tmp_path / 'cache'}'")
    # A weights file named but absent cannot be what the user meant: refused before step 1.
    with warnings.catch_warnings(record=True) as caught, pytest.raises(
            ConfigError, match="metrics.inception_weights: Inception-v3 weights not found at .*absent.pth"):
        warnings.simplefilter("always")
        train(tiny_config(*settings, f"metrics.inception_weights='{tmp_path / 'absent.pth'}'"), tmp_path / "named",
              CPU, progress_stream=sys.stdout)
    assert not [w for w in caught if "skipping" in str(w.message)]  # refused, not first said to be skipped
    with pytest.warns(UserWarning, match="skipping fid, kid: Inception-v3 weights not found at .*torch-home(.|\n)*"
                                         "gan train --set metrics.inception_weights=PATH\n  not to ask for them: "
                                         "gan train --set 'metrics.names=\\[\"swd\"\\]'$"):
        result = train(tiny_config(*settings), tmp_path / "run", CPU, progress_stream=sys.stdout)
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]
    assert all(line["num_images"] == 16 and line["swd/mean"] > 0 and "fid" not in line for line in lines)
    scalars = EventAccumulator(str(result.run_dir)).Reload().Tags()["scalars"]
    assert {"metrics/swd/32px", "metrics/swd/16px", "metrics/swd/mean"} <= set(scalars)


def test_metrics_root_compares_with_other_real_images(tmp_path):
    # Training on 16 images of a folder (data.max_images), measured against those 16 (the default),
    # against the whole folder, or against a folder of blurred copies: the reference is what is asked for.
    faces, blurred = tmp_path / "faces", tmp_path / "blurred"
    faces.mkdir(), blurred.mkdir()
    for index in range(48):
        face = draw_face(32, random.Random(index))
        face.save(faces / f"{index:03d}.png")
        face.filter(ImageFilter.GaussianBlur(2)).save(blurred / f"{index:03d}.png")
    common = ("data.dataset=folder", f"data.root={faces}", "data.max_images=16", "metrics.every=4",
              "metrics.num_samples=32", "metrics.names=['swd']", f"metrics.cache_dir='{tmp_path / 'cache'}'")
    scores, runs = {}, {}
    for name, root in (("training", ""), ("faces", faces), ("blurred", blurred)):
        result = train(tiny_config(*common, f"metrics.root='{root}'"), tmp_path / "runs" / name, CPU,
                       progress_stream=sys.stdout)  # (not tmp_path / name: "faces" would train among the faces)
        (line,) = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        scores[name], runs[name] = line, result.run_dir
    assert scores["training"]["num_images"] == 16  # the training images: max_images of them
    assert scores["faces"]["num_images"] == scores["blurred"]["num_images"] == 32  # all 48 on offer; 32 asked
    assert scores["faces"]["swd/mean"] != scores["blurred"]["swd/mean"]
    # gan eval compares with what training measured against: metrics.root (it took data.root, and
    # reported another SWD than metrics.jsonl and best.pt's for the same checkpoint)
    from click.testing import CliRunner

    from gan.commands.main import main

    result = CliRunner().invoke(main, ["eval", str(runs["blurred"]), "--metrics", "swd", "--n", "32", "--cache-dir",
                                       str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert f"real images: the run's metrics.root '{blurred}'" in result.output
    evaluated = json.loads((runs["blurred"] / "metrics-00000004.json").read_text())
    assert evaluated["swd/mean"] == pytest.approx(scores["blurred"]["swd/mean"], rel=1e-6)
    assert evaluated["reference"] == str(blurred.resolve())


def test_in_loop_metrics_do_not_change_training(tmp_path):
    with_metrics = train(tiny_config("metrics.every=1", "metrics.num_samples=8", "metrics.names=['swd']",
                                     f"metrics.cache_dir='{tmp_path / 'cache'}'"), tmp_path / "a", CPU,
                         progress_stream=sys.stdout)
    without = train(tiny_config(), tmp_path / "b", CPU, progress_stream=sys.stdout)
    weights = [torch.load(run.checkpoint, weights_only=True)["networks"] for run in (with_metrics, without)]
    for name in weights[0]:
        for key, value in weights[0][name].items():
            assert torch.equal(value, weights[1][name][key]), f"{name}.{key}"


def test_metrics_names_are_checked():
    from gan.core.registry import ConfigError

    with pytest.raises(ConfigError, match="metrics.names: unknown metric 'fdi'.*did you mean 'fid'"):
        tiny_config("metrics.names=['swd', 'fdi']")


def test_generative_metrics_need_an_unconditional_recipe(tmp_path):
    from gan.core.registry import ConfigError
    from gan.recipes import RECIPES

    config = tiny_config("metrics.every=2")
    config.recipe, config.data.dataset = "pix2pix", "paired"
    with pytest.raises(ConfigError, match="metrics.every.*unconditional"):  # (the recipe's check: a sweep's too)
        RECIPES.get("pix2pix").check(config)


@pytest.fixture
def demo_run(tiny_demo_run):
    return tiny_demo_run


def test_gan_eval_refuses_real_images_too_few_for_pr_before_scoring_generated_ones(demo_run, tmp_path,
                                                                                 random_inception_weights, monkeypatch):
    # Both sets went through Inception first; then "precision/recall with k=3 needs more than 3 samples
    # per set", naming neither the folder nor its 3 images.
    import gan.inference.scoring

    three = tmp_path / "three"
    three.mkdir()
    for index in range(3):
        random_rgb((32, 32), index).save(three / f"{index}.png")

    def scored(*args, **kwargs):
        raise AssertionError("generated images were scored")

    monkeypatch.setattr(gan.inference.scoring, "score_generator", scored)
    result = CliRunner().invoke(main, ["eval", str(demo_run), "--metrics", "pr", "--n", "16", "--data", str(three),
                                       "--inception-weights", str(random_inception_weights),
                                       "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 2 and f"error: the real images ('{three}') are 3 images, too few for --metrics pr: " \
        "at least 4 (pr compares each image with its 3 nearest neighbours)" in result.output, result.output


def test_gan_eval_writes_json_with_the_asked_metrics(demo_run, tmp_path, random_inception_weights):
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(main, ["eval", str(demo_run), "--metrics", "swd,fid,kid", "--n", "16",
                                       "--inception-weights", str(random_inception_weights),
                                       "--cache-dir", str(tmp_path / "cache"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["step"] == 4 and scores["num_images"] == 16 and scores["ema"] is True
    assert scores["fid"] > 0 and {"kid", "swd/mean"} <= set(scores)
    assert "swd/mean" in result.stdout
    # the Inception passes, the slow part on a CPU (0.4 s an image), show their progress too
    assert "real image through Inception 16/16" in result.output
    assert "generated image through Inception 16/16" in result.output


def test_gan_eval_without_inception_weights_is_a_clear_error(demo_run, tmp_path):
    result = CliRunner().invoke(main, ["eval", str(demo_run), "--metrics", "fid", "--n", "8",
                                       "--inception-weights", str(tmp_path / "missing.pth")])
    assert result.exit_code == 2
    assert "missing.pth" in result.output and WEIGHTS_FILE in result.output
    result = CliRunner().invoke(main, ["eval", str(demo_run), "--metrics", "swd,bogus"])
    assert result.exit_code == 2 and "unknown metric 'bogus'" in result.output
    result = CliRunner().invoke(main, ["eval", str(demo_run), "--metrics", ""])  # an empty "$METRICS"
    assert result.exit_code == 2 and "name at least one metric of fid, kid, swd, pr" in result.output, result.output


def test_swd_on_real_faces_separates_faces_from_blurred_faces(shared_data):
    """256 CelebA faces at 64 px: another 256 real faces are close, the same faces blurred are far."""
    data = DataConfig(dataset="celeba", root=str(shared_data / "faces" / "img_align_celeba"), resolution=64)
    faces = generative.load_reference_images(data, 512)
    first, second = faces[:256], faces[256:]
    blurred = to_uint8([Image.fromarray(face.permute(1, 2, 0).numpy()).filter(ImageFilter.GaussianBlur(1.5))
                        for face in first])
    reference = patch_descriptors(first)
    real = swd_from_descriptors(reference, patch_descriptors(second, seed=1), 64)["swd/mean"]
    blur = swd_from_descriptors(reference, patch_descriptors(blurred, seed=1), 64)["swd/mean"]
    assert real < 0.5 * blur  # measured: 19.5 against 60.8 (16.8 against 59.8 at 512 faces each)


def test_gan_eval_by_default_computes_what_can_run_here_and_names_what_it_skipped(demo_run, tmp_path, monkeypatch):
    out = tmp_path / "scores.json"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # where the weights would be, and are not
    # the skip is said once, by the warning (issue 28: the command no longer repeats it)
    with pytest.warns(UserWarning, match=f"skipping fid, kid: Inception-v3 weights not found at .*{WEIGHTS_FILE}"
                                         "(.|\n)*\n  not to ask for them: gan eval --metrics swd$"):
        result = CliRunner().invoke(main, ["eval", str(demo_run), "--n", "16", "--cache-dir", str(tmp_path / "cache"),
                                           "--json", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert list(scores["skipped"]) == ["fid", "kid"] and "swd/mean" in scores and "fid" not in scores
    # a file named by --inception-weights is asked for: its absence is an error (it said to do what was done)
    result = CliRunner().invoke(main, ["eval", str(demo_run), "--n", "16", "--inception-weights",
                                       str(tmp_path / "missing.pth"), "--json", str(tmp_path / "named.json")])
    assert result.exit_code == 2 and "missing.pth" in result.output and not (tmp_path / "named.json").exists()
    # ... and where the metrics asked for need no Inception, that is the error, not the file's absence
    result = CliRunner().invoke(main, ["eval", str(demo_run), "--n", "16", "--metrics", "swd", "--inception-weights",
                                       str(tmp_path / "missing.pth"), "--json", str(tmp_path / "named.json")])
    assert result.exit_code == 2 and "--metrics swd uses no weights" in result.output, result.output
    assert not (tmp_path / "named.json").exists()


def test_a_file_that_fails_to_decode_is_left_out_of_the_reference_set_not_replaced_by_its_neighbour(tmp_path):
    for index in range(8):
        random_rgb((16, 16), index).save(tmp_path / f"{index}.png")
    damage_past_the_header(tmp_path / "3.png")  # the header still reads
    data = DataConfig(dataset="folder", root=str(tmp_path), resolution=16)
    with pytest.warns(UserWarning, match=r"skipping an unreadable file: .*3.png"):
        images = generative.load_reference_images(data, 8)
    assert len(images) == 7
    assert len({image.numpy().tobytes() for image in images}) == 7  # no image twice


def test_cached_real_features_of_other_inception_weights_are_not_reused(tmp_path, random_inception_weights):
    # The cache's key left out the weights: FID against another network's features, without a word
    other = tmp_path / "other.pth"
    state = torch.load(random_inception_weights, weights_only=True)
    first = next(key for key, value in state.items() if value.is_floating_point() and value.dim() == 4)
    state[first] = state[first] * 1.5
    torch.save(state, other)
    for index in range(4):
        random_rgb((16, 16), index).save(tmp_path / f"{index}.png")
    data = DataConfig(dataset="folder", root=str(tmp_path), resolution=16)
    features = [generative.GenerativeEvaluator(data, ["fid"], 4, torch.device("cpu"), str(weights),
                                               tmp_path / "cache").reference()["inception"]["features"]
                for weights in (random_inception_weights, other, random_inception_weights)]
    assert not torch.allclose(features[0], features[1]) and torch.equal(features[0], features[2])
    assert len(list((tmp_path / "cache").glob("inception-*.pt"))) == 2


def test_the_evaluator_says_how_many_real_images_its_reference_set_holds_after_a_failed_decode(tmp_path, capsys):
    # "computing reference statistics of 8 real images", and a progress line that stopped at 7/8
    for index in range(8):
        random_rgb((16, 16), index).save(tmp_path / f"{index}.png")
    damage_past_the_header(tmp_path / "3.png")
    evaluator = generative.GenerativeEvaluator(DataConfig(dataset="folder", root=str(tmp_path), resolution=16), ["swd"],
                                               8, torch.device("cpu"), cache_dir=tmp_path / "cache",
                                               progress_stream=sys.stderr)
    with pytest.warns(UserWarning, match="3.png"):
        assert evaluator.reference_size == 7
    said = capsys.readouterr().err
    assert "the reference set holds 7 real images: 1 of the 8 could not be decoded (named above)" in said
    assert "real image 8/8" in said
    # from the cache the same set is said again (it was silent: 7 images where 8 were asked, unexplained)
    cached = generative.GenerativeEvaluator(DataConfig(dataset="folder", root=str(tmp_path), resolution=16), ["swd"],
                                            8, torch.device("cpu"), cache_dir=tmp_path / "cache")
    assert cached.reference_size == 7
    assert cached.unreadable_real_images(cached.reference()["swd"]) == 1
    assert ("the cached reference statistics are of 7 real images: 1 of the 8 could not be decoded when they were "
            "computed") in capsys.readouterr().err


@pytest.mark.parametrize("asked, why", [(8, "1 of the 8 drawn could not be decoded"),
                                         (12, "all the data set holds, less 1 that could not be decoded")])
def test_why_the_reference_set_is_smaller_names_files_that_failed_to_decode(tmp_path, asked, why):
    # eval said "--n 16 is more than the 15 real images of 'all' (all the data set holds)" of a
    # folder of 54 images, one of the 16 drawn having failed to decode
    for index in range(8):
        random_rgb((16, 16), index).save(tmp_path / f"{index}.png")
    damage_past_the_header(tmp_path / "3.png")
    evaluator = generative.GenerativeEvaluator(DataConfig(dataset="folder", root=str(tmp_path), resolution=16), ["swd"],
                                               asked, torch.device("cpu"), cache_dir=tmp_path / "cache")
    with pytest.warns(UserWarning, match="3.png"):
        assert evaluator.reference_size == 7
    assert evaluator.why_fewer() == why
    random_rgb((16, 16), 3).save(tmp_path / "3.png")
    whole = generative.GenerativeEvaluator(DataConfig(dataset="folder", root=str(tmp_path), resolution=16), ["swd"],
                                           12, torch.device("cpu"), cache_dir=tmp_path / "cache")
    assert whole.why_fewer() == "all the data set holds"


def test_metrics_roots_headers_are_read_once_for_the_check_and_the_metrics(tmp_path, monkeypatch):
    """The check before step 1 read every header of metrics.root, and the first metrics pass read them
    all again: 2 x 20 s of a 202,599-image folder, in silence."""
    import gan.data.image_files

    faces, held_out = tmp_path / "faces", tmp_path / "held_out"
    for folder in (faces, held_out):
        folder.mkdir()
        for index in range(6):
            random_rgb((32, 32), index).save(folder / f"{index}.png")
    scans = []
    original = gan.data.image_files.readable_images
    monkeypatch.setattr(gan.data.image_files, "readable_images",
                        lambda paths, *args: scans.append(Path(paths[0]).parent) or original(paths, *args))
    config = tiny_config("data.dataset=folder", f"data.root='{faces}'", f"metrics.root='{held_out}'",
                         "metrics.every=2", "metrics.num_samples=4", "metrics.names=['swd']", "train.keep_best=''",
                         f"metrics.cache_dir='{tmp_path / 'cache'}'")
    train(config, tmp_path / "run", CPU, progress_stream=sys.stdout)
    assert scans.count(held_out) == 1, scans


def test_a_resume_scoring_against_other_real_images_sets_best_pt_aside(tmp_path, capsys):
    # metrics.root's images replaced by others under the same names between the stop and the resume:
    # SWD against them was compared with best.pt's against the old ones
    faces, held_out = tmp_path / "faces", tmp_path / "held_out"
    for folder in (faces, held_out):
        folder.mkdir()
        for index in range(6):
            random_rgb((32, 32), index).save(folder / f"{index}.png")
    config = ("data.dataset=folder", f"data.root='{faces}'", "metrics.every=2", "metrics.num_samples=4", "metrics.names=['swd']", "train.keep_best=swd/mean",
              f"metrics.root='{held_out}'", f"metrics.cache_dir='{tmp_path / 'cache'}'")
    run_dir = train(tiny_config(*config, "train.steps=2"), tmp_path / "run", CPU, progress_stream=sys.stdout).run_dir
    for index in range(6):
        random_rgb((40, 40), 50 + index).save(held_out / f"{index}.png")
    train(tiny_config(*config, "train.steps=4"), run_dir, CPU, resume=True, progress_stream=sys.stdout)
    assert re.search(r"best.pt \(swd/mean \S+ at step 2\) was measured on other images than the real images of "
                     r"metrics.root hold now .* set aside as best-other-images-00000002.pt", capsys.readouterr().err)
    assert json.loads((run_dir / "best.json").read_text())["step"] == 4


def test_metrics_root_is_read_whole_not_by_the_training_split(tmp_path):
    """A CelebA run on its train partition scored against a held-out folder used to demand a
    partition file beside that folder, and scored against the CelebA folder itself it silently took
    its train partition: metrics.root's images are all read."""
    celeba, heldout = tmp_path / "celeba" / "img_align_celeba", tmp_path / "heldout"
    celeba.mkdir(parents=True), heldout.mkdir()
    for index in range(1, 17):
        random_rgb((89, 109), index).save(celeba / f"{index:06d}.jpg")
        random_rgb((89, 109), 100 + index).save(heldout / f"{index:06d}.jpg")
    (celeba.parent / "list_eval_partition.txt").write_text(
        "".join(f"{index:06d}.jpg {0 if index <= 8 else 2}\n" for index in range(1, 17)))
    common = ("data.dataset=celeba", f"data.root={celeba}", "data.split=train", "data.resolution=32",
              "metrics.every=4", "metrics.num_samples=64", "metrics.names=['swd']",
              f"metrics.cache_dir='{tmp_path / 'cache'}'")
    for name, root, count in (("heldout", heldout, 16), ("whole", celeba, 16), ("training", "", 8)):
        result = train(tiny_config(*common, f"metrics.root='{root}'"), tmp_path / "runs" / name, CPU,
                       progress_stream=sys.stdout)  # (not tmp_path / name: "faces" would train among the faces)
        (line,) = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        assert line["num_images"] == count, name


@pytest.mark.parametrize("names, held, refused", [
    (["pr"], 3, "at least 4 (pr compares each image with its 3 nearest neighbours)"),
    (["fid", "swd"], 1, "at least 2 (a distribution needs 2 images)"),
    (["fid"], 3, None), (["swd"], 1, None),  # (SWD compares patches: one image has many)
])
def test_a_reference_set_too_small_for_the_metrics_is_refused_before_step_1(tmp_path, random_inception_weights,
                                                                              names, held, refused):
    """A data set (or metrics.root) of fewer real images than pr or FID can score trained to the
    first metrics pass, then stopped on 'precision/recall with k=3 needs more than 3 samples'."""
    from gan.core.checkpoint import list_checkpoints

    for folder, count in (("small", held), ("eight", 8)):
        (tmp_path / folder).mkdir()
        for index in range(count):
            random_rgb((32, 32), index).save(tmp_path / folder / f"{index}.png")
    settings = ("data.dataset='folder'", "metrics.every=2", "metrics.num_samples=8", f"metrics.names={names}",
                f"metrics.inception_weights='{random_inception_weights}'", f"metrics.cache_dir='{tmp_path / 'cache'}'",
                "train.keep_best=''", "train.batch_size=2", "train.steps=2")
    for roots, run, where in (([f"data.root='{tmp_path / 'small'}'"], "run", "metrics.names: data.root"),
                              ([f"data.root='{tmp_path / 'eight'}'", f"metrics.root='{tmp_path / 'small'}'"], "held",
                               "metrics.root: ")):
        config = tiny_config(*settings, *roots)
        if refused is None:  # (the pre-flight check alone: a metrics pass through Inception takes minutes here)
            from gan.data import build_dataset
            from gan.training.preflight import run_problems

            (tmp_path / run).mkdir()
            assert run_problems(resolve_names(config), tmp_path / run, None, build_dataset(config.data)) == []
            continue
        with pytest.raises(ConfigError, match=re.escape(refused)) as error:
            train(config, tmp_path / run, CPU)
        assert where in str(error.value) and f"gives {held} real image" in str(error.value)
        assert not list_checkpoints(tmp_path / run)


def test_gan_eval_takes_metrics_root_only_where_training_measured_with_it_and_from_where_it_ran(tmp_path,
                                                                                                 monkeypatch):
    """eval took metrics.root also where metrics.every = 0 (training never read it, and a folder not
    made yet was an error); a relative one it read from the folder eval ran in."""
    from click.testing import CliRunner

    from gan.commands.main import main

    faces, held = tmp_path / "work" / "faces", tmp_path / "work" / "held"
    faces.mkdir(parents=True), held.mkdir()
    for index in range(16):
        draw_face(32, random.Random(index)).save(faces / f"{index:03d}.png")
        draw_face(32, random.Random(100 + index)).filter(ImageFilter.GaussianBlur(2)).save(held / f"{index:03d}.png")
    monkeypatch.chdir(tmp_path / "work")
    common = ("data.dataset=folder", f"data.root={faces}", "metrics.num_samples=16", "metrics.names=['swd']",
              f"metrics.cache_dir='{tmp_path / 'cache'}'", "metrics.root=held")
    measured = train(tiny_config(*common, "metrics.every=4"), tmp_path / "measured", CPU, progress_stream=sys.stdout)
    (logged,) = [json.loads(line) for line in (measured.run_dir / "metrics.jsonl").read_text().splitlines()]
    unmeasured = train(tiny_config(*common[:-1], "metrics.every=0", "metrics.root=not_made_yet"), tmp_path / "ready",
                       CPU, progress_stream=sys.stdout)
    monkeypatch.chdir(tmp_path)  # (another folder: held/ is not here)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    result = CliRunner().invoke(main, ["eval", str(measured.run_dir), "--metrics", "swd", "--n", "16", "--json",
                                       str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    # the run's metrics.cache_dir: its statistics read back, not computed again into ~/.cache (1 GB at 10,000)
    assert "computing reference statistics" not in result.output and not (tmp_path / "home-cache").exists()
    assert json.loads((tmp_path / "m.json").read_text())["swd/mean"] == pytest.approx(logged["swd/mean"], rel=1e-6)
    result = CliRunner().invoke(main, ["eval", str(unmeasured.run_dir), "--metrics", "swd", "--n", "16", "--json",
                                       str(tmp_path / "u.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "u.json").read_text())["reference"] == str(faces.resolve())
    # weights named for metrics that use none: refused as such, not sent to download them
    result = CliRunner().invoke(main, ["eval", str(measured.run_dir), "--metrics", "swd", "--inception-weights",
                                       str(tmp_path / "absent.pth")])
    assert result.exit_code == 2 and "--metrics swd uses no weights" in result.output, result.output


def test_reference_statistics_are_told_apart_by_the_names_their_cache_gives(tmp_path):
    """`gan cache` names these files as the metrics' by the pattern `ReferenceCache.path` follows."""
    from gan.core.files import temp_name
    from gan.metrics.generative import ReferenceCache, is_reference_statistics

    path = ReferenceCache(tmp_path).path({"kind": "inception", "count": 10})
    assert is_reference_statistics(path) and is_reference_statistics(temp_name(path))
    assert not is_reference_statistics(tmp_path / "inception.pt") and not is_reference_statistics(tmp_path / "a.npy")


def test_the_laplacian_pyramid_of_a_flat_image_has_no_band_pass_content_and_swd_projects_on_unit_directions():
    # (guards a mutation probe found open: the levels add back up to the image for any upsampling gain,
    # and a wrong gain or wrongly normalised directions rescaled every SWD without a test failing)
    import math

    from gan.metrics.swd import laplacian_pyramid, sliced_wasserstein

    levels = laplacian_pyramid(torch.full((2, 3, 32, 32), 0.7), 3)
    assert all(float(level.abs().max()) < 1e-5 for level in levels[:-1])  # band-pass: nothing in a flat image
    assert torch.allclose(levels[-1], torch.full_like(levels[-1], 0.7))  # the low-pass keeps its level
    points = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    shifted = sliced_wasserstein(points, points + torch.tensor([1.0, 0.0]))  # |cos| of a random unit direction
    assert shifted == pytest.approx(2 / math.pi, rel=0.05)


def test_swd_of_more_images_than_memory_holds_is_refused_before_any_pass(tiny_demo_run, tmp_path, monkeypatch):
    """gan eval --metrics swd --n 10000 under a 1.5 GB limit was killed by the kernel 17 s in, and a run's
    metrics.num_samples = 10000 at its first metrics step, before that step's checkpoint: both unsaid."""
    from gan.metrics.swd import swd_memory_bytes

    # (the descriptors of both sets at 3 levels in float16, and one level's float32 copies the sort takes)
    assert swd_memory_bytes(10_000, 64) == 10_000 * 128 * 147 * (2 * 3 * 2 + 2 * 4)
    needed = swd_memory_bytes(64, 32)
    monkeypatch.setattr(generative, "available_memory", lambda device: needed - 1)
    result = CliRunner().invoke(main, ["eval", str(tiny_demo_run), "--metrics", "swd", "--n", "64",
                                       "--json", str(tmp_path / "swd.json")])
    assert_one_error_line(result, "--n = 64: SWD's patch descriptors of 64 generated and 64 real 32 px images need "
                                  "at least")
    assert not (tmp_path / "swd.json").exists()
    with pytest.raises(ConfigError, match=r"metrics.num_samples = 64: SWD's patch descriptors .* at most about 63 fit"):
        train(tiny_config("metrics.every=2", "metrics.num_samples=64", 'metrics.names=["swd"]'), tmp_path / "run",
              "cpu")
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(generative, "available_memory", lambda device: needed)
    result = CliRunner().invoke(main, ["eval", str(tiny_demo_run), "--metrics", "swd", "--n", "64",
                                       "--json", str(tmp_path / "swd.json")])
    assert result.exit_code == 0, result.output


def test_the_swd_memory_check_lists_the_real_images_only_when_the_count_asked_may_not_fit(tmp_path, monkeypatch):
    # Listing them reads every header (20 s at CelebA's): a cached gan eval paid it on every call
    from gan.metrics.swd import swd_memory_bytes

    data = DataConfig(dataset="synthetic", resolution=32, synthetic_size=64)
    evaluator = GenerativeEvaluator(data, ["swd"], 1000, torch.device("cpu"), cache_dir=tmp_path)
    listed = []
    dataset = evaluator.dataset
    monkeypatch.setattr(evaluator, "dataset", lambda files=None: listed.append(1) or dataset(files))
    monkeypatch.setattr(generative, "available_memory", lambda device: swd_memory_bytes(1000, 32))
    evaluator.check_memory_fits("--n")
    assert listed == []
    # room for the 64 real images there are, not the 1,000 asked: counted, and passed
    monkeypatch.setattr(generative, "available_memory", lambda device: swd_memory_bytes(64, 32))
    evaluator.check_memory_fits("--n")
    assert listed == [1]
