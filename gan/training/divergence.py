"""The signs that a run diverged beyond its losses: weights past `train.divergence_bound` (or not
finite), and BatchNorm statistics that are not finite. Each is checked where the loop reads values
back anyway (log points, before checkpoints), and raised as `NonFiniteLossError`."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from gan.training.errors import NonFiniteLossError


def raise_if_weights_diverged(networks: dict[str, torch.nn.Module], step: int, bound: float,
                              last_checkpoint: Path | None) -> None:
    """Weights beyond `bound` in magnitude (or NaN) mean a run diverged even when its losses look
    finite. (Every process of a torchrun run holds the same weights: each finds what the others find.)"""
    for name, network in networks.items():
        largest = _largest_weight(network)
        if not math.isfinite(largest) or largest > bound:
            raise NonFiniteLossError(step, f"weights of {name}", last_checkpoint, largest, bound)


def non_finite_buffer(networks: dict[str, torch.nn.Module], step: int) -> tuple[int, str, float] | None:
    """(step, what, NaN) for a network's first buffer that is not finite, or None. BatchNorm's running
    statistics must be finite too: training reads a batch's own statistics, so a NaN there shows
    only in eval mode, in the previews, the samples and `gan sample`'s refusal of the checkpoint."""
    for name, network in networks.items():
        buffer = _first_non_finite_buffer(network)
        if buffer is not None:
            return step, f"{name}'s buffer {buffer}", float("nan")
    return None


@torch.no_grad()
def _largest_weight(network: torch.nn.Module) -> float:
    maxima = [parameter.detach().abs().amax().float() for parameter in network.parameters() if parameter.numel()]
    return float(torch.stack(maxima).max()) if maxima else 0.0


@torch.no_grad()
def _first_non_finite_buffer(network: torch.nn.Module) -> str | None:
    """The name of the first floating-point buffer holding a NaN or infinity, or None (one read back)."""
    buffers = [(name, buffer) for name, buffer in network.named_buffers() if buffer.is_floating_point()
               and buffer.numel()]
    if not buffers or bool(torch.stack([torch.isfinite(buffer).all() for _, buffer in buffers]).all()):
        return None
    return next(name for name, buffer in buffers if not bool(torch.isfinite(buffer).all()))
