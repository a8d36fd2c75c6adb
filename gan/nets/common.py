"""Small building blocks shared by the networks of the zoo."""

from __future__ import annotations

from torch import nn


def init_normal_(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN/pix2pix/CycleGAN initialisation, for `net.apply(init_normal_)`.

    Conv and linear weights ~ N(0, std), norm scales ~ N(1, std), biases zero.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, std)
        nn.init.zeros_(module.bias)


NORM_KINDS = ("batch", "instance", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation named `kind` for (N, channels, H, W) maps; the output has the input's shape.

    "batch": BatchNorm2d. "instance": InstanceNorm2d without affine parameters or
    running statistics, as in the CycleGAN/pix2pix reference. "none": identity.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}'; valid: {', '.join(NORM_KINDS)}")


def log2_resolution(resolution: int, low: int, high: int) -> int:
    """log2 of `resolution`, which must be a power of two in [low, high]."""
    if resolution < low or resolution > high or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two from {low} to {high}, got {resolution}")
    return resolution.bit_length() - 1
