"""The ResNet generator of CycleGAN (Zhu et al. 2017; after Johnson et al. 2016).

c7s1-64, d128, d256, R256 x num_blocks, u128, u64, c7s1-3 with tanh: a 7x7 head,
two stride-2 downsamplings, residual blocks with reflection padding, two stride-2
transposed-convolution upsamplings and a 7x7 tail. As in the reference
(junyanz/pytorch-CycleGAN-and-pix2pix ResnetGenerator).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from gan.nets import register_network
from gan.nets.common import init_normal_, norm_layer

NUM_DOWNSAMPLINGS = 2


class ResidualBlock(nn.Module):
    """x + (reflect-pad, conv3x3, norm, ReLU, [dropout], reflect-pad, conv3x3, norm)(x)."""

    def __init__(self, channels: int, norm: str, dropout: float, bias: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias),
                                   norm_layer(norm, channels), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm, channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register_network("generator", "resnet")
class ResnetGenerator(nn.Module):
    """images (N, in_channels, H, W) in [-1, 1] -> images (N, out_channels, H, W) in [-1, 1].

    H and W must be multiples of 4 (`size_multiple`; `gan translate` pads to it).
    """

    def __init__(
        self,
        in_channels: int = 3,  # channels of the input image
        out_channels: int = 3,  # channels of the output image
        channels: int = 64,  # width after the 7x7 head (ngf); x4 in the residual blocks
        num_blocks: int = 9,  # residual blocks: 9 for 256 px, 6 for 128 px in the paper
        norm: str = "instance",  # "instance" (the paper), "batch" or "none"
        dropout: float = 0.0,  # inside each residual block; 0 disables (the CycleGAN default)
    ):
        super().__init__()
        if num_blocks < 0:
            raise ValueError(f"num_blocks must be >= 0, got {num_blocks}")
        self.size_multiple = 2**NUM_DOWNSAMPLINGS
        bias = norm != "batch"  # a BatchNorm shift replaces the bias
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, channels, 7, bias=bias),
                                   norm_layer(norm, channels), nn.ReLU(inplace=True)]
        width = channels
        for _ in range(NUM_DOWNSAMPLINGS):
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1, bias=bias),
                       norm_layer(norm, width * 2), nn.ReLU(inplace=True)]
            width *= 2
        layers += [ResidualBlock(width, norm, dropout, bias) for _ in range(num_blocks)]
        for _ in range(NUM_DOWNSAMPLINGS):
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       norm_layer(norm, width // 2), nn.ReLU(inplace=True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_normal_)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


# The two depths CycleGAN ships; num_blocks stays settable, with these defaults.
register_network("generator", "resnet_6blocks")(functools.partial(ResnetGenerator, num_blocks=6))
register_network("generator", "resnet_9blocks")(functools.partial(ResnetGenerator, num_blocks=9))
