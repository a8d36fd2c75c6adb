"""Image decoding speed of two versions of gan side by side: read_rgb of each tree's
gan/data/decode.py over the same files, in alternating rounds, best round each.

    git worktree add /tmp/old REV
    python benchmarks/decode_speed.py /tmp/old . --images FOLDER --count 600
"""

from __future__ import annotations

import time
from pathlib import Path

from two_trees import load_versions, two_trees_parser


def main() -> None:
    parser = two_trees_parser(__doc__)
    parser.add_argument("--images", type=Path, required=True, help="a folder of images")
    parser.add_argument("--count", type=int, default=600)
    args = parser.parse_args()
    sides = load_versions(args.before, args.after, "gan/data/decode.py")
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
