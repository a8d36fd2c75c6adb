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
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gan.registry import ConfigError, suggest

AUGMENTATIONS = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5
SEED_OFFSET = 0x0D1FFA  # the augmenter's generator: train.seed + this, apart from other seeded streams


def parse_policy(text: str, key: str = "loss.diffaugment") -> tuple[str, ...]:
    """The augmentations named in a comma-separated `text`, in the canonical order; () for ""."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in AUGMENTATIONS:
            raise ConfigError(f"{key}: unknown augmentation '{name}'{suggest(name, list(AUGMENTATIONS))}; "
                              f"known: {', '.join(AUGMENTATIONS)} (any comma-separated subset)")
    return tuple(name for name in AUGMENTATIONS if name in names)


class DiffAugment:
    """Callable on images (N, C, H, W) -> augmented images of the same shape, differentiably."""

    def __init__(self, policy: str, device: torch.device, seed: int, image_channels: tuple[int, ...] = (3,)):
        self.policy = parse_policy(policy)
        if not self.policy:
            raise ValueError("DiffAugment needs at least one augmentation; leave it out for none")
        self.image_channels = list(image_channels)
        self.generator = torch.Generator(device=device).manual_seed(seed + SEED_OFFSET)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != sum(self.image_channels):
            raise ValueError(f"DiffAugment expected {sum(self.image_channels)} channels "
                             f"({' + '.join(map(str, self.image_channels))}), got {images.shape[1]}")
        for name in self.policy:
            images = {"color": self._color, "translation": self._translation, "cutout": self._cutout}[name](images)
        return images

    def _uniform(self, images: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """One U(low, high) factor per image, (N, 1, 1, 1), in the images' dtype."""
        draw = torch.rand(images.shape[0], 1, 1, 1, generator=self.generator, device=images.device)
        return (low + (high - low) * draw).to(images.dtype)

    def _integers(self, images: torch.Tensor, low: int, high: int) -> torch.Tensor:
        """One integer in [low, high] per image, (N,)."""
        return torch.randint(low, high + 1, (images.shape[0],), generator=self.generator, device=images.device)

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
        """Zero a (H/2) x (W/2) rectangle per image, centred anywhere (clipped at the borders)."""
        _, _, height, width = images.shape
        size_y, size_x = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
        top = self._integers(images, 0, height - 1)[:, None] - size_y // 2  # (N, 1)
        left = self._integers(images, 0, width - 1)[:, None] - size_x // 2
        rows = torch.arange(height, device=images.device)
        cols = torch.arange(width, device=images.device)
        inside_rows = (rows >= top) & (rows < top + size_y)  # (N, H)
        inside_cols = (cols >= left) & (cols < left + size_x)  # (N, W)
        keep = ~(inside_rows[:, :, None] & inside_cols[:, None, :])
        return images * keep[:, None].to(images.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
