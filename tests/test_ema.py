"""The EMA generator's own BatchNorm statistics ("standing statistics"), and choosing EMA or live."""

import contextlib
import copy

import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, TINY, only_run, tiny_config
from PIL import Image
from torch import nn

from gan.commands.main import main
from gan.inference.generators import load_generator
from gan.recipes.dcgan import DCGANRecipe
from gan.recipes.ema import EMA, latent_batches, running_norms, standing_statistics
from gan.training.loop import train

CPU = torch.device("cpu")


def channel_means(generator: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    return generator(latents).mean(dim=(0, 2, 3))


def averaged_generator() -> tuple[torch.nn.Module, torch.nn.Module]:
    """(live, EMA) with weights far enough apart that the live statistics misfit the average:
    the average of the initial weights and weights scaled up, as after a phase of growth."""
    torch.manual_seed(0)
    recipe = DCGANRecipe(tiny_config(), CPU, contextlib.nullcontext)
    live, ema = recipe.generator, EMA(recipe.generator, 0.5)
    with torch.no_grad():
        for parameter in live.parameters():
            parameter.mul_(3.0)
        ema.update(live, step=1000)  # decay 0.5: halfway
        live.train()
        for _ in range(20):  # the live statistics: of the live weights
            live(torch.randn(16, live.latent_dim))
        ema.update(live, step=1000)
    return live, ema.average


@torch.no_grad()
def test_recomputed_statistics_give_the_eval_output_of_train_mode_and_copied_ones_do_not():
    live, average = averaged_generator()
    latents = torch.randn(256, average.latent_dim, generator=torch.Generator().manual_seed(5))
    copied = channel_means(average.eval(), latents)
    in_train_mode = channel_means(copy.deepcopy(average).train(), latents)
    assert standing_statistics(average, latent_batches(32, 64, average.latent_dim, seed=1, device=CPU))
    assert not average.training  # its mode is kept
    recomputed = channel_means(average, latents)
    torch.testing.assert_close(recomputed, in_train_mode, atol=0.02, rtol=0)
    assert (copied - in_train_mode).abs().max() > 5 * (recomputed - in_train_mode).abs().max()
    norm = running_norms(average)[0]
    assert norm.momentum == 0.1 and norm.num_batches_tracked == 32  # cumulative over 32 batches, momentum restored


@torch.no_grad()
def test_standing_statistics_are_reproducible_and_leave_the_global_rng_alone():
    _, average = averaged_generator()
    state = torch.get_rng_state()
    standing_statistics(average, latent_batches(4, 8, average.latent_dim, seed=7, device=CPU))
    first = [buffer.clone() for buffer in average.buffers()]
    standing_statistics(average, latent_batches(4, 8, average.latent_dim, seed=7, device=CPU))
    assert all(torch.equal(a, b) for a, b in zip(first, average.buffers()))
    assert torch.equal(torch.get_rng_state(), state)


def test_networks_without_running_statistics_are_left_alone():
    recipe = DCGANRecipe(tiny_config("model.generator_args.norm=none"), CPU, contextlib.nullcontext)
    average = recipe.ema.average
    assert not standing_statistics(average, latent_batches(4, 8, average.latent_dim, seed=0, device=CPU))


@torch.no_grad()
def test_standing_statistics_run_without_dropout_and_keep_every_module_mode():
    network = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Dropout(0.5), nn.BatchNorm2d(4), nn.Conv2d(4, 3, 1)).eval()
    network[1].train()  # a mixed state (an evaluation that keeps dropout on) is restored as it was
    inputs = [torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(index)) for index in range(3)]
    assert standing_statistics(network, inputs)
    expected = network[0](torch.cat(inputs)).mean(dim=(0, 2, 3))  # equal batches: the mean of the batch means
    torch.testing.assert_close(network[2].running_mean, expected, atol=1e-5, rtol=0)
    assert network[2].num_batches_tracked == 3
    assert [module.training for module in network] == [False, True, False, False]


def test_checkpoints_hold_the_recomputed_statistics_and_a_resume_stays_bit_exact(tmp_path):
    config = tiny_config("train.steps=4", "train.checkpoint_every=2", "train.ema_bn_batches=3")
    straight = train(config, tmp_path / "straight", CPU)
    train(tiny_config("train.steps=2", "train.checkpoint_every=2", "train.ema_bn_batches=3"), tmp_path / "resumed",
          CPU)
    resumed = train(config, tmp_path / "resumed", CPU, resume=True)
    one = torch.load(straight.checkpoint, weights_only=True)["networks"]
    two = torch.load(resumed.checkpoint, weights_only=True)["networks"]
    for name in one:
        for key, value in one[name].items():
            assert torch.equal(two[name][key], value), f"{name}.{key}"
    ema, live = one["generator_ema"], one["generator"]
    assert int(ema["net.1.num_batches_tracked"]) == 3  # recomputed over 3 batches, not copied
    assert not torch.equal(ema["net.1.running_mean"], live["net.1.running_mean"])


def test_turning_standing_statistics_off_copies_the_live_ones(tmp_path):
    result = train(tiny_config("train.steps=2", "train.ema_bn_batches=0"), tmp_path / "run", CPU)
    networks = torch.load(result.checkpoint, weights_only=True)["networks"]
    assert torch.equal(networks["generator_ema"]["net.1.running_mean"], networks["generator"]["net.1.running_mean"])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    sets = [arg for item in TINY for arg in ("--set", item)]
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"), *sets, "--out", str(out),
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return only_run(out)


def test_sampling_a_checkpoint_twice_gives_identical_images_and_live_differs(run, tmp_path):
    grids = {}
    for name, args in (("a", []), ("b", []), ("live", ["--generator", "live"])):
        result = CliRunner().invoke(main, ["sample", str(run), "--n", "8", "--out", str(tmp_path / f"{name}.png"),
                                           *args])
        assert result.exit_code == 0, result.output
        grids[name] = Image.open(tmp_path / f"{name}.png").tobytes()
    assert grids["a"] == grids["b"] and grids["a"] != grids["live"]
    assert not load_generator(run, CPU, "live").used_ema and load_generator(run, CPU).used_ema
    with pytest.raises(ValueError, match="generator must be one of ema, live"):
        load_generator(run, CPU, "average")


def test_eval_scores_the_generator_asked_for(run, tmp_path):
    for which, expected in (("ema", True), ("live", False)):
        result = CliRunner().invoke(main, ["eval", str(run), "--metrics", "swd", "--n", "16", "--generator", which,
                                           "--json", str(tmp_path / f"{which}.json")])
        assert result.exit_code == 0, result.output
        assert f'"ema": {str(expected).lower()}' in (tmp_path / f"{which}.json").read_text()


def test_the_ema_generators_statistics_show_a_progress_line_once_they_take_a_while(monkeypatch):
    # 32 passes at batch 64 took 37 s on a 2-core CPU at 128 px before each preview, in silence
    import functools
    import io

    import gan.recipes.dcgan as dcgan_module
    from gan.core.progress import DelayedProgress

    monkeypatch.setattr(dcgan_module, "DelayedProgress", functools.partial(DelayedProgress, after_s=0.0))
    recipe = DCGANRecipe(tiny_config("train.ema_bn_batches=3"), torch.device("cpu"), contextlib.nullcontext)
    recipe.validation_progress = stream = io.StringIO()
    recipe.prepare_outputs(4)
    assert "EMA BatchNorm batch 3/3 (100%)" in stream.getvalue()
    recipe.validation_progress = None  # (a library user's recipe, no loop: nothing printed, nothing fails)
    recipe.prepare_outputs(6)


def test_a_training_run_shows_the_ema_statistics_line(monkeypatch, tmp_path):
    # The loop gave its stream only to recipes with validation: DCGAN's passes (44 s at batch 64 at 128 px on one
    # CPU, before each preview and checkpoint) showed nothing
    import functools
    import io

    import gan.recipes.dcgan as dcgan_module
    from gan.core.progress import DelayedProgress
    from gan.training.loop import train

    monkeypatch.setattr(dcgan_module, "DelayedProgress", functools.partial(DelayedProgress, after_s=0.0))
    stream = io.StringIO()
    train(tiny_config("train.ema_bn_batches=3", "train.steps=2"), tmp_path / "run", "cpu", progress_stream=stream)
    assert "EMA BatchNorm batch 3/3 (100%)" in stream.getvalue()
