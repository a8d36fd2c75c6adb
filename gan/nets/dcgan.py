"""DCGAN (Radford et al. 2015) generator and discriminator for 32..256 pixels.

All-convolutional; BatchNorm everywhere except the generator's output layer and
the discriminator's input layer; ReLU in G, LeakyReLU(0.2) in D; tanh output.
The discriminator returns logits (the sigmoid lives in the loss, for stability).
Widths follow the reference code (dcgan.torch, PyTorch's DCGAN example): `channels` (64) at the
last upsampling, doubling towards 4x4, so a 64-px generator starts at 4x4x512, where the paper's
Figure 1 draws 1024; `channels = 128` gives the figure's widths. The layers without a norm after
them (G's output, D's input and score) keep their biases, which the reference code leaves out:
3 parameters in G and 65 in D at 64 px, no effect on what the networks can express.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gan.nets import register_network
from gan.nets.common import init_normal_, log2_resolution, norm_layer, require_sizes, spectral_norm_


def _widths(resolution: int, channels: int, max_channels: int) -> list[int]:
    """Channel count at 4x4, 8x8, ..., resolution/2: doubling towards low resolution."""
    num_levels = log2_resolution(resolution, 32, 256) - 2  # 4x4 .. resolution/2
    if channels > max_channels:  # every layer would be capped: a network narrower than asked for
        raise ValueError(f"channels ({channels}) is more than max_channels ({max_channels}), which caps the width "
                         "of every layer: raise max_channels with it")
    return [min(channels * 2 ** (num_levels - 1 - level), max_channels) for level in range(num_levels)]


class LatentProjection(nn.ConvTranspose2d):
    """ConvTranspose2d(latent_dim, C, k, 1, 0) applied to z as a 1x1 image: computed as the matrix
    product it is, z @ W -> (N, C, k, k). Same parameters, same result; one GEMM instead of a
    transposed convolution of a 1x1 input, whose weight-gradient layout torch.compile's CUDA
    kernels mispredict (an inductor stride assertion, torch 2.11)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        projected = (z.flatten(1) @ self.weight.flatten(1)).view(z.shape[0], self.out_channels, *self.kernel_size)
        return projected if self.bias is None else projected + self.bias.view(1, -1, 1, 1)


class ScoreHead(nn.Conv2d):
    """Conv2d(C, 1, k) over a k x k feature map, i.e. a linear score of the flattened map (N, 1):
    computed as that product, for the same reason as LatentProjection."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(features.flatten(1), self.weight.flatten(1), self.bias)


@register_network("generator", "dcgan")
class DCGANGenerator(nn.Module):
    """z (N, latent_dim) -> images (N, image_channels, resolution, resolution) in [-1, 1]."""

    def __init__(
        self,
        resolution: int,
        latent_dim: int = 100,  # size of z
        channels: int = 64,  # width at resolution/2; doubles at each lower resolution
        max_channels: int = 1024,  # cap on the width (64 px: 512, 128 px: 1024 uncapped)
        image_channels: int = 3,
        norm: str = "batch",  # "batch" (the paper), "instance" or "none"
    ):
        super().__init__()
        require_sizes(latent_dim=latent_dim, channels=channels, max_channels=max_channels, image_channels=image_channels)
        self.resolution = resolution
        self.latent_dim = latent_dim
        widths = _widths(resolution, channels, max_channels)
        layers: list[nn.Module] = [
            LatentProjection(latent_dim, widths[0], 4, 1, 0, bias=norm != "batch"),
            norm_layer(norm, widths[0]),
            nn.ReLU(inplace=True),
        ]
        for in_width, out_width in zip(widths, widths[1:]):
            layers += [
                nn.ConvTranspose2d(in_width, out_width, 4, 2, 1, bias=norm != "batch"),
                norm_layer(norm, out_width),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], image_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_normal_)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() < 2 or math.prod(z.shape[1:]) != self.latent_dim:  # (else a reshape error, or z's rows regrouped)
            raise ValueError(f"the DCGAN generator takes z of shape (N, latent_dim = {self.latent_dim}), got "
                             f"{tuple(z.shape)}")
        return self.net(z.reshape(z.shape[0], self.latent_dim))


@register_network("discriminator", "dcgan")
class DCGANDiscriminator(nn.Module):
    """images (N, image_channels, resolution, resolution) -> logits (N,)."""

    def __init__(
        self,
        resolution: int,
        channels: int = 64,  # width at resolution/2; doubles at each lower resolution
        max_channels: int = 1024,
        image_channels: int = 3,
        norm: str = "batch",  # "batch" (the paper); "none" for WGAN-GP, whose penalty is per sample
        spectral_norm: bool = False,  # every layer spectrally normalised (SNGAN; usually with norm = "none")
    ):
        super().__init__()
        require_sizes(channels=channels, max_channels=max_channels, image_channels=image_channels)
        self.resolution = resolution
        widths = _widths(resolution, channels, max_channels)[::-1]  # resolution/2 .. 4x4
        layers: list[nn.Module] = [nn.Conv2d(image_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for in_width, out_width in zip(widths, widths[1:]):
            layers += [
                nn.Conv2d(in_width, out_width, 4, 2, 1, bias=norm != "batch"),  # BatchNorm's shift replaces it
                norm_layer(norm, out_width),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(ScoreHead(widths[-1], 1, 4, 1, 0))  # 4x4 -> one score
        self.net = nn.Sequential(*layers)
        self.apply(init_normal_)
        if spectral_norm:
            spectral_norm_(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.resolution, self.resolution):  # (else a matrix product's shape error)
            raise ValueError(f"this DCGAN discriminator reads {self.resolution}x{self.resolution} images (its "
                             f"resolution), got {images.shape[-2]}x{images.shape[-1]}")
        return self.net(images).flatten()
