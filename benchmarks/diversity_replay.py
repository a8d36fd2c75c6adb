"""Replay the health watch's sample checks over runs that have finished.

For each run directory: the preview grids it wrote (`samples/<step>-generator.png`, the live
generator's fixed latents: the batch the watch saw, 8-bit), against the first images of the
run's training stream as the watch takes them (`first_samples`). Prints per preview the per-pixel std ratio
and the diversity ratio (`gan.training.health`), and the findings the watch makes now: how the watch
of this version of gan judges runs trained before it, or with other thresholds.

    python benchmarks/diversity_replay.py sweeps/c64-fair-*/0* sweeps/few-faces-sn/0* --json replay.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan.core.config import read_config
from gan.core.images import split_grid
from gan.data import build_dataset
from gan.data.sampling import first_samples
from gan.training.health import HealthWatch


def grid_images(path: Path, count: int, size: int) -> torch.Tensor:
    """The `count` images (N, 3, size, size) in [-1, 1] of a grid PNG written by `gan.core.images.image_grid`."""
    pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1)
    return split_grid(pixels.permute(2, 0, 1), count, size, size)


def replay(run_dir: Path, real_count: int | None) -> list[dict]:
    config = read_config(run_dir / "config.toml")
    dataset = build_dataset(dataclasses.replace(config.data, num_workers=0, cache="off"), train=True)
    # the watch's own real images: the training stream's first (log.num_samples unless told)
    real = first_samples(dataset, real_count or config.log.num_samples, config.train.seed)["image"]
    watch = HealthWatch(saturation_scores=config.loss.adversarial in ("vanilla", "lsgan"))
    rows = []
    grids = sorted(run_dir.glob("samples/*-generator.png"), key=lambda path: int(path.name.split("-")[0]))
    for path in grids:
        step = int(re.match(r"(\d+)-", path.name).group(1))
        images = grid_images(path, config.log.num_samples, config.data.resolution)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scalars = watch.samples(step, images, real)
        findings = [str(warning.message).split(". Try:")[0] for warning in caught]
        rows.append({"run": str(run_dir), "step": step, **scalars, "findings": findings})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--real", type=int, help="real images to compare with (default: the watch's, the "
                                                  "training stream's first log.num_samples)")
    parser.add_argument("--json", type=Path, help="also write every row here")
    args = parser.parse_args()
    missing = [run_dir for run_dir in args.runs if not (run_dir / "config.toml").is_file()]
    if missing:
        sys.exit(f"error: '{missing[0]}' is no run directory (it has no config.toml)")
    rows = []
    for run_dir in args.runs:
        print(f"{run_dir}:")
        for row in replay(run_dir, args.real):
            rows.append(row)
            print(f"  step {row['step']:>6}  std ratio {row['health/sample_std_ratio']:.2f}  diversity ratio "
                  f"{row.get('health/diversity_ratio', float('nan')):.2f}  structure ratio "
                  f"{row.get('health/structure_ratio', float('nan')):.3f}  {'; '.join(row['findings'])}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
