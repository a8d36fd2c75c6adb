"""Exponential moving average of a network's weights (Karras et al.; Yazıcı et al. 2019)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of `network` whose parameters track an EMA of the original's.

    The decay warms up as min(decay, (1 + step) / (10 + step)), so the average is not
    dominated by the random initialisation early in training. Buffers (BatchNorm
    running statistics) are copied as they are, not averaged. `average` is the copy
    to sample from; it stays in eval mode.
    """

    def __init__(self, network: nn.Module, decay: float):
        self.decay = decay
        self.average = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module, step: int) -> None:
        """Blend in `network`'s weights after training step `step` (1, 2, ...)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        averages = list(self.average.parameters())
        torch._foreach_lerp_(averages, [p.detach() for p in network.parameters()], 1.0 - decay)
        for average_buffer, buffer in zip(self.average.buffers(), network.buffers()):
            average_buffer.copy_(buffer)
