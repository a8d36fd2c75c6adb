"""Generative metrics of translations: are the translated images distributed like real images
of the target domain? FID, KID and SWD of a set of outputs against a set of real targets.

pix2pix: the outputs of the validation inputs against the validation targets. CycleGAN: the
A -> B translations of testA against testB, and B -> A of testB against testA. Unlike PSNR,
these do not ask for the one right answer per input, only for outputs that look like the
domain, as papers compare translations.

SWD needs no weights; FID and KID need the Inception-v3 weights and are skipped, with one
warning, when they are absent (as for DCGAN). Both sets are uint8 images of one size. SWD
compares equal numbers of images: the larger set is cut to the smaller one's size by a fixed
random choice. Validation sets are small (100-200 images), so FID is biased upwards and only
comparable between runs on the same set; KID is unbiased.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence, TextIO

import torch
from torch import nn

from gan.core.inert import TRANSLATION_METRICS
from gan.core.progress import stoppable_progress
from gan.metrics.feature_distances import GaussianStatistics, frechet_distance, kernel_inception_distance
from gan.metrics.inception import (
    InceptionWeightsNotFoundError,
    inception_features,
    load_inception,
    skipped_for_missing_weights,
)
from gan.metrics.swd import MIN_RESOLUTION as SWD_MIN_RESOLUTION
from gan.metrics.swd import SWD_PATCHES, patch_descriptors, swd_from_descriptors


def fixed_subset(images: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """`count` of the images, chosen at random with `seed` (all of them, in order, when there are no more)."""
    if count >= len(images):
        return images
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count]
    return images[order.sort().values]


def with_both_directions(scores: dict[str, float], prefix: str = "") -> dict[str, float]:
    """CycleGAN's scores by direction (`swd_AtoB`, `swd_BtoA`, ...) plus, for each metric that both
    directions give, their mean under the plain name (`swd`), as pix2pix names its one direction: one
    figure to keep a best.pt by and to compare runs of either recipe on. `prefix`: "val/" in training."""
    both = {}
    for metric in ("swd", "fid", "kid"):
        pair = [scores.get(f"{prefix}{metric}_{direction}") for direction in ("AtoB", "BtoA")]
        if None not in pair:
            both[f"{prefix}{metric}"] = sum(pair) / 2
    return {**scores, **both}


@dataclass
class TargetStatistics:
    """What a target set is compared by, computed once: SWD descriptors of `count` images (None for
    images too small for SWD's pyramid) and Inception features of all of them (None without the weights)."""
    count: int
    resolution: int
    descriptors: list[torch.Tensor] | None
    features: torch.Tensor | None


class TranslationMetrics:
    """Scores sets of translated uint8 images against target sets by `names` (of TRANSLATION_METRICS;
    the others of a metrics.names list are not of translations). With `require_weights` False
    (training), FID/KID are dropped with one warning when the Inception weights are absent, which
    ends with `leave_out`, how not to ask for them; SWD is, the same way, for images smaller than its
    pyramid's 16 px."""

    def __init__(self, device: torch.device, inception_weights: str | None = None, require_weights: bool = False,
                 batch_size: int = 64, progress_stream: TextIO | None = None,
                 names: Sequence[str] = TRANSLATION_METRICS, leave_out: str = ""):
        self.device, self.batch_size = device, batch_size
        self.progress_stream = progress_stream  # where the Inception passes show progress (gan eval); None: silent
        # (training's) whether a stop came: a pass gives up at its next batch (PassStopped), for the checkpoint
        self.stop_noted: Callable[[], bool] | None = None
        self.names = [name for name in TRANSLATION_METRICS if name in names]
        self.inception: nn.Module | None = None
        self.skipped: dict[str, str] = {}
        through_inception = [name for name in self.names if name != "swd"]
        if not through_inception:
            return
        try:
            self.inception, _ = load_inception(inception_weights, device)
        except InceptionWeightsNotFoundError as error:
            if require_weights:
                raise
            self.skipped = dict.fromkeys(through_inception, str(error))
            warnings.warn(skipped_for_missing_weights(f"{', '.join(through_inception)} of translations", error,
                                                      leave_out), stacklevel=2)

    def targets(self, images: torch.Tensor, count: int) -> TargetStatistics:
        """Statistics of the real target images (n, 3, H, W) uint8, for output sets of `count` images."""
        _check_images(images, "targets")
        count = min(count, len(images))
        resolution = min(images.shape[-2:])
        descriptors = None
        if "swd" in self.names and resolution >= SWD_MIN_RESOLUTION:
            descriptors = patch_descriptors(fixed_subset(images, count), device=self.device,
                                            advance=self._progress(count, SWD_PATCHES.format("target")))
        elif "swd" in self.names and "swd" not in self.skipped:  # (a run of 12 px crops: its validation failed at the first step)
            self.skipped["swd"] = f"SWD needs images of at least {SWD_MIN_RESOLUTION} px, these are {resolution} px"
            warnings.warn(f"skipping swd of translations: {self.skipped['swd']}", stacklevel=2)
        features = (inception_features(self.inception, images, self.batch_size,
                                       self._progress(len(images), "target through Inception"))
                    if self.inception else None)
        return TargetStatistics(count, resolution, descriptors, features)

    def score(self, outputs: torch.Tensor, targets: TargetStatistics) -> dict[str, float]:
        """{'swd': mean over pyramid levels (x1e3), 'fid', 'kid'} of translated uint8 images (n, 3, H, W)."""
        _check_images(outputs, "outputs")
        if min(outputs.shape[-2:]) != targets.resolution:
            raise ValueError(f"outputs are {tuple(outputs.shape[-2:])} px, targets {targets.resolution} px")
        count = min(targets.count, len(outputs))
        if count != targets.count:
            raise ValueError(f"the target statistics are for {targets.count} outputs, got {len(outputs)}")
        scores = {}
        if targets.descriptors is not None:
            patches = patch_descriptors(fixed_subset(outputs, count), seed=1, device=self.device,
                                        advance=self._progress(count, SWD_PATCHES.format("translation")))
            levels = swd_from_descriptors(targets.descriptors, patches, targets.resolution, device=self.device)
            scores["swd"] = levels["swd/mean"]
        if targets.features is not None:
            real = targets.features.numpy()
            fake = inception_features(self.inception, outputs, self.batch_size,
                                      self._progress(len(outputs), "translation through Inception")).numpy()
            if "fid" in self.names:
                scores["fid"] = frechet_distance(GaussianStatistics.of(real), GaussianStatistics.of(fake))
            if "kid" in self.names:
                scores["kid"], _ = kernel_inception_distance(real, fake)
        return scores

    def _progress(self, total: int, unit: str) -> Callable[[int], None] | None:
        """`advance(count)` of a progress line on `progress_stream`, which gives up once `stop_noted`."""
        return stoppable_progress(total, self.progress_stream, unit, stop_noted=self.stop_noted)


def _check_images(images: torch.Tensor, what: str) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3 or len(images) < 2:
        raise TypeError(f"translation metrics take at least 2 uint8 images (N, 3, H, W) as {what}, "
                        f"got {images.dtype} {tuple(images.shape)}")
