"""The recipe contract (gan/recipes/base.py) as a recipe of one's own meets it."""

import pytest
from conftest import REPO, assert_one_error_line, invoke, tiny_config

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
