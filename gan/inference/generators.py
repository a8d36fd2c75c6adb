"""The unconditional generator of a run directory, checkpoint or export, ready to generate
(`gan sample` and `gan eval` load it)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan.core.checkpoint import CheckpointError
from gan.core.devices import select_device
from gan.inference.exported import load_source
from gan.recipes.loading import build_generator


@dataclass
class LoadedGenerator:
    generator: nn.Module  # in eval mode, no gradients
    checkpoint: Path
    used_ema: bool  # the EMA weights, when the checkpoint has them
    config: dict[str, Any]  # the run's resolved config
    step: int
    data_record: dict | None = None  # the checkpoint's record of its data (`run_data_folders`), or its export's


GENERATORS = ("ema", "live")  # which weights of a checkpoint to sample: the average, or the trained ones


def load_generator(source: str | Path, device: torch.device | str, which: str = "ema") -> LoadedGenerator:
    """The unconditional generator of a run directory (newest checkpoint), checkpoint file or export, on
    `device` (text too: "cpu", "cuda:1"), refused as `gan sample --device` refuses it where this machine
    lacks it."""
    device = select_device(str(device), given_as="device=")  # (before the file is read: torch's own error came after)
    path, state = load_source(source, unconditional=True)
    return generator_from_checkpoint(state, path, device, which)


def generator_from_checkpoint(state: dict[str, Any], path: Path, device: torch.device,
                              which: str = "ema") -> LoadedGenerator:
    """The generator of a loaded checkpoint `state` (`checked_state` output) read from `path`: with `which="ema"` its EMA
    weights when it has them (with their own BatchNorm statistics, recomputed in training),
    else the trained ("live") weights."""
    if which not in GENERATORS:
        raise ValueError(f"generator must be one of {', '.join(GENERATORS)}, got '{which}'")
    specs = state["specs"]
    if not any(name == "generator" or name.startswith("generator_") for name in specs):
        raise CheckpointError(f"'{path}' holds no generator spec; was it written by `gan train`?")
    image_to_image = CheckpointError(
        f"'{path}' holds an image-to-image generator (recipe '{state['config']['recipe']}'): it takes images, "
        f"not latents; use `gan translate {path} INPUT OUTPUT`")
    if "generator" not in specs:  # CycleGAN's generator_AtoB and generator_BtoA
        raise image_to_image
    generator, stored = build_generator(state, path, "generator", which)
    if not hasattr(generator, "latent_dim"):
        raise image_to_image
    others = required_arguments_beside_input(generator)
    if others:
        raise CheckpointError(
            f"'{path}' holds a generator whose forward takes {', '.join(others)} beside its latents: gan sample "
            "and gan eval serve unconditional generators, called as generator(latents) (docs/layout.md)")
    record = state.get("data")
    return LoadedGenerator(generator.to(device), path, stored == "generator_ema", state["config"], state["step"],
                           record if isinstance(record, dict) else None)


def required_arguments_beside_input(generator: nn.Module) -> list[str]:
    """The arguments of `generator.forward` that must be given beside its input, latents or images (a
    conditional generator's labels): a call with latents alone ended in a TypeError traceback."""
    try:
        parameters = list(inspect.signature(generator.forward).parameters.values())
    except (TypeError, ValueError):  # (no signature to read: left to the call)
        return []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [parameter.name for parameter in parameters if parameter.default is inspect.Parameter.empty
                and parameter.kind in (*positional, inspect.Parameter.KEYWORD_ONLY)]
    return required[1:] if parameters and parameters[0].kind in positional else required
