"""Unconditional GAN training (DCGAN and any generator/discriminator pair from z)."""

from __future__ import annotations

import warnings
from typing import Any, Hashable

import torch
from torch import nn

from gan.core.config import Config, TrainConfig
from gan.core.progress import DelayedProgress
from gan.core.registry import ConfigError
from gan.nets import NetworkSpec, network_spec
from gan.nets.running import eval_mode, in_chunks
from gan.recipes import RECIPES
from gan.recipes.base import AutocastFactory, RecipeBase, adam, gradient_norm, require_rgb, set_requires_grad
from gan.recipes.ema import EMA, latent_batches, standing_statistics
from gan.recipes.losses import AdversarialLoss, add_instance_noise, instance_noise_std, shard_draw


@RECIPES.register("dcgan")
class DCGANRecipe(RecipeBase):
    """z -> G -> fake; D sees real and fake in separate batches (BatchNorm statistics).

    Per step: `train.d_steps` discriminator updates (fresh z each), then one
    generator update on the last fake batch, then the generator EMA update.
    """

    gradient_penalty = True  # wgan-gp's penalty is applied here (the other recipes have none: refused there)
    datasets = ("synthetic", "folder", "celeba")  # single images
    averaged = ("generator",)
    supplied_args = {"generator": ("resolution",), "discriminator": ("resolution",)}

    @classmethod
    def network_specs(cls, config: Config) -> dict[str, NetworkSpec]:
        model = config.model
        if config.train.adversarial_start:
            raise ConfigError("train.adversarial_start is for recipes with a reconstruction loss to train on first "
                              "(pix2pix, srgan, cyclegan); dcgan's generator learns only from its discriminator")
        resolution = config.data.resolution
        from_data = {"resolution": "data.resolution"}
        specs = {"generator": network_spec("generator", model.generator, model.generator_args,
                                           "model.generator_args", from_data, resolution=resolution),
                 "discriminator": network_spec("discriminator", model.discriminator, model.discriminator_args,
                                               "model.discriminator_args", from_data, resolution=resolution)}
        # G's images and the real ones both go to D: each network's image side meets the data.
        require_rgb(specs["generator"], "model.generator_args", "image_channels")
        require_rgb(specs["discriminator"], "model.discriminator_args", "image_channels")
        return specs

    def __init__(self, config: Config, device: torch.device, autocast: AutocastFactory):
        super().__init__(config, device, autocast)
        train = config.train
        built = self.build_networks(kept=("generator",))
        self.generator, self.discriminator = built["generator"], built["discriminator"]
        self.latent_dim = self._checked_latent_dim(config, device)
        self.networks = {"generator": self.generator, "discriminator": self.discriminator}
        self.ema = EMA(self.generator, train.ema_decay) if train.ema_decay > 0 else None
        if self.ema and train.ema_bn_batches != TrainConfig().ema_bn_batches and not any(
                isinstance(module, nn.modules.batchnorm._BatchNorm) for module in self.generator.modules()):
            warnings.warn(f"train.ema_bn_batches = {train.ema_bn_batches} changes nothing: it sets how many batches "
                          "recompute the EMA generator's BatchNorm statistics, and this generator has no BatchNorm "
                          f"(model.generator_args.norm = {config.model.generator_args.get('norm')!r})", stacklevel=2)
        if self.ema:  # (as `averaged` says: readers expect generator_ema when ema_decay > 0)
            self.networks["generator_ema"] = self.ema.average
        self.optimizers = {
            "generator": adam(self.generator, train.g_lr, train, device),
            "discriminator": adam(self.discriminator, train.d_lr, train, device),
        }
        self.loss = AdversarialLoss(config.loss.adversarial, config.loss.label_smoothing, config.loss.gp_weight)
        self.use_diffaugment()
        # Fixed latents for preview grids, from their own generator so the global RNG is untouched.
        # (rank, processes) under torchrun: each step's latents are drawn for the global batch and
        # sliced, so the result does not depend on how many processes share it.
        self.process_shard = (0, 1)
        latents_rng = torch.Generator().manual_seed(train.seed + 12345)
        self.fixed_latents = torch.randn(config.log.num_samples, self.latent_dim, generator=latents_rng,
                                         dtype=torch.float32).to(device)  # (as the generator: not the default dtype)
        self._statistics_step: int | None = None  # the step whose EMA statistics are in place
        # Instance noise's annealed std, a device tensor that `before_step` fills: a captured step reads it.
        self.noise_std = torch.full((), self._noise_std(1), device=device) if config.loss.instance_noise else None

    def _noise_std(self, step: int) -> float:
        return instance_noise_std(self.config, step)

    def before_step(self, step: int) -> None:
        if self.noise_std is not None:
            self.noise_std.fill_(self._noise_std(step))

    def _checked_latent_dim(self, config: Config, device: torch.device) -> int:
        """The generator's `latent_dim`, once it is seen to make one image of data.resolution from one latent:
        a network of one's own that lacks the attribute, or makes another size, met a traceback at step 1."""
        name, resolution = config.model.generator, config.data.resolution
        latent_dim = getattr(self.generator, "latent_dim", None)
        if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1:
            raise ConfigError(f"model.generator = '{name}' has no latent_dim (a whole number, the length of the "
                              f"latents it takes), which an unconditional generator states (docs/layout.md)")
        with torch.no_grad(), eval_mode(self.generator):
            made = tuple(self.generator(torch.zeros(1, latent_dim, device=device, dtype=torch.float32)).shape)
        if made != (1, 3, resolution, resolution):
            raise ConfigError(f"model.generator = '{name}' makes images of shape {made} from one latent, not "
                              f"(1, 3, {resolution}, {resolution}) (data.resolution = {resolution})")
        return latent_dim

    def graph_key(self, step: int) -> Hashable | None:
        return ("dcgan", self.r1.due(step))

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        real = batch["image"]
        num = real.shape[0]
        noise_std = self.noise_std
        generator, discriminator = self.generator, self.discriminator

        set_requires_grad(discriminator, True)
        d_steps = self.config.train.d_steps
        critic: dict[str, torch.Tensor] = {}  # the critic's terms summed over its steps, logged as their mean
        for _ in range(d_steps):
            latents = shard_draw(lambda count: torch.randn(count, self.latent_dim, device=self.device,
                                                           dtype=torch.float32), num,
                                 self.process_shard)
            with self.autocast():
                fake = generator(latents)
                real_seen, fake_seen = self.for_discriminator(real), self.for_discriminator(fake.detach())
                real_logits = discriminator(add_instance_noise(real_seen, noise_std, self.process_shard)).float()
                fake_logits = discriminator(add_instance_noise(fake_seen, noise_std, self.process_shard)).float()
            self.observe_real_logits(real_logits)
            d_loss = self.loss.discriminator(real_logits, fake_logits)
            penalty = self.loss.penalty(discriminator, real_seen, fake_seen.float(), self.process_shard)
            d_total = d_loss if penalty is None else d_loss + penalty
            terms = {"grad/discriminator": self.update_discriminators(d_total, step, (discriminator, real)),
                     "loss/d": d_loss.detach(), "d/real": self.loss.score(real_logits.detach()).mean(),
                     "d/fake": self.loss.score(fake_logits.detach()).mean()}
            if penalty is not None:
                terms["loss/gp"] = penalty.detach()
            for name, value in terms.items():
                critic[name] = critic[name] + value if name in critic else value

        set_requires_grad(discriminator, False)
        with self.autocast():
            g_logits = discriminator(add_instance_noise(self.for_discriminator(fake), noise_std,
                                                        self.process_shard)).float()
        g_loss = self.loss.generator(g_logits)
        self.optimizers["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["generator"].step()
        g_gradient = gradient_norm(generator)
        if self.ema:
            self.ema.update(generator, step)

        # (the last critic step's alone, once trained d_steps - 1 times on this batch, read lower than the steps')
        critic = {name: value / d_steps for name, value in critic.items()}
        metrics = {
            "loss/d": critic.pop("loss/d"),
            "loss/g": g_loss.detach(),
            "d/real": critic.pop("d/real"),
            "d/fake": critic.pop("d/fake"),
            "grad/generator": g_gradient,
            "grad/discriminator": critic.pop("grad/discriminator"),
            **self.augment_metrics(),
            **critic,  # (loss/gp)
        }
        if self.r1.enabled:
            metrics["loss/r1"] = self.r1.latest
        return metrics

    def prepare_outputs(self, step: int) -> None:
        """Before previews, metrics and the checkpoint of `step`: the EMA generator's BatchNorm
        statistics recomputed for its own weights (`train.ema_bn_batches`), once per step."""
        train = self.config.train
        if self.ema and train.ema_bn_batches and self._statistics_step != step:
            latents = latent_batches(train.ema_bn_batches, train.batch_size, self.generator.latent_dim,
                                     seed=train.seed * 1_000_003 + step, device=self.device)
            # (32 passes at batch 64 took 37 s on a 2-core CPU at 128 px: a line once they take 2 s)
            progress = DelayedProgress(train.ema_bn_batches, "EMA BatchNorm batch", "batch",
                                       stream=self.validation_progress) if self.validation_progress else None
            standing_statistics(self.ema.average, latents, self.autocast, progress and progress.update)
            if progress:
                progress.close()
            self._statistics_step = step

    @torch.no_grad()
    def preview(self) -> dict[str, torch.Tensor]:
        generators = {"generator": self.generator}
        if self.ema:
            generators["generator_ema"] = self.ema.average
        grids = {}
        for name, generator in generators.items():  # (in eval mode, so a chunk's images are the one pass's)
            with eval_mode(generator), self.autocast():
                grids[name] = in_chunks(generator, self.fixed_latents, self.config.train.batch_size).float()
        return grids

    def evaluation_generator(self) -> nn.Module:
        """The generator whose samples are scored (FID, SWD, ...): the EMA copy when there is one."""
        return self.ema.average if self.ema else self.generator

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "fixed_latents": self.fixed_latents.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The run's preview latents; a resume with another `log.num_samples` keeps those of the
        samples it still shows and takes the others from this run's own draw."""
        super().load_state_dict(state)
        stored, count = state["fixed_latents"].to(self.device), len(self.fixed_latents)
        self.fixed_latents = torch.cat([stored[:count], self.fixed_latents[len(stored):]])

