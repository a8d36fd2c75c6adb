import textwrap

import pytest
import torch
from torch import nn

from gan.core.registry import ConfigError
from gan.nets import NetworkSpec, network_names, network_spec


@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_dcgan_shapes_at_every_resolution(resolution):
    generator = network_spec("generator", "dcgan", {"channels": 8}, "g", resolution=resolution).build()
    discriminator = network_spec("discriminator", "dcgan", {"channels": 8}, "d", resolution=resolution).build()
    images = generator(torch.randn(3, 100))
    assert images.shape == (3, 3, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1  # tanh output
    assert discriminator(images).shape == (3,)


@pytest.mark.parametrize("resolution", [16, 48, 512])
def test_dcgan_rejects_other_resolutions(resolution):
    with pytest.raises(ValueError, match="power of two from 32 to 256"):
        network_spec("generator", "dcgan", {}, "g", resolution=resolution).build()


def test_dcgan_matches_the_paper_at_64():
    """Radford et al.'s 64x64 DCGAN: 512 channels at 4x4, 3.58M generator parameters."""
    generator = network_spec("generator", "dcgan", {}, "g", resolution=64).build()
    assert generator.net[0].out_channels == 512
    assert sum(p.numel() for p in generator.parameters()) == 3_576_704 + 3  # + output bias


def test_channel_widths_are_capped():
    generator = network_spec("generator", "dcgan", {"max_channels": 256}, "g", resolution=128).build()
    assert max(m.out_channels for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)) == 256


def test_normal_002_initialisation():
    torch.manual_seed(0)
    discriminator = network_spec("discriminator", "dcgan", {}, "d", resolution=64).build()
    weights = torch.cat([m.weight.flatten() for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(weights.std().item() - 0.02) < 0.001
    assert abs(weights.mean().item()) < 0.001


def test_registry_lists_and_rejects_names():
    assert "dcgan" in network_names("generator") and "dcgan" in network_names("discriminator")
    with pytest.raises(ConfigError, match="unknown generator 'dcgna' \\(did you mean 'dcgan'\\?\\); known: dcgan"):
        network_spec("generator", "dcgna", {}, "model.generator_args", resolution=64)


def test_every_zoo_entry_builds_a_network():
    """The registry maps names to network constructors (the VGG entry once named a helper of layer names)."""
    with pytest.warns(UserWarning, match="RANDOM weights"):
        extractor = NetworkSpec("feature_extractor", "vgg", {"arch": "vgg16", "layer": "relu1_2",
                                                             "weights": "random"}).build()
    assert isinstance(extractor, nn.Module) and extractor(torch.zeros(1, 3, 8, 8)).shape == (1, 64, 8, 8)


def test_spec_round_trip_rebuilds_the_same_architecture():
    spec = network_spec("generator", "dcgan", {"channels": 16, "latent_dim": 32}, "g", resolution=32)
    rebuilt = NetworkSpec.from_dict(spec.to_dict()).build()
    assert rebuilt.latent_dim == 32
    assert spec.kwargs == {"channels": 16, "latent_dim": 32, "max_channels": 1024, "image_channels": 3, "norm": "batch",
                           "resolution": 32}


def test_recipe_supplied_arguments_cannot_be_set_in_config():
    # said "unknown key" (with a "did you mean" of another argument), though the network takes it from the recipe
    with pytest.raises(ConfigError, match=r"'model.generator_args.resolution' is set by the recipe from another config "
                                          r"key \(data.resolution"):
        network_spec("generator", "dcgan", {"resolution": 64}, "model.generator_args", resolution=64)


@pytest.mark.parametrize("value", [float("nan"), 1.0, -0.1])
def test_a_resnet_generator_refuses_a_dropout_outside_0_to_1(value):
    # nan failed at step 1 in a traceback; 1.0 zeroed every residual branch in training alone
    with pytest.raises(ConfigError, match=rf"model.generator_args.dropout: dropout must be in \[0, 1\), got {value}"):
        network_spec("generator", "resnet_9blocks", {"dropout": value}, "model.generator_args", in_channels=3,
                     out_channels=3)


def test_a_spec_read_from_a_file_with_a_float_where_an_int_belongs_is_a_value_error():
    # an edited checkpoint's resolution = 32.0 ran into a TypeError inside the constructor
    spec = NetworkSpec("generator", "dcgan", {"channels": 8, "latent_dim": 8, "resolution": 32.0})
    with pytest.raises(ValueError, match="resolution"):
        spec.check()


def test_a_network_of_another_name_keeps_no_arguments_of_the_old_one_and_the_message_says_so():
    # a config's arguments for dcgan, given to unet, got "did you mean" another argument of unet
    with pytest.raises(ConfigError, match=r"unknown key 'model.generator_args.latent_dim' for generator 'unet' \(an "
                                          r"argument of generator dcgan: model.generator_args keeps what was written "
                                          r"for another network when the network changes; remove this one\)"):
        network_spec("generator", "unet", {"latent_dim": 100}, "model.generator_args")
    with pytest.raises(ConfigError, match=r"'model.generator_args.chanels' .*\(did you mean 'channels'\?\)"):
        network_spec("generator", "unet", {"chanels": 8}, "model.generator_args")
    # an argument the recipe supplies names the key it comes from (it said data.resolution for scale)
    with pytest.raises(ConfigError, match=r"'model.generator_args.scale' is set by the recipe from another config "
                                          r"key \(data.scale\)"):
        network_spec("generator", "srresnet", {"scale": 4}, "model.generator_args", scale=4)


def test_registering_a_network_under_an_unknown_role_names_the_roles():
    from gan.nets import register_network

    # was a bare KeyError: 'generatr'
    with pytest.raises(ValueError, match=r"unknown role 'generatr' \(did you mean 'generator'\?\); roles: generator, "
                                         r"discriminator, feature_extractor"):
        register_network("generatr", "my_net")


def _registered_in_a_fresh_process(registration: str) -> list[str]:
    """What a new process prints that runs `registration` (the zoo not imported yet), then builds a
    zoo network: the registration's error, if any, then "zoo usable"."""
    import subprocess
    import sys

    code = f"""
import functools
from torch import nn
from gan.nets import network_spec, register_network
try:
{textwrap.indent(textwrap.dedent(registration), "    ")}
except ValueError as error:
    print(error)
network_spec("generator", "dcgan", {{"channels": 4}}, "g", resolution=32).build()
print("zoo usable")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_a_network_of_ones_own_under_a_zoo_name_is_refused_at_once_even_before_the_zoo_is_imported():
    """It was accepted (the zoo imports lazily), and every config after failed with
    "generator 'unet' is registered twice", dcgan's too, until the process restarted. A partial of a
    zoo class was taken for the zoo's own registration (its function's module is the zoo's)."""
    assert _registered_in_a_fresh_process("""
        @register_network("generator", "unet")
        class Mine(nn.Module):
            pass
        """) == ["generator 'unet' is registered twice: to gan.nets.unet.UNetGenerator, and now to __main__.Mine; "
                 "register yours under a name of its own", "zoo usable"]
    assert _registered_in_a_fresh_process("""
        from gan.nets.unet import UNetGenerator
        register_network("generator", "dcgan")(functools.partial(UNetGenerator, num_downs=5))
        """) == ["generator 'dcgan' is registered twice: to gan.nets.dcgan.DCGANGenerator, and now to "
                 "gan.nets.unet.UNetGenerator(num_downs=5); register yours under a name of its own", "zoo usable"]


def test_a_network_defined_again_under_its_name_replaces_the_earlier_definition_as_a_notebook_cell_run_again():
    from gan.nets import _zoo, register_network

    def define():
        @register_network("generator", "test_cell_net")
        class CellNet(nn.Module):
            pass

        return CellNet

    first, second = define(), define()
    assert first is not second and _zoo("generator").get("test_cell_net") is second

    class OtherNet(nn.Module):
        pass

    with pytest.raises(ValueError, match=r"generator 'test_cell_net' is registered twice: to .*\.CellNet, "
                                         r"and now to .*\.OtherNet; register yours under a name of its own"):
        register_network("generator", "test_cell_net")(OtherNet)


@pytest.mark.parametrize("network, images, expected", [
    # 30x30 gave a 32x32 output without a word (and a shape error with residual = true)
    (("generator", "resnet", {"channels": 4, "num_blocks": 1}), (1, 3, 30, 30), r"the ResNet generator needs H and W "
                                                                                r"divisible by 4 and at least 8, got 30x30"),
    (("generator", "resnet", {"channels": 4, "num_blocks": 1}), (1, 3, 4, 4), "divisible by 4 and at least 8, got 4x4"),
    (("discriminator", "dcgan", {"channels": 4, "resolution": 32}), (2, 3, 64, 64),
     r"reads 32x32 images \(its resolution\), got 64x64"),
    (("discriminator", "patchgan", {"channels": 4, "in_channels": 3}), (1, 3, 16, 16),
     "a PatchGAN of n_layers = 3 reads images of at least 24x24, got 16x16"),
    (("generator", "dcgan", {"channels": 4, "latent_dim": 100, "resolution": 32}), (2, 128),
     r"takes z of shape \(N, latent_dim = 100\), got \(2, 128\)"),
])
def test_zoo_networks_given_inputs_they_cannot_read_say_what_they_read(network, images, expected):
    role, name, args = network
    built = NetworkSpec(role, name, args).build().eval()
    with pytest.raises(ValueError, match=expected):
        built(torch.zeros(images))


def test_the_inputs_the_zoo_networks_read_still_run():
    resnet = NetworkSpec("generator", "resnet", {"channels": 4, "num_blocks": 1}).build().eval()
    assert resnet(torch.zeros(1, 3, 8, 12)).shape == (1, 3, 8, 12)
    generator = NetworkSpec("generator", "dcgan", {"channels": 4, "latent_dim": 8, "resolution": 32}).build().eval()
    assert generator(torch.zeros(2, 8)).shape == generator(torch.zeros(2, 8, 1, 1)).shape == (2, 3, 32, 32)
    patchgan = NetworkSpec("discriminator", "patchgan", {"channels": 4, "in_channels": 3}).build().eval()
    assert patchgan(torch.zeros(1, 3, 24, 24)).shape == (1, 1, 1, 1)


def test_a_partial_registered_again_replaces_itself_only_with_the_same_arguments():
    import functools

    from gan.nets import _zoo, register_network
    from gan.nets.dcgan import DCGANGenerator

    register_network("generator", "test_partial")(functools.partial(DCGANGenerator, 32))
    with pytest.raises(ValueError, match=r"DCGANGenerator\(32\), and now to .*DCGANGenerator\(64\)"):
        register_network("generator", "test_partial")(functools.partial(DCGANGenerator, 64))
    register_network("generator", "test_partial")(functools.partial(DCGANGenerator, 32))  # (the same, again)
    assert _zoo("generator").get("test_partial").args == (32,)
