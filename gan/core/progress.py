"""A dependency-free progress line: step, losses, images/s, ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    """Redraws one line on a terminal; prints one line per update elsewhere (logs, CI)."""

    def __init__(self, total: int, start: int = 0, stream: TextIO | None = None, unit: str = "step"):
        self.total = total
        self.unit = unit
        self.start = start
        self.stream = stream or sys.stderr
        self.started_at = time.perf_counter()
        self.interactive = self.stream.isatty()

    def update(self, step: int, values: dict[str, float], images_per_second: float) -> None:
        elapsed = time.perf_counter() - self.started_at
        done = step - self.start
        eta = elapsed / done * (self.total - step) if done else 0.0
        terms = "  ".join(f"{name} {value:.4g}" for name, value in values.items())
        line = (f"{self.unit} {step}/{self.total} ({100 * step / self.total:.0f}%)  {terms}  "
                f"{images_per_second:.1f} img/s  elapsed {format_duration(elapsed)}  ETA {format_duration(eta)}")
        if self.interactive:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
