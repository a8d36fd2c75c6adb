"""A whole training step replayed as one CUDA graph (`train.cuda_graph`).

A GAN step launches hundreds of small kernels: forward and backward of G and D, two Adam
updates, the EMA. On a fast GPU the host cannot launch them as fast as the GPU runs them,
so the step waits on Python. Captured once as a CUDA graph, the step is one launch.

What a captured step may depend on, besides its batch:
- device tensors changed in place between steps: weights, optimizer state, the learning
  rates (`GraphedStep` turns them into device tensors that `set_learning_rates` fills),
  the EMA's update count (gan/recipes/ema.py);
- host values named by the recipe's `graph_key(step)` (whether the adversarial term is on,
  say): one graph per distinct key, each captured after `warmup` eager steps with that key
  (compilation, cuDNN autotuning, lazily made optimizer state); a key of None runs the step
  eagerly (CycleGAN's image pool decides on the host).
Random numbers drawn inside the graph advance the CUDA generator on every replay, so each
step draws fresh ones and a checkpoint's RNG state stays exact; so do those of the other
generators the recipe names (`device_generators()`: DiffAugment's), registered with each graph.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Hashable, Iterator

import torch

StepFunction = Callable[[dict[str, torch.Tensor], int], dict[str, torch.Tensor]]


def set_learning_rates(optimizers: dict[str, torch.optim.Optimizer], scale: float) -> None:
    """lr = base_lr * scale in every param group; in place where the rate is a device tensor
    (a captured step reads it from there)."""
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(group["base_lr"] * scale)
            else:
                group["lr"] = group["base_lr"] * scale


def plain_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """`optimizer.state_dict()` with the rates as numbers and `capturable` off: what a graphed
    step changed is not the checkpoint's business (it must load anywhere, a CPU included)."""
    state = optimizer.state_dict()
    for group in state["param_groups"]:
        if isinstance(group.get("lr"), torch.Tensor):
            group["lr"] = group["lr"].item()
        if "capturable" in group:
            group["capturable"] = False
    return state


@contextlib.contextmanager
def _syncs_allowed() -> Iterator[None]:
    """Capturing synchronises the device once (torch.cuda.graph does): set-up, like compiling,
    so `train.sync_debug` does not apply to it."""
    mode = torch.cuda.get_sync_debug_mode()
    if mode:  # (setting it at all warns that the mode is a prototype)
        torch.cuda.set_sync_debug_mode(0)
    try:
        yield
    finally:
        if mode:
            torch.cuda.set_sync_debug_mode(mode)


class _Captured:
    def __init__(self, graph: torch.cuda.CUDAGraph, batch: dict[str, torch.Tensor],
                 outputs: dict[str, torch.Tensor]):
        self.graph, self.batch, self.outputs = graph, batch, outputs


# Eager steps of each graph key before its capture (compilation and cuDNN's autotuning settle in them).
EAGER_STEPS_BEFORE_CAPTURE = 3


class GraphedStep:
    """`step(batch, step)` run eagerly for `warmup` steps of each graph key, then captured and
    replayed. The returned metrics of a replayed step are the graph's own output tensors: read
    them (or copy them) before the next call, as the training loop does."""

    def __init__(self, step: StepFunction, graph_key: Callable[[int], Hashable | None],
                 optimizers: dict[str, torch.optim.Optimizer], device: torch.device, warmup: int = EAGER_STEPS_BEFORE_CAPTURE,
                 generators: list[torch.Generator] = ()):
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not '{device}'")
        self.step, self.graph_key, self.optimizers = step, graph_key, optimizers
        self.device, self.warmup, self.generators = device, warmup, list(generators)
        self.eager_steps: dict[Hashable, int] = {}
        self.captured: dict[Hashable, _Captured] = {}
        self.failed = False

    @property
    def graphs(self) -> int:
        return len(self.captured)

    def describe(self) -> str:
        failed = "; a capture failed, so steps ran eagerly after it" if self.failed else ""
        return f"CUDA graph: {self.graphs} captured{failed}"

    def __call__(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        key = None if self.failed else self.graph_key(step)
        if key is None:
            return self.step(batch, step)
        captured = self.captured.get(key)
        if captured is None:
            if self.eager_steps.get(key, 0) < self.warmup:
                self.eager_steps[key] = self.eager_steps.get(key, 0) + 1
                return self._warm_up(batch, step)
            captured = self._capture(batch, step, key)
            if captured is None:
                return self.step(batch, step)
        for name, value in batch.items():
            captured.batch[name].copy_(value, non_blocking=True)
        captured.graph.replay()
        return captured.outputs

    def _warm_up(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        # On a side stream, as PyTorch's whole-network capture recipe does before capturing.
        main, side = torch.cuda.current_stream(self.device), torch.cuda.Stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side), warnings.catch_warnings():
            # A later key's warm-up runs optimizers made capturable by an earlier capture: expected.
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            metrics = self.step(batch, step)
        main.wait_stream(side)
        return metrics

    def _make_capturable(self, capturable: bool) -> None:
        """Adam reads its rates from device tensors (that `set_learning_rates` fills) when captured,
        and from numbers otherwise; its step counts are on the device already (fused)."""
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                if capturable and not isinstance(group["lr"], torch.Tensor):
                    group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=self.device)
                elif not capturable and isinstance(group["lr"], torch.Tensor):
                    group["lr"] = group["lr"].item()
                group["capturable"] = capturable

    def _capture(self, batch: dict[str, torch.Tensor], step: int, key: Hashable) -> _Captured | None:
        static_batch = {name: value.clone() for name, value in batch.items()}
        graph = torch.cuda.CUDAGraph()
        try:
            with _syncs_allowed():
                self._make_capturable(True)
                for generator in self.generators:  # else each replay would repeat the captured draws
                    graph.register_generator_state(generator)
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    outputs = self.step(static_batch, step)
        except Exception as error:  # noqa: BLE001 - the step runs eagerly instead, and says so
            self.failed = True
            with _syncs_allowed():
                self._make_capturable(False)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            warnings.warn(f"CUDA graph capture of the training step failed ({type(error).__name__}: "
                          f"{reason[:300]}); steps run without it (train.cuda_graph=off avoids trying)",
                          stacklevel=3)
            return None
        self.captured[key] = _Captured(graph, static_batch, outputs)
        return self.captured[key]
