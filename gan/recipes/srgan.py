"""Super-resolution with a network that upsamples itself: SRResNet and SRGAN (Ledig et al. 2017).

SRResNet (`recipe = "srresnet"`, `loss.adversarial_weight = 0`): the generator alone,
trained on a content loss, pixel MSE by default (the PSNR-oriented baseline), or L1 as
EDSR (`loss.content = "l1"`, `batch_norm = false`).
SRGAN (`recipe = "srgan"`): the same generator, usually started from an SRResNet
checkpoint (`model.init_generator`), trained on its content loss (experiments/srgan_x4.toml:
VGG features; pixel MSE when `loss.content` is left out) plus `loss.adversarial_weight` (1e-3)
times the adversarial loss against the SRGAN discriminator.
"""

from __future__ import annotations

import warnings
from typing import Any, Hashable

import torch
import torch.nn.functional as F

from gan.core.config import Config
from gan.core.distributed import from_environment
from gan.core.registry import ConfigError
from gan.nets import NetworkSpec, network_spec
from gan.nets.vgg import VGGFeatures, vgg_layer_names, weights_digest
from gan.recipes import RECIPES
from gan.recipes.base import AutocastFactory, RecipeBase, adam, gradient_norm, require_rgb, set_requires_grad
from gan.recipes.image_to_image import (
    PREVIEW_NAME,
    RunEvaluationSet,
    preview_pairs,
    preview_strips,
    unused_discriminator_keys,
    validation_scores,
    warn_of_discriminator_keys,
)
from gan.recipes.losses import AdversarialLoss, PerceptualLoss
from gan.recipes.schedules import adversarial_on

FROM_DATA = {"scale": "data.scale"}  # the generator's arguments set from other keys than model.generator_args


@RECIPES.register("srgan")
@RECIPES.register("srresnet")
class SRGANRecipe(RecipeBase):
    """LR -> G -> SR, trained on the content loss against HR, plus the adversarial loss when its weight is above 0."""

    default_adversarial_weight = 1e-3  # the paper's
    datasets = ("sr_pairs",)
    supplied_args = {"generator": ("scale",)}

    @classmethod
    def adversarial_weight_default(cls, name: str) -> float:
        """srresnet is the generator on its content loss alone: no discriminator unless a weight asks."""
        return 0.0 if name == "srresnet" else cls.default_adversarial_weight

    @classmethod
    def network_specs(cls, config: Config) -> dict[str, NetworkSpec]:
        data, model = config.data, config.model
        if data.dataset != "sr_pairs" or data.upsample_input:
            raise ConfigError(f"recipe '{config.recipe}' needs data.dataset = \"sr_pairs\" with "
                              "data.upsample_input = false: its generator upsamples the LR image itself")
        specs = {"generator": network_spec("generator", model.generator, model.generator_args,
                                           "model.generator_args", FROM_DATA, scale=data.scale)}
        require_rgb(specs["generator"], "model.generator_args", "image_channels")
        if config.recipe == "srgan" and not model.init_generator:
            raise ConfigError("model.init_generator is empty: SRGAN starts from a trained PSNR-oriented "
                              "generator. Train one, then pass its run directory (or a checkpoint file); with the shipped "
                              "configs:\n"
                              "  gan train experiments/edsr_x4.toml\n"
                              "  gan train experiments/srgan_x4.toml --set model.init_generator=runs/<N>-edsr_x4\n"
                              '(model.init_generator = "none" trains from random weights)')
        if config.loss.content == "vgg" and config.loss.vgg_layer not in vgg_layer_names(config.loss.vgg_arch):
            # (found before any weights load, naming the keys: it was found when the network was built)
            raise ConfigError(f"loss.vgg_layer = '{config.loss.vgg_layer}' is no layer of loss.vgg_arch = "
                              f"'{config.loss.vgg_arch}'; its layers: {', '.join(vgg_layer_names(config.loss.vgg_arch))}")
        processes = from_environment().world_size  # (each process's BatchNorm sees its own share of the batch)
        one_each = config.train.batch_size == processes  # (a batch the processes cannot share is refused later)
        shared = f" over {processes} processes (1 each)" if processes > 1 else ""
        if (model.generator == "srresnet" and specs["generator"].kwargs.get("batch_norm") and one_each
                and data.resolution // data.scale == 1):
            # (a traceback at step 1, as below: one LR pixel of one image is one value per channel)
            raise ConfigError(f"data.resolution = {data.resolution} at data.scale = {data.scale} (1x1 LR crops) with "
                              f"train.batch_size = {config.train.batch_size}{shared} is too small for the srresnet "
                              "generator's BatchNorm: it needs more than one value per channel; crop larger, train a "
                              "batch of 2 or more per process, or set model.generator_args.batch_norm = false")
        if config.loss.adversarial_weight:
            specs["discriminator"] = network_spec("discriminator", model.discriminator, model.discriminator_args,
                                                  "model.discriminator_args")
            require_rgb(specs["discriminator"], "model.discriminator_args", "in_channels")
            if model.discriminator == "srgan" and one_each and data.resolution <= 16:
                # (a traceback at step 1: BatchNorm cannot train on one value per channel)
                raise ConfigError(f"data.resolution = {data.resolution} with train.batch_size = "
                                  f"{config.train.batch_size}{shared} is too small for the SRGAN discriminator: its "
                                  "four stride-2 convolutions leave one value per channel for its BatchNorm; crop "
                                  "above 16 px or train a batch of 2 or more per process")
        else:
            cls.refuse_regularisers(config, "loss.adversarial_weight = 0 trains no discriminator (SRResNet)")
        return specs

    @classmethod
    def inert_keys(cls, config: Config) -> dict[str, str]:
        return unused_discriminator_keys(config)

    def __init__(self, config: Config, device: torch.device, autocast: AutocastFactory):
        super().__init__(config, device, autocast)
        loss, train = config.loss, config.train
        built = self.build_networks(kept=("generator",))
        self.generator = built["generator"]  # (from model.init_generator's run: `build_networks`)
        self.networks = {"generator": self.generator}
        self.optimizers = {"generator": adam(self.generator, train.g_lr, train, device)}
        self.adversarial_weight = loss.adversarial_weight
        if self.adversarial_weight and config.recipe == "srresnet":
            warnings.warn(f"recipe 'srresnet' with loss.adversarial_weight = {self.adversarial_weight:g} trains a "
                          "discriminator as SRGAN does; recipe = \"srgan\" names that (and starts from a trained "
                          "generator, model.init_generator)", stacklevel=2)
        if self.adversarial_weight:
            self.discriminator = built["discriminator"]
            self.networks["discriminator"] = self.discriminator
            self.optimizers["discriminator"] = adam(self.discriminator, train.d_lr, train, device)
            self.adversarial = AdversarialLoss(loss.adversarial, loss.label_smoothing, loss.gp_weight)
            self.use_diffaugment()
        else:
            warn_of_discriminator_keys(config)
        self.perceptual_weights = ""  # (what a resume checks: another file under the name changes the loss)
        if loss.content == "vgg":
            extractor = VGGFeatures(loss.vgg_layer, loss.vgg_arch, loss.vgg_weights)
            self.perceptual_weights = extractor.weights_digest
            self.content_loss = PerceptualLoss(extractor.to(device), loss.vgg_feature_scale)
        else:
            self.content_loss = F.l1_loss if loss.content == "l1" else F.mse_loss
        self.evaluation_images = RunEvaluationSet(config.data)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        return {**state, "perceptual_weights": self.perceptual_weights} if self.perceptual_weights else state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        trained_with = state.get("perceptual_weights")  # ("vgg19:<digest>": another arch is a change of settings, said)
        if not isinstance(trained_with, str) or not self.perceptual_weights:
            return
        if ":" in trained_with:
            same_arch, now = trained_with.split(":")[0] == self.perceptual_weights.split(":")[0], self.perceptual_weights
        else:  # (written before the arch was: of the layers it read)
            same_arch, now = True, weights_digest(self.content_loss.extractor.features)
        if same_arch and trained_with != now:
            weights = self.config.loss.vgg_weights or "the default file in torch's hub cache"
            warnings.warn(f"loss.vgg_weights ({weights}) holds other {self.config.loss.vgg_arch} weights than this run "
                          "trained with: its perceptual loss changes from here, so the run no longer matches an "
                          "uninterrupted one (give the file it trained with to resume it as it ran)", stacklevel=2)

    def graph_key(self, step: int) -> Hashable | None:
        adversarial = bool(self.adversarial_weight) and adversarial_on(step, self.config.train)
        return adversarial, adversarial and self.r1.due(step)

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        lr_images, hr_images = batch["input"], batch["target"]
        with self.autocast():
            sr_images = self.generator(lr_images)
        metrics = {}
        adversarial = self.adversarial_weight and adversarial_on(step, self.config.train)
        if self.adversarial_weight:
            zero = torch.zeros((), device=sr_images.device)
            metrics = {"loss/d": zero, "d/real": zero, "d/fake": zero, "loss/g_adversarial": zero,
                       "grad/discriminator": zero}
            if self.r1.enabled:
                metrics["loss/r1"] = self.r1.latest
        if adversarial:
            set_requires_grad(self.discriminator, True)
            with self.autocast():
                real_logits = self.discriminator(self.for_discriminator(hr_images)).float()
                fake_logits = self.discriminator(self.for_discriminator(sr_images.detach())).float()
            self.observe_real_logits(real_logits)
            d_loss = self.adversarial.discriminator(real_logits, fake_logits)
            metrics["grad/discriminator"] = self.update_discriminators(d_loss, step, (self.discriminator, hr_images))
            set_requires_grad(self.discriminator, False)
            metrics.update({"loss/d": d_loss.detach(),
                            "d/real": self.adversarial.score(real_logits.detach()).mean(),
                            "d/fake": self.adversarial.score(fake_logits.detach()).mean()})

        with self.autocast():
            content = self.content_loss(sr_images.float(), hr_images)
        g_loss = content
        if adversarial:
            with self.autocast():
                g_adversarial = self.adversarial.generator(
                    self.discriminator(self.for_discriminator(sr_images)).float())
            g_loss = content + self.adversarial_weight * g_adversarial
            metrics["loss/g_adversarial"] = g_adversarial.detach()
        self.optimizers["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["generator"].step()
        metrics["grad/generator"] = gradient_norm(self.generator)
        return {"loss/content": content.detach(), "loss/g": g_loss.detach(), **metrics, **self.augment_metrics()}

    def load_preview_items(self) -> dict[str, torch.Tensor]:
        # (SR evaluation images differ in size: cropped to a common one)
        return preview_pairs(self.evaluation_images.get(), self.config.log.num_samples)

    def preview(self) -> dict[str, torch.Tensor]:
        """Strips of LR input (enlarged, nearest) | output | HR target for a fixed validation batch."""
        return {PREVIEW_NAME: preview_strips(self.generator, self.preview_batch(), 1, self.autocast,
                                             self.config.train.batch_size)}

    def validation_metrics(self) -> dict[str, float]:
        """PSNR/SSIM on the validation folder (Y channel, `data.scale` pixels shaved)."""
        return validation_scores(self.generator, self.evaluation_images.get(), self.config.data, self.device, 1,
                                 progress_stream=self.validation_progress, stop_noted=self.validation_stop)
