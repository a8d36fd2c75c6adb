"""SRResNet and the SRGAN discriminator (Ledig et al. 2017).

SRResNet: 9x9 head conv + PReLU, `num_blocks` residual blocks (conv-BN-PReLU-conv-BN),
a conv-BN with a global skip from the head, sub-pixel (PixelShuffle x2, or one x3)
upsampling stages, and a 9x9 tail conv. It takes the LR image and returns the HR image.
With `batch_norm = false`, `residual_scale` and an L1 loss it is EDSR-style (Lim et al.
2017: EDSR's baseline keeps no BatchNorm either, but has 3x3 head and tail convs, ReLU in
its blocks and no activation in the upsampler, 1.52 M parameters at 64 x 16 against 1.55 M
here); with `residual = true` it predicts only what bicubic upsampling misses.

Both networks keep PyTorch's default initialisation (Kaiming-uniform), as the paper states none
and EDSR's reference code keeps it; only the sub-pixel convolutions start by ICNR, free of
checkerboard (BasicSR scales its Kaiming init by 0.1 instead, which this code does not).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan.nets import register_network
from gan.nets.common import icnr_, require_sizes, spectral_norm_, zero_last_conv_


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, batch_norm: bool, scale: float):
        super().__init__()
        self.scale = scale
        norm = (lambda: nn.BatchNorm2d(channels)) if batch_norm else nn.Identity
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm), norm(),
                                  nn.PReLU(channels),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm), norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.scale


@register_network("generator", "srresnet")
class SRResNet(nn.Module):
    """LR images (N, image_channels, h, w) in [-1, 1] -> HR images (N, image_channels, h*scale, w*scale).

    The output is linear (not squashed by tanh), so an MSE-trained network can reach
    the targets exactly; callers clamp to [-1, 1] when they save images.
    """

    def __init__(
        self,
        scale: int,  # 2, 3, 4 or 8: PixelShuffle x2 stages (one x3 stage for 3), supplied from data.scale
        channels: int = 64,  # width of the residual trunk
        num_blocks: int = 16,  # residual blocks (B = 16 in the paper)
        batch_norm: bool = True,  # BatchNorm in the blocks; off gives the EDSR-style variant
        image_channels: int = 3,
        residual_scale: float = 1.0,  # each block adds its output times this (EDSR: 0.1 for wide trunks)
        residual: bool = False,  # output = bicubic upsampling of the input + a learnt correction
    ):
        super().__init__()
        require_sizes(channels=channels, image_channels=image_channels)
        if scale not in (2, 3, 4, 8):
            raise ValueError(f"SRResNet upsamples by 2, 3, 4 or 8, not {scale}")
        if not 0 < residual_scale <= 1:
            raise ValueError(f"residual_scale must be in (0, 1], got {residual_scale}")
        self.scale = scale
        self.residual = residual
        self.head = nn.Sequential(nn.Conv2d(image_channels, channels, 9, padding=4), nn.PReLU(channels))
        trunk_norm = nn.BatchNorm2d(channels) if batch_norm else nn.Identity()
        self.trunk = nn.Sequential(*[_ResidualBlock(channels, batch_norm, residual_scale) for _ in range(num_blocks)],
                                   nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm), trunk_norm)
        stages: list[nn.Module] = []
        for factor in [3] if scale == 3 else [2] * (scale.bit_length() - 1):
            conv = nn.Conv2d(channels, channels * factor**2, 3, padding=1)
            icnr_(conv, factor)  # starts free of checkerboard
            stages += [conv, nn.PixelShuffle(factor), nn.PReLU(channels)]
        self.upsample = nn.Sequential(*stages)
        self.tail = nn.Conv2d(channels, image_channels, 9, padding=4)
        if residual:
            zero_last_conv_(self.tail)

    def forward(self, lr_images: torch.Tensor) -> torch.Tensor:
        features = self.head(lr_images)
        output = self.tail(self.upsample(features + self.trunk(features)))
        if self.residual:
            output = output + F.interpolate(lr_images, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return output


@register_network("discriminator", "srgan")
class SRGANDiscriminator(nn.Module):
    """HR images (N, in_channels, H, W) -> logits (N,), for any H, W >= 16 (above 16 at N = 1: the
    last BatchNorm needs more than one value per channel).

    The paper's eight 3x3 convolutions (64, 64s2, 128, 128s2, 256, 256s2, 512, 512s2)
    with LeakyReLU(0.2) and BatchNorm after the first, then global average pooling
    (instead of flattening a fixed 6x6 map, so any HR crop size works), a 1024-unit
    dense layer with LeakyReLU, and one logit.
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: int = 64,  # width of the first conv; doubles every second conv
        spectral_norm: bool = False,  # every conv and linear layer spectrally normalised (Miyato et al. 2018)
    ):
        super().__init__()
        require_sizes(in_channels=in_channels, channels=channels)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        width = channels
        for index in range(1, 8):
            out_width = channels * 2 ** (index // 2)
            stride = 2 if index % 2 else 1
            layers += [nn.Conv2d(width, out_width, 3, stride=stride, padding=1, bias=False),
                       nn.BatchNorm2d(out_width), nn.LeakyReLU(0.2, inplace=True)]
            width = out_width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 1024),
                                        nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))
        if spectral_norm:
            spectral_norm_(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images)).flatten()
