"""Image decoding speed of two versions of gan side by side: read_rgb of each tree's
gan/data/decode.py over the same files, in alternating rounds, best round each.

    git worktree add /tmp/old REV
    python benchmarks/decode_speed.py /tmp/old . --images FOLDER --count 600
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from types import ModuleType


def load_decoder(tree: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, tree / "gan" / "data" / "decode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="a checkout of the older version")
    parser.add_argument("after", type=Path, help="a checkout of the newer version")
    parser.add_argument("--images", type=Path, required=True, help="a folder of images")
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sides = {"before": load_decoder(args.before, "decode_before"), "after": load_decoder(args.after, "decode_after")}
    paths = sides["after"].find_images(args.images)[:args.count]
    seconds = {label: [] for label in sides}
    for _ in range(args.rounds):
        for label, decoder in sides.items():
            start = time.perf_counter()
            for path in paths:
                decoder.read_rgb(path)
            seconds[label].append(time.perf_counter() - start)
    best = {label: min(values) for label, values in seconds.items()}
    for label, value in best.items():
        print(f"{label}: {len(paths) / value:.0f} images/s")
    print(f"after/before time: {best['after'] / best['before']:.3f}")


if __name__ == "__main__":
    main()
