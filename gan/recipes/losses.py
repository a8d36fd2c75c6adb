"""Adversarial losses by name, and the regularisers that go with them.

Every function takes discriminator logits (raw scores, any shape) and returns a
scalar. The one place in the package where the GAN objectives are written.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gan.core.compilation import uncompiled
from gan.core.config import Config
from gan.core.registry import ConfigError

Shard = tuple[int, int]  # (this process's rank, processes): its share of the global batch
WHOLE_BATCH: Shard = (0, 1)

ADVERSARIAL_LOSSES = ("vanilla", "lsgan", "hinge", "wgan-gp")


class AdversarialLoss:
    """Discriminator and generator objectives of one kind.

    - vanilla: binary cross-entropy on logits; the generator uses the non-saturating
      form, -log D(G(z)).
    - lsgan: least squares towards 1 (real) and 0 (fake) (Mao et al. 2017).
    - hinge: max(0, 1 - D(x)) + max(0, 1 + D(G(z))); generator -D(G(z)).
    - wgan-gp: D(G(z)) - D(x) plus a gradient penalty (Gulrajani et al. 2017);
      generator -D(G(z)).

    `label_smoothing` s makes the discriminator's real target 1 - s (one-sided:
    fake targets stay 0), for vanilla and lsgan only.
    """

    def __init__(self, kind: str = "vanilla", label_smoothing: float = 0.0, gp_weight: float = 10.0):
        if kind not in ADVERSARIAL_LOSSES:
            raise ValueError(f"unknown adversarial loss '{kind}'; known: {', '.join(ADVERSARIAL_LOSSES)}")
        if label_smoothing and kind not in ("vanilla", "lsgan"):
            raise ValueError(f"label smoothing applies to vanilla and lsgan, not '{kind}'")
        self.kind = kind
        self.real_target = 1.0 - label_smoothing
        self.gp_weight = gp_weight
        probe = torch.zeros(1)  # a kind listed above must have both objectives written out below
        self.discriminator(probe, probe), self.generator(probe)

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss the discriminator minimises: real and fake terms summed."""
        per_image(real_logits)
        per_image(fake_logits)
        if self.kind == "vanilla":
            return F.binary_cross_entropy_with_logits(
                real_logits, torch.full_like(real_logits, self.real_target)
            ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        if self.kind == "lsgan":
            return ((real_logits - self.real_target) ** 2).mean() + (fake_logits**2).mean()
        if self.kind == "hinge":
            return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
        if self.kind == "wgan-gp":  # (the penalty is added by `penalty`)
            return fake_logits.mean() - real_logits.mean()
        raise ConfigError(self._unwritten("discriminator"))

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss the generator minimises."""
        per_image(fake_logits)
        if self.kind == "vanilla":
            return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        if self.kind == "lsgan":
            return ((fake_logits - 1.0) ** 2).mean()
        if self.kind in ("hinge", "wgan-gp"):
            return -fake_logits.mean()
        raise ConfigError(self._unwritten("generator"))

    def _unwritten(self, objective: str) -> str:
        """The error for a kind named in ADVERSARIAL_LOSSES whose `objective` has no branch here: it
        would otherwise fall through to another kind's objective and train that in silence."""
        return (f"loss.adversarial = '{self.kind}' is listed in ADVERSARIAL_LOSSES but AdversarialLoss.{objective} "
                "has no branch for it (gan/recipes/losses.py)")

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                shard: Shard = WHOLE_BATCH) -> torch.Tensor | None:
        """The weighted gradient penalty for wgan-gp; None for the other kinds."""
        if self.kind != "wgan-gp":
            return None
        return self.gp_weight * gradient_penalty(discriminator, real, fake, shard)

    @property
    def boundary(self) -> float:
        """D's output halfway between its real and fake targets: for lsgan half its real target
        (0.5 without label smoothing), else 0 (a logit, a hinge margin's centre)."""
        return 0.5 * self.real_target if self.kind == "lsgan" else 0.0

    def score(self, logits: torch.Tensor) -> torch.Tensor:
        """What to log as D(x) / D(G(z)): a probability for vanilla, the raw score otherwise."""
        return torch.sigmoid(logits) if self.kind == "vanilla" else logits


# What a discriminator gives (docs/layout.md), as messages say it
SCORE_SHAPES = "(N,) or (N, 1), or a map of them, (N, 1, H, W)"


def per_image(scores: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
    """`scores`, checked to hold one score, or one map of scores, per image (of `images` when given):
    a discriminator of one's own that averaged its batch trained in silence, each image's gradient
    1/N of its own. A check of shapes alone: nothing is read back from the device."""
    if not isinstance(scores, torch.Tensor):  # (a tuple: AttributeError 'tuple' object has no attribute 'dim')
        raise ValueError(f"the discriminator returned a {type(scores).__name__}, not a tensor: it must give one "
                         f"tensor of scores, {SCORE_SHAPES} (docs/layout.md)")
    misfit = scores_misfit(tuple(scores.shape), images.shape[0] if images is not None else None)
    if misfit:
        batch = f"{images.shape[0]} images" if images is not None else "a batch"
        raise ValueError(f"the discriminator gave scores of shape {tuple(scores.shape)} for {batch}: it must give "
                         f"one score per image, {SCORE_SHAPES}, {misfit} (docs/layout.md)")
    return scores


def scores_misfit(shape: tuple[int, ...], count: int | None = None) -> str | None:
    """How a discriminator's scores of `shape`, for `count` images (any count when None), are not one
    score, or one map of scores, per image, said as "not ..."; None when they are. An AC-GAN head's
    (N, 2) trained in silence: the losses averaged its columns as scores."""
    if not shape or (count is not None and shape[0] != count):
        return "not one for the whole batch"
    if len(shape) == 1 or (len(shape) in (2, 4) and shape[1] == 1):
        return None
    if len(shape) == 2:
        return f"not {shape[1]} columns, all of which the losses would take as scores"
    return f"not values of shape {shape[1:]} per image, all of which the losses would take as scores"


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     shard: Shard = WHOLE_BATCH) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] at random points x_hat between real and fake (N, ...).

    D runs eagerly here even when compiled: the penalty's gradient is differentiated again
    (double backward), which compiled graphs (AOTAutograd) do not support."""
    alpha = shard_draw(lambda count: torch.rand(count, *([1] * (real.dim() - 1)), device=real.device,
                                                dtype=real.dtype), real.shape[0], shard)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    with uncompiled():
        scores = per_image(discriminator(mixed), mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def r1_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E[||grad_x D(x)||^2] over real images x, each output summed (a
    PatchGAN's map too). Unweighted; see `LazyR1`. D runs eagerly, as for the WGAN-GP penalty."""
    real = real.detach().requires_grad_(True)
    with uncompiled():
        scores = per_image(discriminator(real), real)
    (grad,) = torch.autograd.grad(scores.float().sum(), real, create_graph=True)
    return grad.float().flatten(1).square().sum(dim=1).mean()


def penalties_through_batchnorm(penalties: list[str], networks: dict[str, nn.Module],
                                can_switch_off: bool) -> str | None:
    """A warning when a per-image gradient penalty (`penalties`: the keys that ask for one) runs
    through a discriminator with BatchNorm: it mixes the images of a batch, so each image's penalty
    depends on the others (Gulrajani et al. use no BatchNorm in the critic for this reason)."""
    mixing = [name for name, network in networks.items() if name.startswith("discriminator")
              and any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in network.modules())]
    if not penalties or not mixing:
        return None
    fix = ('set model.discriminator_args.norm = "none" (or "instance")' if can_switch_off
           else "this discriminator's BatchNorm cannot be switched off; a PatchGAN or DCGAN one with norm = "
                '"none" can')
    verb = "penalises" if len(penalties) == 1 else "penalise"
    return (f"{' and '.join(penalties)} {verb} each image's gradient, but the BatchNorm of {', '.join(mixing)} "
            f"mixes the images of a batch, so each image's penalty depends on the others: {fix}")


class LazyR1:
    """`loss.r1_gamma` and `loss.r1_every`: the R1 penalty, added to D's loss every `every` steps
    as gamma/2 * every * R1, StyleGAN2's lazy regularisation (the same expected strength, at
    1/every of the cost). `latest` is the last R1 computed, a device tensor every step returns as
    loss/r1 (a constant set of metrics), idle between R1 steps (`RecipeBase.idle_metrics`)."""

    def __init__(self, gamma: float, every: int, device: torch.device):
        self.gamma, self.every = gamma, max(1, every)
        self.latest = torch.zeros((), device=device)

    @property
    def enabled(self) -> bool:
        return self.gamma > 0

    def due(self, step: int) -> bool:
        return self.enabled and step % self.every == 0

    def __call__(self, *terms: tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The weighted term for D's loss at a step where it is `due`, for one or more
        (discriminator, real images) pairs (CycleGAN's two domains): their penalties summed;
        `latest` is their mean."""
        penalties = [r1_penalty(discriminator, real) for discriminator, real in terms]
        self.latest.copy_(torch.stack(penalties).detach().mean())
        return 0.5 * self.gamma * self.every * sum(penalties)


def shard_draw(draw: Callable[[int], torch.Tensor], count: int, shard: Shard) -> torch.Tensor:
    """The rows of `draw(count * processes)` for this process's `count` images: every process draws
    for the global batch (their random streams are seeded alike) and keeps its own share, so N
    processes draw what one would for the whole batch, and no two shards draw alike."""
    rank, processes = shard
    return draw(count * processes)[rank * count:(rank + 1) * count]


def add_instance_noise(images: torch.Tensor, std: float | torch.Tensor | None, shard: Shard = WHOLE_BATCH
                       ) -> torch.Tensor:
    """images + N(0, std^2) (Sønderby et al. 2016); unchanged when std is None or the number 0.
    A 0-d device tensor `std` is read on the device (a captured step reads its current value),
    so the noise is drawn even when it holds 0. Under torchrun, `shard` says whose noise it is."""
    if std is None or (not isinstance(std, torch.Tensor) and std <= 0):
        return images
    noise = shard_draw(lambda count: torch.randn((count, *images.shape[1:]), device=images.device,
                                                 dtype=images.dtype), images.shape[0], shard)
    return images + std * noise


def annealed_std(initial_std: float, step: int, anneal_steps: int) -> float:
    """Linear anneal from `initial_std` at step 0 to 0 at `anneal_steps`."""
    if anneal_steps <= 0:
        return 0.0
    return initial_std * max(0.0, 1.0 - step / anneal_steps)


def instance_noise_std(config: Config, step: int) -> float:
    """dcgan's instance-noise std at (1-based) `step`: `loss.instance_noise` annealed to 0 over
    `loss.instance_noise_steps`, or over the whole run (`train.steps`) when that is 0."""
    loss = config.loss
    return annealed_std(loss.instance_noise, step - 1, loss.instance_noise_steps or config.train.steps)


class PerceptualLoss(nn.Module):
    """MSE between feature maps of output and target (Johnson et al. 2016; SRGAN's VGG loss).

    `extractor` maps images (N, 3, H, W) in [-1, 1] to features; both feature maps are
    multiplied by `feature_scale` first (SRGAN: 1/12.75, which brings VGG54 features
    to the range of pixel MSE).
    """

    def __init__(self, extractor: nn.Module, feature_scale: float = 1.0):
        super().__init__()
        self.extractor = extractor
        self.feature_scale = feature_scale

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self.extractor(target)
        return F.mse_loss(self.feature_scale * self.extractor(output), self.feature_scale * target_features)
