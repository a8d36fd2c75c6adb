"""What the side-by-side benchmarks of two versions share (decode_speed.py, ssim_speed.py): one
module of gan from each checkout, loaded from its file, and the two checkouts on the command line."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType


def load_versions(before: Path, after: Path, module: str) -> dict[str, ModuleType]:
    """{"before": ..., "after": ...}: the file `module` (`gan/data/decode.py`) of each checkout."""
    versions = {}
    for label, tree in (("before", before), ("after", after)):
        spec = importlib.util.spec_from_file_location(f"{Path(module).stem}_{label}", tree / module)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        versions[label] = loaded
    return versions


def two_trees_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the two checkouts' positional arguments and --rounds."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="a checkout of the older version")
    parser.add_argument("after", type=Path, help="a checkout of the newer version")
    parser.add_argument("--rounds", type=int, default=3)
    return parser
