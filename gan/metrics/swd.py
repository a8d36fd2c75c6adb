"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, progressive GAN).

Needs no pretrained network, so image statistics can be tracked on any machine.
Per pyramid level (full resolution down to 16 px): 7x7x3 neighbourhoods at random
places (128 per image) are normalised per colour channel, then the distance of the
two descriptor sets is the mean 1-D Wasserstein distance along random unit
directions (4 repeats of 128). Values are reported x1e3 per level, plus their mean,
as the paper's tables are; lower is better.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

PATCH_SIZE = 7
PATCHES_PER_IMAGE = 128
DIRECTION_REPEATS = 4
DIRECTIONS_PER_REPEAT = 128
MIN_RESOLUTION = 16

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float32)
_GAUSSIAN = torch.outer(_BINOMIAL, _BINOMIAL) / 256  # cv2.pyrDown's 5x5 kernel


def _blur(images: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    kernel = (_GAUSSIAN * gain).to(images).expand(images.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(images, (2, 2, 2, 2), mode="reflect"), kernel, groups=images.shape[1])


def _pyramid_down(images: torch.Tensor) -> torch.Tensor:
    return _blur(images)[:, :, ::2, ::2]


def _pyramid_up(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`images` upsampled to `size` (height, width): twice theirs, or one less for an odd-sized
    finer level (cv2.pyrUp's dstsize), since pyramid_down keeps ceil(side / 2)."""
    upsampled = images.new_zeros(*images.shape[:2], *size)
    upsampled[:, :, ::2, ::2] = images
    return _blur(upsampled, gain=4.0)


def pyramid_resolutions(resolution: int) -> list[int]:
    """Side lengths of the levels used for images of `resolution`: itself, halved down to 16."""
    if resolution < MIN_RESOLUTION:
        raise ValueError(f"SWD needs images of at least {MIN_RESOLUTION} px, got {resolution}")
    levels = []
    while resolution >= MIN_RESOLUTION:
        levels.append(resolution)
        resolution = (resolution + 1) // 2  # _pyramid_down keeps every other row from the first
    return levels


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels (finest first) whose sum, upsampled back, is the image; the last is low-pass."""
    pyramid = [images]
    for _ in range(levels - 1):
        coarser = _pyramid_down(pyramid[-1])
        pyramid[-1] = pyramid[-1] - _pyramid_up(coarser, pyramid[-1].shape[-2:])
        pyramid.append(coarser)
    return pyramid


def _random_patches(level: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """(N * count, C * 7 * 7) neighbourhoods at random places, `count` per image."""
    batch, channels, height, width = level.shape
    half = PATCH_SIZE // 2
    rows = torch.randint(half, height - half, (batch, count), generator=generator)
    cols = torch.randint(half, width - half, (batch, count), generator=generator)
    rows, cols = rows.to(level.device), cols.to(level.device)  # drawn on the CPU: the same places on any device
    offsets = torch.arange(-half, half + 1, device=level.device)
    row_index = (rows[..., None, None] + offsets[:, None]).expand(-1, -1, PATCH_SIZE, PATCH_SIZE)
    col_index = (cols[..., None, None] + offsets[None, :]).expand(-1, -1, PATCH_SIZE, PATCH_SIZE)
    image_index = torch.arange(batch, device=level.device)[:, None, None, None].expand_as(row_index)
    patches = level.permute(0, 2, 3, 1)[image_index, row_index, col_index]  # (N, count, 7, 7, C)
    return patches.permute(0, 1, 4, 2, 3).reshape(batch * count, channels, PATCH_SIZE, PATCH_SIZE)


# The unit of the progress line of `patch_descriptors`, of the images named ("real", "generated", ...).
SWD_PATCHES = "{} image into SWD patches"


@torch.no_grad()
def patch_descriptors(images: torch.Tensor, seed: int = 0, batch_size: int = 256,
                      device: torch.device | None = None,
                      advance: Callable[[int], None] | None = None) -> list[torch.Tensor]:
    """Per pyramid level, (N * 128, 147) float16 patch descriptors of uint8 images (N, 3, H, W),
    normalised per colour channel over the whole set (the paper's `finalize_descriptors`);
    computed on `device` (default: the images'), returned on the CPU. `advance(n)` is told of each
    chunk of n images taken apart (10,000 images take 20 s on a CPU)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise TypeError(f"SWD takes uint8 images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    levels = len(pyramid_resolutions(min(images.shape[-2:])))
    generator = torch.Generator().manual_seed(seed)
    per_level: list[list[torch.Tensor]] = [[] for _ in range(levels)]
    for chunk in images.split(batch_size):
        for index, level in enumerate(laplacian_pyramid(chunk.to(device).float(), levels)):
            per_level[index].append(_random_patches(level, PATCHES_PER_IMAGE, generator))
        if advance is not None:
            advance(len(chunk))
    descriptors = []
    for chunks in per_level:
        # Chunk by chunk, each freed once normalised: the whole level joined, with its float64 copy for
        # the deviation, took six times the descriptors' memory (7.6 GB for gan eval's 10,000 images).
        values = sum(chunk[:, :1].numel() for chunk in chunks)  # (per colour channel)
        mean = sum(chunk.sum(dim=(0, 2, 3), dtype=torch.float64, keepdim=True) for chunk in chunks) / values
        std = (sum((chunk.double() - mean).square().sum(dim=(0, 2, 3), keepdim=True) for chunk in chunks)
               / values).sqrt()
        normalised = []
        while chunks:
            chunk = chunks.pop(0)
            normalised.append(((chunk - mean.float()) / std.float().clamp_min(1e-8)).flatten(1).half().cpu())
        descriptors.append(torch.cat(normalised))
    return descriptors


def sliced_wasserstein(first: torch.Tensor, second: torch.Tensor, seed: int = 0,
                       directions_per_chunk: int = 32, advance: Callable[[int], None] | None = None,
                       device: torch.device | None = None) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between the projected
    sets (sorted projections, matched in order); both sets need the same number of rows.
    `advance(k)` is called as each k directions are done (sorting them is the slow part: a GPU
    `device` does it in a fraction of the time)."""
    if first.shape != second.shape:
        raise ValueError(f"SWD compares descriptor sets of equal shape, got {tuple(first.shape)} "
                         f"and {tuple(second.shape)}")
    generator = torch.Generator().manual_seed(seed)
    first, second = first.to(device).float(), second.to(device).float()
    total, count = 0.0, 0
    for _ in range(DIRECTION_REPEATS):
        # (float32 as the descriptors: a caller's float64 default dtype drew other directions, which matmul refused)
        directions = torch.randn(first.shape[1], DIRECTIONS_PER_REPEAT, generator=generator,
                                 dtype=torch.float32).to(first.device)
        directions /= directions.norm(dim=0, keepdim=True)
        for chunk in directions.split(directions_per_chunk, dim=1):
            projected_first = torch.sort((first @ chunk).T.contiguous(), dim=1).values  # rows sort faster
            projected_second = torch.sort((second @ chunk).T.contiguous(), dim=1).values
            total += float((projected_first - projected_second).abs().sum(dtype=torch.float64))
            count += projected_first.numel()
            if advance is not None:
                advance(chunk.shape[1])
    return total / count


def swd_memory_bytes(count: int, resolution: int, on_cpu: bool = True) -> int:
    """A lower bound of the memory SWD takes to compare `count` generated images of `resolution` with
    as many real ones: both sets' float16 patch descriptors at every level, and where the distance is
    computed on the CPU, the float32 copies of one level's two sets it sorts. (gan eval's 10,000 at
    64 px: 3.8 GB of the 6.7 GB it peaked at beside torch.)"""
    per_level = count * PATCHES_PER_IMAGE * 3 * PATCH_SIZE * PATCH_SIZE
    return 2 * len(pyramid_resolutions(resolution)) * per_level * 2 + (2 * per_level * 4 if on_cpu else 0)


def swd_directions(resolution: int) -> int:
    """How many projections `swd_from_descriptors` sorts for images of `resolution`."""
    return len(pyramid_resolutions(resolution)) * DIRECTION_REPEATS * DIRECTIONS_PER_REPEAT


def swd_from_descriptors(first: list[torch.Tensor], second: list[torch.Tensor], resolution: int,
                         seed: int = 0, advance: Callable[[int], None] | None = None,
                         device: torch.device | None = None) -> dict[str, float]:
    """{'swd/64px': ..., 'swd/32px': ..., 'swd/16px': ..., 'swd/mean': ...} for images of
    `resolution`, each x1e3 as the paper reports; `advance` as in `sliced_wasserstein`, over
    `swd_directions(resolution)` directions in all."""
    sizes = pyramid_resolutions(resolution)
    if not len(first) == len(second) == len(sizes):
        raise ValueError(f"descriptor sets have {len(first)} and {len(second)} pyramid levels; "
                         f"{resolution} px images have {len(sizes)}")
    scores = {f"swd/{size}px": 1e3 * sliced_wasserstein(level_first, level_second, seed, advance=advance, device=device)
              for size, level_first, level_second in zip(sizes, first, second)}
    scores["swd/mean"] = sum(scores.values()) / len(scores)
    return scores
