import math

import pytest
import torch

from gan.recipes.losses import AdversarialLoss, add_instance_noise, annealed_std, gradient_penalty


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([0.5, -3.0])


def test_vanilla_matches_hand_computed_bce():
    loss = AdversarialLoss("vanilla")
    # BCE(logit, 1) = softplus(-logit); BCE(logit, 0) = softplus(logit)
    expected_d = (softplus(-2.0) + softplus(1.0)) / 2 + (softplus(0.5) + softplus(-3.0)) / 2
    assert loss.discriminator(REAL, FAKE).item() == pytest.approx(expected_d, rel=1e-6)
    expected_g = (softplus(-0.5) + softplus(3.0)) / 2  # non-saturating: -log sigmoid(fake)
    assert loss.generator(FAKE).item() == pytest.approx(expected_g, rel=1e-6)


def test_one_sided_label_smoothing_changes_only_the_real_target():
    loss = AdversarialLoss("vanilla", label_smoothing=0.1)

    def bce(logit, target):
        p = 1 / (1 + math.exp(-logit))
        return -(target * math.log(p) + (1 - target) * math.log(1 - p))

    expected = (bce(2.0, 0.9) + bce(-1.0, 0.9)) / 2 + (bce(0.5, 0.0) + bce(-3.0, 0.0)) / 2
    assert loss.discriminator(REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)
    assert loss.generator(FAKE).item() == AdversarialLoss("vanilla").generator(FAKE).item()


def test_lsgan():
    loss = AdversarialLoss("lsgan", label_smoothing=0.2)
    expected_d = ((2.0 - 0.8) ** 2 + (-1.0 - 0.8) ** 2) / 2 + (0.5**2 + 3.0**2) / 2
    assert loss.discriminator(REAL, FAKE).item() == pytest.approx(expected_d)
    assert loss.generator(FAKE).item() == pytest.approx(((0.5 - 1) ** 2 + (-3.0 - 1) ** 2) / 2)


def test_hinge():
    loss = AdversarialLoss("hinge")
    expected_d = (max(0, 1 - 2.0) + max(0, 1 + 1.0)) / 2 + (max(0, 1 + 0.5) + max(0, 1 - 3.0)) / 2
    assert loss.discriminator(REAL, FAKE).item() == pytest.approx(expected_d)
    assert loss.generator(FAKE).item() == pytest.approx(1.25)


def test_wgan():
    loss = AdversarialLoss("wgan-gp")
    assert loss.discriminator(REAL, FAKE).item() == pytest.approx(-1.25 - 0.5)
    assert loss.generator(FAKE).item() == pytest.approx(1.25)
    assert AdversarialLoss("vanilla").penalty(None, REAL, FAKE) is None


def test_gradient_penalty_of_a_linear_critic():
    """For D(x) = <w, x> the gradient is w everywhere, so the penalty is (||w|| - 1)^2."""
    weight = torch.tensor([[3.0, 4.0]])  # norm 5
    critic = torch.nn.Linear(2, 1, bias=False)
    critic.weight.data.copy_(weight)
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(16.0)
    assert AdversarialLoss("wgan-gp", gp_weight=10).penalty(critic, real, fake).item() == pytest.approx(160.0)


def test_discriminator_score_is_a_probability_for_vanilla():
    assert AdversarialLoss("vanilla").score(torch.tensor([0.0])).item() == 0.5
    assert AdversarialLoss("hinge").score(torch.tensor([3.0])).item() == 3.0


def test_instance_noise_and_its_anneal():
    images = torch.zeros(1000, 3)
    assert add_instance_noise(images, 0.0) is images
    noisy = add_instance_noise(images, 0.5)
    assert noisy.std().item() == pytest.approx(0.5, rel=0.05)
    assert annealed_std(0.1, 0, 100) == 0.1
    assert annealed_std(0.1, 50, 100) == pytest.approx(0.05)
    assert annealed_std(0.1, 150, 100) == 0.0


@pytest.mark.parametrize("kind, smoothing", [("hinge", 0.1), ("wgan", 0.0)])
def test_bad_loss_arguments(kind, smoothing):
    with pytest.raises(ValueError):
        AdversarialLoss(kind, label_smoothing=smoothing)


def test_with_several_critic_steps_the_discriminators_terms_are_their_mean():
    """With train.d_steps = 5 (WGAN-GP) loss/d, d/*, grad/discriminator and loss/gp were the last
    critic step's: one trained four times on the batch already, so loss/d read -2.50 for a mean of -2.38."""
    import contextlib

    from conftest import tiny_config

    from gan.recipes import RECIPES

    config = tiny_config("loss.preset=wgan-gp", "train.d_steps=3")
    recipe = RECIPES.get(config.recipe)(config, torch.device("cpu"), contextlib.nullcontext)
    losses, penalties = [], []
    discriminator_loss, penalty = recipe.loss.discriminator, recipe.loss.penalty
    recipe.loss.discriminator = lambda *args: losses.append(discriminator_loss(*args)) or losses[-1]
    recipe.loss.penalty = lambda *args: penalties.append(penalty(*args)) or penalties[-1]
    torch.manual_seed(0)
    metrics = recipe.step({"image": torch.rand(8, 3, 32, 32) * 2 - 1}, 1)
    assert len(losses) == 3 and float(losses[0]) != float(losses[-1])
    assert torch.allclose(metrics["loss/d"], torch.stack([loss.detach() for loss in losses]).mean())
    assert torch.allclose(metrics["loss/gp"], torch.stack([gp.detach() for gp in penalties]).mean())
