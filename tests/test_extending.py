"""A researcher's additions (a loss, a metric, a recipe, a data set of one's own): gan's hidden
lists neither train them as something else, nor break on their names, nor warn of their keys as
changing nothing (docs/layout.md, "Adding a loss, a metric or a data set")."""

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO
from PIL import Image

from gan.core.registry import ConfigError
from gan.data import DATASETS
from gan.recipes import RECIPES
from gan.recipes.base import RecipeBase
from gan.recipes.dcgan import DCGANRecipe
from gan.recipes.losses import AdversarialLoss
from gan.training.resolve import ignored_keys, load_config


def test_a_loss_named_but_not_written_out_is_an_error_not_another_kind(monkeypatch):
    # a researcher adds a name to the list first: its objectives fell through to WGAN's, without a penalty
    from gan.recipes import losses

    monkeypatch.setattr(losses, "ADVERSARIAL_LOSSES", (*losses.ADVERSARIAL_LOSSES, "rsgan"))
    with pytest.raises(ConfigError, match="loss.adversarial = 'rsgan' is listed in ADVERSARIAL_LOSSES but "
                                          "AdversarialLoss.discriminator has no branch for it"):
        AdversarialLoss("rsgan")


def test_gan_eval_reads_an_earlier_record_holding_a_metric_of_ones_own(monkeypatch):
    # a name added to METRIC_NAMES made every later gan eval of the run a KeyError traceback
    from gan.commands.eval import _recorded_metrics
    from gan.metrics import generative

    monkeypatch.setattr(generative, "METRIC_NAMES", (*generative.METRIC_NAMES, "rgbmean"))
    assert _recorded_metrics({"swd/mean": 2.0, "rgbmean": 135.6, "precision": 0.5}) == ["swd", "pr", "rgbmean"]


class _ConditionalRecipe(DCGANRecipe):
    """A recipe of one's own, built on DCGAN's (it keeps an EMA, and reads DCGAN's keys)."""


class _ValidatingRecipe(DCGANRecipe):
    averaged = ()  # no EMA

    def validation_metrics(self) -> dict[str, float]:
        return {}


def _messages(overrides: list[str]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_config(None, overrides)
    return [str(warning.message) for warning in caught]


def test_a_recipe_of_ones_own_is_not_told_it_ignores_keys_it_may_read(monkeypatch):
    # its EMA and instance noise were "ignored (dcgan only)", and gan sweep refused a grid of them as
    # runs that would train the same
    monkeypatch.setitem(RECIPES._entries, "cdcgan", _ConditionalRecipe)
    monkeypatch.setitem(RECIPES._entries, "validating", _ValidatingRecipe)
    assert _messages(["recipe=cdcgan", "train.ema_decay=0.9", "loss.instance_noise=0.1", "loss.l1_weight=5"]) == []
    assert ignored_keys(load_config(None, ["recipe=cdcgan", "train.ema_decay=0.5"])) == {}
    # what a recipe has decides the keys read by having it: an EMA by `averaged`, log.eval_every by validation
    ignored = ignored_keys(load_config(None, ["recipe=validating", "train.ema_decay=0.9", "log.eval_every=2"]))
    assert list(ignored) == ["train.ema_decay"]
    assert ignored["train.ema_decay"] == "train.ema_decay = 0.9 (cdcgan and dcgan only)"
    assert "log.eval_every" in ignored_keys(load_config(None, ["recipe=cdcgan", "log.eval_every=2"]))
    # gan's own recipes are told as before (the recipes of one's own among those that may read it)
    assert ignored_keys(load_config(None, ["recipe=dcgan", "loss.l1_weight=5"])) == {
        "loss.l1_weight": "loss.l1_weight = 5.0 (cdcgan and pix2pix and validating only)"}


def test_a_data_set_of_ones_own_is_not_told_its_keys_change_nothing(monkeypatch):
    monkeypatch.setitem(DATASETS._entries, "labelled_folder", lambda config, train: None)
    assert [message for message in _messages(["data.dataset=labelled_folder", "data.root=/data/labelled",
                                              "data.max_images=10", "data.split=train"])
            if "changes nothing" in message] == []
    # gan's own are told as before
    assert [message for message in _messages(["data.dataset=synthetic", "data.split=train"])
            if "changes nothing" in message] == [
        "data.split = 'train' changes nothing: it is read only when data.dataset is 'celeba' or 'paired' or "
        "'unpaired', and this config has data.dataset = 'synthetic'"]


def test_the_lists_of_gans_own_recipes_and_data_sets_are_those_it_registers():
    from gan.core.inert import OWN_DATASETS
    from gan.training.resolve import OWN_RECIPES

    assert sorted(OWN_RECIPES) == RECIPES.names()
    assert sorted(OWN_DATASETS) == DATASETS.names()


def test_a_recipe_module_that_fails_to_import_is_said_where_its_recipe_is_missing_and_blocks_no_other(
        tiny_demo_run, tmp_path):
    # a module listed in gan/recipes/__init__.py that failed to import (`import not_installed_pkg`) broke
    # every command, of every recipe, with a 58-line traceback ending ModuleNotFoundError
    import subprocess
    import sys
    import textwrap

    from conftest import REPO

    script = textwrap.dedent(f"""
        import sys
        sys.modules["gan.recipes.srgan"] = None  # (its import fails, as one needing a package not installed)
        from click.testing import CliRunner
        from gan.commands.main import main
        for line in (["sample", {str(tiny_demo_run)!r}, "--n", "2", "--out", {str(tmp_path / "faces.png")!r}],
                     ["train", {str(REPO / "experiments" / "srgan_x4.toml")!r}, "--out", {str(tmp_path / "runs")!r}]):
            result = CliRunner().invoke(main, line)
            print(result.exit_code, (result.output.strip().splitlines() or [repr(result.exception)])[-1])
    """)
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    sampled, trained = ran.stdout.strip().splitlines()
    assert sampled.startswith("0 from ") and (tmp_path / "faces.png").is_file(), ran.stdout
    assert trained.startswith("2 error: ") and trained.endswith(
        "unknown recipe 'srgan' (did you mean 'dcgan'?); known: cyclegan, dcgan, pix2pix; gan.recipes.srgan (listed in "
        "gan/recipes/__init__.py) failed to import: import of gan.recipes.srgan halted; None in sys.modules"), ran.stdout


def test_a_validating_recipe_without_an_evaluation_set_keeps_best_by_its_scores():
    # best.pt by a val/ metric read the recipe's `evaluation_images`, which the contract did not name:
    # an AttributeError at the first best.pt of a recipe of one's own
    from gan.training import records

    best = SimpleNamespace(metric="val/psnr")
    assert records.evaluation_images(best, load_config(None, []), SimpleNamespace(), None) == (
        "", "the evaluation images")


def test_a_failed_side_task_names_the_resume_once():
    from gan.training.errors import SideTaskError

    for task in ("the best checkpoint", "previews"):
        message = str(SideTaskError(task, 2, RuntimeError("broke"), Path("run/checkpoint-00000002.pt"), Path("run")))
        assert f"(the resume first does the {task.removeprefix('the ')} of step 2, and what follows it)" in message
        assert "the the" not in message


def test_a_conditional_generator_is_refused_by_the_commands_that_sample_in_one_line(tiny_demo_run, tmp_path,
                                                                                    monkeypatch):
    # a generator of one's own called as generator(latents, labels): gan sample and eval ended in a
    # TypeError traceback (gan export writes its weights, for one's own code)
    from conftest import assert_one_error_line, invoke

    from gan.nets.dcgan import DCGANGenerator

    plain_forward = DCGANGenerator.forward

    def conditional_forward(self, latents, labels):
        return plain_forward(self, latents)

    monkeypatch.setattr(DCGANGenerator, "forward", conditional_forward)
    for command in (["sample", tiny_demo_run, "--n", "2", "--out", tmp_path / "s.png"],
                    ["eval", tiny_demo_run, "--metrics", "swd", "--n", "4", "--json", tmp_path / "m.json"]):
        assert_one_error_line(invoke(*command), "holds a generator whose forward takes labels beside its latents")
    assert not list(tmp_path.iterdir())


class _OwnConditionalRecipe(RecipeBase):
    """A conditional recipe of one's own: no evaluation_generator, no validation metrics."""

    network_specs = DCGANRecipe.network_specs


def test_a_conditional_recipe_of_ones_own_is_not_sent_to_a_command_that_refuses_it(tiny_demo_run, tmp_path,
                                                                                    monkeypatch):
    """Its generator called as generator(latents, labels), no evaluation_generator: gan translate said "is an
    unconditional generator (it takes latents, not images); use `gan sample`", which refuses it; gan eval
    without --data "image-to-image checkpoints need --data FOLDER"; metrics.every "reports validation
    metrics instead (log.eval_every)", which it has none of."""
    from conftest import assert_one_error_line, invoke

    from gan.core.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
    from gan.nets.dcgan import DCGANGenerator

    plain_forward = DCGANGenerator.forward

    def conditional_forward(self, latents, labels):
        return plain_forward(self, latents)

    monkeypatch.setattr(DCGANGenerator, "forward", conditional_forward)
    monkeypatch.setitem(RECIPES._entries, "cdcgan", _OwnConditionalRecipe)
    state = load_checkpoint(list_checkpoints(tiny_demo_run)[-1])
    state["config"]["recipe"] = "cdcgan"
    save_checkpoint(state, tmp_path / "conditional.pt")
    (tmp_path / "in").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "in" / "a.png")
    said = "holds a generator that takes latents and labels, not images"
    assert_one_error_line(invoke("translate", tmp_path / "conditional.pt", tmp_path / "in", tmp_path / "out"), said,
                          "gan sample unconditional ones that take latents alone, and gan eval both")
    assert_one_error_line(invoke("eval", tmp_path / "conditional.pt"), said)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError) as error:
        _OwnConditionalRecipe.check(load_config(None, ["recipe=cdcgan", "metrics.every=10"]))
    assert "recipe 'cdcgan' has no evaluation_generator" in str(error.value) and "log.eval_every" not in str(
        error.value), str(error.value)
    # one with validation metrics is sent to them, as before
    with pytest.raises(ConfigError, match=r"recipe 'pix2pix' reports validation metrics instead \(log.eval_every\)"):
        RECIPES.get("pix2pix").check(load_config(REPO / "experiments" / "pix2pix_facades.toml", ["metrics.every=10"]))
