"""torch.compile for the trained networks: compiled once, reused, never in the way.

- `compile_networks` compiles each network's forward in place (checkpoints keep their
  plain parameter names) behind a guard: a network that fails to compile warns, naming
  it, and runs eagerly from then on. Nothing is switched globally (no dynamo
  `suppress_errors`), so errors elsewhere keep their traceback.
- `uncompiled()` runs the same weights eagerly inside a block. Previews, validation
  and metrics use it, so their batch sizes, grad mode and train/eval switches never
  recompile the training graphs; so do losses that differentiate twice (the WGAN-GP
  penalty, R1), since AOTAutograd has no double backward.
- `CompileReport` counts the graphs compiled, and those compiled after warm-up, which a
  steady training loop should never need.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import torch
from torch import nn


@contextlib.contextmanager
def uncompiled() -> Iterator[None]:
    """Inside the block, compiled networks run their eager forward (and nothing is compiled)."""
    with torch.compiler.set_stance("force_eager"):
        yield


class _GuardedForward:
    """A network's forward, compiled; on a compile failure it warns once and runs eagerly."""

    def __init__(self, name: str, eager_forward: Any, backend: str, mode: str):
        self.name = name
        self.eager_forward = eager_forward
        self.compiled_forward = torch.compile(eager_forward, backend=backend,
                                              mode=None if mode == "default" else mode)
        self.failed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            try:
                return self.compiled_forward(*args, **kwargs)
            except torch._dynamo.exc.TorchDynamoException as error:
                self.failed = True
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                warnings.warn(f"torch.compile failed for network '{self.name}' ({type(error).__name__}: "
                              f"{reason[:300]}); it runs eagerly", stacklevel=2)
        return self.eager_forward(*args, **kwargs)


def compile_networks(networks: dict[str, nn.Module], backend: str = "inductor", mode: str = "default") -> None:
    """Compile each network's forward in place with torch.compile's `backend` (inductor generates
    kernels; aot_eager and eager help to tell a compiler bug from a model bug) and inductor `mode`."""
    for name, network in networks.items():
        if not isinstance(network.forward, _GuardedForward):
            network.forward = _GuardedForward(name, network.forward, backend, mode)


def compile_failed(network: nn.Module) -> bool:
    """True when `network` was compiled and fell back to eager."""
    return isinstance(network.forward, _GuardedForward) and network.forward.failed


def _graphs_compiled() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


class CompileReport:
    """Graphs compiled since it was made, and since `end_warm_up()` (recompilations)."""

    def __init__(self):
        self.start = _graphs_compiled()
        self.warm = None

    def end_warm_up(self) -> None:
        if self.warm is None:
            self.warm = _graphs_compiled()

    @property
    def graphs(self) -> int:
        return _graphs_compiled() - self.start

    @property
    def recompilations(self) -> int:
        return 0 if self.warm is None else _graphs_compiled() - self.warm

    def describe(self) -> str:
        return f"torch.compile: {self.graphs} graphs compiled, {self.recompilations} recompilations after warm-up"
