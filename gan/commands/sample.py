"""Images from an unconditional generator: `gan sample`."""

from __future__ import annotations

from pathlib import Path

import click

from gan.commands.common import fail


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--n", "count", default=64, show_default=True, help="Number of samples (rows with --interpolate).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="PNG file for the grid.")
@click.option("--separate", type=click.Path(file_okay=False, path_type=Path),
              help="Also write one PNG per sample into this folder.")
@click.option("--seed", default=0, show_default=True, help="Latent seed: the same seed gives the same images.")
@click.option("--interpolate", "steps", type=int, default=0,
              help="Write a latent interpolation instead: --n rows of this many steps each.")
@click.option("--generator", "which", type=click.Choice(["ema", "live"]), default="ema", show_default=True,
              help="The EMA weights (when the checkpoint has them) or the trained ones.")
@click.option("--best", is_flag=True, help="Use the run's best.pt (kept by train.keep_best) instead of its newest "
                                        "checkpoint.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def sample(source: Path, count: int, out: Path | None, separate: Path | None, seed: int, steps: int,
           which: str, best: bool, device: str) -> None:
    """Generate images from SOURCE: a run directory (newest checkpoint), checkpoint file or export.

    Uses the EMA generator when the checkpoint has one (--generator live for the trained weights).

    \b
    Examples:
      gan sample runs/00000-dcgan_demo --n 64 --out faces.png
      gan sample runs/00000-dcgan_demo/checkpoint-00002000.pt --n 16 --seed 7 --out seven.png
      gan sample runs/00000-dcgan_demo --n 100 --separate faces/      # one PNG per sample
      gan sample runs/00000-dcgan_demo --interpolate 10 --n 6 --out walk.png
      gan sample runs/00000-dcgan_demo --best --n 64 --out best.png   # the checkpoint best by SWD
    """
    from gan.checkpoint import CheckpointError, best_checkpoint
    from gan.files import WriteError
    from gan.generators import load_generator
    from gan.images import image_format_of, save_image, save_image_grid, signed_to_pil
    from gan.inference import generate, interpolation_latents, random_latents
    from gan.train import DeviceUnavailable, select_device

    if out is None and separate is None:
        raise click.UsageError("give --out FILE.png and/or --separate DIR")
    if count < 1 or steps < 0 or steps == 1:
        raise click.UsageError("--n must be >= 1 and --interpolate >= 2")
    if out is not None:
        try:
            image_format_of(out)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--out") from None
    try:
        loaded = load_generator(best_checkpoint(source) if best else source, select_device(device), which)
        generator, path, used_ema = loaded.generator, loaded.checkpoint, loaded.used_ema
    except (CheckpointError, DeviceUnavailable) as error:
        fail(error)
    if steps:
        latents = interpolation_latents(count, steps, generator.latent_dim, seed)
    else:
        latents = random_latents(count, generator.latent_dim, seed)
    images = generate(generator, latents)
    written: list[Path] = []
    try:
        if out is not None:
            written.append(save_image_grid(images, out, num_columns=steps or None))
            click.echo(f"wrote {out} ({len(images)} images)")
        if separate is not None:
            for index, image in enumerate(images):
                written.append(save_image(signed_to_pil(image), separate / f"{index:05d}.png"))
            click.echo(f"wrote {len(images)} PNGs to {separate}")
    except WriteError as error:
        for written_path in written:  # a failed command leaves none of its files
            written_path.unlink(missing_ok=True)
        fail(error)
    click.echo(f"from {path} ({'EMA generator' if used_ema else 'generator'}, seed {seed})", err=True)
