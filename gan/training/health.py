"""The training-health watch: what goes wrong in GAN training, noticed while it happens.

It reads only what the loop reads back anyway (the window means at log points, the preview
grids), so it adds no host sync to a step. Each finding is logged under `health/` in
TensorBoard and warned once in the terminal with the step and what to try:

- discriminator saturation: D(x) -> 1 and D(G(z)) -> 0 for a whole logging window (losses
  whose scores are probabilities or targets in [0, 1]: vanilla, lsgan);
- mode collapse: the per-pixel standard deviation across the fixed preview batch falls below
  `COLLAPSE_FRACTION` of the data's, and below half its own best so far (a freshly initialised
  generator starts low; a collapse is a fall: a collapsed DCGAN had 0.022 against 0.47 for
  real faces);
- partial collapse: the preview samples' diversity (`diversity`: the effective number of distinct
  samples, by structure rather than colour; flat images count as one) falls below
  `DIVERSITY_FRACTION` of the same measure on as many real images, once the samples have had
  structure. It sees what the per-pixel std misses: a few faces repeated, or one face in
  different colours, keep a high per-pixel std;
- an exploding loss: its mean over a span of `EXPLOSION_SPAN` steps (the logging windows that
  fill it) `EXPLOSION_FACTOR` times its median over the spans before (the last `MAX_HISTORY`; and
  beyond `EXPLOSION_FLOOR` in magnitude), or a gradient norm that does the same.
"""

from __future__ import annotations

import math
import statistics
import warnings

import torch
import torch.nn.functional as F

SATURATION = 0.99  # D(x) and D(G(z)) within 1 - this of their targets, for a whole window
COLLAPSE_FRACTION = 0.2
EXPLOSION_FACTOR = 10.0
EXPLOSION_FLOOR = 10.0
# Steps a loss is judged over, whatever log.every is: judged window by window, a run logged at every step
# was warned of a three-step spike (a healthy vanilla run at step 189) that the same run logged every 10
# steps averaged away, and a WGAN critic's first windows, before it learned, made its settled loss an
# explosion at step 50 (log.every = 10); a window of log.every = 50 (the default) or more is a span itself.
EXPLOSION_SPAN = 50
MIN_HISTORY = 5  # spans before a loss can be said to explode
# Spans a loss's median is taken over: the last ones, so that a long run pays neither a median over
# all of them at every log point nor checkpoints that grow with the run.
MAX_HISTORY = 1000
# Distinct samples relative to real images' (docs/results.md, "Partial collapse, seen"): of 64 CelebA
# faces about 41 count as distinct (64 others: 1.10 of that); a new DCGAN generator 0.8-1.2; previews
# of healthy DCGAN-64 runs 0.62-1.14 (the lowest early on); five collapses, full or partial (one face
# template with varied hair and background), 0.03-0.40; 16 faces each repeated 4 times 0.36.
DIVERSITY_FRACTION = 0.5
DIVERSITY_CROP = 0.6  # the centre 60% of each side, where a centred subject is: a collapsed generator
# still varies its borders and backgrounds, so they would count its copies as distinct
DIVERSITY_SIZE = 16  # side of the greyscale thumbnails compared: the layout of a face, not its texture
DIVERSITY_WIDTH = 0.7  # kernel width on the unit-length codes (real faces' nearest neighbour: ~0.8)
MIN_DIVERSITY_SAMPLES = 8
# Images with less structure than this fraction of real images' mean are flat, and count as one: scaled to
# unit length, their last faint variation would count as structure (a generator collapsed to one flat colour
# read as fully diverse). New DCGAN generators' outputs have 0.04-0.13 of real faces' structure.
FLAT_FRACTION = 0.01
# Samples whose structure has never reached this fraction of real images' are a new generator's, not a
# collapse: a DCGAN-64 on CelebA had 0.010 at step 10, half its images below FLAT_FRACTION (counted as one),
# and was warned of a partial collapse it never had (the warning, once given, then silences a real one).
STRUCTURED_FRACTION = 0.1
# Diversity back above this (of real images') after a partial collapse was warned of re-arms its warning: early
# previews dip and recover (a WGAN-GP run 0.48 at step 100, 1.11 by 200), and warned once, that dip silenced
# a later real collapse.
RECOVERED_FRACTION = 0.8

ADVICE = {
    "saturation": "D wins outright, and its scores tell G little about how to improve: lower train.d_lr, add "
                  "loss.label_smoothing or loss.instance_noise, or try loss.preset = \"hinge\" or \"wgan-gp\" "
                  "(docs/configs.md; their raw scores are not checked for saturation)",
    "collapse": "the samples look alike: check samples/*.png; lower the learning rates, train.d_steps = 2, "
                "or try loss.preset = \"wgan-gp\"; --on-nan rollback does not catch this",
    "partial collapse": "many samples are near-copies of others: check samples/*.png; go back to an earlier "
                        "checkpoint (best.pt with [metrics]), lower the learning rates, or try another loss preset "
                        "(loss.preset, docs/configs.md)",
    "explosion": "lower the learning rates or raise train.warmup_steps; train.divergence_bound stops the run "
                 "if it goes on",
}
# The conditional recipes read neither loss.instance_noise nor wgan-gp (dcgan's alone): their own advice.
CONDITIONAL_ADVICE = {
    **ADVICE,
    "saturation": "D wins outright, and its scores tell G little beyond its reconstruction loss: lower "
                  "train.d_lr, add loss.label_smoothing, loss.r1_gamma or loss.diffaugment, or try "
                  "loss.adversarial = \"hinge\" with model.discriminator_args.spectral_norm = true "
                  "(docs/regularisers.md; hinge's raw scores are not checked for saturation)",
}
# The regularisers a saturation advice names, as "add K": left out of it when the run has them on already
# (a run with label smoothing and instance noise on was told to add them).
ADDED_REGULARISERS = ("loss.label_smoothing", "loss.instance_noise", "loss.r1_gamma", "loss.diffaugment")


def regularisers_on(loss) -> tuple[str, ...]:
    """The ADDED_REGULARISERS a run's `[loss]` section turns on."""
    return tuple(key for key in ADDED_REGULARISERS if getattr(loss, key.removeprefix("loss.")))


def advice_for(kind: str, unconditional: bool, regularising: tuple[str, ...] = ()) -> str:
    """What to try for a finding of `kind`: the recipe's advice, less the regularisers of `regularising`
    (those the run has on) that it would tell to add, which are named as on already."""
    advice = (ADVICE if unconditional else CONDITIONAL_ADVICE)[kind]
    named = [key for key in ADDED_REGULARISERS if key in advice and key in regularising]
    if not named:
        return advice
    head, _, rest = advice.partition("add ")
    added, _, tail = rest.partition(", or try")
    left = [key for key in ADDED_REGULARISERS if key in added and key not in named]
    adding = f"add {' or '.join(left)}, " if left else ""
    on = f"{' and '.join(named)} {'is' if len(named) == 1 else 'are'} on already"
    return f"{head.rstrip(', ')} ({on}), {adding}or try{tail}"


def sample_spread(images: torch.Tensor) -> float:
    """Mean over pixels of the standard deviation across the batch (images in [-1, 1])."""
    return float(images.float().std(dim=0).mean()) if images.shape[0] > 1 else 0.0


def centre(images: torch.Tensor, fraction: float) -> torch.Tensor:
    """The central `fraction` of each side of images (..., H, W)."""
    height, width = images.shape[-2:]
    rows, columns = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - rows) // 2, (width - columns) // 2
    return images[..., top:top + rows, left:left + columns]


def structure_codes(images: torch.Tensor) -> torch.Tensor:
    """The structure of each image's centre: the central `DIVERSITY_CROP` of each side, grey,
    `DIVERSITY_SIZE` pixels a side, less its mean (N, DIVERSITY_SIZE**2)."""
    grey = centre(images.detach().float(), DIVERSITY_CROP).mean(dim=1, keepdim=True)
    codes = F.adaptive_avg_pool2d(grey, DIVERSITY_SIZE).flatten(1)
    return codes - codes.mean(dim=1, keepdim=True)


def structure(images: torch.Tensor) -> float:
    """How much structure a batch's images have: the mean length of their `structure_codes`."""
    return float(structure_codes(images).norm(dim=1).mean())


def diversity(images: torch.Tensor, flat_below: float = 0.0) -> float:
    """The effective number of distinct images in a batch: 1 for copies, up to the batch size.

    Each image's `structure_codes` are scaled to unit length (so a copy in other colours or
    brightness is a copy; codes shorter than `flat_below` are flat images, set to zero so that
    they all count as one, whatever faint noise they hold), and the batch's Vendi score (Friedman and
    Dieng 2023) is taken with a Gaussian kernel of width `DIVERSITY_WIDTH` on those codes: the
    exponential of the entropy of the normalised kernel matrix's eigenvalues. k distinct images,
    each repeated, score k. Needs no weights."""
    codes = structure_codes(images)
    lengths = codes.norm(dim=1, keepdim=True)
    codes = torch.where(lengths >= max(flat_below, 1e-8), codes / lengths.clamp_min(1e-8), torch.zeros_like(codes))
    kernel = torch.exp(-torch.cdist(codes, codes).square() / DIVERSITY_WIDTH**2)
    eigenvalues = torch.linalg.eigvalsh(kernel.double() / len(codes)).clamp_min(0)
    eigenvalues = eigenvalues[eigenvalues > 1e-12] / eigenvalues.sum()
    return float(torch.exp(-(eigenvalues * eigenvalues.log()).sum()))


class HealthWatch:
    """Checks each logging window and each preview grid; warns once per kind of finding."""

    def __init__(self, saturation_scores: bool, unconditional: bool = True, real_target: float = 1.0,
                 regularising: tuple[str, ...] = ()):
        self.saturation_scores = saturation_scores  # d/real, d/fake are probabilities or [0, 1] targets
        self.unconditional = unconditional  # dcgan, whose keys the advice may name
        self.real_target = real_target  # D's target for real images: 1 - loss.label_smoothing
        self.regularising = regularising  # the ADDED_REGULARISERS the run has on, which its advice leaves out
        self.history: dict[str, list[float]] = {}  # each loss's mean over its spans so far
        self.span: dict[str, list[float]] = {}  # each loss's [step-weighted sum, steps] of the span being filled
        self.data_spread: float | None = None
        self.data_diversity: float | None = None
        self.data_structure: float | None = None
        self.peak_spread = 0.0
        self.peak_structure = 0.0  # of the samples, against real images'
        self.warned: set[str] = set()

    def state_dict(self) -> dict:
        """What a resume needs to go on as the run would have (plain values: a checkpoint loads them
        with weights_only). The data's measures are not in it: they come from the same real images."""
        return {"history": {name: list(values) for name, values in self.history.items()},
                "span": {name: list(totals) for name, totals in self.span.items()},
                "peak_spread": self.peak_spread, "peak_structure": self.peak_structure, "warned": sorted(self.warned)}

    def load_state_dict(self, state: dict) -> None:
        self.history = {str(name): [float(value) for value in values][-MAX_HISTORY:]
                        for name, values in state["history"].items()}
        # (not in checkpoints before 2026-12-06, whose history was of windows: a span starts afresh)
        self.span = {str(name): [float(total), float(steps)] for name, (total, steps) in state.get("span", {}).items()}
        self.peak_spread = float(state["peak_spread"])
        # (not in checkpoints before 2026-12-04: a run with previews counts as structured, as the watch then took it)
        self.peak_structure = float(state.get("peak_structure", STRUCTURED_FRACTION if self.peak_spread > 0 else 0.0))
        self.warned = {str(kind) for kind in state["warned"]}

    def window(self, step: int, means: dict[str, float], steps: int) -> dict[str, float]:
        """health/ scalars for the means (`loss/...`, `grad/...`, `d/real`, `d/fake`) of a window of
        `steps` steps ending at `step`."""
        scalars = {}
        # Each discriminator's scores: d/ for one, d_A/ and d_B/ for CycleGAN's two (whose d/ is their mean,
        # in which one D that wins outright was hidden by the other)
        judged = sorted({name.rsplit("/", 1)[0] for name in means if name.startswith("d_") and name.endswith("/real")
                         and f"{name.rsplit('/', 1)[0]}/fake" in means}) or ["d"]
        if self.saturation_scores and all(f"{d}/real" in means and f"{d}/fake" in means for d in judged):
            # measured against D's own target: with smoothing 0.1, a D that wins outright settles at 0.9; both
            # within the margin of their targets, as LSGAN's raw scores overshoot them as it diverges (-72 for fakes)
            saturated = [d for d in judged if abs(means[f"{d}/real"] - self.real_target) < 1 - SATURATION
                         and abs(means[f"{d}/fake"]) < 1 - SATURATION]
            scalars["health/d_saturated"] = float(bool(saturated))
            if saturated:
                d = saturated[0]
                target = f" (its target, smoothed: {self.real_target:g})" if self.real_target < 1 else ""
                which = f"the discriminator of domain {d.removeprefix('d_')}" if d != "d" else "the discriminator"
                self._warn("saturation", step, f"{which} is saturated: D(x) = {means[f'{d}/real']:.4f}{target} "
                                                f"and D(G(z)) = {means[f'{d}/fake']:.4f} over the last window")
        for name, value in means.items():
            if not (name.startswith("loss/") or name.startswith("grad/")):
                continue
            totals = self.span.setdefault(name, [0.0, 0.0])
            totals[0] += value * steps
            totals[1] += steps
            if totals[1] < EXPLOSION_SPAN:
                continue
            value, span_steps = totals[0] / totals[1], int(totals[1])
            del self.span[name]
            past = self.history.setdefault(name, [])
            if len(past) >= MIN_HISTORY:
                typical = statistics.median(abs(v) for v in past)
                # (a median of 0, a saturated D's loss, turned the check off: any value is past 10x it)
                growth = abs(value) / typical if typical > 0 else math.inf if value else 0.0
                if math.isfinite(growth):
                    scalars[f"health/growth/{name}"] = growth
                if growth > EXPLOSION_FACTOR and abs(value) > EXPLOSION_FLOOR:
                    times = f"{growth:.0f}x its median" if math.isfinite(growth) else "past its median"
                    self._warn("explosion", step, f"{name} is exploding: {value:.4g} over the last {span_steps} "
                                                   f"steps, {times} over the spans before ({typical:.4g})")
            past.append(value)
            del past[:-MAX_HISTORY]
        return scalars

    def samples(self, step: int, images: torch.Tensor, data_images: torch.Tensor) -> dict[str, float]:
        """health/ scalars for a preview batch of generated images, against real ones; none from one
        image (log.num_samples = 1), which has no spread to measure: 0 against 0 read as healthy."""
        if min(images.shape[0], data_images.shape[0]) < 2 or not torch.isfinite(images).all():
            return {}  # (non-finite samples stop the run: measured, they read as a collapse)
        if self.data_spread is None:
            self.data_spread = sample_spread(data_images)
        spread = sample_spread(images)
        ratio = spread / self.data_spread if self.data_spread > 0 else 1.0
        fell = spread < 0.5 * self.peak_spread
        self.peak_spread = max(self.peak_spread, spread)
        if ratio < COLLAPSE_FRACTION and fell:
            self._warn("collapse", step, f"mode collapse: the samples' per-pixel std is {spread:.3f} against "
                                         f"{self.data_spread:.3f} for real images ({ratio:.2f}x)")
        scalars = {"health/sample_std": spread, "health/data_std": self.data_spread, "health/sample_std_ratio": ratio}
        return scalars | self._diversity(step, images, data_images)

    def _diversity(self, step: int, images: torch.Tensor, data_images: torch.Tensor) -> dict[str, float]:
        """health/diversity and its ratio to real images', from as many of each (it counts images)."""
        count = min(images.shape[0], data_images.shape[0])
        if count < MIN_DIVERSITY_SAMPLES:
            return {}
        if self.data_diversity is None:
            self.data_structure = structure(data_images[:count])
            self.data_diversity = diversity(data_images[:count], FLAT_FRACTION * self.data_structure)
        value = diversity(images[:count], FLAT_FRACTION * self.data_structure)
        ratio = value / self.data_diversity if self.data_diversity > 0 else 1.0
        structure_ratio = structure(images[:count]) / self.data_structure if self.data_structure > 0 else 1.0
        self.peak_structure = max(self.peak_structure, structure_ratio)
        # Samples that have never had structure are a new generator's (small ones start flat), not a collapse;
        # after a whole collapse, a partial one says nothing more.
        had_structure = self.peak_structure >= STRUCTURED_FRACTION
        if ratio >= RECOVERED_FRACTION:
            self.warned.discard("partial collapse")
        if ratio < DIVERSITY_FRACTION and had_structure and "collapse" not in self.warned:
            self._warn("partial collapse", step, f"partial mode collapse: {value:.1f} of {count} samples are "
                                                 f"distinct, against {self.data_diversity:.1f} of {count} real images "
                                                 f"({ratio:.2f}x)")
        return {"health/diversity": value, "health/data_diversity": self.data_diversity,
                "health/diversity_ratio": ratio, "health/structure_ratio": structure_ratio}

    def _warn(self, kind: str, step: int, finding: str) -> None:
        if kind not in self.warned:
            self.warned.add(kind)
            advice = advice_for(kind, self.unconditional, self.regularising)
            warnings.warn(f"step {step}: {finding}. Try: {advice}", stacklevel=3)
