"""Every speed switch on and off gives the same first steps (CPU, within a stated tolerance)."""

import contextlib
import warnings

import pytest
import torch
from conftest import tiny_config

from gan.recipes.dcgan import DCGANRecipe
from gan.training.device import make_autocast, seed_everything
from gan.training.speed import accelerate, switch_on, to_device, training_step

CPU = torch.device("cpu")


def first_steps(*overrides: str, device: torch.device = CPU, steps: int = 2, networks: tuple[str, ...] = ("generator",)
                ) -> tuple[list[dict[str, float]], dict[str, torch.Tensor]]:
    """Losses of the first DCGAN steps on a fixed batch, run as the loop runs them, and the weights
    of `networks` after them (on the CPU)."""
    config = tiny_config(*overrides)
    seed_everything(0)
    recipe = DCGANRecipe(config, device, make_autocast(device, config.train.amp))
    speed = accelerate(recipe, config.train, device)
    run_step = training_step(recipe, speed, device)
    batch = {"image": torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1}
    losses = []
    for step in range(1, steps + 1):
        recipe.before_step(step)
        losses.append({name: float(value) for name, value in run_step(to_device(batch, device, speed), step).items()})
    return losses, {f"{name}.{key}": value.detach().cpu().clone()
                    for name in networks for key, value in recipe.networks[name].state_dict().items()}


PLAIN = ("train.channels_last=off", "train.compile=off", "train.optimizer_kernel=loop")


@pytest.mark.parametrize("switch,tolerance", [
    ("train.channels_last=on", 1e-5),  # NHWC convolutions sum in another order
    ("train.optimizer_kernel=foreach", 1e-6),
    ("train.optimizer_kernel=fused", 1e-6),
    pytest.param("train.compile=on", 1e-4, marks=pytest.mark.slow),  # fused kernels reorder float sums
])
def test_a_speed_switch_changes_no_result_beyond_float_rounding(switch, tolerance):
    plain_losses, plain_weights = first_steps(*PLAIN)
    losses, weights = first_steps(*PLAIN, switch)
    for plain_step, step in zip(plain_losses, losses):
        for name, value in plain_step.items():
            assert step[name] == pytest.approx(value, rel=tolerance, abs=tolerance), name
    for key, value in plain_weights.items():
        torch.testing.assert_close(weights[key], value, rtol=10 * tolerance, atol=10 * tolerance)


def test_auto_switches_are_on_for_cuda_only():
    assert switch_on("auto", torch.device("cuda")) and not switch_on("auto", CPU)
    assert switch_on("on", CPU) and not switch_on("off", torch.device("cuda"))


def test_a_cuda_graph_asked_for_on_the_cpu_is_warned_of_and_steps_run_as_they_are():
    config = tiny_config("train.cuda_graph=on")
    recipe = DCGANRecipe(config, CPU, contextlib.nullcontext)
    with pytest.warns(UserWarning, match="train.cuda_graph = 'on' changes nothing on the cpu"):
        speed = accelerate(recipe, config.train, CPU)
    assert not speed.cuda_graph and training_step(recipe, speed, CPU) == recipe.step
    default = tiny_config().train
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto", the default, is quiet
        accelerate(recipe, default, CPU)


def test_channels_last_reaches_networks_and_batches():
    config = tiny_config("train.channels_last=on")
    recipe = DCGANRecipe(config, CPU, contextlib.nullcontext)
    speed = accelerate(recipe, config.train, CPU)
    conv_weight = recipe.discriminator.state_dict()["net.0.weight"]
    assert conv_weight.is_contiguous(memory_format=torch.channels_last)
    batch = to_device({"image": torch.zeros(2, 3, 32, 32), "label": torch.zeros(2)}, CPU, speed)
    assert batch["image"].is_contiguous(memory_format=torch.channels_last) and batch["label"].shape == (2,)
