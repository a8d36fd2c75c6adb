"""SRResNet, the SRGAN discriminator, the VGG perceptual loss, and the SR recipes end to end."""

import csv
import math
import re
import shutil
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner
from conftest import (
    REPO,
    TINY_SR,
    flip_a_bit_in_record,
    only_run,
    random_rgb,
    random_vgg_state,
    tiny_recipe_config,
    write_recipe_data,
)
from PIL import Image
from torch import nn

from gan.commands.main import main
from gan.core.files import file_sha256
from gan.nets import network_spec
from gan.nets.vgg import (
    WEIGHT_FILES,
    VGGFeatures,
    WeightsNotFoundError,
    layer_names,
    torchvision_vgg,
    vgg_feature_keys,
    vgg_layer_names,
)
from gan.recipes.losses import PerceptualLoss


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_srresnet_output_is_exactly_scale_times_the_input(scale):
    generator = network_spec("generator", "srresnet", {"channels": 8, "num_blocks": 2}, "g", scale=scale).build()
    assert generator(torch.rand(2, 3, 11, 7)).shape == (2, 3, 11 * scale, 7 * scale)
    pixel_shuffles = [m for m in generator.modules() if isinstance(m, nn.PixelShuffle)]
    assert len(pixel_shuffles) == scale.bit_length() - 1  # one x2 sub-pixel stage per factor of 2


def test_srresnet_options_and_errors():
    plain = network_spec("generator", "srresnet", {"batch_norm": False, "num_blocks": 3}, "g", scale=4).build()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    default = network_spec("generator", "srresnet", {}, "g", scale=4).build()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in default.modules()) == 2 * 16 + 1
    assert 1.5e6 < sum(p.numel() for p in default.parameters()) < 1.6e6  # the paper's ~1.5M
    with pytest.raises(ValueError, match="by 2, 3, 4 or 8, not 5"):
        network_spec("generator", "srresnet", {}, "g", scale=5).build()
    with pytest.raises(ValueError, match="residual_scale must be in"):
        network_spec("generator", "srresnet", {"residual_scale": 0.0}, "g", scale=4).build()


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_srresnet_and_edsr_upsample_by_every_scale(scale, batch_norm):
    network = network_spec("generator", "srresnet", {"channels": 8, "num_blocks": 2, "batch_norm": batch_norm,
                                                      "residual_scale": 0.1}, "g", scale=scale).build()
    assert network(torch.rand(2, 3, 10, 7) * 2 - 1).shape == (2, 3, 10 * scale, 7 * scale)
    shuffles = [m.upscale_factor for m in network.modules() if isinstance(m, nn.PixelShuffle)]
    assert shuffles == ([3] if scale == 3 else [2] * {2: 1, 4: 2, 8: 3}[scale])


def test_residual_srresnet_starts_as_bicubic_upsampling():
    network = network_spec("generator", "srresnet", {"channels": 8, "num_blocks": 2, "residual": True}, "g",
                           scale=4).build()
    lr_images = torch.rand(1, 3, 12, 9) * 2 - 1
    bicubic = torch.nn.functional.interpolate(lr_images, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.equal(network(lr_images), bicubic)
    # ... and it learns: the zeroed tail gets gradients
    network(lr_images).sub(1).abs().mean().backward()
    assert network.tail.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [(96, 96), (128, 80), (16, 16)])
def test_srgan_discriminator_takes_any_crop_size(size):
    discriminator = network_spec("discriminator", "srgan", {"channels": 8}, "d").build()
    assert discriminator(torch.rand(3, 3, *size)).shape == (3,)
    strided = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert len([m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]) == 8 and len(strided) == 4


def test_vgg_layer_names_map_to_torchvision_indices():
    for arch, last in (("vgg19", "relu5_4"), ("vgg16", "relu5_3")):
        with torch.device("meta"):  # (the layers alone: no weights drawn)
            features = getattr(torchvision.models, arch)(weights=None).features
        names = layer_names(features)
        assert len(names) == len(features)
        for name, layer in zip(names, features):
            expected = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}[name.rstrip("0123456789_")]
            assert isinstance(layer, expected), name
        assert names.index("relu2_2") == 8 and names.index(last) == len(features) - 2
    with torch.device("meta"):
        vgg19_names = layer_names(torchvision.models.vgg19(weights=None).features)
    assert vgg19_names.index("relu5_4") == 35 and vgg19_names.index("relu3_4") == 17


def test_vgg_layer_names_and_feature_keys_are_torchvisions_without_importing_it():
    """They were read from a torchvision model, imported in an SRGAN config's check: a Ctrl-C in that
    import left modules half imported, and every later train() failed ("module 'sympy' has no attribute
    'logic'"). They come from VGG's layout now, and must stay what torchvision's models give."""
    for arch in WEIGHT_FILES:
        with torch.device("meta"):
            features = getattr(torchvision.models, arch)(weights=None).features
        assert vgg_layer_names(arch) == layer_names(features)
        assert vgg_feature_keys(arch) == frozenset(f"features.{key}" for key in features.state_dict())
    code = ("import sys\nfrom gan.nets.vgg import vgg_feature_keys, vgg_layer_names\n"
            "vgg_layer_names('vgg19'), vgg_feature_keys('vgg16')\nprint('torchvision' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_a_ctrl_c_during_torchvisions_import_waits_for_the_import_to_end(monkeypatch):
    """A Ctrl-C in the middle of torchvision's first import (0.2-0.4 s into a notebook's SRGAN run)
    left modules half imported, and every later build failed: the stop is held back to the import's end."""
    import builtins

    real_import, imported = builtins.__import__, []

    def interrupted_import(name, *args, **kwargs):
        if name == "torchvision":
            signal.raise_signal(signal.SIGINT)  # (a Ctrl-C, as the import starts)
            module = real_import(name, *args, **kwargs)
            imported.append(name)
            return module
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    with torch.device("meta"), pytest.raises(KeyboardInterrupt):
        torchvision_vgg("vgg16")
    assert imported == ["torchvision"]  # (whole, then the KeyboardInterrupt)
    monkeypatch.undo()
    with torch.device("meta"):
        assert len(torchvision_vgg("vgg16").features) == len(vgg_layer_names("vgg16"))


def _random_vgg(layer="relu2_2", arch="vgg19"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VGGFeatures(layer, arch, "random")


def test_vgg_features_are_truncated_frozen_and_in_eval_mode():
    extractor = _random_vgg("relu2_2")
    assert len(extractor.features) == 9 and isinstance(extractor.features[-1], nn.ReLU)
    assert not any(p.requires_grad for p in extractor.parameters())
    extractor.train()
    assert not extractor.training
    assert extractor(torch.rand(1, 3, 32, 32) * 2 - 1).shape == (1, 128, 16, 16)


def test_random_weights_warn_loudly():
    with pytest.warns(UserWarning, match="RANDOM weights"):
        VGGFeatures("relu1_1", "vgg16", "random")


def test_perceptual_loss_is_zero_for_identical_images_and_positive_otherwise():
    loss = PerceptualLoss(_random_vgg("relu2_2"), feature_scale=1 / 12.75)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(images, images.clone()).item() == 0.0
    assert loss(images, (images + 0.1 * torch.randn_like(images)).clamp(-1, 1)).item() > 0


def test_missing_weights_file_says_which_file_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsNotFoundError) as error:
        VGGFeatures("relu5_4", "vgg19", "")
    message = str(error.value)
    assert "vgg19-dcbb9e9d.pth" in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "loss.vgg_weights" in message
    with pytest.raises(WeightsNotFoundError, match="no_such.pth"):
        VGGFeatures("relu5_4", "vgg19", str(tmp_path / "no_such.pth"))


@pytest.fixture(scope="module")
def torchvision_vgg19_file(tmp_path_factory):
    """A randomly initialised torchvision VGG19 saved as torchvision saves its ImageNet weights, named as
    torch.hub names what it fetches: vgg19-<the start of its own SHA-256>.pth (under the ImageNet file's
    name, vgg19-dcbb9e9d.pth, random weights are refused as another file)."""
    state = random_vgg_state()
    saved = tmp_path_factory.mktemp("torch_home") / "hub" / "checkpoints" / "vgg19.pth"
    saved.parent.mkdir(parents=True)
    torch.save(state, saved)
    path = saved.rename(saved.with_name(f"vgg19-{file_sha256(saved)[:8]}.pth"))
    return path, state["features.0.weight"].clone()


def test_torchvision_state_dict_loads_through_our_path(torchvision_vgg19_file, monkeypatch):
    path, first_conv = torchvision_vgg19_file
    explicit = VGGFeatures("relu1_2", "vgg19", str(path))
    assert torch.equal(explicit.features[0].weight, first_conv)
    monkeypatch.setitem(WEIGHT_FILES, "vgg19", path.name)  # (random weights, under a name of their own hash)
    monkeypatch.setenv("TORCH_HOME", str(path.parent.parent.parent))  # $TORCH_HOME/hub/checkpoints/<file>
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    cached = VGGFeatures("relu1_2", "vgg19", "")
    assert torch.equal(cached.features[0].weight, first_conv)
    with pytest.raises(ValueError, match="not a torchvision vgg16 state dict"):
        VGGFeatures("relu1_2", "vgg16", str(path))


def test_vgg_weights_of_the_features_alone_or_with_another_classifier_load(torchvision_vgg19_file, tmp_path):
    """The loss reads the features alone: a file of them alone, or of a VGG19 trained on other classes
    (Places365: a 365-way classifier), was refused as "not a torchvision vgg19 state dict"."""
    path, first_conv = torchvision_vgg19_file
    full = torch.load(path, weights_only=True)
    features = {key: value for key, value in full.items() if key.startswith("features.")}
    places = {**full, "classifier.6.weight": torch.zeros(365, 4096), "classifier.6.bias": torch.zeros(365)}
    bare = {key.removeprefix("features."): value for key, value in features.items()}  # (features.state_dict() saved)
    whole = VGGFeatures("relu5_4", "vgg19", str(path)).weights_digest
    for name, state in (("features.pth", features), ("places365.pth", places), ("bare.pth", bare)):
        torch.save(state, tmp_path / name)
        loaded = VGGFeatures("relu5_4", "vgg19", str(tmp_path / name))
        assert torch.equal(loaded.features[0].weight, first_conv)
        assert loaded.weights_digest == whole  # (the same weights as the whole file's, as a resume's check sees)
    del features["features.34.bias"]  # (one the loss reads: still refused)
    torch.save(features, tmp_path / "cut.pth")
    with pytest.raises(ValueError, match=r"1 of its 32 weights missing \(first: features.34.bias\)"):
        VGGFeatures("relu5_4", "vgg19", str(tmp_path / "cut.pth"))


def test_vgg_weights_with_a_flipped_bit_or_under_another_files_hash_are_refused(torchvision_vgg19_file, tmp_path):
    """One flipped bit in a tensor's bytes loaded, and changed the perceptual loss, without a word: torch.load
    checks neither the CRC-32 of each record of the file nor the SHA-256 a torch.hub name carries."""
    path, first_conv = torchvision_vgg19_file
    flipped = tmp_path / "vgg19.pth"
    shutil.copy(path, flipped)
    flip_a_bit_in_record(flipped, "data/0")
    with pytest.raises(ValueError, match=rf"^'{re.escape(str(flipped))}' is damaged \(loss.vgg_weights\): its record "
                                         r"'data/0' fails its checksum; replace it with torchvision's vgg19-dcbb9e9d.pth "):
        VGGFeatures("relu1_2", "vgg19", str(flipped))
    renamed = tmp_path / "vgg19-dcbb9e9d.pth"  # (the ImageNet file's name: its SHA-256 starts dcbb9e9d)
    shutil.copy(path, renamed)
    own = path.stem.rpartition("-")[2]
    with pytest.raises(ValueError, match=rf"\(loss.vgg_weights\): its SHA-256 starts {own} where its name says "
                                         r"dcbb9e9d: damaged, or another file under that name; replace it"):
        VGGFeatures("relu1_2", "vgg19", str(renamed))
    assert torch.equal(VGGFeatures("relu1_2", "vgg19", str(path)).features[0].weight, first_conv)  # (its own hash)




def _sets(*items):
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hr")
    for index in range(3):
        random_rgb((48, 44), index).save(folder / f"{index}.png")
    return folder


@pytest.fixture(scope="module")
def srresnet_run(hr_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "srresnet_x4.toml"), *_sets(
        *TINY_SR, f"data.root={hr_folder}", f"data.val_root={hr_folder}"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return only_run(out)


def test_srresnet_logs_validation_psnr_and_evaluates_beside_bicubic(srresnet_run, hr_folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = set(EventAccumulator(str(srresnet_run)).Reload().Tags()["scalars"])
    assert {"loss/content", "loss/g", "val/psnr", "val/ssim"} <= scalars and "loss/d" not in scalars
    runner = CliRunner()
    result = runner.invoke(main, ["eval", str(srresnet_run), "--data", str(hr_folder), "--csv", str(tmp_path / "e.csv")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "e.csv")))
    assert rows[-1]["image"] == "mean" and float(rows[-1]["bicubic_psnr"]) > 5
    random_rgb((13, 9), 5).save(tmp_path / "small.png")
    upscaled = runner.invoke(main, ["translate", str(srresnet_run), str(tmp_path / "small.png"), str(tmp_path / "big.png")])
    assert upscaled.exit_code == 0, upscaled.output
    assert Image.open(tmp_path / "big.png").size == (52, 36)  # the network's own x4


def test_gan_eval_of_a_dark_image_warns_of_nothing_it_made_itself(srresnet_run, hr_folder, tmp_path):
    """An image of pixels 0 or 1 gave four warnings that the values "lie within [0, 1] only", naming no
    image: gan made those 8-bit values itself, from the image's own pixels."""
    data = tmp_path / "hr"
    shutil.copytree(hr_folder, data)
    Image.fromarray(np.random.default_rng(0).integers(0, 2, (44, 48, 3), dtype=np.uint8)).save(data / "dark.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["eval", str(srresnet_run), "--data", str(data), "--csv",
                                           str(tmp_path / "e.csv")])
    assert result.exit_code == 0 and "dark.png" in result.output, result.output
    assert [str(warning.message) for warning in caught if "[0, 1]" in str(warning.message)] == []


def test_srgan_x4_starts_where_edsr_x4_ends():
    """The shipped SRGAN config takes the recommended PSNR recipe's generator as it is."""
    from gan.training.resolve import load_config

    edsr, srgan = (load_config(REPO / "experiments" / name, ["model.init_generator=none"])
                   for name in ("edsr_x4.toml", "srgan_x4.toml"))
    assert srgan.model.generator == edsr.model.generator
    assert srgan.model.generator_args == edsr.model.generator_args
    assert (srgan.data.scale, srgan.data.upsample_input) == (edsr.data.scale, edsr.data.upsample_input)


def other_vgg_weights() -> dict:
    """VGG19 features of other weights than `_perceptual_run`'s file holds (its first convolution's doubled)."""
    state = random_vgg_state(features_only=True)
    state["features.0.weight"] = state["features.0.weight"] * 2
    return state


def _perceptual_run(hr_folder, tmp_path):
    """(a VGG19 weights file, a one-step SRResNet run whose loss reads it at relu1_2)."""
    weights = tmp_path / "vgg19.pth"
    torch.save(random_vgg_state(features_only=True), weights)
    run_dir = tmp_path / "run"
    settings = _sets(*TINY_SR, f"data.root={hr_folder}", f"data.val_root={hr_folder}", f"loss.vgg_weights={weights}",
                     "loss.content=vgg", "loss.vgg_layer=relu1_2", "train.steps=1", "train.checkpoint_every=1")
    first = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "srresnet_x4.toml"), *settings,
                                      "--run-dir", str(run_dir)])
    assert first.exit_code == 0, first.output
    return weights, run_dir


def test_a_resume_with_other_vgg_weights_under_the_same_name_is_warned_of(hr_folder, tmp_path):
    # the perceptual loss changed mid-run, in silence: another file copied over loss.vgg_weights's path
    # (or the default hub file of another machine)
    weights, run_dir = _perceptual_run(hr_folder, tmp_path)
    with warnings.catch_warnings(record=True) as same:
        warnings.simplefilter("always")
        assert CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--set", "train.steps=2"]).exit_code == 0
    assert not [warning for warning in same if "vgg_weights" in str(warning.message)]
    with warnings.catch_warnings(record=True) as other_layer:  # (a layer chosen on purpose: the same file)
        warnings.simplefilter("always")
        assert CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--set", "train.steps=3",
                                         "--set", "loss.vgg_layer=relu2_2"]).exit_code == 0
    assert not [warning for warning in other_layer if "vgg_weights" in str(warning.message)]
    torch.save(other_vgg_weights(), weights)
    with pytest.warns(UserWarning, match=rf"loss.vgg_weights \({weights}\) holds other vgg19 weights than this run "
                                         r"trained with: .* no longer matches an uninterrupted one"):
        other = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--set", "train.steps=4"])
    assert other.exit_code == 0, other.output


def test_a_checkpoint_with_the_earlier_digest_of_the_layers_read_is_still_checked(hr_folder, tmp_path):
    # digests written before the arch prefix (of the layers up to loss.vgg_layer) were passed over
    from gan.core.checkpoint import list_checkpoints, save_checkpoint
    from gan.nets.vgg import weights_digest

    weights, run_dir = _perceptual_run(hr_folder, tmp_path)
    checkpoint = list_checkpoints(run_dir)[-1]
    state = torch.load(checkpoint, weights_only=True)
    state["recipe"]["perceptual_weights"] = weights_digest(VGGFeatures("relu1_2", "vgg19", str(weights)).features)
    save_checkpoint(state, checkpoint)
    with warnings.catch_warnings(record=True) as same:
        warnings.simplefilter("always")
        assert CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--set", "train.steps=2"]).exit_code == 0
    assert not [warning for warning in same if "vgg_weights" in str(warning.message)]
    state = torch.load(list_checkpoints(run_dir)[-1], weights_only=True)
    state["recipe"]["perceptual_weights"] = weights_digest(VGGFeatures("relu1_2", "vgg19", str(weights)).features)
    save_checkpoint(state, list_checkpoints(run_dir)[-1])
    torch.save(other_vgg_weights(), weights)
    with pytest.warns(UserWarning, match=r"holds other vgg19 weights than this run trained with"):
        assert CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--set", "train.steps=3"]).exit_code == 0


def test_srgan_starts_from_the_srresnet_checkpoint(srresnet_run, hr_folder, tmp_path):
    args = ["train", str(REPO / "experiments" / "srgan_x4.toml"), *_sets(
        *TINY_SR, f"data.root={hr_folder}", f"data.val_root={hr_folder}", "loss.vgg_weights=random",
        "loss.vgg_layer=relu2_2", "model.discriminator_args.channels=8", f"model.init_generator={srresnet_run}",
        "model.generator_args.batch_norm=true", "model.generator_args.residual=false"),  # srresnet_x4's
        "--out", str(tmp_path / "runs")]
    with pytest.warns(UserWarning, match="RANDOM weights"):
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gan.core.checkpoint import list_checkpoints, load_checkpoint

    run_dir = only_run(tmp_path / "runs")
    scalars = set(EventAccumulator(str(run_dir)).Reload().Tags()["scalars"])
    assert {"loss/content", "loss/g_adversarial", "loss/d", "d/real", "d/fake", "val/psnr"} <= scalars
    assert "discriminator" in load_checkpoint(list_checkpoints(run_dir)[-1])["networks"]
    mismatched = CliRunner().invoke(main, [*args[:-2], "--set", "model.generator_args.num_blocks=2",
                                           "--out", str(tmp_path / "other")])
    assert mismatched.exit_code == 2 and "holds another srresnet generator: num_blocks = " in mismatched.output
    assert "where this config has 2; set model.generator_args as that run had " \
           "them" in " ".join(mismatched.output.split())  # (it printed both specs whole; data.scale matches)
    # the scale comes from data.scale: model.generator_args.scale, which it named, is no key
    rescaled = CliRunner().invoke(main, [*args[:-2], "--set", "data.scale=2", "--out", str(tmp_path / "other")])
    assert rescaled.exit_code == 2 and "data.scale = 4 where this config has 2" in rescaled.output, rescaled.output
    for wrong in (tmp_path / "missing", tmp_path / "runs"):  # which key gave the path
        given = [arg if not arg.startswith("model.init_generator=") else f"model.init_generator={wrong}"
                 for arg in args[:-2]]
        refused = CliRunner().invoke(main, [*given, "--out", str(tmp_path / "other")])
        assert refused.exit_code == 2 and "error: model.init_generator: '" in refused.output, refused.output
    state = load_checkpoint(list_checkpoints(srresnet_run)[-1])
    weights = state["networks"]["generator"]
    first = next(key for key, value in weights.items() if value.is_floating_point())
    weights[first] = torch.full_like(weights[first], float("nan"))
    torch.save(state, tmp_path / "diverged.pt")
    diverged = CliRunner().invoke(main, [*[arg if not arg.startswith("model.init_generator=") else
                                           f"model.init_generator={tmp_path / 'diverged.pt'}" for arg in args[:-2]],
                                         "--out", str(tmp_path / "third")])
    assert diverged.exit_code == 2 and f"generator parameter '{first}' is not finite" in diverged.output, \
        diverged.output


SRRESNET_SHAPE = ("model.generator_args.batch_norm=true", "model.generator_args.residual=false")  # srresnet_x4's


def test_init_generator_is_read_through_the_checks_every_reader_of_a_checkpoint_makes(srresnet_run, tiny_demo_run,
                                                                                      tmp_path):
    """model.init_generator read state["networks"]["generator"] as it was: weights of another shape or an extra
    key were a RuntimeError traceback, no generator a KeyError, a "networks" string a TypeError, and integer
    weights loaded as zeros and trained without a word; a DCGAN run listed its 14 arguments as differences."""
    import contextlib
    import copy

    from gan.core.checkpoint import list_checkpoints
    from gan.core.registry import ConfigError
    from gan.recipes.srgan import SRGANRecipe

    state = torch.load(list_checkpoints(srresnet_run)[-1], weights_only=True)
    first = next(iter(state["networks"]["generator"]))
    weights = lambda edited: edited["networks"]["generator"]  # noqa: E731
    edits = {
        "shape": (lambda edited: weights(edited).__setitem__(first, torch.zeros(3, 3)),
                  rf"parameter '{first}' has shape \[3, 3\] in the file"),
        "extra": (lambda edited: weights(edited).__setitem__("extra", torch.zeros(1)),
                  "parameter 'extra' is not in the network"),
        "none": (lambda edited: edited["networks"].pop("generator"), "it holds no weights for its generator spec"),
        "text": (lambda edited: edited.__setitem__("networks", "generator"),
                 'its "networks" entry .* is a str, expected a table'),
        "integers": (lambda edited: edited["networks"].__setitem__(
            "generator", {key: value.round().long() for key, value in weights(edited).items()}),
            rf"parameter '{first}' is torch.int64 in the file and torch.float32 in the network"),
    }
    data = write_recipe_data(tmp_path / "data")
    for name, (edit, said) in edits.items():
        edited = copy.deepcopy(state)
        edit(edited)
        torch.save(edited, tmp_path / f"{name}.pt")
        config = tiny_recipe_config("srgan", data, *SRRESNET_SHAPE, f"model.init_generator={tmp_path / name}.pt")
        with pytest.raises(ConfigError, match=rf"^model.init_generator: .*'{tmp_path / name}.pt'.*{said}"):
            SRGANRecipe(config, torch.device("cpu"), contextlib.nullcontext)
    config = tiny_recipe_config("srgan", data, *SRRESNET_SHAPE, f"model.init_generator={tiny_demo_run}")
    with pytest.raises(ConfigError, match=r"holds a dcgan generator \(a dcgan run\), not srresnet: give a run of this "
                                          r"config's generator, or set model.generator = \"dcgan\" and its "
                                          r"model.generator_args as that run had them$"):
        SRGANRecipe(config, torch.device("cpu"), contextlib.nullcontext)


def test_srgan_needs_lr_inputs(tmp_path):
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "srresnet_x4.toml"),
                                       "--set", "data.upsample_input=true", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "data.upsample_input = false" in result.output


def test_srresnet_trains_no_discriminator_unless_a_weight_asks_for_one(tmp_path):
    """The recipe's name says content loss only: a config that leaves loss.adversarial_weight
    unset must not get SRGAN's 1e-3 (a discriminator, silently)."""
    import contextlib

    from conftest import write_recipe_data

    from gan.recipes import RECIPES
    from gan.training.resolve import load_config

    data = write_recipe_data(tmp_path)
    common = ["model.generator=srresnet", "model.discriminator=srgan", "model.discriminator_args.channels=8",
              *TINY_SR, f"data.root={data['hr']}"]

    def networks(recipe: str, *overrides: str) -> list[str]:
        config = load_config(None, [f"recipe={recipe}", "data.dataset=sr_pairs", "data.upsample_input=false",
                                    "model.init_generator=none", *common, *overrides])
        return sorted(RECIPES.get(recipe)(config, torch.device("cpu"), contextlib.nullcontext).networks)

    assert networks("srresnet") == ["generator"]
    with warnings.catch_warnings():  # the discriminator's own defaults, filled in, are nothing the user set
        warnings.simplefilter("error")
        config = load_config(REPO / "experiments" / "srresnet_x4.toml", [*TINY_SR, f"data.root={data['hr']}",
                                                                        f"data.val_root={data['hr']}"])
        RECIPES.get("srresnet")(config, torch.device("cpu"), contextlib.nullcontext)
    assert networks("srgan") == ["discriminator", "generator"]  # the paper's 1e-3
    with pytest.warns(UserWarning, match=r"srresnet.*adversarial_weight = 0.001 trains a discriminator.*srgan"):
        assert networks("srresnet", "loss.adversarial_weight=1e-3") == ["discriminator", "generator"]
    # a discriminator's settings without one change nothing, and are said to
    with pytest.warns(UserWarning, match=r"loss.adversarial = 'hinge'; train.d_lr = 0.001; "
                                         r"model.discriminator_args.channels = 32; "
                                         r"model.discriminator_args.spectral_norm = True: they change nothing"):
        networks("srresnet", "loss.adversarial=hinge", "train.d_lr=1e-3", "model.discriminator_args.spectral_norm=true",
                 "model.discriminator_args.channels=32")


@pytest.mark.parametrize("option, said", [
    ("--inception-weights", "--inception-weights is for FID and KID, which super-resolution checkpoints are not scored by"),
    ("--cache-dir", "--cache-dir applies to unconditional (dcgan) checkpoints"),
])
def test_sr_eval_refuses_options_it_would_drop(srresnet_run, hr_folder, tmp_path, option, said):
    # Both finished without a word that they changed nothing.
    # (a weights file that is not there was answered with how to download it, where none is used)
    value = tmp_path / "absent.pth" if option == "--inception-weights" else tmp_path / "cache"
    result = CliRunner().invoke(main, ["eval", str(srresnet_run), "--data", str(hr_folder), option, str(value),
                                       "--csv", str(tmp_path / "e.csv")])
    assert result.exit_code == 2 and said in " ".join(result.output.split()), result.output
    assert not (tmp_path / "e.csv").exists()


def test_sr_eval_reports_y_and_rgb_beside_bicubic_and_saves_strips(srresnet_run, hr_folder, tmp_path):
    from gan.data.super_resolution import Degradation, bicubic_resize
    from gan.metrics import psnr, ssim

    result = CliRunner().invoke(main, ["eval", str(srresnet_run), "--data", str(hr_folder), "--csv",
                                       str(tmp_path / "e.csv"), "--save-images", str(tmp_path / "strips")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "e.csv")))
    assert {"psnr", "ssim", "psnr_rgb", "ssim_rgb", "bicubic_psnr", "bicubic_ssim", "bicubic_psnr_rgb",
            "bicubic_ssim_rgb"} <= set(rows[0])
    hr_image = Image.open(hr_folder / "0.png").convert("RGB")
    hr_image = hr_image.crop((0, 0, 48, 44))  # already a multiple of 4
    bicubic = bicubic_resize(Degradation(4)(hr_image, None), hr_image.size)

    def to_255(image):
        return torch.from_numpy(np.asarray(image, dtype=np.float64).copy()).permute(2, 0, 1)

    row = next(r for r in rows if r["image"] == "0.png")
    assert float(row["bicubic_psnr_rgb"]) == pytest.approx(psnr(to_255(bicubic), to_255(hr_image), 4), abs=1e-5)
    assert float(row["bicubic_ssim"]) == pytest.approx(ssim(to_255(bicubic), to_255(hr_image), 4, True), abs=1e-5)
    assert float(row["bicubic_psnr"]) != pytest.approx(float(row["bicubic_psnr_rgb"]))  # Y differs from RGB
    strip = Image.open(tmp_path / "strips" / "0.png")
    assert strip.size == (3 * 48, 44)
    assert np.array_equal(np.asarray(strip)[:, :48], np.asarray(bicubic))  # bicubic | model | ground truth
    assert np.array_equal(np.asarray(strip)[:, 96:], np.asarray(hr_image))


def test_an_image_identical_to_its_target_is_left_out_of_that_mean_and_named(srresnet_run, hr_folder, tmp_path):
    """A flat image's bicubic upscaling is exact: its infinite PSNR made the mean infinite, hiding the
    other images, and the JSON record held a non-standard Infinity."""
    import json
    import shutil

    data = tmp_path / "hr"
    shutil.copytree(hr_folder, data)
    Image.new("RGB", (48, 44), "white").save(data / "white.png")
    result = CliRunner().invoke(main, ["eval", str(srresnet_run), "--data", str(data), "--csv", str(tmp_path / "e.csv")])
    assert result.exit_code == 0, result.output
    rows = {row["image"]: row for row in csv.DictReader(open(tmp_path / "e.csv"))}
    assert rows["white.png"]["bicubic_psnr"] == "inf"
    others = [float(rows[f"{index}.png"]["bicubic_psnr"]) for index in range(3)]
    assert float(rows["mean"]["bicubic_psnr"]) == pytest.approx(np.mean(others), abs=1e-5)
    assert "1 image(s) with an infinite score (identical to the target: bicubic_psnr, bicubic_psnr_rgb) left out " \
        "of every mean: white.png" in " ".join(result.output.split())
    others_model = [float(rows[f"{index}.png"]["psnr"]) for index in range(3)]  # (the same images in every column)
    assert float(rows["mean"]["psnr"]) == pytest.approx(np.mean(others_model), abs=1e-5)
    record = json.loads((tmp_path / "e.json").read_text(), parse_constant=lambda name: pytest.fail(name))
    assert record["infinite_scores"]["bicubic_psnr"] == ["white.png"] and math.isfinite(record["mean"]["bicubic_psnr"])


@pytest.mark.parametrize("stop", ["SIGTERM", "full disk"])
def test_an_eval_that_ends_early_says_its_strips_are_a_partial_set(srresnet_run, hr_folder, tmp_path, monkeypatch,
                                                                     stop):
    """SIGTERM ended gan eval without a word, and a stop or a full disk left part of the strips, unsaid."""
    import os
    import signal

    from gan.core.files import WriteError
    from gan.inference import scoring

    save_image, calls = scoring.save_image, []

    def ends_at_the_second(image, path):
        calls.append(path)
        if len(calls) == 2:
            if stop == "SIGTERM":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise WriteError(f"could not write '{path}' (0.0 MiB free): No space left on device")
        return save_image(image, path)

    monkeypatch.setattr(scoring, "save_image", ends_at_the_second)
    result = CliRunner().invoke(main, ["eval", str(srresnet_run), "--data", str(hr_folder), "--csv",
                                       str(tmp_path / "e.csv"), "--save-images", str(tmp_path / "strips")])
    assert result.exit_code == (143 if stop == "SIGTERM" else 2), result.output
    assert f"1 of the 3 strips were written to '{tmp_path / 'strips'}' before it ended: a partial set" in result.output
    assert ("error: stopped by SIGTERM" if stop == "SIGTERM" else "No space left on device") in result.output
    assert signal.getsignal(signal.SIGTERM) is not None and not (tmp_path / "e.csv").exists()
    if stop != "SIGTERM":  # one that ends before any strip leaves no folder of its own behind

        def full_at_once(image, path):
            path.parent.mkdir(parents=True, exist_ok=True)  # (as save_image makes it, before writing)
            raise WriteError(f"could not write '{path}' (0.0 MiB free): No space left on device")

        monkeypatch.setattr(scoring, "save_image", full_at_once)
        result = CliRunner().invoke(main, ["eval", str(srresnet_run), "--data", str(hr_folder), "--csv",
                                           str(tmp_path / "e2.csv"), "--save-images", str(tmp_path / "none")])
        assert result.exit_code == 2 and not (tmp_path / "none").exists(), result.output


def test_an_eval_stopped_after_its_strips_says_them_and_leaves_no_folder_for_its_csv(srresnet_run, hr_folder, tmp_path,
                                                                                   monkeypatch):
    """A stop after the last strip (as the CSV and JSON were written) said only "stopped by SIGTERM", of the strips
    nothing, and left the --csv folder it had made empty: the same command again said "3 of 5 output file(s)
    already exist"."""
    import os
    import signal

    from gan.core import files

    write_together = files.write_together

    def stopped_at_the_record(writes, *args, **kwargs):
        if any(path.suffix == ".csv" for path in writes):
            os.kill(os.getpid(), signal.SIGTERM)
        return write_together(writes, *args, **kwargs)

    monkeypatch.setattr(files, "write_together", stopped_at_the_record)
    result = CliRunner().invoke(main, ["eval", str(srresnet_run), "--data", str(hr_folder), "--csv",
                                       str(tmp_path / "ev" / "e.csv"), "--save-images", str(tmp_path / "strips")])
    assert result.exit_code == 143 and "error: stopped by SIGTERM" in result.output, result.output
    assert f"3 of the 3 strips were written to '{tmp_path / 'strips'}' before it ended: the whole set, with no CSV " \
           "or JSON" in result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["strips"]


def test_sr_eval_refuses_the_options_of_unconditional_checkpoints(srresnet_run, hr_folder, tmp_path):
    result = CliRunner().invoke(main, ["eval", str(srresnet_run), "--data", str(hr_folder), "--metrics", "fid",
                                       "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 2 and "--metrics, --json apply to unconditional (dcgan) checkpoints" in result.output
    assert not (tmp_path / "m.json").exists()


def test_a_resume_refuses_another_init_generator_which_it_would_never_read(srresnet_run, tmp_path):
    # It was listed as a changed setting and written into config.toml: a start the weights never came from.
    import shutil
    from pathlib import Path

    run = Path(shutil.copytree(srresnet_run, tmp_path / "run"))
    before = (run / "config.toml").read_text()
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--set", f"model.init_generator={srresnet_run}",
                                       "--set", "train.steps=4"])
    assert result.exit_code == 2 and "model.init_generator cannot change on a resume: the run started from 'random " \
        "weights'" in " ".join(result.output.split()), result.output
    assert (run / "config.toml").read_text() == before


def test_a_fine_tune_records_the_checkpoint_it_started_from_and_its_resumes_keep_it(srresnet_run, hr_folder,
                                                                                      tmp_path):
    """model.init_generator = a run directory was recorded as the directory: no line said which file and step
    were read, the same config later started from other weights (the source run extended) with the same
    config.toml, and gan compare pooled runs of two starts as seeds of one."""
    import hashlib

    from gan.core.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
    from gan.core.config import read_config

    source = list_checkpoints(srresnet_run)[-1]
    run_dir = tmp_path / "tuned"
    line = ["train", str(REPO / "experiments" / "srresnet_x4.toml"), *_sets(
        *TINY_SR, f"data.root={hr_folder}", f"data.val_root={hr_folder}", f"model.init_generator={srresnet_run}"),
        "--run-dir", str(run_dir)]
    first = CliRunner().invoke(main, line)
    assert first.exit_code == 0 and f"generator from '{source}' (step 2)" in first.output, first.output
    assert read_config(run_dir / "config.toml").model.init_generator == str(source)
    recorded = {"checkpoint": str(source), "step": 2, "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    assert load_checkpoint(list_checkpoints(run_dir)[-1])["initial_generator"] == recorded
    # the same line (a sweep's) with the directory again, and a resume, go on from the start recorded
    longer = CliRunner().invoke(main, [*line, "--set", "train.steps=4"])
    assert longer.exit_code == 0 and "generator from" not in longer.output, longer.output
    resumed = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--set", "train.steps=6"])
    assert resumed.exit_code == 0, resumed.output
    assert read_config(run_dir / "config.toml").model.init_generator == str(source)
    assert load_checkpoint(list_checkpoints(run_dir)[-1])["initial_generator"] == recorded
    # a run begun before the file was recorded (its config.toml and checkpoints name the directory) resumes
    newest = list_checkpoints(run_dir)[-1]
    state = load_checkpoint(newest)
    state["config"]["model"]["init_generator"] = str(srresnet_run)
    del state["initial_generator"]
    save_checkpoint(state, newest)
    (run_dir / "config.toml").write_text((run_dir / "config.toml").read_text().replace(str(source), str(srresnet_run)))
    older = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--set", "train.steps=8"])
    assert older.exit_code == 0, older.output
    assert read_config(run_dir / "config.toml").model.init_generator == str(srresnet_run)


def test_a_vgg_layer_the_arch_lacks_is_refused_naming_both_keys(tmp_path):
    # "unknown VGG layer 'relu5_4'" named neither key, and came once the network was built
    from gan.core.registry import ConfigError
    from gan.recipes.srgan import SRGANRecipe

    config = tiny_recipe_config("srgan", write_recipe_data(tmp_path), "loss.vgg_arch=vgg16", "loss.vgg_layer=relu5_4")
    with pytest.raises(ConfigError, match=r"loss.vgg_layer = 'relu5_4' is no layer of loss.vgg_arch = 'vgg16'; its "
                                          r"layers: conv1_1, relu1_1, .*relu5_3, pool5$"):
        SRGANRecipe.check(config)


def test_srresnet_adds_its_trunk_to_the_head_features_before_upsampling_and_vgg_sees_imagenet_normalised_images():
    # (guards a mutation probe found open: the paper's long skip connection dropped, or VGG fed [-1, 1]
    # images as if in [0, 1], trained on with every test passing)
    from gan.nets.srresnet import SRResNet
    from gan.nets.vgg import IMAGENET_MEAN, IMAGENET_STD, VGGFeatures

    network = SRResNet(scale=2, channels=8, num_blocks=2).eval()
    images = torch.rand(1, 3, 12, 12) * 2 - 1
    network.trunk = torch.nn.Identity()  # the trunk's output is then the head's features again
    with torch.no_grad():
        features = network.head(images)
        assert torch.allclose(network(images), network.tail(network.upsample(2 * features)), atol=1e-6)
    with pytest.warns(UserWarning):
        vgg = VGGFeatures(weights="random")
    vgg.features = torch.nn.Identity()
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(vgg(images), ((images + 1) / 2 - mean) / std)
