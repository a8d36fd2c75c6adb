"""The `gan` command: train, sample."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from gan import __version__


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the command line read as one plain line, without source locations."""
    return f"warning: {message}\n"


def _fail(error: Exception) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gan")
def main() -> None:
    """GANs on one zoo of networks and one training loop.

    \b
    gan train experiments/dcgan_demo.toml            # no download needed
    gan sample runs/00000-dcgan_demo --n 64 --out faces.png
    tensorboard --logdir runs                        # compare runs
    """
    warnings.formatwarning = _format_warning


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set train.steps=2000 (repeatable).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True,
              help="Folder in which a new numbered run directory is made.")
@click.option("--resume", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Continue the run in this directory from its newest checkpoint.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA if present), cpu, cuda or cuda:N.")
@click.option("--strict", is_flag=True, help="Unreadable image files are errors instead of skipped with a warning.")
def train(config: Path | None, overrides: tuple[str, ...], out: Path, resume: Path | None, device: str,
          strict: bool) -> None:
    """Train the recipe described by CONFIG (a TOML file).

    Makes a run directory inside --out with config.toml (the resolved config),
    checkpoint-*.pt, TensorBoard event files and samples/*.png.

    \b
    Examples:
      gan train experiments/dcgan_demo.toml
      gan train experiments/dcgan_celeba128.toml --set data.root=/data/celeba/img_align_celeba
      gan train experiments/dcgan_celeba64.toml --set train.steps=500 --set train.batch_size=32 --out runs
      gan train --resume runs/00003-dcgan_celeba128            # continue after a stop
      gan train --resume runs/00003-dcgan_celeba128 --set train.steps=80000   # train longer
    """
    from gan.checkpoint import CheckpointError
    from gan.config import load_config
    from gan.data.decode import ImageReadError
    from gan.registry import ConfigError
    from gan.train import NonFiniteLossError, next_run_dir, select_device
    from gan.train import train as run_training

    if config is None and resume is None:
        raise click.UsageError("give a CONFIG file, or --resume RUN_DIR")
    overrides = (*overrides, "data.strict=true") if strict else overrides
    try:
        resolved = load_config(config if config is not None else resume / "config.toml", list(overrides))
        torch_device = select_device(device)
        run_dir = resume if resume is not None else next_run_dir(out, config.stem)
        result = run_training(resolved, run_dir, torch_device, resume=resume is not None)
    except NonFiniteLossError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    except (ConfigError, CheckpointError, ImageReadError, FileNotFoundError, NotADirectoryError, RuntimeError) as error:
        _fail(error)
    if result.interrupted_by:
        sys.exit(130 if result.interrupted_by == "SIGINT" else 143)


@main.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--n", "count", default=64, show_default=True, help="Number of samples (rows with --interpolate).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="PNG file for the grid.")
@click.option("--separate", type=click.Path(file_okay=False, path_type=Path),
              help="Also write one PNG per sample into this folder.")
@click.option("--seed", default=0, show_default=True, help="Latent seed: the same seed gives the same images.")
@click.option("--interpolate", "steps", type=int, default=0,
              help="Write a latent interpolation instead: --n rows of this many steps each.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def sample(source: Path, count: int, out: Path | None, separate: Path | None, seed: int, steps: int,
           device: str) -> None:
    """Generate images from SOURCE: a run directory (newest checkpoint) or a checkpoint file.

    Uses the EMA generator when the checkpoint has one.

    \b
    Examples:
      gan sample runs/00000-dcgan_demo --n 64 --out faces.png
      gan sample runs/00000-dcgan_demo/checkpoint-00002000.pt --n 16 --seed 7 --out seven.png
      gan sample runs/00000-dcgan_demo --n 100 --separate faces/      # one PNG per sample
      gan sample runs/00000-dcgan_demo --interpolate 10 --n 6 --out walk.png
    """
    from gan.checkpoint import CheckpointError
    from gan.images import save_image_grid, signed_to_pil
    from gan.sample import generate, interpolation_latents, load_generator, random_latents
    from gan.train import select_device

    if out is None and separate is None:
        raise click.UsageError("give --out FILE.png and/or --separate DIR")
    if count < 1 or steps < 0 or steps == 1:
        raise click.UsageError("--n must be >= 1 and --interpolate >= 2")
    try:
        generator, path, used_ema = load_generator(source, select_device(device))
    except (CheckpointError, RuntimeError) as error:
        _fail(error)
    if steps:
        latents = interpolation_latents(count, steps, generator.latent_dim, seed)
    else:
        latents = random_latents(count, generator.latent_dim, seed)
    images = generate(generator, latents)
    if out is not None:
        save_image_grid(images, out, num_columns=steps or None)
        click.echo(f"wrote {out} ({len(images)} images)")
    if separate is not None:
        separate.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images):
            signed_to_pil(image).save(separate / f"{index:05d}.png")
        click.echo(f"wrote {len(images)} PNGs to {separate}")
    click.echo(f"from {path} ({'EMA generator' if used_ema else 'generator'}, seed {seed})", err=True)
