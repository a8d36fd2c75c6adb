"""Unpaired image-to-image translation (Zhu et al. 2017): CycleGAN.

Two generators (A -> B and B -> A) and two PatchGAN discriminators (one per domain).
Generators minimise adversarial losses (`loss.adversarial`: LSGAN in the shipped configs, as the
paper) + lambda * cycle-consistency L1 in both
directions + (optionally) identity L1; each discriminator sees fakes drawn from a
history pool of past generated images.
"""

from __future__ import annotations

import warnings
from typing import Any, Hashable

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from gan.core.config import Config
from gan.core.images import signed_to_uint8, uint8_to_signed
from gan.core.progress import stoppable_progress
from gan.metrics.translation import with_both_directions
from gan.nets import NetworkSpec, network_spec
from gan.nets.running import eval_mode, in_chunks, run_padded
from gan.recipes import RECIPES
from gan.recipes.base import AutocastFactory, RecipeBase, adam, gradient_norm, require_rgb, set_requires_grad
from gan.recipes.image_pool import ImagePool
from gan.recipes.image_to_image import (
    DistributionScores,
    RunEvaluationSet,
    check_crop_size,
    check_discriminator_depth,
    refuse_idle_generator,
    warn_of_idle_steps,
)
from gan.recipes.losses import AdversarialLoss
from gan.recipes.schedules import adversarial_on

DIRECTIONS = ("AtoB", "BtoA")


@RECIPES.register("cyclegan")
class CycleGANRecipe(RecipeBase):
    """Networks are named by what they do: `generator_AtoB` maps A to B, `discriminator_B`
    tells real B from generated B. Both generators share one optimiser, as do both
    discriminators (as in the reference)."""

    datasets = ("unpaired",)
    supplied_args = {"discriminator": ("in_channels",)}

    @classmethod
    def network_specs(cls, config: Config) -> dict[str, NetworkSpec]:
        model = config.model
        generator = network_spec("generator", model.generator, model.generator_args, "model.generator_args")
        require_rgb(generator, "model.generator_args", "in_channels", "out_channels")
        check_crop_size(generator, config.data.resolution)
        discriminator = network_spec("discriminator", model.discriminator, model.discriminator_args,
                                     "model.discriminator_args", in_channels=3)
        check_discriminator_depth(discriminator, config.data.resolution)
        refuse_idle_generator(config, "loss.cycle_weight")
        return {**{f"generator_{direction}": generator for direction in DIRECTIONS},
                **{f"discriminator_{domain}": discriminator for domain in ("A", "B")}}

    @classmethod
    def inert_keys(cls, config: Config) -> dict[str, str]:
        """The identity term weighs loss.identity_weight × loss.cycle_weight: at a cycle weight of 0
        the identity weight changes nothing (an ablation of the cycle term loses the identity term too)."""
        loss = config.loss
        if loss.cycle_weight == 0 and loss.identity_weight:
            return {"loss.identity_weight": f"loss.identity_weight = {loss.identity_weight!r} (the identity term weighs "
                                            "loss.identity_weight × loss.cycle_weight, and loss.cycle_weight = 0)"}
        return {}

    def __init__(self, config: Config, device: torch.device, autocast: AutocastFactory):
        super().__init__(config, device, autocast)
        train, loss = config.train, config.loss
        for text in self.inert_keys(config).values():
            warnings.warn(f"{text}: it changes nothing", stacklevel=2)
        built = self.build_networks(kept=tuple(f"generator_{direction}" for direction in DIRECTIONS))
        warn_of_idle_steps(config, "loss.cycle_weight")
        self.generators = {direction: built[f"generator_{direction}"] for direction in DIRECTIONS}
        self.discriminators = {domain: built[f"discriminator_{domain}"] for domain in ("A", "B")}
        self.networks = {**{f"generator_{d}": g for d, g in self.generators.items()},
                         **{f"discriminator_{d}": net for d, net in self.discriminators.items()}}
        self.optimizers = {
            "generator": adam(list(self.generators.values()), train.g_lr, train, device),
            "discriminator": adam(list(self.discriminators.values()), train.d_lr, train, device),
        }
        self.loss = AdversarialLoss(loss.adversarial, loss.label_smoothing, loss.gp_weight)
        self.pools = {domain: ImagePool(loss.pool_size, device, seed=train.seed + index)
                      for index, domain in enumerate(("A", "B"))}
        self.use_diffaugment()
        self.size_multiple = getattr(self.generators["AtoB"], "size_multiple", 1)
        self.distribution = DistributionScores(config, device)
        self.evaluation_images = RunEvaluationSet(config.data)
        self._test_images: dict[str, torch.Tensor] | None = None

    def graph_key(self, step: int) -> Hashable | None:
        adversarial = adversarial_on(step, self.config.train)
        return adversarial, adversarial and self.r1.due(step)

    def device_generators(self) -> list[torch.Generator]:
        return [*super().device_generators(), *(pool.generator for pool in self.pools.values())]

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        real = {"A": batch["a"], "B": batch["b"]}
        to_b, to_a = self.generators["AtoB"], self.generators["BtoA"]
        cycle_weight = self.config.loss.cycle_weight
        identity_weight = self.config.loss.identity_weight * cycle_weight
        adversarial = adversarial_on(step, self.config.train)  # else the cycle and identity terms alone

        # Generators: fool both discriminators, reconstruct both inputs, leave the target domain alone.
        for discriminator in self.discriminators.values():
            set_requires_grad(discriminator, False)
        with self.autocast():
            fake = {"B": to_b(real["A"]), "A": to_a(real["B"])}
            reconstructed = {"A": to_a(fake["B"]), "B": to_b(fake["A"])}
            fake_logits = {domain: self.discriminators[domain](self.for_discriminator(fake[domain])).float()
                           for domain in ("A", "B")} if adversarial else None
            identity = {"A": to_a(real["A"]), "B": to_b(real["B"])} if identity_weight else None
        terms = {}
        for domain in ("A", "B"):
            terms[f"loss/g_{domain}"] = (self.loss.generator(fake_logits[domain]) if adversarial
                                         else torch.zeros((), device=real[domain].device))
            terms[f"loss/cycle_{domain}"] = F.l1_loss(reconstructed[domain].float(), real[domain])
            if identity is not None:
                terms[f"loss/identity_{domain}"] = F.l1_loss(identity[domain].float(), real[domain])
        g_loss = sum(terms[f"loss/g_{d}"] + cycle_weight * terms[f"loss/cycle_{d}"] for d in ("A", "B"))
        if identity is not None:
            g_loss = g_loss + identity_weight * (terms["loss/identity_A"] + terms["loss/identity_B"])
        self.optimizers["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["generator"].step()
        terms["grad/generator"] = gradient_norm(to_b, to_a)

        # Discriminators: real vs. a mix of new and past fakes; objective halved as in the paper.
        if not adversarial:
            zero = torch.zeros((), device=g_loss.device)
            scores = {f"d_{domain}/{kind}": zero for domain in ("A", "B") for kind in ("real", "fake")}
            terms.update({"loss/d_A": zero, "loss/d_B": zero, "loss/d": zero, "grad/discriminator": zero})
            scores.update({"d/real": zero, "d/fake": zero})
            if self.r1.enabled:
                terms["loss/r1"] = self.r1.latest
            return {**{name: value.detach() for name, value in terms.items()}, "loss/g": g_loss.detach(), **scores,
                    **self.augment_metrics()}
        scores = {}
        d_total = torch.zeros((), device=g_loss.device)
        for domain, discriminator in self.discriminators.items():
            set_requires_grad(discriminator, True)
            pooled = self.pools[domain].query(fake[domain].float())
            with self.autocast():
                real_logits = discriminator(self.for_discriminator(real[domain])).float()
                pooled_logits = discriminator(self.for_discriminator(pooled)).float()
            self.observe_real_logits(real_logits)  # both domains steer one adaptive p
            terms[f"loss/d_{domain}"] = 0.5 * self.loss.discriminator(real_logits, pooled_logits)
            scores[f"d_{domain}/real"] = self.loss.score(real_logits.detach()).mean()
            scores[f"d_{domain}/fake"] = self.loss.score(pooled_logits.detach()).mean()
            d_total = d_total + terms[f"loss/d_{domain}"]
        # every recipe's tags (docs/comparing-runs.md): both objectives' sum, the domains' mean scores
        terms["loss/d"] = d_total.detach()
        for kind in ("real", "fake"):
            scores[f"d/{kind}"] = (scores[f"d_A/{kind}"] + scores[f"d_B/{kind}"]) / 2
        terms["grad/discriminator"] = self.update_discriminators(
            d_total, step, *[(net, real[domain]) for domain, net in self.discriminators.items()])
        if self.r1.enabled:
            terms["loss/r1"] = self.r1.latest

        return {**{name: value.detach() for name, value in terms.items()}, "loss/g": g_loss.detach(), **scores,
                **self.augment_metrics()}

    @torch.no_grad()
    def load_preview_items(self) -> dict[str, torch.Tensor]:
        """The first `log.num_samples` readable evaluation images of each domain: a domain that holds
        fewer shows each of its own once (items pair A[i % n_A] with B[i % n_B]: one A image showed three
        times beside three B images)."""
        count, dataset = self.config.log.num_samples, self.evaluation_dataset()
        images = {name: dataset.domain_images(name, count) for name in ("a", "b")}
        for name, held in images.items():
            if len(held) < count:
                warnings.warn(f"log.num_samples = {count}: the evaluation images of domain {name.upper()} hold "
                              f"{len(held)} readable image(s), so its preview grid shows {len(held)}", stacklevel=2)
        return {name: torch.stack(held) for name, held in images.items()}

    def preview(self) -> dict[str, torch.Tensor]:
        """Strips real A | fake B | reconstructed A, and real B | fake A | reconstructed B."""
        batch = self.preview_batch()
        to_b, to_a = self.generators["AtoB"], self.generators["BtoA"]
        with eval_mode(to_b), eval_mode(to_a), self.autocast():
            fake_b, fake_a = self._translated(to_b, batch["a"]), self._translated(to_a, batch["b"])
            rec_a, rec_b = self._translated(to_a, fake_b), self._translated(to_b, fake_a)
        return {"A_fakeB_recA": torch.cat([batch["a"], fake_b.float(), rec_a.float()], dim=-1),
                "B_fakeA_recB": torch.cat([batch["b"], fake_a.float(), rec_b.float()], dim=-1)}

    def _translated(self, generator: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """`images` through `generator` (in eval mode), train.batch_size at a time (`in_chunks`: memory bounded)."""
        return in_chunks(lambda chunk: run_padded(generator, chunk, self.size_multiple), images,
                         self.config.train.batch_size)

    def evaluation_dataset(self) -> Dataset:
        # (read once for the previews and validation: its unreadable files are warned of once)
        return self.evaluation_images.get()

    def test_images(self) -> dict[str, torch.Tensor]:
        """Every evaluation image of each domain once ({"A": (n_A, 3, R, R), "B": ...} in [-1, 1]), loaded once."""
        if self._test_images is None:
            dataset = self.evaluation_dataset()
            self._test_images = {"A": torch.stack(dataset.domain_images("a")),
                                 "B": torch.stack(dataset.domain_images("b"))}
        return self._test_images

    @torch.no_grad()
    def validation_metrics(self) -> dict[str, float]:
        """On the evaluation images (data.val_split, testA/testB): the cycle-reconstruction L1 (in [0, 1]
        units, both domains' images together) and SWD (FID, KID) of the A -> B translations of testA
        against testB, of B -> A against testA, and their mean (val/swd). In fp32 whatever `train.amp`
        says, as `gan eval` scores."""
        images = self.test_images()
        generators = {"B": self.generators["AtoB"], "A": self.generators["BtoA"]}  # by the domain they make
        translated, reconstruction_error, count = {}, 0.0, 0
        advance = stoppable_progress(len(images["A"]) + len(images["B"]), self.validation_progress, "validation image",
                                   stop_noted=self.validation_stop)
        self.distribution.progress_stream, self.distribution.stop_noted = self.validation_progress, self.validation_stop
        with eval_mode(generators["A"]), eval_mode(generators["B"]):
            for source, target in (("A", "B"), ("B", "A")):
                outputs, errors = [], []
                for batch in images[source].split(self.config.train.batch_size):
                    batch = batch.to(self.device)
                    # each translation as the 8-bit image a file holds, as gan eval measures the round trip
                    fake_pixels = signed_to_uint8(run_padded(generators[target], batch, self.size_multiple))
                    fake = uint8_to_signed(fake_pixels)
                    back = uint8_to_signed(signed_to_uint8(run_padded(generators[source], fake, self.size_multiple)))
                    outputs.append(fake_pixels.cpu())
                    errors.append((back - batch).abs().flatten(1).mean(1).cpu() / 2)  # [-1, 1] -> [0, 1] units
                    if advance is not None:
                        advance(len(batch))
                translated[target] = torch.cat(outputs)
                reconstruction_error += float(torch.cat(errors).sum())
                count += len(images[source])
        scores = {"val/cycle_l1": reconstruction_error / count}
        for source, target in (("A", "B"), ("B", "A")):
            scores.update(self.distribution.score(f"_{source}to{target}", translated[target],
                                                  lambda target=target: signed_to_uint8(images[target])))
        return with_both_directions(scores, "val/")

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.per_process_state()}

    def per_process_state(self) -> dict[str, Any]:
        """What each process of a torchrun run holds of its own: its image pools, of the fakes of its
        share of the batches (the checkpoint keeps every process's, for an exact resume)."""
        return {f"pool_{domain}": pool.state_dict() for domain, pool in self.pools.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.load_per_process_state(state)

    def load_per_process_state(self, state: dict[str, Any]) -> None:
        side = self.config.data.resolution
        for domain, pool in self.pools.items():
            stored = state[f"pool_{domain}"]
            images = stored["images"]
            if len(images) and tuple(images.shape[-2:]) != (side, side):  # a resume with another data.resolution
                if domain == "A":
                    warnings.warn(f"the image pools hold fakes of {images.shape[-1]}x{images.shape[-2]} px from "
                                  f"before this resume's data.resolution = {side}: they start empty, and the "
                                  "discriminators see fakes of the new size only", stacklevel=2)
                stored = {**stored, "images": images[:0]}
            elif "generator" not in stored and domain == "A" and pool.size:  # (a gan's before 2026-12-02; no pool: no draws)
                warnings.warn("the checkpoint's image pools predate their own random stream (a gan of before "
                              "2026-12-02 wrote it): their swaps draw from a stream started afresh here, so this "
                              "resume no longer matches an uninterrupted run", stacklevel=2)
            pool.load_state_dict(stored, self.device)
