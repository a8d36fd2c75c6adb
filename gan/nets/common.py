"""Small building blocks shared by the networks of the zoo."""

from __future__ import annotations

import operator

import torch
from torch import nn


def init_normal_(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN/pix2pix/CycleGAN initialisation, for `net.apply(init_normal_)`.

    Conv and linear weights ~ N(0, std), norm scales ~ N(1, std), biases zero; sub-pixel
    convolutions keep their ICNR structure.
    """
    if any(parameter.is_meta for parameter in module.parameters()):
        return  # (a copy that only counts parameters has no values to draw; drawing them imports torch._dynamo, 1.1 s)
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, std)
        nn.init.zeros_(module.bias)
    elif isinstance(module, SubPixelConv):  # visited after its conv: ICNR again, on the new weights
        icnr_(module.conv, module.scale)


def require_sizes(**sizes: int) -> None:
    """ValueError for a width, count or channel number below 1: a network built so has layers of no
    channels, and fails only in its first forward, deep inside (`BatchNorm: index 0 out of range`)."""
    for name, value in sizes.items():
        try:
            whole = operator.index(value)  # (an int, or numpy's: sizes drawn from np.arange build too)
        except TypeError:
            whole = None
        if whole is None or isinstance(value, bool) or whole < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")


def check_input_size(images: torch.Tensor, network: str, size_multiple: int, smallest: int = 1) -> None:
    """ValueError naming `network`'s needs when the (N, C, H, W) `images` do not meet them: H and W
    multiples of `size_multiple` and at least `smallest` (an odd size would give another output size,
    or a shape error deep inside; `gan.nets.running.run_padded` pads any size to fit)."""
    height, width = images.shape[-2:]
    if height % size_multiple or width % size_multiple or min(height, width) < smallest:
        at_least = f" and at least {smallest}" if smallest > size_multiple else ""
        raise ValueError(f"{network} needs H and W divisible by {size_multiple}{at_least}, got {height}x{width}")


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


UPSAMPLE_KINDS = ("transposed", "resize", "pixelshuffle")


def upsample_layers(kind: str, in_channels: int, out_channels: int, bias: bool,
                    transposed: nn.ConvTranspose2d) -> list[nn.Module]:
    """Layers that double H and W and map `in_channels` to `out_channels`.

    "transposed": the network's own transposed convolution (`transposed`; the papers'),
    which leaves checkerboard artefacts where its kernel overlaps unevenly. "resize":
    nearest-neighbour x2, then a 3x3 convolution (Odena et al. 2016). "pixelshuffle": a 3x3
    convolution to 4x the channels, then PixelShuffle(2) (Shi et al. 2016), initialised
    with ICNR so that it starts as a resize-convolution, free of checkerboard.

    The caller builds `transposed` even when another kind is used: its construction draws
    from the RNG, and the measured runs (docs/results.md) were initialised with that draw.
    """
    if kind == "transposed":
        return [transposed]
    if kind == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)]
    if kind == "pixelshuffle":
        return [SubPixelConv(in_channels, out_channels, 2, bias)]
    raise ValueError(f"unknown upsample '{kind}'; valid: {', '.join(UPSAMPLE_KINDS)}")


class SubPixelConv(nn.Module):
    """A 3x3 convolution to `scale`**2 x the channels, then PixelShuffle(scale): x`scale` upsampling."""

    def __init__(self, in_channels: int, out_channels: int, scale: int, bias: bool = True):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(in_channels, out_channels * scale**2, 3, padding=1, bias=bias)
        self.shuffle = nn.PixelShuffle(scale)
        icnr_(self.conv, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


@torch.no_grad()
def icnr_(conv: nn.Conv2d, scale: int) -> None:
    """ICNR (Aitken et al. 2017): give the `scale`**2 sub-pixel outputs of each channel the same
    kernel, so conv + PixelShuffle starts as nearest-neighbour upsampling of one convolution:
    each scale x scale output block is constant, and no checkerboard appears at the start.

    Keeps the distribution of the conv's current weights (call it after any re-initialisation)."""
    groups = scale**2
    out_channels = conv.out_channels // groups
    # PixelShuffle puts input channel c * groups + k at sub-pixel k of output channel c.
    conv.weight.copy_(conv.weight[:out_channels].repeat_interleave(groups, dim=0))
    if conv.bias is not None:
        conv.bias.copy_(conv.bias[:out_channels].repeat_interleave(groups, dim=0))


def spectral_norm_(network: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every convolution and linear layer of
    `network`, with PyTorch's parametrisation: each weight is divided by its largest singular
    value, estimated by one power iteration per training forward (transposed convolutions
    along their output dimension). The power-iteration vectors are buffers, so a checkpoint
    holds them and a resume continues exactly. Call it after the weights are initialised."""
    for module in list(network.modules()):
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(module)
    return network


@torch.no_grad()
def zero_last_conv_(module: nn.Module) -> None:
    """Zero the weights and bias of the last convolution in `module`: a residual network
    whose output layer is zero starts as the identity (its output is its input)."""
    last = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
    last.weight.zero_()
    if last.bias is not None:
        last.bias.zero_()
