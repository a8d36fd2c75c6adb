import re
import textwrap

import pytest
import torch
from torch import nn

from gan.core.registry import ConfigError
from gan.nets import NetworkSpec, network_names, network_spec


@pytest.fixture(autouse=True)
def zoo_as_it_was():
    """A network a test registers is gone after it: left in the zoo, it was listed in the messages of
    every later test ("generators that fit: ..."), which passed only by where the name sorted."""
    from gan.nets import ROLES, _zoo

    saved = {role: dict(_zoo(role)._entries) for role in ROLES}
    yield
    for role, entries in saved.items():
        _zoo(role)._entries.clear()
        _zoo(role)._entries.update(entries)


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
    with pytest.raises(ConfigError, match="unknown generator 'dcgna' \\(did you mean 'dcgan'\\?\\); known: (.*, )?dcgan"):
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


class _OwnGenerator(nn.Module):
    """A network of one's own written the usual ways: a None default, a count from 0, -1 for "none",
    and **kwargs as a subclass passes them on. Each broke `gan train` (TOML has no null; "must be
    at least 1, got 0" of the argument's own default; "it needs kwargs")."""

    def __init__(self, resolution: int, latent_dim: int = 8, channels: int = 8, extra_layers: int = 0,
                 attention_at: int = -1, norm: str | None = None, **kwargs):
        super().__init__()
        self.latent_dim, self.resolution = latent_dim, resolution
        self.net = nn.Sequential(nn.Linear(latent_dim, 3 * resolution * resolution), nn.Tanh())

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.net(latents.flatten(1)).view(-1, 3, self.resolution, self.resolution)


def test_a_network_of_ones_own_with_none_zero_and_negative_defaults_trains_resumes_and_samples(tmp_path):
    import subprocess
    import sys

    from conftest import REPO, TINY, invoke, only_run

    from gan.nets import register_network, resolve_network_args

    register_network("generator", "test_own_generator")(_OwnGenerator)
    resolved = resolve_network_args("generator", "test_own_generator", {}, "model.generator_args")
    assert resolved == {"latent_dim": 8, "channels": 8, "extra_layers": 0, "attention_at": -1}  # (norm: its default)
    with pytest.raises(ConfigError, match=r"model.generator_args.extra_layers must be at least 0, got -1"):
        resolve_network_args("generator", "test_own_generator", {"extra_layers": -1}, "model.generator_args")
    train = ["train", REPO / "experiments" / "dcgan_demo.toml", "--out", tmp_path / "runs",
             *[f"--set={item}" for item in [*TINY, "model.generator=test_own_generator"]]]
    result = invoke(*train)
    assert result.exit_code == 0, result.output
    run_dir = only_run(tmp_path / "runs")
    assert "extra_layers = 0" in (run_dir / "config.toml").read_text()
    assert invoke("train", "--resume", run_dir, "--set", "train.steps=6").exit_code == 0
    result = invoke("sample", run_dir, "--n", "4", "--out", tmp_path / "faces.png")
    assert result.exit_code == 0 and (tmp_path / "faces.png").is_file(), result.output
    # a process that never registered it: the file is whole, this gan lacks the network ("damaged or edited")
    fresh = subprocess.run([sys.executable, "-m", "gan", "sample", str(run_dir), "--out", str(tmp_path / "b.png")],
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode != 0 and "damaged" not in fresh.stderr, fresh.stderr
    assert "was trained with generator 'test_own_generator', which this gan does not have" in fresh.stderr
    assert "_ZOO_MODULES" in fresh.stderr


def test_a_default_no_config_can_hold_and_a_name_no_config_can_say_are_refused_naming_them():
    from gan.core.registry import Registry
    from gan.nets import register_network, resolve_network_args

    @register_network("generator", "test_class_default")
    class ClassDefault(nn.Module):
        def __init__(self, resolution: int, activation=nn.ReLU):
            super().__init__()

    # was a traceback: TypeError: cannot write type to TOML
    with pytest.raises(ConfigError, match=r"model.generator_args.activation: generator 'test_class_default' gives it "
                                          r"the default <class 'torch.nn.modules.activation.ReLU'>, which no config "
                                          r"can hold"):
        resolve_network_args("generator", "test_class_default", {}, "model.generator_args")
    registry = Registry("generator")
    for name in (3, "", "my net", "é", ".."):  # (an int broke every later list of the names: '<' between int and str)
        with pytest.raises(ValueError, match=rf"generator .*ClassDefault is registered under {re.escape(repr(name))}: "
                                             "a name is ASCII letters and digits"):
            registry.register(name, ClassDefault)
    assert registry.names() == []


@pytest.mark.parametrize("kind", ["hinge", "wgan-gp", "vanilla"])
def test_a_discriminator_that_averages_its_batch_is_refused_not_trained(kind):
    # one score for the batch: the hinge took max(0, 1 - mean), and the penalties each image's gradient / N
    from gan.recipes.losses import AdversarialLoss, r1_penalty

    class MeanScore(nn.Module):
        def __init__(self, keepdim: bool):
            super().__init__()
            self.linear, self.keepdim = nn.Linear(3 * 8 * 8, 1), keepdim

        def forward(self, images):
            scores = self.linear(images.flatten(1))
            return scores.mean().view(1) if self.keepdim else scores.mean()

    loss, images = AdversarialLoss(kind), torch.randn(4, 3, 8, 8)
    with pytest.raises(ValueError, match=r"the discriminator gave scores of shape \(\) for a batch: it must give one "
                                         r"score per image"):
        loss.discriminator(MeanScore(False)(images), MeanScore(False)(images))
    with pytest.raises(ValueError, match=r"shape \(\) for a batch"):
        loss.generator(MeanScore(False)(images))
    with pytest.raises(ValueError, match=r"shape \(1,\) for 4 images"):
        r1_penalty(MeanScore(True), images)
    if kind == "wgan-gp":
        with pytest.raises(ValueError, match=r"shape \(1,\) for 4 images"):
            loss.penalty(MeanScore(True), images, images)
    per_image = nn.Linear(3 * 8 * 8, 1)
    assert loss.discriminator(per_image(images.flatten(1)), per_image(images.flatten(1))).dim() == 0
    assert r1_penalty(lambda x: per_image(x.flatten(1)), images).dim() == 0


class _HalfSizeGenerator(_OwnGenerator):
    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return super().forward(latents)[:, :, ::2, ::2]


class _NoLatentGenerator(_OwnGenerator):
    def __init__(self, resolution: int, latent_dim: int = 8, channels: int = 8):
        super().__init__(resolution, latent_dim, channels)
        del self.latent_dim


@pytest.mark.parametrize("network, expected", [
    (_HalfSizeGenerator, r"model.generator = 'test_half_size' makes images of shape \(1, 3, 16, 16\) from one latent, "
                         r"not \(1, 3, 32, 32\) \(data.resolution = 32\)"),
    (_NoLatentGenerator, r"model.generator = 'test_no_latent' has no latent_dim"),
])
def test_an_unconditional_generator_of_ones_own_is_checked_before_step_1(network, expected):
    # each was a traceback at step 1 (D's shape error; AttributeError: no attribute 'latent_dim')
    import contextlib

    from conftest import tiny_config

    from gan.nets import register_network
    from gan.recipes import RECIPES

    name = "test_half_size" if network is _HalfSizeGenerator else "test_no_latent"
    register_network("generator", name)(network)
    config = tiny_config(f"model.generator={name}")
    with pytest.raises(ConfigError, match=expected):
        RECIPES.get("dcgan")(config, torch.device("cpu"), contextlib.nullcontext)


def test_a_network_with_lazy_layers_is_counted_without_them():
    # its parameter count failed on the meta device, blamed on model.discriminator_args
    from gan.nets import register_network

    @register_network("discriminator", "test_lazy")
    class Lazy(nn.Module):
        def __init__(self, resolution: int, channels: int = 4):
            super().__init__()
            self.conv, self.head = nn.Conv2d(3, channels, 3), nn.LazyLinear(1)

        def forward(self, images):
            return self.head(self.conv(images).flatten(1))

    spec = network_spec("discriminator", "test_lazy", {"channels": 4}, "model.discriminator_args", resolution=32)
    assert spec.build()(torch.zeros(2, 3, 32, 32)).shape == (2, 1)


class _BatchMeanDiscriminator(nn.Module):
    def __init__(self, resolution: int, channels: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 4, 4)

    def forward(self, images):
        return self.conv(images).mean(dim=(1, 2, 3)).mean(dim=0, keepdim=True)  # (1,): one for the batch


def test_a_discriminator_that_averages_its_batch_is_refused_before_step_1_in_one_line(tmp_path):
    # a (1,) or (1, 1, H, W) average trained to the end under vanilla, lsgan and hinge: the losses have
    # no batch to compare with
    from conftest import REPO, TINY, invoke, run_folders

    from gan.nets import register_network

    register_network("discriminator", "test_batch_mean")(_BatchMeanDiscriminator)
    result = invoke("train", REPO / "experiments" / "dcgan_demo.toml", "--out", tmp_path / "runs",
                    *[f"--set={item}" for item in [*TINY, "model.discriminator=test_batch_mean",
                                                   "loss.adversarial=hinge"]])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "error: model.discriminator = 'test_batch_mean' gives scores of shape (1,) for 2 images: a " \
        "discriminator gives one score per image" in result.output
    assert not run_folders(tmp_path / "runs")


class _TwoColumnDiscriminator(_BatchMeanDiscriminator):
    def forward(self, images):
        return self.conv(images).mean(dim=(2, 3))[:, :2]  # (N, 2): an AC-GAN head's real/fake and class


class _TupleDiscriminator(_BatchMeanDiscriminator):
    def forward(self, images):
        scores = self.conv(images).mean(dim=(1, 2, 3))
        return scores, scores  # (scores, features), say


@pytest.mark.parametrize("network, expected", [
    (_TwoColumnDiscriminator, "gives scores of shape (2, 2) for 2 images: a discriminator gives one score per image, "
                              "(N,) or (N, 1), or a map of them, (N, 1, H, W), not 2 columns"),
    (_TupleDiscriminator, "returned a tuple, not a tensor: a discriminator gives one tensor of scores"),
])
def test_a_discriminator_of_other_than_one_score_per_image_is_refused_before_step_1(tmp_path, network, expected):
    # an (N, 2) head trained to the end, the losses averaging both columns as scores; a tuple was said to
    # give "scores of shape tuple ... not one for the whole batch"
    from conftest import REPO, TINY, invoke, run_folders

    from gan.nets import register_network
    from gan.recipes.losses import AdversarialLoss

    register_network("discriminator", "test_misshapen")(network)
    result = invoke("train", REPO / "experiments" / "dcgan_demo.toml", "--out", tmp_path / "runs",
                    *[f"--set={item}" for item in [*TINY, "model.discriminator=test_misshapen"]])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"error: model.discriminator = 'test_misshapen' {expected}" in result.output
    assert not run_folders(tmp_path / "runs")
    scores = network(32)(torch.zeros(4, 3, 32, 32))
    with pytest.raises(ValueError, match=r"the discriminator (gave scores of shape \(4, 2\)|returned a tuple)"):
        AdversarialLoss("hinge").generator(scores)


def test_an_unhinted_tuple_default_is_the_list_a_config_gives_back(tmp_path):
    # config.toml wrote [8, 8], a fresh resolve gave (8, 8): the same --run-dir line was refused as
    # "model.generator_args.widths [8, 8] -> (8, 8)", and so were a sweep's reruns
    from conftest import REPO, TINY, invoke

    from gan.nets import register_network, resolve_network_args

    @register_network("generator", "test_unhinted_tuple")
    class Unhinted(_OwnGenerator):
        def __init__(self, resolution: int, latent_dim: int = 8, channels: int = 8, widths=(8, (4, 4))):
            super().__init__(resolution, latent_dim, channels)

    assert resolve_network_args("generator", "test_unhinted_tuple", {}, "g")["widths"] == [8, [4, 4]]
    line = ["train", REPO / "experiments" / "dcgan_demo.toml", "--run-dir", tmp_path / "run",
            *[f"--set={item}" for item in [*TINY, "model.generator=test_unhinted_tuple"]]]
    assert invoke(*line).exit_code == 0
    again = invoke(*line, "--set=train.steps=6")
    assert again.exit_code == 0, again.output


def test_a_tuple_argument_reaches_the_network_as_a_tuple_however_its_spec_was_read():
    # an export's JSON (and config.toml) hold lists: `widths + (4,)` in the constructor failed in `gan sample`
    # of an export ("can only concatenate list (not "tuple") to list"), and an unhinted tuple default
    # arrived as a list even in a fresh run
    import json

    from gan.nets import register_network

    @register_network("generator", "test_tuple_args")
    class TupleArguments(_OwnGenerator):
        def __init__(self, resolution: int, widths: tuple[int, ...] = (16, 8), sizes=(8, (4, 4))):
            super().__init__(resolution)
            self.widths, self.sizes = widths + (4,), sizes

    fresh = network_spec("generator", "test_tuple_args", {}, "model.generator_args", resolution=32)
    read = NetworkSpec.from_dict(json.loads(json.dumps(fresh.to_dict())))
    assert read.kwargs["widths"] == [16, 8]  # (as a file holds it)
    for spec in (read, fresh):
        generator = spec.build()
        assert (generator.widths, generator.sizes) == ((16, 8, 4), (8, (4, 4)))
    given = network_spec("generator", "test_tuple_args", {"sizes": [2, [1, 1]]}, "model.generator_args", resolution=32)
    assert given.build().sizes == (2, (1, 1))


def test_a_resume_that_sets_a_key_the_run_left_unset_is_told_so():
    # a None default is left out of config.toml: the refusal said "trained with ... = None. Set them
    # back (--set KEY=VALUE)", and None is no value --set can give
    from conftest import tiny_config

    from gan.core.config import config_to_dict
    from gan.training.state import _changed_model_keys

    config = tiny_config()
    saved = config_to_dict(config)
    del saved["model"]["generator_args"]["channels"]
    said = _changed_model_keys(saved, config)
    assert "trained with model.generator_args.channels unset (the network's default); this config has " \
        "model.generator_args.channels = 8" in said and "for a key the run left unset, leave out its --set" in said


def test_an_unknown_network_without_a_close_name_says_where_networks_of_ones_own_are_listed():
    # a resume in a process without the run's network module said "unknown generator 'my_gen2'" alone
    from gan.nets import resolve_network_args

    with pytest.raises(ConfigError, match=r"unknown generator 'zzz_mine'; known: .*; a network of one's own is found "
                                          r"once its module is in gan/nets/ and listed in _ZOO_MODULES"):
        resolve_network_args("generator", "zzz_mine", {}, "model.generator_args")
    with pytest.raises(ConfigError, match=r"did you mean 'dcgan'\?\)[^;]*; known: [^;]*$"):  # (a typo: as it was)
        resolve_network_args("generator", "dcgna", {}, "model.generator_args")


def test_a_zoo_module_that_fails_to_import_is_said_where_its_networks_are_missing_and_blocks_no_other(
        tiny_demo_run, tmp_path, monkeypatch):
    # `import not_installed_pkg` in a module listed in _ZOO_MODULES, or a misspelled entry, broke every
    # command (`gan sample` of a plain dcgan run too) with a 40-line traceback ending ModuleNotFoundError
    from conftest import REPO, TINY, assert_one_error_line, invoke

    import gan.nets

    (tmp_path / "test_needs_a_package.py").write_text("import not_installed_pkg  # noqa: F401\n")
    # (a CUDA extension that does not build raises RuntimeError, not ImportError: it broke every command still)
    (tmp_path / "test_cuda_build.py").write_text("raise RuntimeError('CUDA kernel build failed')\n")
    (tmp_path / "test_half_registered.py").write_text(  # (its network was left registered, and usable)
        "from torch import nn\nfrom gan.nets import register_network\n\n\n"
        "@register_network('discriminator', 'halfdisc')\nclass HalfDisc(nn.Module):\n    pass\n\n\n"
        "import not_installed_pkg  # noqa: E402, F401\n")
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.setattr(gan.nets, "_ZOO_MODULES", (*gan.nets._ZOO_MODULES, "test_needs_a_package",
                                                   "gan.nets.test_misspelled", "test_cuda_build",
                                                   "test_half_registered"))
    for registry in gan.nets._REGISTRIES.values():  # (what failed to import is kept: this test's, for itself)
        monkeypatch.setattr(registry, "_unimported", {}, raising=False)
    sampled = invoke("sample", tiny_demo_run, "--n", "2", "--out", tmp_path / "faces.png")
    assert sampled.exit_code == 0 and (tmp_path / "faces.png").is_file(), sampled.output
    trained = invoke("train", REPO / "experiments" / "dcgan_demo.toml", "--out", tmp_path / "runs",
                     *[f"--set={item}" for item in [*TINY, "model.generator=mine"]])
    assert_one_error_line(trained, "unknown generator 'mine'; known: dcgan, ",
                          "; test_needs_a_package (listed in _ZOO_MODULES) failed to import: No module named "
                          "'not_installed_pkg'; gan.nets.test_misspelled (listed in _ZOO_MODULES) failed to import: "
                          "No module named 'gan.nets.test_misspelled'; test_cuda_build (listed in _ZOO_MODULES) "
                          "failed to import: RuntimeError: CUDA kernel build failed")
    assert "halfdisc" not in gan.nets.network_names("discriminator")


def test_a_resume_whose_networks_do_not_fit_though_built_alike_names_the_gan_that_wrote_it():
    # it said "may come from another version of gan" for a checkpoint that names the version writing it
    from conftest import tiny_config

    from gan import __version__
    from gan.core.config import config_to_dict
    from gan.training.state import _changed_model_keys

    config = tiny_config()
    said = _changed_model_keys(config_to_dict(config), config, {"gan": "0.0.9", "torch": "2.0.0"})
    assert f"the checkpoint was written by gan 0.0.9, this is gan {__version__}: resume it with that version" in said
    unstamped = _changed_model_keys(config_to_dict(config), config, None)
    assert "may come from another version of gan (it names none: written before checkpoints did)" in unstamped
