"""The recipe contract (gan/recipes/base.py) as a recipe of one's own meets it."""

import pytest
from conftest import REPO, TINY, assert_one_error_line, invoke, tiny_config

from gan.core.registry import ConfigError
from gan.recipes import RECIPES, trains_unconditional
from gan.recipes.base import RecipeBase


def test_a_recipe_without_network_specs_is_told_which_method_it_lacks(monkeypatch, tmp_path):
    # `gan sweep` and `gan bench` of such a recipe stopped in a bare NotImplementedError, gan train in
    # its traceback
    class MyRecipe(RecipeBase):
        def __init__(self, config, device, autocast):
            super().__init__(config, device, autocast)
            self.networks = self.build_networks(kept=("generator",))

    with pytest.raises(ConfigError, match=r"recipe 'dcgan' \(class MyRecipe\) defines no network_specs\(config\)"):
        MyRecipe.check(tiny_config())
    monkeypatch.setitem(RECIPES._entries, "mine", MyRecipe)
    assert_one_error_line(invoke("train", REPO / "experiments" / "dcgan_demo.toml", "--set", "recipe=mine",
                                 "--set", "metrics.every=0", "--out", tmp_path / "runs"),
                          "recipe 'mine' (class MyRecipe) defines no network_specs(config)")


@pytest.mark.parametrize("method, said", [
    ("step", "defines no step(batch, step), which trains one step on a batch and returns the values to log"),
    ("preview", "defines no preview(), which gives the image batches shown every log.image_every steps"),
])
def test_a_recipe_without_step_or_preview_is_told_which_method_it_lacks_before_step_1(monkeypatch, tmp_path,
                                                                                      method, said):
    # without step the run printed its start line, then an AttributeError traceback; without preview it
    # trained to its first log.image_every and failed there, and again at each resume
    from conftest import run_folders

    from gan.recipes.dcgan import DCGANRecipe

    monkeypatch.delattr(DCGANRecipe, method)
    result = invoke("train", REPO / "experiments" / "dcgan_demo.toml", *[f"--set={item}" for item in TINY],
                    "--out", tmp_path / "runs")
    assert_one_error_line(result, f"recipe 'dcgan' (class DCGANRecipe) {said} (gan/recipes/dcgan.py has an example)")
    assert "step 1" not in result.output and not run_folders(tmp_path / "runs")
    with pytest.raises(ConfigError, match=rf"defines no {method}\("):  # (gan sweep and gan bench check with it)
        DCGANRecipe.check(tiny_config())


def test_a_dcgan_run_starts_from_another_runs_generator_and_its_ema_from_the_same_weights(tiny_demo_run):
    """model.init_generator was read by srgan and srresnet alone: dcgan warned that it ignores it and trained
    from random weights. Now the generator, and the EMA copy made of it, start from the trained generator of
    the run named (its newest checkpoint); the discriminator and the optimizers start fresh."""
    import contextlib
    import warnings

    import torch

    from gan.core.checkpoint import list_checkpoints, load_checkpoint

    source = load_checkpoint(list_checkpoints(tiny_demo_run)[-1])["networks"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = tiny_config(f"model.init_generator={tiny_demo_run}")
        recipe = RECIPES.get("dcgan")(config, torch.device("cpu"), contextlib.nullcontext)
    assert not [str(warning.message) for warning in caught if "init_generator" in str(warning.message)]
    for name in ("generator", "generator_ema"):
        started = recipe.networks[name].state_dict()
        assert all(torch.equal(started[key], value) for key, value in source["generator"].items()), name
    fresh = recipe.networks["discriminator"].state_dict()
    assert not all(torch.equal(fresh[key], value) for key, value in source["discriminator"].items())
    assert not any(optimizer.state for optimizer in recipe.optimizers.values())



def test_init_discriminator_starts_the_discriminator_from_the_same_checkpoint_and_a_resume_reads_no_source(
        tiny_demo_run, tmp_path):
    """A fine-tune carried the generator alone: a fresh discriminator against a trained generator washed
    DCGAN's faces out in 20 steps. model.init_discriminator takes the run's discriminator too (the
    optimizers still fresh), the start line says so, and the run resumes without reading the source."""
    from conftest import invoke, only_run

    from gan.core.checkpoint import list_checkpoints, load_checkpoint

    source = list_checkpoints(tiny_demo_run)[-1]
    sets = [arg for item in [*TINY, f"model.init_generator={tiny_demo_run}", "model.init_discriminator=true",
                             "train.steps=2"] for arg in ("--set", item)]
    trained = invoke("train", REPO / "experiments" / "dcgan_demo.toml", *sets, "--out", tmp_path / "runs",
                     "--device", "cpu")
    assert trained.exit_code == 0, trained.output
    assert f"generator and discriminator from '{source}' (step 4)" in trained.output
    run = only_run(tmp_path / "runs")
    first = load_checkpoint(list_checkpoints(run)[0])
    assert first["initial_generator"]["discriminator"] is True
    assert "init_discriminator = true" in (run / "config.toml").read_text()
    # (changed on a resume, config.toml would record a start its discriminator never had)
    assert_one_error_line(invoke("train", "--resume", run, "--set", "train.steps=4", "--set",
                                 "model.init_discriminator=false"),
                          "model.init_discriminator cannot change on a resume: the run's discriminator started from "
                          "its source run")
    resumed = invoke("train", "--resume", run, "--set", "train.steps=4", "--device", "cpu")
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(list_checkpoints(run)[-1])["step"] == 4


def test_init_discriminator_loads_the_trained_discriminator_and_leaves_the_optimizers_fresh(tiny_demo_run):
    import contextlib

    import torch

    from gan.core.checkpoint import list_checkpoints, load_checkpoint

    source = load_checkpoint(list_checkpoints(tiny_demo_run)[-1])["networks"]
    config = tiny_config(f"model.init_generator={tiny_demo_run}", "model.init_discriminator=true")
    recipe = RECIPES.get("dcgan")(config, torch.device("cpu"), contextlib.nullcontext)
    for name in ("generator", "discriminator"):
        started = recipe.networks[name].state_dict()
        assert all(torch.equal(started[key], value) for key, value in source[name].items()), name
    assert not any(optimizer.state for optimizer in recipe.optimizers.values())


@pytest.mark.parametrize("overrides, expected", [
    (["model.init_discriminator=true"], "model.init_discriminator = true takes the discriminator from the "
                                        "checkpoint that model.init_generator names, and it names none"),
    (["model.init_discriminator=true", "model.discriminator_args.channels=16"],
     "holds another dcgan discriminator: channels = 8 where this config has 16; set model.discriminator_args as that "
     "run had them"),  # (not "and data.resolution", which matches)
])
def test_init_discriminator_refuses_a_config_without_a_source_or_of_another_discriminator(
        tiny_demo_run, overrides, expected):
    import contextlib

    import torch

    from gan.core.registry import ConfigError

    start = [f"model.init_generator={tiny_demo_run}"] if len(overrides) > 1 else []
    with pytest.raises(ConfigError, match="model.init_discriminator") as raised:
        RECIPES.get("dcgan")(tiny_config(*start, *overrides), torch.device("cpu"), contextlib.nullcontext)
    assert expected in str(raised.value)


@pytest.mark.parametrize("damage, expected", [
    ("no discriminator", "holds no discriminator (a dcgan run that trained none, or not a checkpoint"),
    ("nan", "discriminator parameter"),
    ("shape", "do not fit discriminator 'dcgan'"),
])
def test_init_discriminator_refuses_a_checkpoint_whose_discriminator_is_missing_or_unusable(
        tiny_demo_run, tmp_path, damage, expected):
    import contextlib

    import torch

    from gan.core.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
    from gan.core.registry import ConfigError

    state = load_checkpoint(list_checkpoints(tiny_demo_run)[-1])
    weights = state["networks"]["discriminator"]
    if damage == "no discriminator":
        del state["networks"]["discriminator"]
    else:
        name = next(key for key, value in weights.items() if value.is_floating_point() and value.dim() > 1)
        weights[name] = (torch.full_like(weights[name], float("nan")) if damage == "nan"
                         else torch.zeros(*weights[name].shape[:-1], weights[name].shape[-1] + 1))
    edited = tmp_path / "checkpoint-00000004.pt"
    save_checkpoint(state, edited)
    config = tiny_config(f"model.init_generator={edited}", "model.init_discriminator=true")
    with pytest.raises(ConfigError, match="model.init_discriminator") as raised:
        RECIPES.get("dcgan")(config, torch.device("cpu"), contextlib.nullcontext)
    assert expected in str(raised.value) and str(edited) in str(raised.value)


def test_init_discriminator_is_an_inert_key_where_no_discriminator_trains():
    from gan.recipes.image_to_image import unused_discriminator_keys

    config = tiny_config("model.init_discriminator=true")
    assert "model.init_discriminator" not in unused_discriminator_keys(config)  # (dcgan trains one)
    config.loss.adversarial_weight = 0.0
    assert unused_discriminator_keys(config)["model.init_discriminator"] == "model.init_discriminator = True"

def test_a_recipe_is_unconditional_by_its_evaluation_generator_not_its_name(monkeypatch):
    # gan eval took every recipe but dcgan for an image-to-image one, and refused a new unconditional recipe's run
    class MyUnconditional(RecipeBase):
        def evaluation_generator(self):
            return None

    monkeypatch.setitem(RECIPES._entries, "my_unconditional", MyUnconditional)
    assert trains_unconditional("my_unconditional") and trains_unconditional("dcgan")
    assert not any(trains_unconditional(name) for name in ("pix2pix", "cyclegan", "srgan", "no_such_recipe"))


def test_gan_eval_scores_the_run_of_an_unconditional_recipe_of_another_name(monkeypatch, tmp_path):
    """The probe's new unconditional recipe: `gan eval RUN` asked for --data, then called it unconditional."""
    from conftest import REPO, TINY, invoke, only_run

    from gan.recipes.dcgan import DCGANRecipe

    monkeypatch.setitem(RECIPES._entries, "my_dcgan", DCGANRecipe)
    sets = [arg for item in [*TINY, "recipe=my_dcgan"] for arg in ("--set", item)]
    trained = invoke("train", REPO / "experiments" / "dcgan_demo.toml", *sets, "--out", tmp_path / "runs",
                     "--device", "cpu")
    assert trained.exit_code == 0, trained.output
    run = only_run(tmp_path / "runs")
    scored = invoke("eval", run, "--metrics", "swd", "--n", "8", "--device", "cpu")
    assert scored.exit_code == 0 and "swd" in scored.output, scored.output
