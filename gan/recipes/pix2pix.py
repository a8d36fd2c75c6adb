"""Paired image-to-image translation (Isola et al. 2017): conditional GAN + L1.

Also super-resolution restoration, trained as translation from the bicubic-upsampled
LR image to the HR image (`data.dataset = "sr_pairs"`).
"""

from __future__ import annotations

from typing import Hashable

import torch
import torch.nn.functional as F

from gan.core.config import Config
from gan.core.registry import ConfigError
from gan.nets import NetworkSpec, network_spec
from gan.recipes import RECIPES
from gan.recipes.base import AutocastFactory, RecipeBase, adam, gradient_norm, require_rgb, set_requires_grad
from gan.recipes.image_to_image import (
    PREVIEW_NAME,
    DistributionScores,
    RunEvaluationSet,
    check_crop_size,
    check_discriminator_depth,
    preview_pairs,
    preview_strips,
    refuse_idle_generator,
    unused_discriminator_keys,
    validation_scores,
    warn_of_discriminator_keys,
    warn_of_idle_steps,
)
from gan.recipes.losses import AdversarialLoss
from gan.recipes.schedules import adversarial_on


@RECIPES.register("pix2pix")
class Pix2PixRecipe(RecipeBase):
    """G(input) -> output; a conditional D sees (input, output) or (input, target) stacked.

    D minimises half the adversarial objective (as the paper does, to slow D); G minimises
    `loss.adversarial_weight` (1 as the paper) * the adversarial loss + `loss.l1_weight` *
    L1(output, target). For the first `train.adversarial_start` steps G learns from L1 alone
    and D waits; at `loss.adversarial_weight` = 0 (the paper's L1-alone ablation) there is no D.
    """

    datasets = ("paired", "sr_pairs")  # (input, target) pairs
    supplied_args = {"discriminator": ("in_channels",)}  # (3 + 3 for an RGB pair)

    @classmethod
    def network_specs(cls, config: Config) -> dict[str, NetworkSpec]:
        model = config.model
        if config.data.dataset == "sr_pairs" and not config.data.upsample_input:
            raise ConfigError("recipe 'pix2pix' on data.dataset = \"sr_pairs\" needs data.upsample_input = true: its "
                              "generator keeps its input's size (recipes srresnet and srgan upsample the LR image "
                              "themselves)")
        generator = network_spec("generator", model.generator, model.generator_args, "model.generator_args")
        # (the discriminator's in_channels follow the generator's: input and output stacked)
        require_rgb(generator, "model.generator_args", "in_channels", "out_channels")
        check_crop_size(generator, config.data.resolution)
        if not config.loss.adversarial_weight:  # the paper's "L1 alone" ablation: no discriminator to train
            if not config.loss.l1_weight:
                raise ConfigError("loss.l1_weight and loss.adversarial_weight are both 0: the generator would learn "
                                  "nothing; set either above 0 (the paper: 100 and 1)")
            cls.refuse_regularisers(config, "loss.adversarial_weight = 0 trains no discriminator (L1 alone)")
            return {"generator": generator}
        refuse_idle_generator(config, "loss.l1_weight")
        image_channels = generator.kwargs.get("in_channels", 3) + generator.kwargs.get("out_channels", 3)
        discriminator = network_spec("discriminator", model.discriminator, model.discriminator_args,
                                     "model.discriminator_args", in_channels=image_channels)
        check_discriminator_depth(discriminator, config.data.resolution)
        return {"generator": generator, "discriminator": discriminator}

    @classmethod
    def inert_keys(cls, config: Config) -> dict[str, str]:
        return unused_discriminator_keys(config)

    def __init__(self, config: Config, device: torch.device, autocast: AutocastFactory):
        super().__init__(config, device, autocast)
        train = config.train
        built = self.build_networks(kept=("generator",))
        self.generator, self.discriminator = built["generator"], built.get("discriminator")
        self.size_multiple = getattr(self.generator, "size_multiple", 1)
        self.networks = {"generator": self.generator}
        self.optimizers = {"generator": adam(self.generator, train.g_lr, train, device)}
        if self.discriminator is not None:
            self.networks["discriminator"] = self.discriminator
            self.optimizers["discriminator"] = adam(self.discriminator, train.d_lr, train, device)
        else:
            warn_of_discriminator_keys(config)
        warn_of_idle_steps(config, "loss.l1_weight")
        self.loss = AdversarialLoss(config.loss.adversarial, config.loss.label_smoothing, config.loss.gp_weight)
        self.l1_weight = config.loss.l1_weight
        self.adversarial_weight = config.loss.adversarial_weight
        # D sees (input, output) stacked: augmented together, so the pair stays aligned.
        generator_args = self.specs["generator"].kwargs
        self.use_diffaugment((generator_args.get("in_channels", 3), generator_args.get("out_channels", 3)))
        # Outputs against targets as distributions too, where they are images of one size (not SR).
        self.distribution = DistributionScores(config, device) if config.data.dataset == "paired" else None
        self.evaluation_images = RunEvaluationSet(config.data)

    def graph_key(self, step: int) -> Hashable | None:
        adversarial = self.trains_discriminator(step)
        return adversarial, adversarial and self.r1.due(step)

    def trains_discriminator(self, step: int) -> bool:
        return self.discriminator is not None and adversarial_on(step, self.config.train)

    def idle_metrics(self, step: int) -> frozenset[str]:
        return super().idle_metrics(step) if self.discriminator is not None else frozenset()

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        source, target = batch["input"], batch["target"]
        generator, discriminator = self.generator, self.discriminator
        with self.autocast():
            output = generator(source)
        zero = torch.zeros((), device=output.device)
        d_loss = g_adversarial = real_score = fake_score = d_gradient = zero
        adversarial = self.trains_discriminator(step)

        if adversarial:
            set_requires_grad(discriminator, True)
            real_pair = torch.cat([source, target], 1)
            with self.autocast():
                fake_logits = discriminator(self.for_discriminator(torch.cat([source, output.detach()], 1))).float()
                real_logits = discriminator(self.for_discriminator(real_pair)).float()
            self.observe_real_logits(real_logits)
            d_loss = 0.5 * self.loss.discriminator(real_logits, fake_logits)
            d_gradient = self.update_discriminators(d_loss, step, (discriminator, real_pair))
            real_score = self.loss.score(real_logits.detach()).mean()
            fake_score = self.loss.score(fake_logits.detach()).mean()

            set_requires_grad(discriminator, False)
            with self.autocast():
                g_adversarial = self.loss.generator(
                    discriminator(self.for_discriminator(torch.cat([source, output], 1))).float())
        g_l1 = F.l1_loss(output.float(), target)
        g_loss = self.adversarial_weight * g_adversarial + self.l1_weight * g_l1
        self.optimizers["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["generator"].step()
        g_gradient = gradient_norm(generator)

        metrics = {"loss/g": g_loss.detach(), "loss/g_l1": g_l1.detach(), "grad/generator": g_gradient}
        if self.discriminator is not None:  # (none at loss.adversarial_weight = 0: nothing of it to log)
            metrics |= {"loss/d": d_loss.detach(), "loss/g_adversarial": g_adversarial.detach(), "d/real": real_score,
                        "d/fake": fake_score, "grad/discriminator": d_gradient, **self.augment_metrics()}
        if self.r1.enabled:
            metrics["loss/r1"] = self.r1.latest
        return metrics

    def load_preview_items(self) -> dict[str, torch.Tensor]:
        # (SR evaluation images differ in size: cropped to a common one)
        return preview_pairs(self.evaluation_images.get(), self.config.log.num_samples)

    def preview(self) -> dict[str, torch.Tensor]:
        """Strips of input | output | target for a fixed evaluation batch."""
        return {PREVIEW_NAME: preview_strips(self.generator, self.preview_batch(), self.size_multiple, self.autocast,
                                             self.config.train.batch_size)}

    def validation_metrics(self) -> dict[str, float]:
        """PSNR/SSIM on the evaluation set (Y channel, shaved, for super-resolution); for paired
        data also SWD (FID, KID) of the outputs against the targets."""
        return validation_scores(self.generator, self.evaluation_images.get(), self.config.data, self.device,
                                 self.size_multiple, self.distribution, self.validation_progress, self.validation_stop)

