"""PatchGAN and PixelGAN discriminators (Isola et al. 2017), as in junyanz/pytorch-CycleGAN-and-pix2pix.

Both return a map of logits, one per patch (or pixel), rather than one logit per
image: each judges whether its own receptive field looks real. A conditional
pix2pix discriminator sees [input, output] concatenated on channels, so the
recipe supplies `in_channels` (6 for RGB -> RGB).
"""

from __future__ import annotations

import torch
from torch import nn

from gan.nets import register_network
from gan.nets.common import init_normal_, norm_layer, require_sizes, spectral_norm_


def smallest_input(n_layers: int) -> int:
    """The smallest side a PatchGAN of `n_layers` reads: its n stride-2 convs halve the side (rounding
    down) to at least 3 px, which its two stride-1 convs of kernel 4 take to a single logit."""
    return 3 * 2**n_layers


def deepest_for(size: int) -> int:
    """The largest `n_layers` whose PatchGAN reads size x size images; 0 when none does."""
    return max((n_layers for n_layers in range(1, 32) if smallest_input(n_layers) <= size), default=0)


@register_network("discriminator", "patchgan")
class PatchDiscriminator(nn.Module):
    """images (N, in_channels, H, W) -> logits (N, 1, H/2**n_layers - 2, W/2**n_layers - 2).

    The reference NLayerDiscriminator: 256x256 -> 30x30 with n_layers=3. Each logit
    sees a 70x70 patch with n_layers=3 (34x34 with 2, 142x142 with 4).
    """

    def __init__(
        self,
        in_channels: int,  # channels seen: 6 for a conditional RGB pix2pix discriminator
        channels: int = 64,  # width of the first layer (ndf); doubles per layer, capped at 8x
        n_layers: int = 3,  # stride-2 convs; 3 gives the 70x70 PatchGAN
        norm: str = "batch",  # "batch", "instance" or "none"
        spectral_norm: bool = False,  # every conv spectrally normalised (Miyato et al. 2018)
    ):
        super().__init__()
        require_sizes(in_channels=in_channels, channels=channels)
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        bias = norm != "batch"  # a conv followed by BatchNorm needs no bias
        widths = [channels * min(2**layer, 8) for layer in range(n_layers + 1)]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for layer in range(1, n_layers + 1):
            stride = 2 if layer < n_layers else 1  # the last feature layer keeps the resolution
            layers += [
                nn.Conv2d(widths[layer - 1], widths[layer], 4, stride, 1, bias=bias),
                norm_layer(norm, widths[layer]),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.apply(init_normal_)
        if spectral_norm:
            spectral_norm_(self)
        self.n_layers = n_layers

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        smallest = smallest_input(self.n_layers)
        if min(images.shape[-2:]) < smallest:  # (else "Kernel size can't be greater than actual input size")
            raise ValueError(f"a PatchGAN of n_layers = {self.n_layers} reads images of at least {smallest}x{smallest},"
                             f" got {images.shape[-2]}x{images.shape[-1]}")
        return self.net(images)


@register_network("discriminator", "pixelgan")
class PixelDiscriminator(nn.Module):
    """images (N, in_channels, H, W) -> logits (N, 1, H, W), one per pixel.

    The reference's 1x1 PixelGAN: every logit has a 1x1 receptive field, so it
    judges colour statistics only, not structure.
    """

    def __init__(
        self,
        in_channels: int,  # channels seen: 6 for a conditional RGB pix2pix discriminator
        channels: int = 64,  # width of the first layer (ndf); the second has twice as many
        norm: str = "batch",  # "batch", "instance" or "none"
        spectral_norm: bool = False,  # every conv spectrally normalised (Miyato et al. 2018)
    ):
        super().__init__()
        require_sizes(in_channels=in_channels, channels=channels)
        bias = norm != "batch"
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, 2 * channels, 1, bias=bias),
            norm_layer(norm, 2 * channels),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * channels, 1, 1, bias=bias),  # the reference drops this bias with BatchNorm too
        )
        self.apply(init_normal_)
        if spectral_norm:
            spectral_norm_(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)
