"""Image-quality metrics: PSNR and SSIM computed the way super-resolution papers report them."""

from __future__ import annotations

from gan.metrics.image_quality import psnr, rgb_to_y, signed_to_255, ssim

__all__ = ["psnr", "rgb_to_y", "signed_to_255", "ssim"]
