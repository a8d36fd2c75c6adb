"""Loss presets (issue 29): each loss with its paper's settings, selected as one value, visible in
the resolved config, overridden by `--set`, varied by a sweep grid."""

import re
import tomllib

import pytest
from click.testing import CliRunner
from conftest import REPO, TINY

from gan.commands.main import main
from gan.core.config import dump_config, flatten_config
from gan.core.presets import LOSS_PRESETS
from gan.core.registry import ConfigError
from gan.training.resolve import load_config

DEMO = REPO / "experiments" / "dcgan_demo.toml"
CELEBA = REPO / "experiments" / "dcgan_celeba64.toml"  # label smoothing and instance noise 0.1: not a preset's


def resolved(config) -> dict:
    """The resolved config.toml a run keeps, read back flat."""
    return flatten_config(tomllib.loads(dump_config(config)))


@pytest.mark.parametrize("name", sorted(LOSS_PRESETS))
def test_every_value_of_a_preset_is_in_the_resolved_config(name):
    written = resolved(load_config(CELEBA, [f"loss.preset={name}"]))
    assert written["loss.preset"] == name
    for key, value in LOSS_PRESETS[name].values.items():
        assert written[key] == value, key


def test_the_published_settings():
    wgan = resolved(load_config(CELEBA, ["loss.preset=wgan-gp"]))
    assert (wgan["train.d_steps"], wgan["train.beta1"], wgan["train.beta2"], wgan["loss.gp_weight"],
            wgan["model.discriminator_args.norm"], wgan["train.g_lr"]) == (5, 0.0, 0.9, 10.0, "none", 1e-4)
    hinge = resolved(load_config(CELEBA, ["loss.preset=hinge"]))
    assert (hinge["train.d_lr"], hinge["train.g_lr"], hinge["train.beta1"], hinge["train.beta2"],
            hinge["model.discriminator_args.spectral_norm"], hinge["model.discriminator_args.norm"]) == (
        4e-4, 1e-4, 0.0, 0.9, True, "none")
    lsgan = resolved(load_config(CELEBA, ["loss.preset=lsgan"]))
    assert (lsgan["loss.adversarial"], lsgan["train.g_lr"], lsgan["train.d_lr"], lsgan["train.beta1"]) == (
        "lsgan", 1e-3, 1e-3, 0.5)
    vanilla = resolved(load_config(CELEBA, ["loss.preset=vanilla"]))
    assert (vanilla["loss.label_smoothing"], vanilla["loss.instance_noise"], vanilla["train.beta1"]) == (0.0, 0.0, 0.5)


@pytest.mark.parametrize("order", ["before", "after"])
def test_set_overrides_a_preset_wherever_it_stands_on_the_line(order):
    sets = ["train.d_lr=3e-4", "loss.preset=hinge"]
    config = load_config(CELEBA, sets if order == "before" else sets[::-1])
    assert config.train.d_lr == 3e-4 and config.train.g_lr == 1e-4 and config.loss.adversarial == "hinge"


def test_a_preset_on_the_command_line_replaces_the_files_values():
    file_only = load_config(CELEBA)
    assert (file_only.loss.label_smoothing, file_only.loss.preset) == (0.1, "")
    config = load_config(CELEBA, ["loss.preset=wgan-gp"])
    assert (config.loss.label_smoothing, config.loss.instance_noise, config.loss.adversarial) == (0.0, 0.0, "wgan-gp")


def test_a_preset_named_in_a_file_is_refined_by_the_files_own_keys(tmp_path):
    path = tmp_path / "refined.toml"
    path.write_text(DEMO.read_text().replace('adversarial = "vanilla"', 'preset = "hinge"\n')
                    .replace("d_lr = 2e-4", "d_lr = 3e-4"))
    config = load_config(path)
    assert (config.loss.adversarial, config.train.d_lr, config.train.g_lr, config.train.beta1) == (
        "hinge", 3e-4, 2e-4, 0.5)  # the file's rates and beta1 over the preset's
    assert config.model.discriminator_args["spectral_norm"] is True  # the preset's, which the file leaves alone
    # the resolved config reads back to the same run, and --set loss.preset still replaces the file's values
    written = tmp_path / "config.toml"
    written.write_text(dump_config(config))
    assert load_config(written) == config
    assert load_config(written, ["loss.preset=vanilla"]).train.d_lr == 2e-4
    # "" on the command line: no preset, the file's keys alone
    assert load_config(path, ["loss.preset="]).model.discriminator_args["spectral_norm"] is False


@pytest.mark.parametrize("sets, message", [
    (["loss.preset=hinge", "loss.adversarial=vanilla"], "loss.adversarial = 'vanilla' contradicts loss.preset = "
                                                         "'hinge'"),
    (["loss.preset=hing"], "--set loss.preset = 'hing' is no preset (did you mean 'hinge'?); known: vanilla, lsgan"),
    (["loss.preset=3"], "--set loss.preset = '3' is no preset"),
    (["loss.preset=HINGE"], "--set loss.preset = 'HINGE' is no preset (did you mean 'hinge'?)"),
])
def test_a_preset_that_cannot_be_is_refused_by_name(sets, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(CELEBA, sets)


def test_a_preset_is_refused_for_recipes_with_their_own_papers():
    with pytest.raises(ConfigError, match="recipe 'pix2pix' keeps its own paper's settings"):
        load_config(REPO / "experiments" / "pix2pix_facades.toml", ["loss.preset=hinge"])


def test_a_sweep_grid_varies_the_whole_preset_as_one_value(tmp_path):
    out = tmp_path / "sweep"
    sets = [word for assignment in [*TINY, "train.steps=1", "train.keep_best="] for word in ("--set", assignment)]
    result = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", "loss.preset=vanilla,wgan-gp", *sets,
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    runs = {path.parent.name: flatten_config(tomllib.loads(path.read_text())) for path in out.glob("*/config.toml")}
    assert sorted(runs) == ["00000-preset=vanilla", "00001-preset=wgan-gp"]
    wgan = runs["00001-preset=wgan-gp"]
    assert (wgan["loss.adversarial"], wgan["train.d_steps"], wgan["model.discriminator_args.norm"]) == (
        "wgan-gp", 5, "none")
    assert runs["00000-preset=vanilla"]["train.d_steps"] == 1


def test_a_run_names_its_preset_and_the_source_of_its_values(tmp_path):
    sets = [word for assignment in [*TINY, "train.steps=1", "train.keep_best=", "loss.preset=hinge"]
            for word in ("--set", assignment)]
    result = CliRunner().invoke(main, ["train", str(DEMO), *sets, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "loss preset 'hinge': SAGAN, Zhang et al. 2019" in result.output and "refines" not in result.output


def test_the_preset_line_names_the_values_this_run_sets_otherwise(tmp_path):
    # It stated the paper's values while the run trained with others (1 critic step, lambda 1)
    sets = [word for assignment in [*TINY, "train.steps=1", "train.keep_best=", "loss.preset=wgan-gp",
                                    "train.d_steps=1", "loss.gp_weight=1"] for word in ("--set", assignment)]
    result = CliRunner().invoke(main, ["train", str(DEMO), *sets, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert ("loss preset 'wgan-gp': WGAN-GP, Gulrajani et al. 2017: 5 critic steps per G step, lambda 10, Adam lr "
            "1e-4, beta (0, 0.9), no BatchNorm in the critic; this run refines it: train.d_steps 5 -> 1, "
            "loss.gp_weight 10.0 -> 1.0") in result.output, result.output
