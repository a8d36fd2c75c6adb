"""Issue 16's pieces: upsampling without checkerboard, residual restoration, learning-rate
schedules, the adversarial warm-up and weight, rotation augmentation."""

import math
import shutil
import sys

import pytest
import torch
from conftest import REPO, tiny_recipe_config, write_recipe_data
from PIL import Image
from torch import nn

from gan.core.checkpoint import list_checkpoints, load_checkpoint
from gan.core.config import TrainConfig, read_config
from gan.core.registry import ConfigError
from gan.data.super_resolution import Degradation, SuperResolutionPairs
from gan.nets import network_spec
from gan.nets.common import SubPixelConv, upsample_layers
from gan.recipes.schedules import adversarial_on, lr_factor
from gan.training.loop import train
from gan.training.resolve import load_config

CPU = torch.device("cpu")


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- upsampling


@pytest.mark.parametrize("kind, parameters", [
    ("transposed", 8 * 4 * 4 * 4 + 4),  # the given 4x4 transposed conv
    ("resize", 8 * 4 * 3 * 3 + 4),  # a 3x3 conv after nearest x2
    ("pixelshuffle", 8 * 16 * 3 * 3 + 16),  # a 3x3 conv to 4x the channels
])
def test_each_upsample_kind_doubles_the_size_with_the_stated_parameters(kind, parameters):
    layers = nn.Sequential(*upsample_layers(kind, 8, 4, True, nn.ConvTranspose2d(8, 4, 4, 2, 1)))
    assert layers(torch.rand(2, 8, 5, 7)).shape == (2, 4, 10, 14)
    assert count(layers) == parameters


def test_icnr_starts_free_of_checkerboard():
    torch.manual_seed(0)
    layer = SubPixelConv(6, 3, 2)
    output = layer(torch.randn(1, 6, 8, 8))
    # every 2x2 output block is one value: nearest-neighbour upsampling of one convolution
    blocks = output.unfold(2, 2, 2).unfold(3, 2, 2)
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks))
    constant = layer(torch.full((1, 6, 8, 8), 0.3))[..., 2:-2, 2:-2]  # away from the zero padding
    assert torch.allclose(constant, constant[..., :1, :1].expand_as(constant))


def test_icnr_survives_the_zoo_initialisation():
    unet = network_spec("generator", "unet", {"num_downs": 5, "channels": 4, "upsample": "pixelshuffle"}, "g").build()
    convs = [m.conv for m in unet.modules() if isinstance(m, SubPixelConv)]
    assert len(convs) == 5
    for conv in convs:
        weight = conv.weight.view(conv.out_channels // 4, 4, *conv.weight.shape[1:])
        assert torch.equal(weight, weight[:, :1].expand_as(weight))
        assert 0.015 < weight.std().item() < 0.025  # and init_normal_'s scale


@pytest.mark.parametrize("name, args", [
    ("unet", {"num_downs": 5, "channels": 4}),
    ("resnet", {"channels": 4, "num_blocks": 1}),
])
@pytest.mark.parametrize("kind", ["transposed", "resize", "pixelshuffle"])
def test_image_to_image_generators_keep_their_shape_in_every_upsample_mode(name, args, kind):
    generator = network_spec("generator", name, {**args, "upsample": kind}, "g").build()
    output = generator(torch.rand(2, 3, 32, 64) * 2 - 1)
    assert output.shape == (2, 3, 32, 64) and output.abs().max() <= 1


@pytest.mark.parametrize("name, args", [
    ("unet", {"num_downs": 5, "channels": 4, "upsample": "resize"}),
    ("resnet", {"channels": 4, "num_blocks": 1, "upsample": "pixelshuffle"}),
])
def test_a_residual_generator_starts_as_the_identity_and_reaches_the_range_ends(name, args):
    generator = network_spec("generator", name, {**args, "residual": True}, "g").build()
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    images[:, :, :4] = 1.0  # saturated rows: the output must be able to sit exactly at the ends
    images[:, :, -4:] = -1.0
    assert torch.equal(generator(images), images)
    assert not any(isinstance(m, nn.Tanh) for m in generator.modules())  # linear: no squashing near +-1
    generator(images).sub(images.flip(-1)).abs().mean().backward()
    assert all(p.grad is not None for p in generator.parameters() if p.requires_grad)


def test_residual_needs_matching_channels():
    with pytest.raises(ValueError, match="residual needs in_channels == out_channels"):
        network_spec("generator", "unet", {"num_downs": 5, "out_channels": 1, "residual": True}, "g").build()


# ----------------------------------------------------------------------------- schedules


def schedule(**values) -> TrainConfig:
    return TrainConfig(**{"steps": 10, **values})


def test_learning_rate_schedules_match_hand_computed_values():
    assert [lr_factor(s, schedule()) for s in (1, 10)] == [1.0, 1.0]
    warm = schedule(warmup_steps=4)
    assert [lr_factor(s, warm) for s in range(1, 6)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    cosine = schedule(lr_schedule="cosine", warmup_steps=2)
    expected = [0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * (s - 2) / 8)) for s in range(3, 11)]
    assert [lr_factor(s, cosine) for s in range(1, 11)] == pytest.approx(expected)
    assert lr_factor(10, cosine) == pytest.approx(0.0, abs=1e-12)
    steps = schedule(lr_schedule="step", lr_milestones=[3, 6], lr_gamma=0.5)
    assert [lr_factor(s, steps) for s in range(1, 9)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]
    decay = schedule(lr_decay_steps=4)
    assert [lr_factor(s, decay) for s in range(6, 11)] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    assert [adversarial_on(s, schedule(adversarial_start=2)) for s in (1, 2, 3)] == [False, False, True]


@pytest.mark.parametrize("assignment, message", [
    ("train.lr_schedule=exponential", "train.lr_schedule must be one of"),
    ("train.lr_milestones=[5, 3]", "train.lr_milestones must be increasing"),
    ("train.lr_gamma=0", "train.lr_gamma must be"),
    ("train.warmup_steps=-1", "train.warmup_steps must be >= 0"),
    ("train.adversarial_start=-5", "train.adversarial_start must be >= 0"),
    ("loss.adversarial_weight=-0.5", "loss.adversarial_weight must be >= 0"),
])
def test_schedule_keys_are_checked(assignment, message):
    with pytest.raises(ConfigError, match=message):
        read_config(None, [assignment])


def test_adversarial_weight_defaults_to_each_recipes_own():
    assert load_config(None, ["recipe=pix2pix"]).loss.adversarial_weight == 1.0
    assert load_config(None, ["recipe=srgan"]).loss.adversarial_weight == 1e-3
    assert load_config(None, ["recipe=pix2pix", "loss.adversarial_weight=0.01"]).loss.adversarial_weight == 0.01
    assert load_config(REPO / "experiments" / "pix2pix_facades.toml").loss.adversarial_weight == 1.0  # the paper's


def test_a_pix2pix_run_directory_from_before_the_weight_existed_keeps_weight_one(tmp_path):
    """Such a config.toml recorded srgan's 1e-3 for a key pix2pix ignored then."""
    old = tmp_path / "config.toml"
    old.write_text('recipe = "pix2pix"\n\n[loss]\nadversarial_weight = 0.001\n\n[train]\nsteps = 5\n')
    (tmp_path / "checkpoint-00000005.pt").write_bytes(b"")  # a run directory's own config.toml
    with pytest.warns(UserWarning, match="recorded by a pix2pix run from before train.adversarial_start"):
        assert load_config(old).loss.adversarial_weight == 1.0
    new = tmp_path / "new.toml"
    new.write_text('recipe = "pix2pix"\n\n[loss]\nadversarial_weight = 0.001\n\n[train]\nadversarial_start = 0\n')
    assert load_config(new).loss.adversarial_weight == 0.001


def test_dcgan_refuses_an_adversarial_start(tmp_path):
    from gan.recipes.dcgan import DCGANRecipe

    config = load_config(REPO / "experiments" / "dcgan_demo.toml", ["train.adversarial_start=5"])
    with pytest.raises(ConfigError, match="train.adversarial_start is for recipes with a reconstruction loss"):
        DCGANRecipe(config, CPU, lambda: torch.no_grad())


@pytest.fixture(scope="module")
def recipe_data(tmp_path_factory):
    return write_recipe_data(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("recipe", ["pix2pix", "cyclegan", "srgan"])
def test_discriminators_wait_for_the_adversarial_start_and_the_schedule_resumes_exactly(recipe, recipe_data,
                                                                                        tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = ["train.steps=4", "train.checkpoint_every=2", "train.adversarial_start=2", "train.warmup_steps=2",
                 "train.lr_schedule=cosine", "log.image_every=4", "log.eval_every=0"]
    config = tiny_recipe_config(recipe, recipe_data, *overrides)
    straight = train(config, tmp_path / "straight", CPU, progress_stream=sys.stdout)
    first, last = (load_checkpoint(path) for path in list_checkpoints(straight.run_dir)[-2:])
    discriminators = [name for name in first["networks"] if name.startswith("discriminator")]
    generators = [name for name in first["networks"] if name.startswith("generator")]
    initial = tiny_recipe_config(recipe, recipe_data, *overrides)
    torch.manual_seed(config.train.seed)
    from gan.recipes import RECIPES
    fresh = RECIPES.get(recipe)(initial, CPU, lambda: torch.no_grad())
    for name in discriminators:  # untouched for 2 steps, trained after
        assert all(torch.equal(value, fresh.networks[name].state_dict()[key])
                   for key, value in first["networks"][name].items())
        assert any(not torch.equal(value, first["networks"][name][key])
                   for key, value in last["networks"][name].items() if value.is_floating_point())
    events = EventAccumulator(str(straight.run_dir)).Reload()
    assert [e.value for e in events.Scalars("schedule/adversarial_on")] == [0, 0, 1, 1]
    lrs = [e.value for e in events.Scalars("lr/generator")]
    assert lrs == pytest.approx([config.train.g_lr * lr_factor(s, config.train) for s in range(1, 5)])

    # cut after step 2, resume: the same weights as the straight run at step 4
    split = tmp_path / "split"
    shutil.copytree(straight.run_dir, split)
    list_checkpoints(split)[-1].unlink()
    resumed = train(config, split, CPU, resume=True, progress_stream=sys.stdout)
    assert resumed.step == 4
    again = load_checkpoint(list_checkpoints(split)[-1])
    for name in [*generators, *discriminators]:
        for key, value in last["networks"][name].items():
            assert torch.equal(value, again["networks"][name][key]), (name, key)


# ----------------------------------------------------------------------------- data


def test_rotations_keep_sr_pairs_aligned(tmp_path):
    gradient = torch.arange(64.0)[None, :] * 3 + torch.arange(64.0)[:, None]  # every orientation differs
    pixels = torch.stack([gradient, gradient.flip(0), gradient.T], dim=-1).clamp(0, 255).to(torch.uint8)
    path = tmp_path / "hr.png"
    Image.fromarray(pixels.numpy()).save(path)
    pairs = SuperResolutionPairs([path], Degradation(scale=4), 64, upsample_input=True, hflip=False, rot90=True)
    targets = set()
    for seed in range(16):
        sample = pairs[(0, seed)]
        source, target = sample["input"], sample["target"]
        targets.add(target.numpy().tobytes())
        aligned = (source - target).abs().mean()
        for turns in (1, 2, 3):  # any other orientation of the target is far from the input
            assert aligned < (source - target.rot90(turns, (1, 2))).abs().mean() / 4
    assert len(targets) == 4  # all four rotations were drawn


@pytest.mark.parametrize("recipe", ["pix2pix", "cyclegan", "srgan"])
def test_the_discriminators_scalars_average_only_the_steps_it_trained(recipe, recipe_data, tmp_path):
    """Before train.adversarial_start a step returns zeros for D's terms (one set of outputs for a
    captured graph): they are not measurements, so no window logs them and none is averaged with them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def logged(every: int) -> dict[str, dict[int, float]]:
        overrides = ["train.steps=4", "train.adversarial_start=3", "log.image_every=4", "log.eval_every=0",
                     "train.keep_best=", f"log.every={every}"]
        run = train(tiny_recipe_config(recipe, recipe_data, *overrides), tmp_path / str(every), CPU).run_dir
        events = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
        return {tag: {event.step: event.value for event in events.Scalars(tag)} for tag in events.Tags()["scalars"]}

    each, pairs = logged(1), logged(2)
    discriminator_tags = ["loss/d", "d/real", "d/fake", "grad/discriminator"]
    for tag in discriminator_tags:
        assert list(each[tag]) == [4] and list(pairs[tag]) == [4], tag  # measured at step 4 alone
        assert pairs[tag][4] == pytest.approx(each[tag][4], rel=1e-6), tag
        assert each[tag][4] != 0, tag
    assert pairs["loss/g"][4] == pytest.approx((each["loss/g"][3] + each["loss/g"][4]) / 2, rel=1e-6)
