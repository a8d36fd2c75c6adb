"""Differentiable augmentation of what the discriminator sees: DiffAugment (Zhao et al. 2020).

With little data, D memorises the training images and its feedback to G collapses. Showing
D every image, real and generated alike, through the same random, differentiable
transformations keeps it from memorising while G still learns through them (the
augmentation sits between G and D in the graph, so it must be differentiable, and it must
apply to fakes in G's update too: augmenting reals alone teaches G the augmentations).

`loss.diffaugment = "color,translation,cutout"` (any subset, applied in that order):
- color: per image, brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5);
- translation: per image, an integer shift of up to 1/8 of each side, zero-filled;
- cutout: per image, a zeroed square of half the side at a random place.

Images are in [-1, 1] (zero is mid-grey). A conditional D (pix2pix) sees input and output
stacked on channels; `image_channels` splits them, so colour statistics are per image
while both get the same factors, and the spatial transforms move all channels together:
the pair stays aligned.

The random draws come from the augmenter's own generator on the device, seeded from
`train.seed` and saved in checkpoints, so a resume continues the same sequence and turning
augmentation on leaves the rest of training's random numbers alone.

`loss.augment_p` applies each augmentation to an image with probability p (1, the default:
always, as DiffAugment). "adaptive" is StyleGAN2-ADA's heuristic (Karras et al. 2020):
p starts at 0 and moves to hold the share of reals D is sure of, r_t = E[sign(D(real) -
boundary)], at `loss.augment_target` (AdaptiveProbability below): D gets only as much
augmentation as its overfitting calls for, and sees clean images the rest of the time.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gan.core.registry import ConfigError, suggest
from gan.core.typecheck import shown
from gan.core.wording import printable
from gan.recipes.losses import WHOLE_BATCH, shard_draw

AUGMENTATIONS = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5
SEED_OFFSET = 0x0D1FFA  # the augmenter's generator: train.seed + this, apart from other seeded streams


def parse_policy(text: str, key: str = "loss.diffaugment") -> tuple[str, ...]:
    """The augmentations named in a comma-separated `text`, in the canonical order; () for "". Text
    that names none (",", " ") is refused: it reads as asking for augmentation, and gives none."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if text and not names:
        raise ConfigError(f"{key} = {shown(text)} names no augmentation; give any comma-separated subset of "
                          f"{', '.join(AUGMENTATIONS)}, or \"\" for none")
    for name in names:
        if name not in AUGMENTATIONS:
            raise ConfigError(f"{key}: unknown augmentation '{printable(name, 80)}'{suggest(name, list(AUGMENTATIONS))}; "
                              f"known: {', '.join(AUGMENTATIONS)} (any comma-separated subset)")
    return tuple(name for name in AUGMENTATIONS if name in names)


class AdaptiveProbability:
    """ADA's augmentation probability p, adjusted on the device from D's outputs on reals.

    After every `interval` observed D steps, r_t = E[sign(real logits - boundary)] over them,
    and p += sign(r_t - target) * (images seen) / `speed_images`, clipped to [0, 1]: p can
    cross [0, 1] in `speed_images` images (ADA's 500k). Everything stays in device tensors,
    updated in place without a host sync, so a captured CUDA graph replays it; under
    torch.distributed the counts are summed over processes, so every process holds the same p.
    """

    def __init__(self, target: float, interval: int, speed_images: int, boundary: float, device: torch.device):
        self.target, self.interval, self.speed_images, self.boundary = target, interval, speed_images, boundary
        self.p = torch.zeros((), device=device)
        self.rt = torch.zeros((), device=device)  # the last r_t, logged as augment/rt
        # Since the last adjustment: sum of signs, logits counted, images seen, D steps observed.
        self.totals = torch.zeros(4, device=device)

    @torch.no_grad()
    def observe(self, real_logits: torch.Tensor) -> None:
        """Count one D step's logits on (augmented) reals, and adjust p when `interval` are in."""
        logits = real_logits.detach().float()
        signs = (logits - self.boundary).sign().sum()
        # (full_like, not tensor(): a fill kernel, which a CUDA graph can capture; a host copy cannot)
        step_totals = torch.stack([signs, torch.full_like(signs, logits.numel()),
                                   torch.full_like(signs, logits.shape[0]), torch.ones_like(signs)])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(step_totals)
            step_totals[3] = 1.0  # one D step, however many processes shared it
        self.totals.add_(step_totals)
        signs, count, images, steps = self.totals
        due = steps >= self.interval
        rt = signs / count.clamp(min=1)
        adjusted = (self.p + (rt - self.target).sign() * images / self.speed_images).clamp(0, 1)
        self.p.copy_(torch.where(due, adjusted, self.p))
        self.rt.copy_(torch.where(due, rt, self.rt))
        self.totals.copy_(torch.where(due, torch.zeros_like(self.totals), self.totals))

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p.cpu(), "rt": self.rt.cpu(), "totals": self.totals.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("p", "rt", "totals"):  # in place: a captured graph holds these tensors
            getattr(self, name).copy_(state[name])


class DiffAugment:
    """Callable on images (N, C, H, W) -> augmented images of the same shape, differentiably.

    `p`: each augmentation is applied to each image with this probability (a number, or an
    AdaptiveProbability); at 1 every image gets every augmentation and no extra draws are made.
    """

    def __init__(self, policy: str, device: torch.device, seed: int, image_channels: tuple[int, ...] = (3,),
                 p: float | AdaptiveProbability = 1.0):
        self.policy = parse_policy(policy)
        if not self.policy:
            raise ValueError("DiffAugment needs at least one augmentation; leave it out for none")
        self.image_channels = list(image_channels)
        self.generator = torch.Generator(device=device).manual_seed(seed + SEED_OFFSET)
        self.shard = WHOLE_BATCH  # under torchrun, this process's share of the global batch (the loop sets it)
        self.adaptive = p if isinstance(p, AdaptiveProbability) else None
        if self.adaptive:
            self.p: torch.Tensor | None = self.adaptive.p
        else:
            self.p = None if p == 1 else torch.tensor(float(p), device=device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != sum(self.image_channels):
            raise ValueError(f"DiffAugment expected {sum(self.image_channels)} channels "
                             f"({' + '.join(map(str, self.image_channels))}), got {images.shape[1]}")
        for name in self.policy:
            augmented = {"color": self._color, "translation": self._translation, "cutout": self._cutout}[name](images)
            if self.p is None:
                images = augmented
            else:  # per image, with probability p
                chosen = shard_draw(self._rand, images.shape[0], self.shard) < self.p
                images = torch.where(chosen[:, None, None, None], augmented, images)
        return images

    def _rand(self, count: int) -> torch.Tensor:
        return torch.rand(count, generator=self.generator, device=self.generator.device)

    def _uniform(self, images: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """One U(low, high) factor per image, (N, 1, 1, 1), in the images' dtype."""
        draw = shard_draw(lambda count: torch.rand(count, 1, 1, 1, generator=self.generator, device=images.device),
                          images.shape[0], self.shard)
        return (low + (high - low) * draw).to(images.dtype)

    def _integers(self, images: torch.Tensor, low: int, high: int) -> torch.Tensor:
        """One integer in [low, high] per image, (N,)."""
        return shard_draw(lambda count: torch.randint(low, high + 1, (count,), generator=self.generator,
                                                      device=images.device), images.shape[0], self.shard)

    def _color(self, images: torch.Tensor) -> torch.Tensor:
        brightness = self._uniform(images, -0.5, 0.5)
        saturation = self._uniform(images, 0.0, 2.0)
        contrast = self._uniform(images, 0.5, 1.5)
        adjusted = []
        for image in images.split(self.image_channels, dim=1):  # the same factors for each image of a pair
            image = image + brightness
            grey = image.mean(dim=1, keepdim=True)
            image = (image - grey) * saturation + grey
            average = image.mean(dim=(1, 2, 3), keepdim=True)
            adjusted.append((image - average) * contrast + average)
        return torch.cat(adjusted, dim=1)

    def _translation(self, images: torch.Tensor) -> torch.Tensor:
        """Shift each image by (dy, dx), filling with zeros: read the zero-padded image at index + shift."""
        _, _, height, width = images.shape
        max_dy, max_dx = int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)
        dy, dx = self._integers(images, -max_dy, max_dy), self._integers(images, -max_dx, max_dx)
        padded = F.pad(images, (max_dx, max_dx, max_dy, max_dy))
        rows = torch.arange(height, device=images.device) + max_dy - dy[:, None]  # (N, H)
        cols = torch.arange(width, device=images.device) + max_dx - dx[:, None]  # (N, W)
        batch = torch.arange(images.shape[0], device=images.device)[:, None, None]
        # Advanced indices around a slice: the result is (N, H, W, C).
        return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)

    def _cutout(self, images: torch.Tensor) -> torch.Tensor:
        """Zero a (H/2) x (W/2) rectangle per image, centred anywhere (clipped at the borders): as the
        reference draws it, the centre of an even-sized one reaches the far edge too (0..H, not 0..H-1)."""
        _, _, height, width = images.shape
        size_y, size_x = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
        top = self._integers(images, 0, height - size_y % 2)[:, None] - size_y // 2  # (N, 1)
        left = self._integers(images, 0, width - size_x % 2)[:, None] - size_x // 2
        rows = torch.arange(height, device=images.device)
        cols = torch.arange(width, device=images.device)
        inside_rows = (rows >= top) & (rows < top + size_y)  # (N, H)
        inside_cols = (cols >= left) & (cols < left + size_x)  # (N, W)
        keep = ~(inside_rows[:, :, None] & inside_cols[:, None, :])
        return images * keep[:, None].to(images.dtype)

    def state_dict(self) -> dict[str, Any]:
        state = {"generator": self.generator.get_state()}
        if self.adaptive:
            state["adaptive"] = self.adaptive.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        if self.adaptive and "adaptive" in state:
            self.adaptive.load_state_dict(state["adaptive"])
