"""Which normalisation statistics should an image-to-image generator be evaluated with?

Scores every checkpoint of a pix2pix (or SRResNet) run on its evaluation set (PSNR/SSIM, as
`val/psnr` and `val/ssim` during training) with the generator run in each of these ways:

- `eval`: running statistics kept during training, dropout off (what gan does);
- `batch`: each test image normalised with its own statistics (BatchNorm in train mode),
  dropout off;
- `reference`: the whole network in train mode, as the pix2pix reference's test script runs
  it by default (the test image's own statistics and dropout on);
- `standing-N`: BatchNorm statistics recomputed for the checkpoint's weights over N batches
  of training inputs (`gan.recipes.ema.standing_statistics`), then eval mode.

Modes that compute the same function as `eval` for a network (no running statistics, no
dropout) are left out.

    python benchmarks/norm_statistics.py RUN_DIR --standing 32 128 --out DIR
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.core.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402
from gan.core.config import Config, config_from_dict  # noqa: E402
from gan.data import build_dataset  # noqa: E402
from gan.nets import NetworkSpec  # noqa: E402
from gan.recipes.ema import running_norms, standing_statistics  # noqa: E402
from gan.recipes.image_to_image import pair_scores  # noqa: E402

CPU = torch.device("cpu")


def training_inputs(config: Config, batches: int, seed: int) -> Iterator[torch.Tensor]:
    """`batches` batches of `train.batch_size` augmented training inputs, drawn reproducibly."""
    dataset = build_dataset(config.data, train=True)
    rng = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        keys = torch.randint(len(dataset), (config.train.batch_size,), generator=rng).tolist()
        seeds = torch.randint(2**31, (len(keys),), generator=rng).tolist()
        yield torch.stack([dataset[(key, seed)]["input"] for key, seed in zip(keys, seeds)])


def set_modes(network: nn.Module, norms_train: bool, dropout_train: bool) -> nn.Module:
    network.eval()
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and norms_train:
            module.train()
        if isinstance(module, nn.modules.dropout._DropoutNd) and dropout_train:
            module.train()
    return network


def variants(generator: nn.Module, config: Config, standing: list[int]) -> dict[str, nn.Module]:
    """The ways of running one checkpoint's generator that differ from eval mode."""
    has_norms = bool(running_norms(generator))
    has_dropout = any(isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0
                      for module in generator.modules())
    runs = {"eval": set_modes(generator, False, False)}
    if has_norms:
        runs["batch"] = set_modes(copy.deepcopy(generator), True, False)
    if has_dropout:
        runs["reference"] = set_modes(copy.deepcopy(generator), True, True)
    for batches in standing if has_norms else []:
        recomputed = copy.deepcopy(generator)
        standing_statistics(recomputed, training_inputs(config, batches, seed=config.train.seed))
        runs[f"standing-{batches}"] = recomputed.eval()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--standing", type=int, nargs="*", default=[32, 128],
                        help="numbers of training batches for the standing statistics")
    parser.add_argument("--steps", type=int, nargs="*", help="only the checkpoints of these steps")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    checkpoints = list_checkpoints(args.run) if args.run.is_dir() else []
    if not checkpoints:
        sys.exit(f"error: '{args.run}' is no run directory with checkpoint-*.pt files")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in checkpoints:
        state = load_checkpoint(path)
        if args.steps and state["step"] not in args.steps:
            continue
        config = config_from_dict(state["config"])
        generator = NetworkSpec.from_dict(state["specs"]["generator"]).load(state["networks"]["generator"], "live")
        dataset = build_dataset(config.data, train=False)
        for name, network in variants(generator, config, args.standing).items():
            torch.manual_seed(0)  # the same dropout masks for every checkpoint
            scores = pair_scores(network, dataset, config.data, CPU, getattr(generator, "size_multiple", 1))
            rows.append({"step": state["step"], "mode": name, **scores})
            print(json.dumps(rows[-1]), flush=True)
    (args.out / "norm_statistics.json").write_text(json.dumps(rows, indent=1) + "\n")
    modes = list(dict.fromkeys(row["mode"] for row in rows))
    print("| step | " + " | ".join(modes) + " |\n|---|" + "---|" * len(modes))
    for step in dict.fromkeys(row["step"] for row in rows):
        cells = {row["mode"]: row for row in rows if row["step"] == step}
        print(f"| {step} | " + " | ".join(f"{cells[mode]['val/psnr']:.2f} / {cells[mode]['val/ssim']:.3f}"
                                          for mode in modes) + " |")


if __name__ == "__main__":
    main()
