"""PSNR and SSIM as super-resolution papers report them.

The numbers match BasicSR's `basicsr/metrics/psnr_ssim.py`: images are compared in [0, 255] in
float64, with `crop_border` pixels shaved from every side and, optionally, on the ITU-R BT.601
luma (Y) channel only. SSIM uses an 11x11 Gaussian window (sigma 1.5) and 'valid' filtering, so
its map is (H - 10) x (W - 10) and no padding leaks into the score. The MATLAB code behind older
published tables also rounds Y to 8 bits, which puts it about 0.01 dB lower (Set5 x4 bicubic
with MATLAB's imresize and rounded Y: 28.419 dB; here, with Pillow's bicubic: 28.429 dB).

Papers measure saved 8-bit images, so network outputs in [-1, 1] go through
`signed_to_255` (which rounds) before they are compared.
"""

from __future__ import annotations

import math
import warnings

import torch

from gan.core.images import signed_to_uint8

SSIM_WINDOW_SIZE = 11
SSIM_BAND_PIXELS = 2**21  # SSIM map pixels computed at once (float64 temporaries of about 16x this in bytes)
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2


def signed_to_255(images: torch.Tensor) -> torch.Tensor:
    """Float tensor in [-1, 1] (any shape) -> float64 tensor of whole numbers in [0, 255].

    Rounded and clamped exactly as when the image is written as an 8-bit PNG
    (`gan.core.images.signed_to_uint8`), because PSNR/SSIM of SR models are always reported
    on 8-bit images; skipping the rounding shifts PSNR by a few hundredths of a dB.
    """
    return signed_to_uint8(images).to(torch.float64)


def rgb_to_y(images: torch.Tensor) -> torch.Tensor:
    """RGB (..., 3, H, W) in [0, 255] -> BT.601 luma (..., 1, H, W) in [16, 235].

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, MATLAB's `rgb2ycbcr` without its
    final rounding (as BasicSR does). Computed in the input's floating dtype.
    """
    if images.dim() < 3 or images.shape[-3] != 3:
        raise ValueError(f"rgb_to_y expects RGB images of shape (..., 3, H, W), got {tuple(images.shape)}")
    images = images if images.is_floating_point() else images.to(torch.float64)
    red, green, blue = images.unbind(dim=-3)
    luma = 16.0 + (65.481 * red + 128.553 * green + 24.966 * blue) / 255.0
    return luma.unsqueeze(-3)


def psnr(image: torch.Tensor, reference: torch.Tensor, crop_border: int = 0, y_channel: bool = False, *,
         eight_bit: bool = False) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(255^2 / MSE), computed in float64.

    `image`, `reference`: (3, H, W) or (N, 3, H, W) in [0, 255], same shape (values outside it are
    refused, floating images all within [0, 1] warned of: `(x + 1) * 127.5` maps gan's [-1, 1] ones;
    `eight_bit`: the caller made them 8-bit values, as `signed_to_255` does, so not warned of).
    `crop_border` pixels are shaved from every side first; `y_channel` compares the
    BT.601 luma only. A batch gives the mean of the per-image PSNRs. Returns math.inf
    when the images are identical (MSE == 0).
    """
    image, reference = _prepare(image, reference, crop_border, y_channel, min_size=1, metric="psnr",
                                eight_bit=eight_bit)
    scores = [_psnr_one(one, other) for one, other in zip(image, reference)]
    return sum(scores) / len(scores)


def smallest_sr_image(scale: int) -> int:
    """The smallest HR side (a multiple of `scale`) SR evaluation can score: SSIM's 11x11 window
    must fit after `scale` pixels are shaved from each border."""
    needed = SSIM_WINDOW_SIZE + 2 * scale
    return -(-needed // scale) * scale


def ssim(image: torch.Tensor, reference: torch.Tensor, crop_border: int = 0, y_channel: bool = False, *,
         eight_bit: bool = False) -> float:
    """Structural similarity (Wang et al. 2004) as BasicSR and MATLAB compute it, in float64.

    `image`, `reference`: (3, H, W) or (N, 3, H, W) in [0, 255] (checked as for `psnr`, `eight_bit` too), same
    shape, at least
    11x11 after `crop_border` pixels are shaved from every side. The score of one image
    is the mean of its (H - 10) x (W - 10) SSIM map, averaged over channels (or on the
    luma only with `y_channel`); a batch gives the mean over images. Identical images
    give 1.0.
    """
    image, reference = _prepare(image, reference, crop_border, y_channel, min_size=SSIM_WINDOW_SIZE, metric="ssim",
                                eight_bit=eight_bit)
    line = _gaussian_line(image.device)
    scores = [_ssim_one(one, other, line) for one, other in zip(image, reference)]
    return sum(scores) / len(scores)


def _prepare(image: torch.Tensor, reference: torch.Tensor, crop_border: int, y_channel: bool,
             min_size: int, metric: str, eight_bit: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes and values, shave the border, take luma if asked -> two float64 (N, C, H', W')."""
    if image.shape != reference.shape:
        raise ValueError(f"image and reference shapes differ: {tuple(image.shape)} vs {tuple(reference.shape)}")
    if image.dim() not in (3, 4):
        raise ValueError(f"expected images of shape (3, H, W) or (N, 3, H, W), got {tuple(image.shape)}")
    _check_8_bit_values(image, reference, metric, eight_bit)
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    height, width = image.shape[-2] - 2 * crop_border, image.shape[-1] - 2 * crop_border
    if height < min_size or width < min_size:
        raise ValueError(f"images of {image.shape[-2]}x{image.shape[-1]} pixels leave {max(height, 0)}x"
                         f"{max(width, 0)} after shaving crop_border={crop_border} from each side; "
                         f"this metric needs at least {min_size}x{min_size}")
    prepared = []
    for images in (image, reference):
        # float64 before anything else: float32 MSE of near-identical images loses digits.
        images = images.detach().to(torch.float64)
        images = images if images.dim() == 4 else images.unsqueeze(0)
        if crop_border:
            images = images[..., crop_border:-crop_border, crop_border:-crop_border]
        prepared.append(rgb_to_y(images) if y_channel else images)
    return prepared[0], prepared[1]


def _check_8_bit_values(image: torch.Tensor, reference: torch.Tensor, metric: str, eight_bit: bool) -> None:
    """ValueError for values below 0 or above 255; a warning when floating images lie all within [0, 1]
    (not all zero) and are not `eight_bit`. gan's [-1, 1] images scored 59.6 dB where their 8-bit values
    score 17.5, and [0, 1] ones 65.6, without a word; a dark 8-bit image can lie within [0, 1] too, so that
    one is only warned of. (gan's own evaluation, which made the values 8-bit, warned of every dark image
    in words about which its user could do nothing.)"""
    within_unit = []
    for name, images in (("image", image), ("reference", reference)):
        if images.dtype == torch.uint8:  # (8-bit by its type)
            continue
        low, high = (bound.item() for bound in torch.aminmax(images.detach()))
        if low < 0 or high > 255:
            raise ValueError(f"{metric}: the {name} holds values in [{low:.4g}, {high:.4g}]; it takes 8-bit values "
                             "in [0, 255]: map gan's [-1, 1] images with `(x + 1) * 127.5` (or signed_to_255, which "
                             "also rounds them as a saved PNG does)")
        if images.is_floating_point() and 0 < high <= 1 and not eight_bit:
            within_unit.append(name)
    if within_unit:
        warnings.warn(f"{metric}: the values of the {' and the '.join(within_unit)} lie within [0, 1] only, as "
                      "[0, 1] images do (or very dark 8-bit ones): it takes 8-bit values in [0, 255], so scale [0, 1] "
                      "images by 255", stacklevel=4)


def _psnr_one(image: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR of one (C, H, W) float64 pair in [0, 255]."""
    mse = torch.mean((image - reference) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _gaussian_line(device: torch.device) -> torch.Tensor:
    """Normalised 11-tap Gaussian (sigma 1.5), float64: the 11x11 SSIM window is its outer product
    with itself, the same window as BasicSR's cv2.getGaussianKernel(11, 1.5) outer product."""
    offsets = torch.arange(SSIM_WINDOW_SIZE, dtype=torch.float64, device=device) - (SSIM_WINDOW_SIZE - 1) / 2
    line = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    return line / line.sum()


def _windowed_means(maps: torch.Tensor, line: torch.Tensor) -> torch.Tensor:
    """(..., H, W) maps filtered by the window, keeping the 'valid' (H - 10, W - 10) part: by rows,
    then by columns, as sums of shifted copies. 22 products a pixel instead of the 2-D window's 121,
    and several times faster than float64 convolutions on a CPU (a 2K image in seconds, not 20)."""
    taps = line.tolist()
    height, width = maps.shape[-2:]
    rows = maps[..., :, : width - SSIM_WINDOW_SIZE + 1] * taps[0]
    for offset, weight in enumerate(taps[1:], start=1):
        rows.add_(maps[..., :, offset: width - SSIM_WINDOW_SIZE + 1 + offset], alpha=weight)
    means = rows[..., : height - SSIM_WINDOW_SIZE + 1, :] * taps[0]
    for offset, weight in enumerate(taps[1:], start=1):
        means.add_(rows[..., offset: height - SSIM_WINDOW_SIZE + 1 + offset, :], alpha=weight)
    return means


def _ssim_one(image: torch.Tensor, reference: torch.Tensor, line: torch.Tensor) -> float:
    """Mean SSIM of one (C, H, W) float64 pair in [0, 255], over channels and the valid map: summed
    over bands of SSIM_BAND_PIXELS map pixels (each with the window's extra rows), so that the float64
    maps stay near 100 MB whatever the image's size (a 25-megapixel photo whole took 10 GB more)."""
    channels, height, width = image.shape
    map_height, map_width = height - SSIM_WINDOW_SIZE + 1, width - SSIM_WINDOW_SIZE + 1
    band = max(1, SSIM_BAND_PIXELS // (channels * map_width))
    total = 0.0
    for top in range(0, map_height, band):
        rows = slice(top, min(top + band, map_height) + SSIM_WINDOW_SIZE - 1)
        total += _ssim_map(image[:, rows], reference[:, rows], line).sum().item()
    return total / (channels * map_height * map_width)


def _ssim_map(image: torch.Tensor, reference: torch.Tensor, line: torch.Tensor) -> torch.Tensor:
    """The valid SSIM map of a (C, H, W) float64 pair (C, H - 10, W - 10)."""
    # The five local means at once: of the image, the reference, their squares and their product.
    # No padding: BasicSR filters with cv2.filter2D and then drops 5 pixels per side, which is
    # exactly the 'valid' part of the map.
    stacked = torch.stack([image, reference, image**2, reference**2, image * reference])
    mean_image, mean_reference, local_image_sq, local_reference_sq, local_product = _windowed_means(stacked, line)
    mean_image_sq, mean_reference_sq = mean_image**2, mean_reference**2
    mean_product = mean_image * mean_reference
    variance_image = local_image_sq - mean_image_sq
    variance_reference = local_reference_sq - mean_reference_sq
    covariance = local_product - mean_product
    return ((2 * mean_product + SSIM_C1) * (2 * covariance + SSIM_C2)) / (
        (mean_image_sq + mean_reference_sq + SSIM_C1) * (variance_image + variance_reference + SSIM_C2)
    )
