"""Image decoding speed of two versions of gan side by side: read_rgb of each tree's
gan/data/decode.py over the same files, in alternating rounds, best round each.

    git worktree add /tmp/old REV
    python benchmarks/decode_speed.py /tmp/old . --images FOLDER --count 600
"""

from __future__ import annotations

from pathlib import Path

from two_trees import best_of_rounds, load_versions, positive_count, two_trees_parser


def main() -> None:
    parser = two_trees_parser(__doc__)
    parser.add_argument("--images", type=Path, required=True, help="a folder of images")
    parser.add_argument("--count", type=positive_count, default=600, help="images to decode, at least 1")
    args = parser.parse_args()
    sides = load_versions(args.before, args.after, "gan/data/decode.py")
    try:
        paths = sides["after"].find_images(args.images)[:args.count]
    except OSError as error:
        parser.error(f"--images: {error}")

    def decode_all(decoder) -> None:
        for path in paths:
            decoder.read_rgb(path)

    best, _ = best_of_rounds(sides, decode_all, args.rounds)
    for label, value in best.items():
        print(f"{label}: {len(paths) / value:.0f} images/s")
    print(f"after/before time: {best['after'] / best['before']:.3f}")


if __name__ == "__main__":
    main()
