"""torch.compile in training (CPU, inductor and aot_eager): double-backward losses work, every
recipe compiles once and never recompiles, and a network that fails to compile runs eagerly."""

import contextlib
import re
import warnings

import pytest
import torch
from click.testing import CliRunner
from conftest import RECIPE_CONFIGS, REPO, only_run, tiny_config, tiny_recipe_config, write_recipe_data
from test_speed import PLAIN, first_steps

from gan.commands.main import main
from gan.core.compilation import CompileReport, compile_failed, compile_networks, uncompiled
from gan.recipes.dcgan import DCGANRecipe
from gan.training.loop import train
from gan.training.speed import accelerate

CPU = torch.device("cpu")
WGAN_GP = ("loss.adversarial=wgan-gp", "model.discriminator_args.norm=none")
REPORT = re.compile(r"torch\.compile: (\d+) graphs compiled, (\d+) recompilations after warm-up")


@pytest.mark.slow
def test_wgan_gp_trains_with_compile_on_and_matches_eager():
    plain_losses, plain_weights = first_steps(*PLAIN, *WGAN_GP)
    losses, weights = first_steps(*PLAIN, *WGAN_GP, "train.compile=on")
    for plain_step, step in zip(plain_losses, losses):
        assert set(step) == set(plain_step) and "loss/gp" in step
        for name, value in plain_step.items():
            assert step[name] == pytest.approx(value, rel=1e-4, abs=1e-4), name
    for key, value in plain_weights.items():
        torch.testing.assert_close(weights[key], value, rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_the_issue_command_wgan_gp_with_compile_finishes_20_steps(tmp_path):
    sets = [arg for item in (*WGAN_GP, "train.compile=on", "train.steps=20", "metrics.every=0",
                             "data.num_workers=0") for arg in ("--set", item)]
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"), *sets,
                                       "--out", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "done: 20 steps" in result.output
    graphs, recompilations = map(int, REPORT.search(result.output).groups())
    assert graphs >= 2 and recompilations == 0
    assert (only_run(tmp_path) / "checkpoint-00000020.pt").is_file()


@pytest.mark.parametrize("recipe", sorted(RECIPE_CONFIGS))
def test_no_recipe_recompiles_after_warm_up(recipe, tmp_path, capsys):
    """Previews and validation every other step, in eval mode, at other batch sizes, under no_grad:
    none of it may recompile the training graphs (aot_eager: dynamo's guards, without codegen)."""
    extra = ("metrics.every=2", "metrics.names=[\"swd\"]", "metrics.num_samples=8") if recipe == "dcgan" else ()
    config = tiny_recipe_config(recipe, write_recipe_data(tmp_path / "data"), "train.steps=5",
                                "train.compile=on", "train.compile_backend=aot_eager", *extra)
    torch._dynamo.reset()  # graphs compiled by earlier tests would be reused
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # srgan's randomly initialised VGG says so
        train(config, tmp_path / "run", CPU)
    graphs, recompilations = map(int, REPORT.search(capsys.readouterr().err).groups())
    assert graphs >= 1 and recompilations == 0


def test_a_compiled_run_compiles_as_in_a_fresh_process_whatever_ran_before_it(tmp_path, capsys):
    """A notebook's runs at other batch sizes: the second reused the first's graphs with their shape
    marks and compiled a dynamic-shape graph, the third compiled none ("0 graphs compiled"), and
    inductor trained them to other weights than the same runs in a fresh process."""
    graphs = []
    for index, batch in enumerate((8, 16, 12)):
        config = tiny_config("train.compile=on", "train.compile_backend=eager", f"train.batch_size={batch}",
                             "train.steps=2", "metrics.every=0", "data.num_workers=0")
        train(config, tmp_path / f"run{index}", CPU)
        graphs.append(int(REPORT.search(capsys.readouterr().err)[1]))
    assert graphs[0] >= 1 and graphs == [graphs[0]] * 3


def test_the_compile_report_counts_recompilations_after_warm_up():
    network = torch.nn.Conv2d(3, 4, 3)
    compile_networks({"net": network}, backend="eager")
    report = CompileReport()
    network(torch.zeros(1, 3, 8, 8))
    report.end_warm_up()
    network(torch.zeros(1, 3, 8, 8))
    with uncompiled():
        network(torch.zeros(2, 3, 9, 9))  # not compiled at all
    assert (report.graphs, report.recompilations) == (1, 0)
    network(torch.zeros(1, 3, 8, 8, requires_grad=True))  # a new guard: compiled again
    assert (report.graphs, report.recompilations) == (2, 1)
    assert report.describe() == "torch.compile: 2 graphs compiled, 1 recompilations after warm-up"


@torch._dynamo.register_backend
def _failing_backend_for_tests(graph_module, example_inputs):
    raise RuntimeError("this backend always fails")


def test_a_network_that_fails_to_compile_runs_eagerly_with_a_warning_naming_it():
    config = tiny_config(*PLAIN)
    torch.manual_seed(0)
    recipe = DCGANRecipe(config, CPU, contextlib.nullcontext)
    latents = torch.randn(2, recipe.latent_dim)
    expected = recipe.generator(latents)
    compile_networks({"generator": recipe.generator}, backend="_failing_backend_for_tests")
    with pytest.warns(UserWarning, match="torch.compile failed for network 'generator'.*runs eagerly"):
        output = recipe.generator(latents)
    torch.testing.assert_close(output, expected)
    assert compile_failed(recipe.generator)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, then plainly eager
        recipe.generator(latents)


def test_real_errors_keep_their_traceback_and_nothing_is_switched_globally():
    config = tiny_config("train.compile=on", "train.compile_backend=eager")
    recipe = DCGANRecipe(config, CPU, contextlib.nullcontext)
    accelerate(recipe, config.train, CPU)
    assert not torch._dynamo.config.suppress_errors
    assert "generator_ema" in recipe.networks and not hasattr(recipe.networks["generator_ema"].forward, "failed")
    with pytest.warns(UserWarning, match="'discriminator'"), pytest.raises(RuntimeError, match="channels"):
        recipe.discriminator(torch.zeros(2, 5, 32, 32))  # a real error: eager raises it with its own traceback


def test_compile_settings_are_checked_where_the_config_is_read():
    from gan.core.registry import ConfigError

    assert tiny_config("train.compile_mode=max-autotune-no-cudagraphs").train.compile_mode.startswith("max")
    with pytest.raises(ConfigError, match="train.compile_mode 'max-autotune-no-cudagraphs' is an inductor mode; "
                                          "train.compile_backend is 'aot_eager'"):
        tiny_config("train.compile_mode=max-autotune-no-cudagraphs", "train.compile_backend=aot_eager")
    # Per-network CUDA graphs break GAN steps (measured on an H200): refused, with the way on.
    with pytest.raises(ConfigError, match=r"train.compile_mode 'reduce-overhead' .* not offered: .* "
                                          r"--set train.compile_mode=default\)$"):
        tiny_config("train.compile_mode=reduce-overhead")
    with pytest.raises(ConfigError, match="train.compile_backend must be one of inductor, aot_eager, eager"):
        tiny_config("train.compile_backend=tvm")
