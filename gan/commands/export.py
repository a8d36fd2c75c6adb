"""A run's generator written for sampling and translating: `gan export`."""

from __future__ import annotations

from pathlib import Path

import click

from gan.commands.common import fail


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write, e.g. generator.safetensors.")
@click.option("--format", "export_format", type=click.Choice(["safetensors", "pt"]), default="safetensors",
              show_default=True, help="safetensors (tensors only) or a plain torch file.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), help="CycleGAN: which generator.")
@click.option("--best", is_flag=True, help="Use the run's best.pt (kept by train.keep_best) instead of its newest "
                                        "checkpoint.")
def export(source: Path, out: Path, export_format: str, direction: str | None, best: bool) -> None:
    """Write the generator of SOURCE (run directory or checkpoint) for sampling and translating.

    The EMA weights when the run has them; the network spec, config and step go into the
    file's metadata and a JSON beside it. `gan sample` and `gan translate` take the file.

    \b
    Examples:
      gan export runs/00000-dcgan_celeba64 --out faces.safetensors
      gan sample faces.safetensors --n 64 --out faces.png
      gan export runs/00003-cyclegan_horse2zebra --direction BtoA --out zebra2horse.safetensors
      gan export runs/00000-dcgan_celeba64 --best --out best.safetensors   # the checkpoint best by SWD
    """
    from gan.checkpoint import CheckpointError, best_checkpoint
    from gan.exported import export_generator

    try:
        metadata = export_generator(best_checkpoint(source) if best else source, out, export_format, direction)
    except (CheckpointError, OSError) as error:
        fail(error)
    click.echo(f"wrote {out} ({metadata['network']}, step {metadata['step']}) and {out.name}.json from "
               f"{metadata['source']}")
