"""A procedurally drawn face data set, built into the code: training with no download.

Each image is a cartoon face (head, hair, eyes, mouth) with random colours, size and
position on a plain background. Item `i` is always the same image, and drawing one
takes well under a millisecond, so nothing is stored.
"""

from __future__ import annotations

import random

import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from gan.core.images import pil_to_signed
from gan.data.image_files import augmentation_key

_SKIN = [(255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 205, 148)]
_HAIR = [(35, 25, 20), (90, 56, 37), (165, 110, 60), (230, 200, 120), (120, 120, 120), (170, 50, 30)]
_SUPERSAMPLE = 4  # draw large, then downsample, for smooth edges


def _jitter(colour: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in colour)


def draw_face(resolution: int, rng: random.Random) -> Image.Image:
    """One random cartoon face, `resolution` pixels square, RGB."""
    size = resolution * _SUPERSAMPLE
    background = tuple(rng.randint(40, 220) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    radius = size * rng.uniform(0.26, 0.36)
    cx = size * rng.uniform(0.42, 0.58)
    cy = size * rng.uniform(0.45, 0.58)
    squash = rng.uniform(1.05, 1.25)  # faces are taller than wide
    skin = _jitter(rng.choice(_SKIN), rng, 12)
    hair = _jitter(rng.choice(_HAIR), rng, 15)
    # hair: a larger ellipse behind the head, showing above it
    draw.ellipse([cx - radius * 1.08, cy - radius * squash * 1.2, cx + radius * 1.08, cy + radius * squash * 0.5], hair)
    draw.ellipse([cx - radius, cy - radius * squash, cx + radius, cy + radius * squash], skin)
    eye_dx, eye_y, eye_r = radius * rng.uniform(0.32, 0.42), cy - radius * 0.15, radius * rng.uniform(0.1, 0.15)
    for side in (-1, 1):
        ex = cx + side * eye_dx
        draw.ellipse([ex - eye_r * 1.4, eye_y - eye_r, ex + eye_r * 1.4, eye_y + eye_r], (250, 250, 250))
        draw.ellipse([ex - eye_r * 0.7, eye_y - eye_r * 0.7, ex + eye_r * 0.7, eye_y + eye_r * 0.7], (30, 30, 40))
    mouth_w, mouth_y = radius * rng.uniform(0.3, 0.55), cy + radius * squash * 0.45
    mouth_h = radius * rng.uniform(0.08, 0.25)
    draw.ellipse([cx - mouth_w, mouth_y - mouth_h, cx + mouth_w, mouth_y + mouth_h], _jitter((170, 50, 60), rng, 25))
    return image.resize((resolution, resolution), Image.Resampling.LANCZOS)


class SyntheticFaces(Dataset):
    """`size` distinct synthetic faces; items are `{"image": (3, R, R) in [-1, 1]}`."""

    def __init__(self, resolution: int, size: int = 20000, hflip: bool = False, seed: int = 0):
        self.resolution = resolution
        self.size = size
        self.hflip = hflip
        self.seed = seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, augmentation_seed = augmentation_key(key)
        image = draw_face(self.resolution, random.Random(self.seed * 1_000_003 + index))
        if self.hflip and random.Random(augmentation_seed).random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return {"image": pil_to_signed(image)}
