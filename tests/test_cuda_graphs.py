"""`train.cuda_graph`: what a CPU can check of the captured step (tests/test_cuda.py captures and
replays it on a GPU): what each recipe's step depends on on the host (its graph key), the
state a captured step reads from the device (learning rates, the EMA's warm-up), plain
checkpoints, and where capture is switched on."""

import pytest
import torch
from conftest import tiny_config, tiny_recipe_config, write_recipe_data
from torch import nn

from gan.core.registry import ConfigError
from gan.recipes import RECIPES
from gan.recipes.ema import EMA
from gan.training.cuda_graphs import GraphedStep, plain_optimizer_state, set_learning_rates
from gan.training.device import make_autocast
from gan.training.speed import accelerate, captures_steps, training_step

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def recipe_data(tmp_path_factory):
    return write_recipe_data(tmp_path_factory.mktemp("data"))


def build(config):
    return RECIPES.get(config.recipe)(config, CPU, make_autocast(CPU, config.train.amp))


@pytest.mark.parametrize("first_step", [1, 100])  # a fresh run, and one resumed at step 100
def test_the_ema_warm_up_counted_on_the_device_follows_the_formula(first_step):
    torch.manual_seed(0)
    live = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = EMA(live, decay=0.99)
    expected = {name: value.detach().double().clone() for name, value in ema.average.named_parameters()}
    for step in range(first_step, first_step + 6):
        with torch.no_grad():
            for parameter in live.parameters():
                parameter.add_(torch.randn_like(parameter))
            live[1].running_mean.add_(1.0)
        ema.update(live, step)
        decay = min(0.99, (1 + step) / (10 + step))
        for name, value in live.named_parameters():
            expected[name] = decay * expected[name] + (1 - decay) * value.detach().double()
    assert float(ema.updates) == first_step + 5
    for name, value in ema.average.named_parameters():
        torch.testing.assert_close(value.double(), expected[name], rtol=1e-5, atol=1e-6, msg=name)
    assert torch.equal(ema.average[1].running_mean, live[1].running_mean)  # buffers copied, not averaged


def test_learning_rates_held_in_tensors_are_filled_in_place():
    weight = nn.Parameter(torch.zeros(2))
    numbers = torch.optim.Adam([weight], lr=0.1)
    held = torch.optim.Adam([weight], lr=0.1)
    for optimizer in (numbers, held):
        optimizer.param_groups[0]["base_lr"] = 0.1
    rate = held.param_groups[0]["lr"] = torch.tensor(0.1)
    set_learning_rates({"numbers": numbers, "held": held}, 0.5)
    assert numbers.param_groups[0]["lr"] == pytest.approx(0.05)
    assert held.param_groups[0]["lr"] is rate and float(rate) == pytest.approx(0.05)  # the tensor a graph reads


def test_checkpoints_keep_plain_rates_and_load_into_an_uncaptured_optimizer():
    weight = nn.Parameter(torch.ones(3))
    captured = torch.optim.Adam([weight], lr=0.1)
    weight.grad = torch.ones(3)
    captured.step()
    captured.param_groups[0].update(lr=torch.tensor(0.025), capturable=True)  # as a capture leaves it
    state = plain_optimizer_state(captured)
    assert state["param_groups"][0]["lr"] == pytest.approx(0.025) and not state["param_groups"][0]["capturable"]
    assert isinstance(captured.param_groups[0]["lr"], torch.Tensor)  # the live optimizer is untouched
    fresh_weight = nn.Parameter(torch.ones(3))
    fresh = torch.optim.Adam([fresh_weight], lr=0.1, foreach=True)
    fresh.load_state_dict(state)
    fresh_weight.grad = torch.ones(3)
    fresh.step()  # a foreach Adam on the CPU refuses tensor rates and capturable state
    assert fresh.param_groups[0]["lr"] == pytest.approx(0.025)


def test_dcgan_with_annealed_instance_noise_is_one_graph_reading_its_std_on_the_device():
    torch.manual_seed(0)
    plain = build(tiny_config())
    assert plain.graph_key(1) == plain.graph_key(500) is not None and plain.noise_std is None
    torch.manual_seed(0)
    noisy = build(tiny_config("loss.instance_noise=0.1", "loss.instance_noise_steps=10"))
    assert noisy.graph_key(1) == noisy.graph_key(6) == noisy.graph_key(11) == plain.graph_key(1)
    for step, std in ((1, 0.1), (6, 0.05), (11, 0.0), (30, 0.0)):
        noisy.before_step(step)  # the loop's call, outside any graph
        assert float(noisy.noise_std) == pytest.approx(std)
    # Annealed to 0, the noise drawn is multiplied away: a step equals one without instance noise.
    batch = {"image": torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1}
    losses = []
    for recipe in (plain, noisy):
        torch.manual_seed(3)
        losses.append({name: float(value) for name, value in recipe.step(batch, 11).items()})
    assert losses[0] == losses[1]


def test_pix2pix_and_srgan_keys_follow_the_adversarial_start(recipe_data):
    # keys: (adversarial term on, lazy R1 due)
    pix2pix = build(tiny_recipe_config("pix2pix", recipe_data, "train.adversarial_start=5"))
    assert [pix2pix.graph_key(step) for step in (1, 5, 6, 100)] == [(False, False), (False, False),
                                                                      (True, False), (True, False)]
    srgan = build(tiny_recipe_config("srgan", recipe_data, "train.adversarial_start=5"))
    assert [srgan.graph_key(step) for step in (5, 6)] == [(False, False), (True, False)]
    srresnet = build(tiny_recipe_config("srresnet", recipe_data))  # no discriminator at all
    assert {srresnet.graph_key(step) for step in (1, 100)} == {(False, False)}


def test_lazy_r1_steps_get_a_graph_of_their_own(recipe_data):
    pix2pix = build(tiny_recipe_config("pix2pix", recipe_data, "train.adversarial_start=5", "loss.r1_gamma=1",
                                       "loss.r1_every=4"))
    assert [pix2pix.graph_key(step) for step in (4, 7, 8)] == [(False, False), (True, False), (True, True)]
    dcgan = build(tiny_config("loss.r1_gamma=1", "loss.r1_every=4"))
    assert dcgan.graph_key(8) != dcgan.graph_key(9) == dcgan.graph_key(10)


def test_cyclegan_is_captured_with_its_image_pool(recipe_data):
    # The pool decides on the device, from a generator the graph must advance at each replay.
    pooled = build(tiny_recipe_config("cyclegan", recipe_data, "train.adversarial_start=3"))
    assert pooled.config.loss.pool_size > 0
    assert [pooled.graph_key(step) for step in (3, 4)] == [(False, False), (True, False)]
    assert {id(pool.generator) for pool in pooled.pools.values()} <= {id(g) for g in pooled.device_generators()}


def test_capture_is_for_cuda_alone():
    config = tiny_config("train.cuda_graph=on")
    recipe = build(config)
    speed = accelerate(recipe, config.train, CPU)
    assert not speed.cuda_graph and "CUDA graph off" in speed.describe()
    assert training_step(recipe, speed, CPU) == recipe.step  # the CPU runs the step as it is
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedStep(recipe.step, recipe.graph_key, recipe.optimizers, CPU)
    cuda = torch.device("cuda")  # only named: no GPU is touched
    assert captures_steps(tiny_config().train, cuda)  # under torchrun too: the all-reduce is captured with the step
    assert not captures_steps(tiny_config("train.cuda_graph=off").train, cuda)
    with pytest.raises(ConfigError, match="train.cuda_graph"):
        tiny_config("train.cuda_graph=yes")
