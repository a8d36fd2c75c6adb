"""The loop's running sums of a recipe's logged values, kept on the device between log points."""

from __future__ import annotations

import torch


class MetricWatch:
    """Sums a recipe's metrics on the device between log points, and remembers the first
    step at which each became non-finite or larger in magnitude than `bound`, without
    reading anything back per step."""

    def __init__(self, device: torch.device, bound: float = float("inf")):
        self.device = device
        self.bound = bound
        self.names: list[str] | None = None

    def add(self, step: int, metrics: dict[str, torch.Tensor], idle: frozenset[str] = frozenset()) -> None:
        """Add a step's `metrics`; those named in `idle` are placeholders the step did not measure
        (D's before `train.adversarial_start`), left out of their means."""
        if self.names is None:
            self.names = list(metrics)
            self.sums = torch.zeros(len(self.names), device=self.device, dtype=torch.float64)
            self.first_bad = torch.full((len(self.names),), -1, device=self.device, dtype=torch.int64)
            self.bad_values = torch.zeros(len(self.names), device=self.device, dtype=torch.float64)
            self.counts = [0] * len(self.names)
            self._measured_masks: dict[frozenset[str], torch.Tensor] = {}
        if list(metrics) != self.names:
            raise RuntimeError(f"the recipe must return the same metrics every step: {self.names} vs {list(metrics)}")
        values = torch.stack([metrics[name].detach().reshape(()).to(torch.float64) for name in self.names])
        idle = idle.intersection(self.names)
        self.sums += values * self._measured_mask(idle) if idle else values
        first = (~torch.isfinite(values) | (values.abs() > self.bound)) & (self.first_bad < 0)
        self.first_bad = torch.where(first, step, self.first_bad)
        self.bad_values = torch.where(first, values, self.bad_values)
        self.counts = [count + (name not in idle) for count, name in zip(self.counts, self.names)]

    def _measured_mask(self, idle: frozenset[str]) -> torch.Tensor:
        """1 for each measured metric, 0 for each idle one, on the device (made once per kind of step)."""
        if idle not in self._measured_masks:
            self._measured_masks[idle] = torch.tensor([float(name not in idle) for name in self.names],
                                                      dtype=torch.float64).to(self.device)
        return self._measured_masks[idle]

    def first_non_finite(self) -> tuple[int, str, float] | None:
        """(step, term, value) of the earliest value seen that was non-finite or beyond the bound,
        or None (reads back from the device)."""
        if self.names is None:
            return None
        steps, values = self.first_bad.tolist(), self.bad_values.tolist()
        bad = [(s, name, value) for s, name, value in zip(steps, self.names, values) if s >= 0]
        return min(bad) if bad else None

    def means(self) -> dict[str, float]:
        """Means since the last call, of the metrics measured in it; then resets."""
        if self.names is None:
            return {}
        means = {name: total / count for name, total, count in zip(self.names, self.sums.tolist(), self.counts)
                 if count}
        self.sums.zero_()
        self.counts = [0] * len(self.names)
        return means
