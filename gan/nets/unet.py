"""The pix2pix U-Net generator (Isola et al. 2017), as in junyanz/pytorch-CycleGAN-and-pix2pix.

An encoder of `num_downs` 4x4 stride-2 convolutions, a mirrored decoder of 4x4
stride-2 transposed convolutions, and a skip connection at every resolution: each
decoder block but the innermost sees [encoder features, decoder features]
concatenated on channels. The reference builds this recursively
(UnetSkipConnectionBlock); here it is two lists, indexed by level from the
outermost (level 0, full resolution) to the innermost (the 1x1 bottleneck at the
nominal size), so the forward pass reads top to bottom.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from gan.nets import register_network
from gan.nets.common import check_input_size, init_normal_, norm_layer, require_sizes, upsample_layers, zero_last_conv_

# Below this the reference's fixed ngf, 2ngf, 4ngf, 8ngf ... 8ngf layout has no room.
MIN_NUM_DOWNS = 5


@register_network("generator", "unet")
class UNetGenerator(nn.Module):
    """images (N, in_channels, H, W) in [-1, 1] -> images (N, out_channels, H, W) in [-1, 1]
    (with `residual`, linear: the input plus a correction, which callers clamp when they save).

    H and W must be multiples of `size_multiple` = 2**num_downs (`gan translate`
    pads inputs to it). Encoder widths are channels * [1, 2, 4, 8, 8, ...].
    """

    # A pass's peak memory over its largest layer output (gan translate's memory check): every encoder
    # output stays alive until its decoder level reads it; 7.2-8.4 measured on the CPU (1024 and 2048 px,
    # 1 and 2 threads: more threads, more scratch; benchmarks/pass_memory.py)
    peak_layer_outputs = 10

    def __init__(
        self,
        in_channels: int = 3,  # channels of the input image
        out_channels: int = 3,  # channels of the output image
        num_downs: int = 8,  # stride-2 downsamplings: 7 for 128 px, 8 for 256 px (bottleneck 1x1)
        channels: int = 64,  # width of the outermost level (ngf); capped at 8x deeper in
        norm: str = "batch",  # "batch", "instance" or "none"
        dropout: float = 0.5,  # in the num_downs - 5 decoder blocks next to the innermost; 0 disables
        upsample: str = "transposed",  # decoder x2 steps: transposed (the paper) | resize | pixelshuffle
        residual: bool = False,  # output = input + a learnt correction (restoration); starts as the identity
    ):
        super().__init__()
        require_sizes(in_channels=in_channels, out_channels=out_channels, channels=channels)
        if num_downs < MIN_NUM_DOWNS:
            raise ValueError(f"num_downs must be at least {MIN_NUM_DOWNS}, got {num_downs}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if residual and in_channels != out_channels:
            raise ValueError(f"residual needs in_channels == out_channels, got {in_channels} and {out_channels}")
        self.residual = residual
        self.num_downs = num_downs
        self.size_multiple = 2**num_downs
        # Convs followed by BatchNorm need no bias (its shift replaces it); the reference's use_bias.
        bias = norm != "batch"
        widths = [channels * min(2**level, 8) for level in range(num_downs)]
        innermost = num_downs - 1

        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level, width in enumerate(widths):
            outer = in_channels if level == 0 else widths[level - 1]  # encoder input width
            down: list[nn.Module] = [nn.Conv2d(outer, width, 4, 2, 1, bias=bias)]
            if level > 0:
                # Not in place: the block's input is also the skip of the level above.
                down.insert(0, nn.LeakyReLU(0.2))
            if 0 < level < innermost:
                down.append(norm_layer(norm, width))
            self.encoder.append(nn.Sequential(*down))

            up_in = width if level == innermost else 2 * width  # [skip, decoder] except at the bottom
            if level == 0:
                # No norm follows, so this conv keeps its bias whatever the norm.
                # Residual outputs stay linear: input + correction must reach [-1, 1] exactly.
                up: list[nn.Module] = [
                    nn.ReLU(inplace=True),
                    *upsample_layers(upsample, up_in, out_channels, True,
                                     nn.ConvTranspose2d(up_in, out_channels, 4, 2, 1)),
                    *([] if residual else [nn.Tanh()]),
                ]
            else:
                up = [
                    nn.ReLU(inplace=True),
                    *upsample_layers(upsample, up_in, outer, bias, nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=bias)),
                    norm_layer(norm, outer),
                ]
                if dropout > 0 and 4 <= level < innermost:  # the reference's num_downs - 5 8ngf blocks
                    up.append(nn.Dropout(dropout))
            self.decoder.append(nn.Sequential(*up))
        self.apply(init_normal_)
        if residual:
            zero_last_conv_(self.decoder[0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_input_size(images, f"U-Net with num_downs={self.num_downs}", self.size_multiple)
        features = []  # encoder output at each level: level 0 is H/2, the innermost H/2**num_downs
        x = images
        for down in self.encoder:
            x = down(x)
            features.append(x)
        x = self.decoder[-1](features[-1])
        for level in reversed(range(self.num_downs - 1)):
            x = self.decoder[level](torch.cat([features[level], x], dim=1))
        return images + x if self.residual else x


def unet_inert_args(num_downs: int = 8, dropout: float = 0.5, **_: object) -> dict[str, str]:
    """Arguments that change nothing beside the others: dropout with no decoder block to sit in."""
    if dropout > 0 and num_downs - 5 < 1:
        return {"dropout": f"the U-Net's dropout sits in the num_downs - 5 decoder blocks next to the innermost, "
                           f"and num_downs = {num_downs} has none (6 or more has)"}
    return {}


UNetGenerator.inert_args = staticmethod(unet_inert_args)  # (read by gan.nets.network_spec, naming the config key)

# The two sizes pix2pix ships; num_downs stays settable, with these defaults.
register_network("generator", "unet_128")(functools.partial(UNetGenerator, num_downs=7))
register_network("generator", "unet_256")(functools.partial(UNetGenerator, num_downs=8))
