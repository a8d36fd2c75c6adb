"""Which generator of a DCGAN run makes the best faces: the live one, the EMA with BatchNorm
statistics copied from the live one (gan before standing statistics), or the EMA with its own
statistics recomputed (`train.ema_bn_batches`)?

Scores every checkpoint of a run by SWD against real faces the run did not train on, and
writes a grid of each variant of the newest checkpoint side by side.

    gan train experiments/dcgan_celeba64.toml --set data.root=FACES --set data.max_images=8000 ...
    python benchmarks/ema_statistics.py RUN_DIR --faces FACES --skip 8000 --n 1000 --out DIR
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.core.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402
from gan.core.config import config_from_dict  # noqa: E402
from gan.core.images import save_image_grid  # noqa: E402
from gan.data.decode import find_images  # noqa: E402
from gan.metrics.generative import GenerativeEvaluator, generated_images, score_generator  # noqa: E402
from gan.nets import NetworkSpec  # noqa: E402
from gan.nets.running import generate, random_latents  # noqa: E402
from gan.recipes.ema import latent_batches, standing_statistics  # noqa: E402

CPU = torch.device("cpu")


def variants(state: dict, batches: int) -> dict[str, torch.nn.Module]:
    """The three generators of one checkpoint, in eval mode."""
    spec = NetworkSpec.from_dict(state["specs"]["generator"])
    networks, train = state["networks"], config_from_dict(state["config"]).train
    live = spec.load(networks["generator"], "live")
    copied = spec.load(networks["generator_ema"], "ema")
    live_buffers = dict(live.named_buffers())
    with torch.no_grad():
        for name, buffer in copied.named_buffers():
            buffer.copy_(live_buffers[name])  # what EMA.update did and checkpoints kept before
    recomputed = copy.deepcopy(copied)
    standing_statistics(recomputed, latent_batches(batches, train.batch_size, live.latent_dim,
                                                   seed=train.seed * 1_000_003 + state["step"], device=CPU))
    return {"live": live.eval(), "ema_copied": copied.eval(), "ema_recomputed": recomputed.eval()}


def held_out_folder(faces: Path, skip: int, work: Path) -> Path:
    """A folder of links to the face images after the first `skip` (sorted as the loader sorts)."""
    folder = work / "held_out"
    folder.mkdir()
    image_dir = faces / "img_align_celeba" if (faces / "img_align_celeba").is_dir() else faces
    for path in find_images(image_dir, recursive=False)[skip:]:
        (folder / path.name).symlink_to(path.resolve())
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--faces", type=Path, required=True, help="the CelebA folder the run trained on")
    parser.add_argument("--skip", type=int, required=True, help="images the run trained on (data.max_images)")
    parser.add_argument("--n", type=int, default=1000, help="generated and real images per score")
    parser.add_argument("--batches", type=int, default=32, help="batches for the recomputed statistics")
    parser.add_argument("--steps", type=int, nargs="*", help="only the checkpoints of these steps")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        reference = held_out_folder(args.faces, args.skip, Path(work))
        evaluator = None
        for path in list_checkpoints(args.run):
            state = load_checkpoint(path)
            if args.steps and state["step"] not in args.steps:
                continue
            if evaluator is None:
                data = dataclasses.replace(config_from_dict(state["config"]).data, root=str(reference), max_images=0)
                evaluator = GenerativeEvaluator(data, ["swd"], args.n, CPU, cache_dir=Path(work) / "statistics")
            generators = variants(state, args.batches)
            for name, generator in generators.items():
                scores = score_generator(evaluator, generator)
                rgb = generated_images(generator, args.n).float().mean(dim=(0, 2, 3)).tolist()
                rows.append({"step": state["step"], "generator": name, **scores, "mean_rgb": rgb})
                print(json.dumps(rows[-1]), flush=True)
        latents = random_latents(32, generator.latent_dim, seed=0)
        grids = [generate(generator, latents) for generator in generators.values()]  # the newest checkpoint's
        save_image_grid(torch.cat(grids), args.out / f"ema-statistics-{state['step']:08d}.png", num_columns=8)
    (args.out / f"ema_statistics-{args.batches}.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("| step | generator | SWD 64 | 32 | 16 | mean | mean RGB |\n|---|---|---|---|---|---|---|")
    for row in rows:
        level_keys = sorted((key for key in row if key.startswith("swd/") and key.endswith("px")),
                            key=lambda key: -int(key[4:-2]))  # finest level first, as the header
        levels = " | ".join(f"{row[key]:.1f}" for key in level_keys)
        print(f"| {row['step']} | {row['generator']} | {levels} | {row['swd/mean']:.1f} | "
              f"{', '.join(f'{value:.0f}' for value in row['mean_rgb'])} |")


if __name__ == "__main__":
    main()
