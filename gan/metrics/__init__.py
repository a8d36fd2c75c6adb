"""Metrics, computed the way papers report them.

image_quality: PSNR and SSIM (super-resolution, paired translation). feature_distances,
inception, swd, generative: FID, KID, precision/recall and SWD of generated images
against a real set, with cached reference statistics.
"""

from __future__ import annotations

from gan.metrics.image_quality import psnr, rgb_to_y, signed_to_255, ssim

__all__ = ["psnr", "rgb_to_y", "signed_to_255", "ssim"]
