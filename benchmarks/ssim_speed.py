"""SSIM speed of two versions of gan side by side: `ssim` of each tree's
gan/metrics/image_quality.py on the same image pairs, in alternating rounds, best round each,
with both scores (they must agree).

    git worktree add /tmp/old REV
    python benchmarks/ssim_speed.py /tmp/old . --size 2040x1020 --rounds 3
"""

from __future__ import annotations

import argparse
import re

import torch
from two_trees import best_of_rounds, load_versions, two_trees_parser


def image_size(text: str) -> tuple[int, int]:
    """An argparse type: WIDTHxHEIGHT, each at least 11 (SSIM's window)."""
    match = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not match or min(int(side) for side in match.groups()) < 11:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, each at least 11 (SSIM's window), got {text!r}")
    return int(match[1]), int(match[2])


def main() -> None:
    parser = two_trees_parser(__doc__)
    parser.add_argument("--size", type=image_size, default="2040x1020",
                        help="WIDTHxHEIGHT of the random image pair (a DIV2K size)")
    args = parser.parse_args()
    width, height = args.size
    torch.manual_seed(0)
    image = torch.randint(0, 256, (1, 3, height, width)).double()
    other = (image + 5 * torch.randn_like(image)).clamp(0, 255).round()  # a mildly noisy copy
    versions = load_versions(args.before, args.after, "gan/metrics/image_quality.py")
    best, scores = best_of_rounds(versions, lambda module: module.ssim(image, other), args.rounds)
    print(f"RGB SSIM of one {width}x{height} pair, best of {args.rounds} rounds, {torch.get_num_threads()} threads")
    for name in versions:
        print(f"  {name}: {best[name]:.2f} s  (score {scores[name]!r})")
    print(f"  speed-up: {best['before'] / best['after']:.1f}x; scores differ by {abs(scores['before'] - scores['after']):.1e}")


if __name__ == "__main__":
    main()
