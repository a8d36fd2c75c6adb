"""What the side-by-side benchmarks of two versions share (decode_speed.py, ssim_speed.py): one
module of gan from each checkout, loaded from its file, the two checkouts on the command line, and
the rounds that time them in turn."""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


def load_versions(before: Path, after: Path, module: str) -> dict[str, ModuleType]:
    """{"before": ..., "after": ...}: the file `module` (`gan/data/decode.py`) of each checkout."""
    versions = {}
    for label, tree in (("before", before), ("after", after)):
        spec = importlib.util.spec_from_file_location(f"{Path(module).stem}_{label}", tree / module)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        versions[label] = loaded
    return versions


def best_of_rounds(versions: dict[str, ModuleType], work: Callable[[ModuleType], Any], rounds: int
                   ) -> tuple[dict[str, float], dict[str, Any]]:
    """The best time of `work(module)` for each version over `rounds` rounds, and its last result.
    One untimed call of each first, so the version that runs first does not pay for the warm-up
    (thread pools, caches, lazy imports) alone; then the order within a round alternates, so
    neither version always runs on a warmer (or more throttled) machine than the other."""
    labels = list(versions)
    results = {label: work(versions[label]) for label in labels}
    best = {label: float("inf") for label in labels}
    for round_index in range(rounds):
        for label in labels if round_index % 2 == 0 else labels[::-1]:
            start = time.perf_counter()
            results[label] = work(versions[label])
            best[label] = min(best[label], time.perf_counter() - start)
    return best, results


def positive_count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def checkout(text: str) -> Path:
    """An argparse type: a folder holding a checkout of gan (its gan/ package)."""
    path = Path(text)
    if not (path / "gan").is_dir():
        raise argparse.ArgumentTypeError(f"expected a checkout of gan (a folder holding gan/), got {text!r}")
    return path


def two_trees_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the two checkouts' positional arguments and --rounds."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=checkout, help="a checkout of the older version")
    parser.add_argument("after", type=checkout, help="a checkout of the newer version")
    parser.add_argument("--rounds", type=positive_count, default=3, help="timed rounds, at least 1")
    return parser
