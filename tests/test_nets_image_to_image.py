"""The pix2pix/CycleGAN networks: U-Net generator, PatchGAN and PixelGAN discriminators."""

import warnings

import pytest
import torch
from torch import nn

from gan.core.registry import ConfigError
from gan.nets import NetworkSpec, network_names, network_spec
from gan.nets.common import norm_layer


def unet(name: str = "unet", **args) -> nn.Module:
    return network_spec("generator", name, {"channels": 8, **args}, "model.generator_args").build()


def discriminator(name: str, in_channels: int = 6, **args) -> nn.Module:
    args = {"channels": 8, **args}
    return network_spec("discriminator", name, args, "model.discriminator_args", in_channels=in_channels).build()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def input_gradient(net: nn.Module, images: torch.Tensor, row: int, col: int) -> torch.Tensor:
    """|d logit[row, col] / d images| summed over channels: (H, W); nonzero on the receptive field."""
    images = images.clone().requires_grad_(True)
    net(images)[0, 0, row, col].backward()
    return images.grad[0].abs().sum(0)


def bounding_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    return rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()


def test_norm_layer_kinds():
    assert isinstance(norm_layer("batch", 4), nn.BatchNorm2d)
    instance = norm_layer("instance", 4)
    assert isinstance(instance, nn.InstanceNorm2d) and not instance.affine and not instance.track_running_stats
    assert isinstance(norm_layer("none", 4), nn.Identity)
    with pytest.raises(ValueError, match="unknown norm 'layer'; valid: batch, instance, none"):
        norm_layer("layer", 4)


@pytest.mark.parametrize(
    ("name", "args", "height", "width"),
    [("unet_128", {}, 128, 128), ("unet_256", {}, 256, 256), ("unet", {"num_downs": 5}, 32, 64)],
)
def test_unet_output_has_the_input_size_in_minus_one_one(name, args, height, width):
    torch.manual_seed(0)
    generator = unet(name, out_channels=2, **args)
    assert generator.size_multiple == 2 ** generator.num_downs
    images = generator(torch.randn(2, 3, height, width))
    assert images.shape == (2, 2, height, width)
    assert images.min() >= -1 and images.max() <= 1


def test_unet_rejects_sizes_it_cannot_halve_num_downs_times():
    with pytest.raises(ValueError, match="divisible by 32, got 32x48"):
        unet(num_downs=5)(torch.randn(1, 3, 32, 48))


def test_skip_connections_carry_local_detail():
    """With a 2x2 bottleneck, only the skips can keep a change local to where it was made."""
    torch.manual_seed(0)
    generator = unet(num_downs=5).eval()
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    changed = images.clone()
    changed[..., :8, :8] = -changed[..., :8, :8]
    with torch.no_grad():
        difference = (generator(changed) - generator(images)).abs()
    top_left, bottom_right = difference[..., :8, :8].mean(), difference[..., -8:, -8:].mean()
    assert top_left > 10 * bottom_right
    # The outermost decoder block sees [skip, decoder]: twice the outermost width.
    assert generator.decoder[0][1].in_channels == 2 * 8


@pytest.mark.parametrize("num_downs", [5, 6, 7, 8])
def test_dropout_sits_in_the_num_downs_minus_5_blocks_next_to_the_innermost(num_downs):
    generator = unet(num_downs=num_downs)
    with_dropout = [
        level for level, block in enumerate(generator.decoder) if any(isinstance(m, nn.Dropout) for m in block)
    ]
    assert with_dropout == list(range(4, num_downs - 1))  # the 8ngf blocks, innermost excluded
    assert all(m.p == 0.5 for m in generator.modules() if isinstance(m, nn.Dropout))
    # Placed after the norm, as the reference does.
    assert all(isinstance(generator.decoder[level][-1], nn.Dropout) for level in with_dropout)
    no_dropout = unet(num_downs=num_downs, dropout=0.0)
    assert not any(isinstance(m, nn.Dropout) for m in no_dropout.modules())


def test_a_unet_dropout_with_no_block_to_sit_in_is_warned_of_naming_the_key():
    def warned(args, name="unet"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            network_spec("generator", name, args, "model.generator_args", in_channels=3, out_channels=3)
        return [str(warning.message) for warning in caught]

    found = warned({"num_downs": 5, "dropout": 0.5})
    assert len(found) == 1 and found[0].startswith("model.generator_args.dropout = 0.5 changes nothing: ") \
        and "num_downs = 5 has none" in found[0]
    # Dropout that applies, dropout off, and the default nobody chose: quiet.
    assert warned({"num_downs": 6, "dropout": 0.5}) == warned({"num_downs": 5, "dropout": 0.0}) == []
    assert warned({"num_downs": 5}) == []
    # The zoo's unet_128 and unet_256 (the U-Net with num_downs given) say the same
    assert len(warned({"num_downs": 5, "dropout": 0.5}, "unet_128")) == 1
    assert warned({"dropout": 0.5}, "unet_128") == warned({"dropout": 0.5}, "unet_256") == []


def test_unet_conv_biases_follow_the_norm():
    convs = (nn.Conv2d, nn.ConvTranspose2d)
    instance = unet(norm="instance")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in instance.modules())
    assert any(isinstance(m, nn.InstanceNorm2d) for m in instance.modules())
    assert all(m.bias is not None for m in instance.modules() if isinstance(m, convs))
    batch = unet(norm="batch")
    with_bias = [m for m in batch.modules() if isinstance(m, convs) and m.bias is not None]
    assert with_bias == [batch.decoder[0][1]]  # only the outermost up conv, which no norm follows


def test_unet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_downs must be at least 5, got 4"):
        unet(num_downs=4)
    with pytest.raises(ValueError, match="unknown norm 'group'; valid: batch, instance, none"):
        unet(norm="group")


def test_unet_256_has_the_reference_parameter_count():
    """pix2pix's default generator; the reference prints "Total number of parameters : 54.414 M".

    Exactly 54,413,955: 54,404,099 conv weights + 9,856 BatchNorm scales and shifts
    + 3 for the outermost up conv's bias (every other conv is followed by BatchNorm
    or, like the outermost and innermost down convs, built with use_bias=False).
    """
    torch.manual_seed(0)
    generator = network_spec("generator", "unet_256", {}, "g").build()
    assert count_parameters(generator) == 54_413_955
    weights = torch.cat([m.weight.flatten() for m in generator.modules() if isinstance(m, nn.Conv2d)])
    assert abs(weights.std().item() - 0.02) < 0.001  # init_normal_


@pytest.mark.parametrize(("n_layers", "size"), [(1, 126), (2, 62), (3, 30), (4, 14)])
def test_patchgan_logit_map_size(n_layers, size):
    logits = discriminator("patchgan", n_layers=n_layers)(torch.randn(2, 6, 256, 256))
    assert logits.shape == (2, 1, size, size)


@pytest.mark.parametrize(("n_layers", "field"), [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_patchgan_receptive_field(n_layers, field):
    """The gradient of the centre logit is nonzero exactly on a field x field patch (70x70 for 3 layers)."""
    torch.manual_seed(0)
    net = discriminator("patchgan", in_channels=3, n_layers=n_layers).eval()  # eval: BatchNorm stops mixing pixels
    images = torch.randn(1, 3, 256, 256)
    centre = net(images).shape[-1] // 2
    gradient = input_gradient(net, images, centre, centre)
    top, bottom, left, right = bounding_box(gradient > 0)
    assert (bottom - top + 1, right - left + 1) == (field, field)
    assert 0 < top and bottom < 255 and 0 < left and right < 255  # not clipped by the border
    assert (gradient[top : bottom + 1, left : right + 1] > 0).all()


def test_pixelgan_judges_each_pixel_alone():
    torch.manual_seed(0)
    net = discriminator("pixelgan", in_channels=3).eval()
    images = torch.randn(1, 3, 20, 30)
    assert net(images).shape == (1, 1, 20, 30)
    gradient = input_gradient(net, images, 7, 11)
    assert gradient[7, 11] > 0
    assert (gradient > 0).sum() == 1  # a 1x1 receptive field


def test_discriminators_conv_biases_follow_the_norm():
    patch = discriminator("patchgan")
    convs = [m for m in patch.modules() if isinstance(m, nn.Conv2d)]
    assert [m.bias is not None for m in convs] == [True, False, False, False, True]  # first and last only
    instance = discriminator("patchgan", norm="instance")
    assert all(m.bias is not None for m in instance.modules() if isinstance(m, nn.Conv2d))
    pixel = [m for m in discriminator("pixelgan").modules() if isinstance(m, nn.Conv2d)]
    assert [m.bias is not None for m in pixel] == [True, False, False]  # as the reference, last included
    with pytest.raises(ValueError, match="unknown norm"):
        discriminator("patchgan", norm="layer")
    with pytest.raises(ValueError, match="n_layers must be at least 1"):
        discriminator("patchgan", n_layers=0)


def test_pix2pix_discriminator_has_the_reference_parameter_count():
    """The 70x70 PatchGAN on [input, output] (6 channels): the reference prints 2.769 M."""
    net = network_spec("discriminator", "patchgan", {}, "d", in_channels=6).build()
    assert count_parameters(net) == 2_768_705


def test_registry_names_and_alias_defaults():
    assert {"unet", "unet_128", "unet_256"} <= set(network_names("generator"))
    assert {"patchgan", "pixelgan"} <= set(network_names("discriminator"))
    for name, num_downs in [("unet", 8), ("unet_128", 7), ("unet_256", 8)]:
        spec = network_spec("generator", name, {}, "k")
        assert spec.kwargs == {"in_channels": 3, "out_channels": 3, "num_downs": num_downs, "channels": 64,
                               "norm": "batch", "dropout": 0.5, "upsample": "transposed", "residual": False}
    spec = network_spec("generator", "unet_128", {"num_downs": 6, "channels": 4}, "k")
    assert spec.kwargs["num_downs"] == 6  # the alias only changes the default
    assert NetworkSpec.from_dict(spec.to_dict()).build().size_multiple == 64
    assert network_spec("generator", "unet_128", {"channels": 4}, "k").build().size_multiple == 128


def test_alias_arguments_are_type_checked_like_the_class():
    with pytest.raises(ConfigError, match="k.num_downs"):
        network_spec("generator", "unet_128", {"num_downs": "7"}, "k")
    with pytest.raises(ConfigError, match="k.dropout"):
        network_spec("generator", "unet_256", {"dropout": "half"}, "k")


def test_discriminator_in_channels_come_from_the_recipe():
    for name in ("patchgan", "pixelgan"):
        with pytest.raises(ConfigError, match="'d.in_channels' is set by the recipe from another config key"):
            network_spec("discriminator", name, {"in_channels": 6}, "d", in_channels=6)
        spec = network_spec("discriminator", name, {"channels": 4}, "d", in_channels=6)
        assert spec.kwargs["in_channels"] == 6
        assert spec.build()(torch.randn(2, 6, 64, 64)).shape[:2] == (2, 1)


def test_the_resnet_generator_is_the_references_layers_in_order_and_pads_by_reflection():
    # (guards a mutation probe found open: a norm dropped after the 7x7 head, or a block padded with
    # zeros, kept every parameter count and shape)
    from gan.nets.resnet import ResnetGenerator

    head = ["ReflectionPad2d", "Conv2d", "InstanceNorm2d", "ReLU"]
    down = ["Conv2d", "InstanceNorm2d", "ReLU"] * 2
    block = ["ReflectionPad2d", "Conv2d", "InstanceNorm2d", "ReLU", "ReflectionPad2d", "Conv2d", "InstanceNorm2d"]
    up = ["ConvTranspose2d", "InstanceNorm2d", "ReLU"] * 2
    tail = ["ReflectionPad2d", "Conv2d", "Tanh"]
    network = ResnetGenerator(num_blocks=9)
    leaves = [type(module).__name__ for module in network.modules() if not list(module.children())]
    assert leaves == head + down + block * 9 + up + tail
    stride_one = [conv for conv in network.modules() if type(conv) is torch.nn.Conv2d and conv.stride == (1, 1)]
    assert len(stride_one) == 20 and all(conv.padding == (0, 0) for conv in stride_one)  # (the reflections pad)


def test_an_image_of_another_size_than_the_networks_is_padded_by_reflection_then_cropped_back():
    # (guards a mutation probe found open: edge replication in its place changed every border pixel)
    import torch.nn.functional as F

    from gan.nets.running import run_padded

    images = torch.rand(1, 3, 13, 10)
    seen = []
    run_padded(lambda padded: seen.append(padded) or padded, images, 8)
    assert torch.equal(seen[0], F.pad(images, (0, 6, 0, 3), mode="reflect"))
    assert torch.equal(run_padded(lambda padded: padded * 2, images, 8), images * 2)
