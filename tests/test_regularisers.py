"""The discriminator's regularisers: spectral normalisation, lazy R1 and DiffAugment, on their own
and in every recipe (resumes stay bit-exact, compile keeps working)."""

import io
import shutil
import sys
import warnings

import pytest
import torch
from conftest import tiny_config, tiny_recipe_config, write_recipe_data
from test_speed import PLAIN, first_steps
from torch import nn

from gan.core.checkpoint import list_checkpoints, load_checkpoint
from gan.core.registry import ConfigError
from gan.nets import network_spec
from gan.recipes.augment import AdaptiveProbability, DiffAugment, parse_policy
from gan.recipes.losses import AdversarialLoss, LazyR1, r1_penalty
from gan.training.loop import train

CPU = torch.device("cpu")
ALL_ON = ("loss.r1_gamma=1", "loss.r1_every=2", "loss.diffaugment=color,translation,cutout",
          "model.discriminator_args.spectral_norm=true")


@pytest.fixture(scope="module")
def recipe_data(tmp_path_factory):
    return write_recipe_data(tmp_path_factory.mktemp("data"))


def _largest_singular_values(network: nn.Module) -> list[float]:
    """sigma_max of each spectrally normalised weight as the layer uses it, as a matrix
    (out x rest; a transposed convolution's output dimension first), without a power step."""
    values = []
    with torch.no_grad():
        network.eval()  # (reading .weight in training mode would run a power iteration)
        for module in network.modules():
            if nn.utils.parametrize.is_parametrized(module, "weight"):
                weight = module.weight
                if isinstance(module, nn.ConvTranspose2d):
                    weight = weight.transpose(0, 1)
                values.append(float(torch.linalg.matrix_norm(weight.flatten(1), ord=2)))
        network.train()
    return values


# ----------------------------------------------------------------------------- spectral norm


@pytest.mark.parametrize("name,kwargs,supplied,shape", [
    ("dcgan", {"channels": 8, "norm": "none"}, {"resolution": 32}, (4, 3, 32, 32)),
    ("patchgan", {"channels": 8, "n_layers": 2}, {"in_channels": 6}, (4, 6, 32, 32)),
    ("pixelgan", {"channels": 8}, {"in_channels": 6}, (4, 6, 16, 16)),
    ("srgan", {"channels": 8}, {}, (4, 3, 32, 32)),
])
def test_spectral_norm_holds_every_layer_near_one_while_it_trains(name, kwargs, supplied, shape):
    key = "model.discriminator_args"
    spec = network_spec("discriminator", name, {**kwargs, "spectral_norm": True}, key, **supplied)
    torch.manual_seed(0)
    network = spec.build()
    layers = [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    assert layers and all(nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    images = torch.randn(*shape)
    for _ in range(20):  # large steps move the weights; one power iteration per forward keeps up
        loss = network(images).square().mean() - network(images.flip(0)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    network(images)  # the power iteration for the last weights
    assert _largest_singular_values(network) == pytest.approx([1.0] * len(layers), abs=0.05)
    # without it, the same layers are far from 1
    plain = network_spec("discriminator", name, kwargs, key, **supplied).build()
    raw = [float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)) for m in plain.modules()
           if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert max(abs(value - 1) for value in raw) > 0.3


def test_spectral_norm_state_holds_the_power_iteration_vectors():
    spec = network_spec("discriminator", "dcgan", {"channels": 8, "spectral_norm": True},
                        "model.discriminator_args", resolution=32)
    state = spec.build().state_dict()
    assert "net.0.parametrizations.weight.original" in state
    assert "net.0.parametrizations.weight.0._u" in state and "net.0.parametrizations.weight.0._v" in state


# ----------------------------------------------------------------------------- R1


def test_r1_of_a_linear_critic_is_its_squared_weight_norm_with_lazy_scaling():
    weight = torch.tensor([1.0, -2.0, 0.5, 3.0]).view(1, 4, 1, 1)

    def critic(images):  # D(x) = <w, x>: grad_x D = w for every image
        return (images * weight).flatten(1).sum(1)

    real = torch.randn(5, 4, 1, 1)
    assert r1_penalty(critic, real).item() == pytest.approx(1 + 4 + 0.25 + 9)
    lazy = LazyR1(gamma=10.0, every=4, device=CPU)
    assert [step for step in range(1, 13) if lazy.due(step)] == [4, 8, 12]
    assert lazy((critic, real)).item() == pytest.approx(0.5 * 10.0 * 4 * 14.25)  # gamma/2 * interval * R1
    assert lazy.latest.item() == pytest.approx(14.25)
    assert not LazyR1(gamma=0.0, every=1, device=CPU).due(1)


def test_r1_of_a_quadratic_critic_and_of_two_critics_together():
    def critic(images):  # D(x) = sum x^2: grad = 2x, so R1 = mean over images of sum 4x^2
        return images.square().flatten(1).sum(1)

    real = torch.randn(3, 2, 4, 4)
    expected = (4 * real.square()).flatten(1).sum(1).mean().item()
    assert r1_penalty(critic, real).item() == pytest.approx(expected, rel=1e-6)
    other = torch.randn(3, 2, 4, 4)
    lazy = LazyR1(gamma=2.0, every=1, device=CPU)
    total = lazy((critic, real), (critic, other)).item()
    expected_other = (4 * other.square()).flatten(1).sum(1).mean().item()
    assert total == pytest.approx(expected + expected_other, rel=1e-6)  # gamma/2 = 1: the sum
    assert lazy.latest.item() == pytest.approx((expected + expected_other) / 2, rel=1e-6)


def test_r1_gradient_reaches_the_discriminator_weights():
    critic = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Softplus(), nn.Flatten(), nn.Linear(4 * 8 * 8, 1))
    penalty = r1_penalty(critic, torch.randn(2, 3, 8, 8))
    penalty.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters() if p.dim() > 1)


def test_r1_settings_are_checked():
    with pytest.raises(ConfigError, match="loss.r1_every must be"):
        tiny_config("loss.r1_every=0")
    with pytest.raises(ConfigError, match="loss.r1_gamma must be"):
        tiny_config("loss.r1_gamma=-1")


# ----------------------------------------------------------------------------- DiffAugment


def test_diffaugment_keeps_a_stacked_pair_aligned():
    image = torch.rand(6, 3, 32, 32) * 2 - 1
    for policy in ("color", "translation", "cutout", "color,translation,cutout"):
        augment = DiffAugment(policy, CPU, seed=0, image_channels=(3, 3))
        augmented = augment(torch.cat([image, image], 1))
        assert not torch.equal(augmented[:, :3], image), policy  # it did something
        assert torch.equal(augmented[:, :3], augmented[:, 3:]), policy  # the same to both images of a pair


def test_diffaugment_translation_moves_a_pixel_and_cutout_zeroes_a_quarter():
    image = torch.zeros(64, 1, 16, 16)
    image[:, :, 8, 8] = 1.0
    moved = DiffAugment("translation", CPU, seed=1, image_channels=(1,))(image)
    positions = moved.flatten(1).argmax(1)
    rows, cols = positions // 16 - 8, positions % 16 - 8
    assert moved.flatten(1).sum(1).eq(1).all()  # moved, not lost (the shift is at most 2 of 16 pixels)
    assert rows.abs().max() <= 2 and cols.abs().max() <= 2 and len(set(zip(rows.tolist(), cols.tolist()))) > 10
    ones = torch.ones(256, 3, 16, 16)
    cut = DiffAugment("cutout", CPU, seed=2)(ones)
    zeroed = (cut == 0).float().mean(dim=(1, 2, 3))
    assert zeroed.max() == pytest.approx(0.25) and zeroed.min() > 0  # 8x8 of 16x16, clipped at the borders
    assert (cut[:, 0] == cut[:, 1]).all()  # all channels together
    # the centre ranges over 0..16 as the reference's does (it stopped at 15): 4 rows clipped at either edge
    rows_cut = {tuple(rows.nonzero().flatten().tolist()) for rows in (cut[:, 0] == 0).any(dim=2)}
    assert (0, 1, 2, 3) in rows_cut and (12, 13, 14, 15) in rows_cut


def test_diffaugment_is_differentiable():
    images = torch.randn(4, 3, 16, 16, requires_grad=True)
    augmented = DiffAugment("color,translation,cutout", CPU, seed=3)(images)
    (augmented * torch.randn_like(augmented)).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    # translation alone moves the gradient with the pixels: the sum of outputs sees each kept pixel once
    images.grad = None
    DiffAugment("translation", CPU, seed=4)(images).sum().backward()
    assert set(images.grad.unique().tolist()) <= {0.0, 1.0} and images.grad.sum() > 0.5 * images.numel()


def test_diffaugment_draws_from_its_own_seeded_generator_and_resumes_it():
    images = torch.rand(4, 3, 16, 16)
    first, second = DiffAugment("color,translation", CPU, seed=7), DiffAugment("color,translation", CPU, seed=7)
    global_state = torch.get_rng_state()
    assert torch.equal(first(images), second(images))
    assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is untouched
    saved = first.state_dict()
    expected = first(images)
    resumed = DiffAugment("color,translation", CPU, seed=0)
    resumed.load_state_dict(saved)
    assert torch.equal(resumed(images), expected)
    assert not torch.equal(DiffAugment("color,translation", CPU, seed=8)(images), second(images))


def test_diffaugment_off_is_the_identity_and_names_are_checked():
    from gan.recipes.dcgan import DCGANRecipe

    recipe = DCGANRecipe(tiny_config(), CPU, lambda: torch.no_grad())
    images = torch.rand(2, 3, 32, 32)
    assert recipe.augment is None and recipe.for_discriminator(images) is images
    assert parse_policy("cutout, color") == ("color", "cutout")
    with pytest.raises(ConfigError, match="loss.diffaugment: unknown augmentation 'colour'.*color"):
        tiny_config("loss.diffaugment=colour")
    for nothing in (",", ",,"):  # passed the config check, then stopped the run naming no key
        with pytest.raises(ConfigError, match=f"loss.diffaugment = '{nothing}' names no augmentation"):
            tiny_config(f"loss.diffaugment={nothing}")


def test_augment_probability_applies_each_augmentation_to_that_share_of_images():
    images = torch.rand(400, 3, 16, 16) * 2 - 1
    never = DiffAugment("color,translation,cutout", CPU, seed=5, p=0.0)
    assert torch.equal(never(images), images)
    half = DiffAugment("cutout", CPU, seed=5, p=0.5)
    changed = (half(images) != images).flatten(1).any(1).float().mean().item()
    assert changed == pytest.approx(0.5, abs=0.08)
    # p = 1 makes no extra draws: the very sequence of plain DiffAugment
    always = DiffAugment("color,translation,cutout", CPU, seed=5, p=1.0)
    assert always.p is None and torch.equal(always(images), DiffAugment("color,translation,cutout", CPU, seed=5)(images))
    pair = DiffAugment("color,translation,cutout", CPU, seed=6, image_channels=(3, 3), p=0.5)(torch.cat([images] * 2, 1))
    assert torch.equal(pair[:, :3], pair[:, 3:])  # a pair stays aligned when some images are left alone


def test_adaptive_probability_follows_ada_heuristic():
    ada = AdaptiveProbability(target=0.6, interval=2, speed_images=80, boundary=0.0, device=CPU)
    sure = torch.tensor([[3.0], [2.0], [1.0], [-1.0]])  # three reals above the boundary, one below: signs sum to 2
    ada.observe(torch.ones(4, 1))
    assert ada.p.item() == 0  # adjusted only after `interval` D steps
    ada.observe(sure)
    # r_t over both steps = (4 + 2) / 8 = 0.75 > 0.6: p rises by the 8 images seen / 80
    assert ada.rt.item() == pytest.approx(0.75) and ada.p.item() == pytest.approx(0.1)
    for _ in range(4):
        ada.observe(-torch.ones(4, 1))  # D unsure of reals: p falls back, and stops at 0
    assert ada.rt.item() == -1 and ada.p.item() == 0
    for _ in range(40):
        ada.observe(torch.ones(4, 1))
    assert ada.p.item() == 1  # clipped at 1
    # the boundary is halfway between D's targets: lsgan's 1 and 0 (or 1 - smoothing and 0), else 0
    assert AdversarialLoss("lsgan").boundary == 0.5 and AdversarialLoss("lsgan", 0.2).boundary == pytest.approx(0.4)
    assert AdversarialLoss("vanilla", 0.1).boundary == AdversarialLoss("hinge").boundary == 0
    # PatchGAN logits count each patch; lsgan's boundary is 0.5
    lsgan = AdaptiveProbability(target=0.6, interval=1, speed_images=40, boundary=0.5, device=CPU)
    lsgan.observe(torch.full((4, 1, 3, 3), 0.4))
    lsgan.observe(torch.full((4, 1, 3, 3), 0.9))
    assert lsgan.rt.item() == 1 and lsgan.p.item() == pytest.approx(0.1)
    saved = lsgan.state_dict()
    resumed = AdaptiveProbability(target=0.6, interval=1, speed_images=40, boundary=0.5, device=CPU)
    p_tensor = resumed.p
    resumed.load_state_dict(saved)
    assert resumed.p is p_tensor and resumed.p.item() == pytest.approx(0.1)  # in place: graphs keep the tensor


def test_adaptive_probability_counts_every_process_of_a_distributed_run(monkeypatch):
    # Another process that saw the same: all_reduce doubles the counts. p must move by the global
    # batch, r_t stay a mean, and the interval still count D steps, not processes.
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda tensor: tensor.mul_(2))
    ada = AdaptiveProbability(target=0.6, interval=2, speed_images=80, boundary=0.0, device=CPU)
    ada.observe(torch.ones(4, 1))
    assert ada.p.item() == 0
    ada.observe(torch.tensor([[3.0], [2.0], [1.0], [-1.0]]))
    assert ada.rt.item() == pytest.approx(0.75) and ada.p.item() == pytest.approx(0.2)  # 16 images / 80


def test_augment_probability_settings_are_checked():
    for setting, message in (("loss.augment_p=sometimes", "loss.augment_p must be a probability in \\[0, 1\\] or \"adaptive\""),
                             ("loss.augment_p=1.5", "loss.augment_p must be"),
                             ("loss.augment_p=adaptive", "loss.diffaugment names no augmentation"),
                             ("loss.augment_target=1", "loss.augment_target must be")):
        with pytest.raises(ConfigError, match=message):
            tiny_config(setting)
    with pytest.raises(ConfigError, match="WGAN critic"):
        tiny_config("loss.diffaugment=color", "loss.augment_p=adaptive", "loss.adversarial=wgan-gp")
    assert tiny_config("loss.diffaugment=color", "loss.augment_p=adaptive").loss.augment_p == "adaptive"
    assert tiny_config("loss.diffaugment=color", "loss.augment_p=0.25").loss.augment_p == 0.25


def test_regularisers_need_a_discriminator(recipe_data):
    from gan.recipes import RECIPES

    for setting in ("loss.r1_gamma=1", "loss.diffaugment=color"):
        config = tiny_recipe_config("srresnet", recipe_data, setting)
        with pytest.raises(ConfigError, match="regularises a discriminator, and loss.adversarial_weight = 0"):
            RECIPES.get("srresnet")(config, CPU, lambda: torch.no_grad())


# ----------------------------------------------------------------------------- in the recipes


def _train_straight_and_resumed(config, tmp_path):
    """Train `config` straight through, and again resumed from its next-to-last checkpoint: the
    straight run's directory and both last checkpoints."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # srgan's randomly initialised VGG says so
        straight = train(config, tmp_path / "straight", CPU, progress_stream=sys.stdout)
        split = tmp_path / "split"
        shutil.copytree(straight.run_dir, split)
        list_checkpoints(split)[-1].unlink()
        train(config, split, CPU, resume=True, progress_stream=sys.stdout)
    last, again = (load_checkpoint(list_checkpoints(run)[-1]) for run in (straight.run_dir, split))
    return straight.run_dir, last, again


def _assert_same_weights(last, again):
    for name, weights in last["networks"].items():
        for key, value in weights.items():
            assert torch.equal(value, again["networks"][name][key]), (name, key)


@pytest.mark.parametrize("recipe", ["dcgan", "pix2pix", "cyclegan", "srgan"])
def test_every_recipe_trains_with_all_three_and_resumes_bit_exactly(recipe, recipe_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = [*ALL_ON, "train.steps=4", "train.checkpoint_every=2", "log.image_every=4", "log.eval_every=0"]
    config = tiny_recipe_config(recipe, recipe_data, *overrides)
    straight, last, again = _train_straight_and_resumed(config, tmp_path)
    assert torch.equal(last["recipe"]["augment"]["generator"], again["recipe"]["augment"]["generator"])
    _assert_same_weights(last, again)
    discriminator = next(name for name in last["networks"] if name.startswith("discriminator"))
    assert any(key.endswith("parametrizations.weight.0._u") for key in last["networks"][discriminator])
    r1 = [(event.step, event.value) for event in EventAccumulator(str(straight)).Reload().Scalars("loss/r1")]
    assert [step for step, _ in r1] == [2, 4] and all(value > 0 for _, value in r1)  # lazy: r1_every = 2


def test_a_lazy_r1_logs_the_same_after_a_resume_as_straight_through(recipe_data, tmp_path):
    # loss/r1 repeated the last R1 computed on the steps between, and a resume began from 0: the
    # window after it logged (0 + R1 at step 6) / 2 where the straight run logged (R1 at 3 + R1 at 6) / 2.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_recipe_config("dcgan", recipe_data, "loss.r1_gamma=1", "loss.r1_every=3", "log.every=2",
                                "model.discriminator_args.norm=none", "train.steps=6", "train.checkpoint_every=2",
                                "log.image_every=6")
    straight, last, again = _train_straight_and_resumed(config, tmp_path)
    _assert_same_weights(last, again)
    logged = [[(event.step, event.value) for event in EventAccumulator(str(run)).Reload().Scalars("loss/r1")]
              for run in (straight, tmp_path / "split")]
    assert [step for step, _ in logged[0]] == [4, 6] and logged[0] == logged[1], logged  # (R1 at steps 3 and 6)
    # (the health watch's span of loss/r1 so far: 6 steps fill no 50-step span)
    assert last["health"]["span"]["loss/r1"] == again["health"]["span"]["loss/r1"]


@pytest.mark.parametrize("recipe", ["dcgan", "pix2pix", "cyclegan", "srgan"])
def test_every_recipe_adapts_the_augment_probability_and_resumes_it_exactly(recipe, recipe_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # A low target and a fast speed, so that p moves within 4 steps of a tiny D.
    overrides = ["loss.diffaugment=color,translation,cutout", "loss.augment_p=adaptive", "loss.augment_interval=1",
                 "loss.augment_target=0.01", "loss.augment_images=8", "train.steps=4", "train.checkpoint_every=2",
                 "log.every=1", "log.image_every=4", "log.eval_every=0"]
    if recipe == "cyclegan":  # (lsgan's boundary, 0.5, is above every output of its fresh tiny Ds)
        overrides.append("loss.adversarial=vanilla")
    config = tiny_recipe_config(recipe, recipe_data, *overrides)
    straight, last, again = _train_straight_and_resumed(config, tmp_path)
    for name in ("p", "rt", "totals"):
        assert torch.equal(last["recipe"]["augment"]["adaptive"][name], again["recipe"]["augment"]["adaptive"][name])
    _assert_same_weights(last, again)
    events = EventAccumulator(str(straight)).Reload()
    p = [event.value for event in events.Scalars("augment/p")]
    assert len(p) == 4 and max(p) > 0 and len(events.Scalars("augment/rt")) == 4


def test_r1_and_diffaugment_change_what_d_learns_and_nothing_when_off():
    baseline_losses, baseline = first_steps(*PLAIN, networks=("discriminator",), steps=2)
    zero_losses, zero = first_steps(*PLAIN, "loss.r1_gamma=0", "loss.diffaugment=", networks=("discriminator",),
                                    steps=2)
    assert zero_losses == baseline_losses
    assert all(torch.equal(zero[key], value) for key, value in baseline.items())
    for setting in ("loss.r1_gamma=10", "loss.diffaugment=translation"):
        _, changed = first_steps(*PLAIN, setting, "loss.r1_every=1", networks=("discriminator",), steps=2)
        assert any(not torch.equal(changed[key], value) for key, value in baseline.items()), setting


@pytest.mark.slow
def test_all_three_train_compiled_and_match_eager():
    settings = (*PLAIN, *ALL_ON, "loss.r1_every=1", "model.discriminator_args.norm=none")
    eager_losses, eager = first_steps(*settings, networks=("discriminator",), steps=3)
    torch._dynamo.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses, compiled = first_steps(*settings, "train.compile=on", "train.compile_backend=aot_eager",
                                       networks=("discriminator",), steps=3)
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]  # (it would run eagerly)
    for eager_step, step in zip(eager_losses, losses):
        assert step["loss/r1"] == pytest.approx(eager_step["loss/r1"], rel=1e-4, abs=1e-6)
        assert step["loss/d"] == pytest.approx(eager_step["loss/d"], rel=1e-4, abs=1e-5)
    for key, value in eager.items():
        torch.testing.assert_close(compiled[key], value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("overrides, expected", [
    (("loss.r1_gamma=1",), 'loss.r1_gamma = 1 penalises each image\'s gradient, but the BatchNorm of discriminator '
                           'mixes the images of a batch, so each image\'s penalty depends on the others: set '
                           'model.discriminator_args.norm = "none"'),
    (("loss.adversarial=wgan-gp",), "loss.adversarial = 'wgan-gp' (loss.gp_weight = 10) penalises each image's"),
    (("loss.r1_gamma=1", "model.discriminator_args.norm=none"), None),
    (("loss.preset=wgan-gp",), None),  # the preset's critic has no BatchNorm
])
def test_a_per_image_penalty_through_a_batchnorm_discriminator_is_warned_of(tmp_path, overrides, expected):
    """Each image's gradient penalty (R1, WGAN-GP) assumes D scores each image alone; BatchNorm in D
    makes each score depend on the batch, which a change to one image shows."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_config(*overrides, "train.steps=1"), tmp_path / "run", CPU, progress_stream=sys.stdout)
    said = [str(warning.message) for warning in caught if "penalis" in str(warning.message)]
    assert said == ([] if expected is None else [said[0]]) and (expected is None or expected in said[0]), said


def test_batchnorm_makes_each_images_r1_depend_on_the_others():
    """Why the warning above: with BatchNorm, changing image 3 changes the R1 terms of images 0-2."""
    torch.manual_seed(0)
    for norm, mixes in (("batch", True), ("none", False)):
        discriminator = network_spec("discriminator", "dcgan", {"channels": 8, "norm": norm}, "d",
                                     resolution=32).build()

        def per_image_r1(images, discriminator=discriminator):
            images = images.clone().requires_grad_(True)
            return torch.autograd.grad(discriminator(images).sum(), images)[0].flatten(1).square().sum(1)[:3]

        images = torch.rand(4, 3, 32, 32) * 2 - 1
        changed = images.clone()
        changed[3] = -changed[3]
        assert (not torch.allclose(per_image_r1(images), per_image_r1(changed))) == mixes, norm


@pytest.mark.parametrize("recipe, overrides, measured", [
    # r_t is measured at every 3rd D step: with 2 D steps a step, D steps 3, 6, 9, 12 fall in steps 2, 3, 5, 6
    ("dcgan", ["train.d_steps=2", "train.steps=6"], [2, 3, 5, 6]),
    # no D before the adversarial start: nothing logged then, the first interval ends at step 5
    ("pix2pix", ["train.adversarial_start=2", "train.steps=6"], [5]),
])
def test_augment_rt_is_logged_only_where_it_was_measured(recipe, overrides, measured, recipe_data, tmp_path):
    """It was each window's mean of the held value: its starting 0 and every value again counted, so
    a window that measured 0.75 once logged 0.25."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_recipe_config(recipe, recipe_data, "loss.diffaugment=color", "loss.augment_p=adaptive",
                                "loss.augment_interval=3", "loss.augment_target=0.01", "loss.augment_images=8",
                                "log.every=1", "log.image_every=100", "log.eval_every=0", "train.checkpoint_every=1", "train.keep_checkpoints=10",
                                "train.ema_decay=0", *overrides)
    run_dir = train(config, tmp_path / "run", CPU, progress_stream=io.StringIO()).run_dir
    events = EventAccumulator(str(run_dir)).Reload()
    logged = {event.step: event.value for event in events.Scalars("augment/rt")}
    assert sorted(logged) == measured
    for step, value in logged.items():  # each the r_t its step measured, as the checkpoint holds it
        assert value == pytest.approx(float(load_checkpoint(run_dir / f"checkpoint-{step:08d}.pt")
                                            ["recipe"]["augment"]["adaptive"]["rt"]), abs=1e-6)
    assert min(event.step for event in events.Scalars("augment/p")) == int(config.train.adversarial_start) + 1


def test_a_reordered_or_repeated_diffaugment_list_is_said_and_recorded_as_it_trains():
    # It trained in the canonical order, each once, while config.toml kept the list as written
    with pytest.warns(UserWarning, match=r"loss.diffaugment = 'cutout,cutout,color' is applied as 'color,cutout': the "
                                         r"augmentations run in the order color, translation, cutout, each once"):
        config = tiny_config("loss.diffaugment=cutout,cutout,color")
    assert config.loss.diffaugment == "color,cutout"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tiny_config("loss.diffaugment=Color, Cutout", "train.ema_decay=0").loss.diffaugment == "color,cutout"


def test_augment_rt_follows_the_restored_interval_after_a_resume_that_changes_d_steps(recipe_data, tmp_path):
    """The measured steps were worked out as if the resumed d_steps had held from step 0: after
    3 -> 1, r_t measured at steps 6 and 10 was logged (held) at steps 8 and 12."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    common = ["loss.diffaugment=color", "loss.augment_p=adaptive", "loss.augment_interval=4", "loss.augment_target=0.01",
              "loss.augment_images=64", "log.every=1", "log.image_every=100", "train.checkpoint_every=1",
              "train.keep_checkpoints=100", "train.ema_decay=0"]
    run_dir = tmp_path / "run"
    train(tiny_recipe_config("dcgan", recipe_data, *common, "train.d_steps=3", "train.steps=5"), run_dir, CPU,
          progress_stream=io.StringIO())
    resumed = tiny_recipe_config("dcgan", recipe_data, *common, "train.d_steps=1", "train.steps=12")
    train(resumed, run_dir, CPU, resume=True, progress_stream=io.StringIO())
    # D steps 4, 8, 12 of the first 5 steps (3 each) fall in steps 2, 3, 4; 3 more are counted by step 5,
    # so with 1 D step a step the next r_t is measured at step 6, then at 10
    logged = {event.step: event.value for event in EventAccumulator(str(run_dir)).Reload().Scalars("augment/rt")}
    assert sorted(logged) == [2, 3, 4, 6, 10]
    for step, value in logged.items():
        rt = load_checkpoint(run_dir / f"checkpoint-{step:08d}.pt")["recipe"]["augment"]["adaptive"]["rt"]
        assert value == pytest.approx(float(rt), abs=1e-6)


def test_augment_rt_follows_a_resume_that_lowers_the_interval_below_the_count_restored(recipe_data, tmp_path):
    # 5 D steps counted toward an interval of 8, resumed with 4: measured at once (step 6), then at 10,
    # but logged at 8 and 12
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    common = ["loss.diffaugment=color", "loss.augment_p=adaptive", "loss.augment_target=0.01", "loss.augment_images=64",
              "log.every=1", "log.image_every=100", "train.checkpoint_every=1", "train.keep_checkpoints=100",
              "train.ema_decay=0"]
    run_dir = tmp_path / "run"
    train(tiny_recipe_config("dcgan", recipe_data, *common, "loss.augment_interval=8", "train.steps=5"), run_dir, CPU,
          progress_stream=io.StringIO())
    train(tiny_recipe_config("dcgan", recipe_data, *common, "loss.augment_interval=4", "train.steps=12"), run_dir, CPU,
          resume=True, progress_stream=io.StringIO())
    logged = {event.step: event.value for event in EventAccumulator(str(run_dir)).Reload().Scalars("augment/rt")}
    assert sorted(logged) == [6, 10]
    for step, value in logged.items():
        rt = load_checkpoint(run_dir / f"checkpoint-{step:08d}.pt")["recipe"]["augment"]["adaptive"]["rt"]
        assert value == pytest.approx(float(rt), abs=1e-6)


def test_colour_augmentation_draws_the_papers_factors_and_changes_saturation_pixel_by_pixel(monkeypatch):
    # DiffAugment's rand_brightness U(-0.5, 0.5), rand_saturation U(0, 2) about each pixel's grey, and
    # rand_contrast U(0.5, 1.5) about the image's mean (guards a mutation probe found open: a narrower
    # saturation range, or saturation about the image's mean, changed every augmented image unseen)
    augment = DiffAugment("color", CPU, seed=0)
    drawn = []
    real_uniform = augment._uniform

    def recorded(images, low, high):
        drawn.append((low, high, real_uniform(images, low, high)))
        return drawn[-1][2]

    monkeypatch.setattr(augment, "_uniform", recorded)
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    augmented = augment(images)
    assert [(low, high) for low, high, _ in drawn] == [(-0.5, 0.5), (0.0, 2.0), (0.5, 1.5)]
    brightness, saturation, contrast = (factor for _, _, factor in drawn)
    expected = images + brightness
    grey = expected.mean(dim=1, keepdim=True)
    expected = (expected - grey) * saturation + grey
    average = expected.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(augmented, (expected - average) * contrast + average, atol=1e-6)
