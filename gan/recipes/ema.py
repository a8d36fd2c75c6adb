"""Exponential moving average of a network's weights (Karras et al.; Yazıcı et al. 2019), and
the BatchNorm statistics that belong to averaged weights."""

from __future__ import annotations

import contextlib
import copy
from typing import Callable, Iterable, Iterator

import torch
from torch import nn


class EMA:
    """A frozen copy of `network` whose parameters track an EMA of the original's.

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so the average
    is not dominated by the random initialisation early in training. n counts on the
    device from the first update's step, so an update inside a training step replayed as
    a CUDA graph warms up as an eager one does. Buffers (BatchNorm running statistics)
    are copied as they are, not averaged: they belong to the live weights, so before the
    average is used, `standing_statistics` recomputes them for its own. `average` is the
    copy to sample from; it stays in eval mode.
    """

    def __init__(self, network: nn.Module, decay: float):
        self.decay = decay
        self.average = copy.deepcopy(network).eval().requires_grad_(False)
        self.updates: torch.Tensor | None = None  # float64 on the device; set by the first update

    @torch.no_grad()
    def update(self, network: nn.Module, step: int) -> None:
        """Blend in `network`'s weights after training step `step` (1, 2, ...; a resumed run
        starts later), one update per step."""
        averages = list(self.average.parameters())
        if self.updates is None:
            self.updates = torch.full((), step - 1, dtype=torch.float64, device=averages[0].device)
        self.updates += 1
        decay = torch.clamp((1 + self.updates) / (10 + self.updates), max=self.decay)
        deltas = torch._foreach_sub([p.detach() for p in network.parameters()], averages)
        torch._foreach_mul_(deltas, (1 - decay).to(averages[0].dtype))
        torch._foreach_add_(averages, deltas)
        buffers = list(self.average.buffers())
        if buffers:
            torch._foreach_copy_(buffers, list(network.buffers()))


def running_norms(network: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The normalisation layers of `network` that keep running statistics."""
    return [module for module in network.modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats]


@torch.no_grad()
def standing_statistics(network: nn.Module, inputs: Iterable[torch.Tensor],
                        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                        advance: Callable[[int], None] | None = None) -> bool:
    """Recompute the running statistics of `network`'s BatchNorm layers for its own weights
    ("standing statistics", Brock et al. 2019): reset them, then average them (cumulatively,
    not with momentum) over forward passes in train mode on each batch of `inputs`. Dropout
    stays off and every other network is untouched. Returns False, doing nothing, when the
    network keeps no running statistics or `inputs` is empty. `advance(passes done)` after each pass (a progress line)."""
    norms = running_norms(network)
    if not norms:
        return False
    momenta = [norm.momentum for norm in norms]
    modes = {module: module.training for module in network.modules()}
    passes = 0
    try:
        network.eval()  # dropout off: the statistics of the function that will be evaluated
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the passes
            norm.train()
        for batch in inputs:
            with autocast():
                network(batch)
            passes += 1
            if advance is not None:
                advance(passes)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        for module, training in modes.items():
            module.train(training)
    return passes > 0


def latent_batches(batches: int, batch_size: int, latent_dim: int, seed: int,
                   device: torch.device) -> Iterator[torch.Tensor]:
    """`batches` batches of normal latents from a generator seeded with `seed` (the global RNG
    is untouched), on `device`."""
    latents = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        yield torch.randn(batch_size, latent_dim, generator=latents, dtype=torch.float32).to(device)
