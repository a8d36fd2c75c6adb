"""Speed switches of `[train]`, applied to a recipe's networks before training starts.

channels_last (NHWC tensors, which tensor cores and oneDNN prefer), torch.compile of the
trained networks (in place, so checkpoints keep their plain parameter names) and
cuDNN autotuning, and the whole training step replayed as a CUDA graph
(`train.cuda_graph`, gan/training/cuda_graphs.py). "auto" turns a switch on where it helps: on
CUDA. bf16 autocast (`train.amp`) and the Adam kernel (`train.optimizer_kernel`) are
applied where the loop and recipes make autocast contexts and optimizers.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

import torch

from gan.core.compilation import CompileReport, compile_networks
from gan.core.config import TrainConfig
from gan.recipes.base import Recipe
from gan.training.cuda_graphs import GraphedStep, StepFunction


def switch_on(value: str, device: torch.device) -> bool:
    """An "auto" | "on" | "off" switch: auto means on for CUDA."""
    return device.type == "cuda" if value == "auto" else value == "on"


@dataclass(frozen=True)
class Speed:
    memory_format: torch.memory_format  # for image batches moved to the device
    compile_report: CompileReport | None  # None: not compiled
    cuda_graph: bool = False  # each step replayed as a CUDA graph

    @property
    def compiled(self) -> bool:
        return self.compile_report is not None

    def describe(self) -> str:
        return (f"channels_last {'on' if self.memory_format == torch.channels_last else 'off'}, "
                f"compile {'on' if self.compiled else 'off'}, CUDA graph {'on' if self.cuda_graph else 'off'}")


def accelerate(recipe: Recipe, train: TrainConfig, device: torch.device) -> Speed:
    """Apply the switches to every network of `recipe`; returns what is on. Under torchrun the
    captured step holds the gradient all-reduce too (NCCL collectives can be captured): every
    process captures at the same step, since graph keys depend on the step alone."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = train.cudnn_benchmark
    memory_format = torch.contiguous_format
    if switch_on(train.channels_last, device):
        memory_format = torch.channels_last
        for network in recipe.networks.values():
            network.to(memory_format=memory_format)  # parameters keep their identity: optimizers still hold them
    report = None
    if switch_on(train.compile, device):
        # (graphs and shape marks an earlier run in this process left: a notebook's next run, at another batch
        # size, trained on a dynamic-shape graph a fresh process never gets, to other weights)
        torch._dynamo.reset()
        report = CompileReport()
        # The EMA copy only runs for previews and metrics, which run eagerly (gan/core/compilation.py).
        compile_networks({name: network for name, network in recipe.networks.items() if not name.endswith("_ema")},
                         train.compile_backend, train.compile_mode)
        print("torch.compile: the first step compiles the networks and is slow", file=sys.stderr)
    if train.cuda_graph == "on" and device.type != "cuda":  # (a config made for a GPU, run on a laptop)
        warnings.warn(f"train.cuda_graph = 'on' changes nothing on the {device.type}: CUDA graphs need a CUDA "
                      "device, so each step runs as it is", stacklevel=2)
    return Speed(memory_format, report, captures_steps(train, device))


def captures_steps(train: TrainConfig, device: torch.device) -> bool:
    """Whether steps are replayed as CUDA graphs: on CUDA, unless `train.cuda_graph` is off."""
    return device.type == "cuda" and train.cuda_graph != "off"


def training_step(recipe: Recipe, speed: Speed, device: torch.device) -> StepFunction:
    """What the loop calls for one step: the recipe's step, captured and replayed where
    `speed.cuda_graph` says so."""
    if not speed.cuda_graph:
        return recipe.step
    return GraphedStep(recipe.step, recipe.graph_key, recipe.optimizers, device, generators=recipe.device_generators())


def to_device(batch: dict[str, torch.Tensor], device: torch.device, speed: Speed) -> dict[str, torch.Tensor]:
    """A batch on the training device, image tensors in the networks' memory format."""
    return {key: value.to(device, non_blocking=True).contiguous(memory_format=speed.memory_format)
            if value.ndim == 4 else value.to(device, non_blocking=True) for key, value in batch.items()}
