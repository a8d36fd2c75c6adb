"""Exponential moving average of a network's weights (Karras et al.; Yazıcı et al. 2019)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of `network` whose parameters track an EMA of the original's.

    Buffers (BatchNorm running statistics) are copied as they are, not averaged.
    `average` is the copy to sample from; it stays in eval mode.
    """

    def __init__(self, network: nn.Module, decay: float):
        self.decay = decay
        self.average = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        averages = list(self.average.parameters())
        torch._foreach_lerp_(averages, [p.detach() for p in network.parameters()], 1.0 - self.decay)
        for average_buffer, buffer in zip(self.average.buffers(), network.buffers()):
            average_buffer.copy_(buffer)
