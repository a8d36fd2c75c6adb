"""What the image-to-image recipes (pix2pix, SRResNet/SRGAN, CycleGAN) share: preview strips of
a fixed evaluation batch, PSNR/SSIM on the evaluation set during training, and the generative
metrics (SWD, FID, KID) of translations."""

from __future__ import annotations

import math
import warnings
from typing import Callable, TextIO

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from gan.core.config import Config, DataConfig, config_to_dict, flatten_config
from gan.core.images import signed_to_uint8
from gan.core.inert import TRANSLATION_METRICS
from gan.core.memory import out_of_memory
from gan.core.progress import stoppable_progress
from gan.core.registry import ConfigError
from gan.data import build_dataset
from gan.data.decode import ImageReadError
from gan.data.image_files import preview_items, readable_items
from gan.metrics import psnr, signed_to_255, ssim
from gan.metrics.image_quality import smallest_sr_image
from gan.metrics.inception import NOT_IN_TRAINING
from gan.metrics.translation import TargetStatistics, TranslationMetrics
from gan.nets import NetworkSpec, network_defaults
from gan.nets.patchgan import deepest_for, smallest_input
from gan.nets.running import eval_mode, in_chunks, run_padded
from gan.recipes.base import AutocastFactory

# What only a discriminator reads: set with loss.adversarial_weight = 0 (pix2pix, SRResNet/SRGAN) they change nothing.
DISCRIMINATOR_KEYS = ("loss.adversarial", "loss.label_smoothing", "train.d_lr", "train.adversarial_start",
                      "model.init_discriminator")
PREVIEW_NAME = "input_output_target"  # the grids of input | output | target strips, in TensorBoard and images/


def unused_discriminator_keys(config: Config) -> dict[str, str]:
    """key -> `key = value` for the discriminator's keys a run with loss.adversarial_weight = 0 (no
    discriminator) was given: those set away from their defaults, and its name and arguments, whatever
    they are."""
    if config.loss.adversarial_weight:
        return {}
    defaults, values = flatten_config(config_to_dict(Config())), flatten_config(config_to_dict(config))
    given = {key: f"{key} = {values[key]!r}" for key in DISCRIMINATOR_KEYS if values[key] != defaults[key]}
    given["model.discriminator"] = f"model.discriminator = {config.model.discriminator!r}"
    given |= {f"model.discriminator_args.{name}": f"model.discriminator_args.{name} = {value!r}"
              for name, value in config.model.discriminator_args.items()}
    return given


def warn_of_discriminator_keys(config: Config) -> None:
    """One warning naming the discriminator's keys a run without one was given away from their defaults
    (they change nothing). Not its name, nor arguments at the network's own defaults: a config names the
    discriminator a later adversarial stage trains, as SRResNet's does SRGAN's."""
    network = network_defaults("discriminator", config.model.discriminator)
    arguments = config.model.discriminator_args
    given = [text for key, text in unused_discriminator_keys(config).items() if key != "model.discriminator" and not (
        key.startswith("model.discriminator_args.")
        and network.get(name := key.removeprefix("model.discriminator_args."), object()) == arguments[name])]
    if given:
        warnings.warn(f"{'; '.join(given)}: {'it changes' if len(given) == 1 else 'they change'} nothing, as "
                      "loss.adversarial_weight = 0 trains no discriminator", stacklevel=3)


def refuse_idle_generator(config: Config, key: str) -> None:
    """A generator whose reconstruction term `key` is weighted 0 learns from its adversarial term
    alone: refused where that term never turns on (train.adversarial_start not below train.steps),
    where the whole run would train nothing."""
    train = config.train
    if not getattr(config.loss, key.removeprefix("loss.")) and train.steps <= train.adversarial_start:
        raise ConfigError(f"{key} = 0 and train.adversarial_start = {train.adversarial_start} is not below "
                          f"train.steps = {train.steps}: the generator would learn nothing (its reconstruction term "
                          f"is weighted 0, and its adversarial term never turns on); set {key} above 0 or "
                          f"train.adversarial_start below {train.steps}")


def warn_of_idle_steps(config: Config, key: str) -> None:
    """With the reconstruction term `key` weighted 0, the steps before train.adversarial_start train
    nothing: the generator has no loss, and the discriminator waits."""
    start = config.train.adversarial_start
    if not getattr(config.loss, key.removeprefix("loss.")) and start:
        warnings.warn(f"{key} = 0 with train.adversarial_start = {start}: the first {start} steps train nothing (the "
                      "generator's reconstruction term is weighted 0, and the discriminator waits until then); "
                      "--set train.adversarial_start=0 trains from the first step", stacklevel=3)


def check_discriminator_depth(spec: NetworkSpec, size: int) -> None:
    """A PatchGAN too deep for the `size` px training crops it judges fails at its first step, far
    from the setting: refused here, naming the deepest that fits."""
    if spec.name != "patchgan" or size >= smallest_input(spec.kwargs["n_layers"]):
        return
    deepest = deepest_for(size)
    fits = (f"the most that fits is {deepest}" if deepest else
            f"none fits: a PatchGAN needs data.resolution >= {smallest_input(1)}")
    raise ConfigError(f"model.discriminator_args.n_layers = {spec.kwargs['n_layers']} is too deep for data.resolution "
                      f"= {size}: each layer halves the image, and n layers need at least 3 x 2^n px; {fits}")


def check_crop_size(spec: NetworkSpec, resolution: int) -> None:
    """A generator that halves its input some times needs crops of a multiple of 2^times px, and
    some a smallest size (built on the meta device to ask: no memory)."""
    with torch.device("meta"):
        generator = spec.build()
    size_multiple, smallest = getattr(generator, "size_multiple", 1), getattr(generator, "smallest_input", 1)
    if resolution < smallest:  # (the ResNet's norms need more than one value: a traceback at step 1)
        raise ConfigError(f"data.resolution ({resolution}) must be at least {smallest} for generator '{spec.name}'")
    if resolution % size_multiple:
        raise ConfigError(f"data.resolution ({resolution}) must be a multiple of {size_multiple} for generator "
                          f"'{spec.name}'")


def evaluation_set(data: DataConfig) -> Dataset:
    """The evaluation set of previews and validation: for super-resolution without the images too
    small to score, for A|B pairs without the strays narrower than 2:1 (each named in a warning), as
    `gan eval` leaves them out."""
    dataset = build_dataset(data, train=False)
    if data.dataset == "paired":
        dataset = dataset.without_strays()
    if data.dataset == "sr_pairs":
        dataset = dataset.without_images_under(smallest_sr_image(data.scale),
                                               f"x{data.scale} validation needs (SSIM's window after "
                                               f"{data.scale} pixels are shaved from each border)")
    return dataset


class RunEvaluationSet:
    """A run's `evaluation_set`, read at its first use and kept: every validation and the previews
    see the same images (a resume reads the folder again), and the scan, and its warnings of the
    images left out, happen once rather than at each validation."""

    def __init__(self, data: DataConfig):
        self.data = data
        self._dataset: Dataset | None = None

    def get(self) -> Dataset:
        if self._dataset is None:
            self._dataset = evaluation_set(self.data)
        return self._dataset


def preview_pairs(dataset: Dataset, num_samples: int) -> dict[str, torch.Tensor]:
    """The first `num_samples` evaluation pairs, centre-cropped to a common size (SR validation
    images differ in size), as `{"input", "target"}` batches."""
    items = preview_items(dataset, num_samples)
    height = min(item["target"].shape[-2] for item in items)
    width = min(item["target"].shape[-1] for item in items)
    items = [_centre_crop_pair(item, height, width) for item in items]
    return {key: torch.stack([item[key] for item in items]) for key in ("input", "target")}


def _centre_crop_pair(item: dict[str, torch.Tensor], height: int, width: int) -> dict[str, torch.Tensor]:
    """Crop the target to height x width around its centre, and the input to the same region
    (scaled down when the input is the LR image)."""
    target, source = item["target"], item["input"]
    factor = target.shape[-1] // source.shape[-1]
    height, width = height - height % factor, width - width % factor
    top = (target.shape[-2] - height) // 2 // factor * factor
    left = (target.shape[-1] - width) // 2 // factor * factor
    return {
        "target": target[..., top:top + height, left:left + width],
        "input": source[..., top // factor:(top + height) // factor, left // factor:(left + width) // factor],
    }


@torch.no_grad()
def preview_strips(generator: nn.Module, batch: dict[str, torch.Tensor], size_multiple: int,
                   autocast: AutocastFactory, chunk_size: int) -> torch.Tensor:
    """input | output | target side by side, (N, 3, H, 3W) in [-1, 1]; an LR input is shown enlarged.
    The generator runs on `chunk_size` inputs at a time (`in_chunks`: train.batch_size bounds its memory)."""
    with eval_mode(generator), autocast():
        output = in_chunks(lambda inputs: run_padded(generator, inputs, size_multiple), batch["input"], chunk_size)
        output = output.float().clamp(-1, 1)
    source = batch["input"]
    if source.shape[-2:] != output.shape[-2:]:
        source = F.interpolate(source, size=output.shape[-2:], mode="nearest")
    return torch.cat([source, output, batch["target"]], dim=-1)


@torch.no_grad()
def validation_scores(generator: nn.Module, dataset: Dataset, data: DataConfig, device: torch.device,
                      size_multiple: int, distribution: DistributionScores | None = None,
                      progress_stream: TextIO | None = None,
                      stop_noted: Callable[[], bool] | None = None) -> dict[str, float]:
    """Mean PSNR/SSIM of the generator, in eval mode, on the evaluation `dataset`; with
    `distribution`, also SWD (FID, KID) of its outputs against the targets (paired data of one
    size, not SR). In fp32 whatever `train.amp` says, as `gan eval` scores: the run's val/psnr
    is then the number `gan eval` gives its checkpoint, and `train.keep_best` picks by it. A progress
    line of the images (and the distributions' Inception passes) goes to `progress_stream`; once
    `stop_noted()` says a stop came, the passes give up at their next image or batch (PassStopped)."""
    pairs: list[tuple[torch.Tensor, torch.Tensor]] | None = [] if distribution else None
    with eval_mode(generator):
        scores = pair_scores(generator, dataset, data, device, size_multiple, pairs,
                             stoppable_progress(len(dataset), progress_stream, "validation image", stop_noted=stop_noted))
    if distribution:
        distribution.progress_stream, distribution.stop_noted = progress_stream, stop_noted
        scores.update(distribution.score("", torch.stack([output for output, _ in pairs]),
                                         lambda: torch.stack([target for _, target in pairs])))
    return scores


@torch.no_grad()
def pair_scores(generator: nn.Module, dataset: Dataset, data: DataConfig, device: torch.device, size_multiple: int,
                pairs: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                advance: Callable[[int], None] | None = None) -> dict[str, float]:
    """Mean PSNR/SSIM of the generator, in the mode it is in and in fp32, on the pairs of `dataset`,
    whole images one at a time; for super-resolution on the Y channel with `data.scale` pixels shaved,
    as papers report. Each (output, target) pair is appended to `pairs` as uint8 when given;
    `advance(1)` after each image (`stoppable_progress`)."""
    super_resolution = data.dataset == "sr_pairs"
    border = data.scale if super_resolution else 0
    scores = []  # (psnr, ssim) of each image
    for item in readable_items(dataset):
        try:
            output = run_padded(generator, item["input"][None].to(device), size_multiple).float()
            if pairs is not None:
                pairs.append((signed_to_uint8(output[0].cpu()), signed_to_uint8(item["target"])))
            output, target = signed_to_255(output[0].cpu()), signed_to_255(item["target"])
            scores.append((psnr(output, target, border, super_resolution, eight_bit=True),
                           ssim(output, target, border, super_resolution, eight_bit=True)))
        except Exception as error:
            if not out_of_memory(error):
                raise
            height, width = item["target"].shape[-2:]  # (an allocation that failed: said with the image's size)
            where = "data.val_root" if data.val_root else "data.root"
            raise MemoryError(f"validation image {len(scores) + 1} of {len(dataset)}, of {width}x{height} px, does not "
                              f"fit in {device.type} memory ({type(error).__name__}): validation scores each image of "
                              f"{where} whole, so take the largest out (or crops of them), or set log.eval_every = 0"
                              ) from error
        if advance is not None:
            advance(1)
    if advance is not None and len(scores) < len(dataset):  # (files that failed to decode: the line ends)
        advance(len(dataset) - len(scores))
    if not scores:
        raise ImageReadError(f"none of the {len(dataset)} validation images could be decoded (each is named in a "
                             "warning above)")
    # An output identical to its target (a flat image) has an infinite PSNR, which would make the mean
    # infinite whatever the others scored: left out of both means, and said (as gan eval does).
    finite = [pair for pair in scores if math.isfinite(pair[0])]
    if finite and len(finite) < len(scores):
        warnings.warn(f"val/psnr and val/ssim leave out {len(scores) - len(finite)} of the {len(scores)} validation "
                      "images: their outputs equal their targets (an infinite PSNR)", stacklevel=2)
    kept = finite or scores
    return {"val/psnr": sum(pair[0] for pair in kept) / len(kept), "val/ssim": sum(pair[1] for pair in kept) / len(kept)}


class DistributionScores:
    """SWD (and FID, KID with the Inception weights) of a recipe's translations during training, those
    of metrics.names: the Inception network loaded at the first validation, each target set's statistics
    computed once (the sets are fixed), logged as val/swd, val/fid, val/kid plus a direction suffix."""

    def __init__(self, config: Config, device: torch.device):
        self.config, self.device = config, device
        self.metrics: TranslationMetrics | None = None
        self.targets: dict[str, TargetStatistics] = {}
        self.too_few: set[str] = set()  # suffixes whose sets are too small to score, warned of once
        self.progress_stream: TextIO | None = None  # where the Inception passes show progress; None: silent
        self.stop_noted: Callable[[], bool] | None = None  # (the loop's) a stop came: the passes give up

    def score(self, suffix: str, outputs: torch.Tensor, targets: Callable[[], torch.Tensor]) -> dict[str, float]:
        """Scores of uint8 `outputs` against the target set named by `suffix` (read with `targets()` once);
        none for fewer than 2 outputs or targets (a distribution of one image says nothing), said once.
        The validation sets are fixed, so a set too small is so at every validation."""
        if suffix in self.too_few or not set(self.config.metrics.names) & set(TRANSLATION_METRICS):
            return {}
        if suffix not in self.targets:
            images = targets()
            if len(outputs) < 2 or len(images) < 2:
                self.too_few.add(suffix)
                warnings.warn(f"val/swd{suffix} (and FID, KID) not computed: the validation set gives {len(outputs)} "
                              f"translation(s) against {len(images)} target image(s), and a distribution needs at "
                              "least 2 of each", stacklevel=2)
                return {}
            self.targets[suffix] = self._metrics().targets(images, len(outputs))
        return {f"val/{name}{suffix}": value
                for name, value in self._metrics().score(outputs, self.targets[suffix]).items()}

    def _metrics(self) -> TranslationMetrics:
        """The metrics, built at their first use, showing progress where `progress_stream` says."""
        if self.metrics is None:
            # (named, the weights are asked for: their absence is an error, as for gan eval)
            weights = self.config.metrics.inception_weights
            self.metrics = TranslationMetrics(self.device, weights or None, require_weights=bool(weights),
                                              names=self.config.metrics.names, leave_out=NOT_IN_TRAINING)
        self.metrics.progress_stream, self.metrics.stop_noted = self.progress_stream, self.stop_noted
        return self.metrics
