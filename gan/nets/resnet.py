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
from gan.nets.common import check_input_size, init_normal_, norm_layer, require_sizes, upsample_layers, zero_last_conv_

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
    """images (N, in_channels, H, W) in [-1, 1] -> images (N, out_channels, H, W) in [-1, 1]
    (with `residual`, linear: the input plus a correction, which callers clamp when they save).

    H and W must be multiples of 4 (`size_multiple`) and at least 8 (`smallest_input`); `gan
    translate` pads to both.
    """

    def __init__(
        self,
        in_channels: int = 3,  # channels of the input image
        out_channels: int = 3,  # channels of the output image
        channels: int = 64,  # width after the 7x7 head (ngf); x4 in the residual blocks
        num_blocks: int = 9,  # residual blocks: 9 for 256 px, 6 for 128 px in the paper
        norm: str = "instance",  # "instance" (the paper), "batch" or "none"
        dropout: float = 0.0,  # inside each residual block; 0 disables (the CycleGAN default)
        upsample: str = "transposed",  # the two x2 steps: transposed (the paper) | resize | pixelshuffle
        residual: bool = False,  # output = input + a learnt correction (restoration); starts as the identity
    ):
        super().__init__()
        require_sizes(in_channels=in_channels, out_channels=out_channels, channels=channels)
        if num_blocks < 0:
            raise ValueError(f"num_blocks must be >= 0, got {num_blocks}")
        if not 0 <= dropout < 1:  # (1 zeroes every residual branch in training alone; nan fails at step 1)
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if residual and in_channels != out_channels:
            raise ValueError(f"residual needs in_channels == out_channels, got {in_channels} and {out_channels}")
        self.residual = residual
        self.size_multiple = 2**NUM_DOWNSAMPLINGS
        # The residual blocks' reflection pads (1 px) need a feature map of 2 px at least
        self.smallest_input = 2 * self.size_multiple
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
            transposed = nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)
            layers += [*upsample_layers(upsample, width, width // 2, bias, transposed),
                       norm_layer(norm, width // 2), nn.ReLU(inplace=True)]
            width //= 2
        # Residual outputs stay linear: input + correction must reach [-1, 1] exactly.
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), *([] if residual else [nn.Tanh()])]
        self.net = nn.Sequential(*layers)
        self.apply(init_normal_)
        if residual:
            zero_last_conv_(self.net)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_input_size(images, "the ResNet generator", self.size_multiple, self.smallest_input)
        return images + self.net(images) if self.residual else self.net(images)


# The two depths CycleGAN ships; num_blocks stays settable, with these defaults.
register_network("generator", "resnet_6blocks")(functools.partial(ResnetGenerator, num_blocks=6))
register_network("generator", "resnet_9blocks")(functools.partial(ResnetGenerator, num_blocks=9))
