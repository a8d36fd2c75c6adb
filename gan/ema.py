"""Exponential moving average of a network's weights (Karras et al.; Yazıcı et al. 2019), and
the BatchNorm statistics that belong to averaged weights."""

from __future__ import annotations

import contextlib
import copy
from typing import Callable

import torch
from torch import nn


class EMA:
    """A frozen copy of `network` whose parameters track an EMA of the original's.

    The decay warms up as min(decay, (1 + step) / (10 + step)), so the average is not
    dominated by the random initialisation early in training. Buffers (BatchNorm
    running statistics) are copied as they are, not averaged: they belong to the live
    weights, so before the average is used, `standing_statistics` recomputes them for
    its own. `average` is the copy to sample from; it stays in eval mode.
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


def running_norms(network: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The normalisation layers of `network` that keep running statistics."""
    return [module for module in network.modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats]


@torch.no_grad()
def standing_statistics(generator: nn.Module, batches: int, batch_size: int, seed: int, device: torch.device,
                        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> bool:
    """Recompute the running statistics of `generator`'s BatchNorm layers for its own weights
    ("standing statistics", Brock et al. 2019): reset them, then average (cumulatively, not
    with momentum) over `batches` forward passes in train mode on latents drawn from a
    generator seeded with `seed`. The global RNG and every other network are untouched.
    Returns False, doing nothing, when the network keeps no running statistics."""
    norms = running_norms(generator)
    if not norms or batches < 1:
        return False
    momenta = [norm.momentum for norm in norms]
    was_training = generator.training
    latents = torch.Generator().manual_seed(seed)
    try:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the passes
        generator.train()
        for _ in range(batches):
            with autocast():
                generator(torch.randn(batch_size, generator.latent_dim, generator=latents).to(device))
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        generator.train(was_training)
    return True
