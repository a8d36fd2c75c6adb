"""A run's generator written for sampling and translating: `gan export`."""

from __future__ import annotations

from pathlib import Path

import click

from gan.commands.common import fail


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write: name.safetensors, or name.pt for a torch file.")
@click.option("--format", "export_format", type=click.Choice(["safetensors", "pt"]),
              help="safetensors (tensors only) or a plain torch file; must agree with --out's extension "
                   "[default: --out's extension]")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), help="CycleGAN: which generator.")
@click.option("--best", is_flag=True, help="Use the run's best.pt (kept by train.keep_best) instead of its newest "
                                        "checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace existing files (never a checkpoint, the source or a run's "
                                             "own files).")
def export(source: Path, out: Path, export_format: str | None, direction: str | None, best: bool,
           overwrite: bool) -> None:
    """Write the generator of SOURCE (run directory or checkpoint) for sampling and translating.

    The EMA weights when the run has them; the network spec, config and step go into the
    file's metadata and a JSON beside it. `gan sample` and `gan translate` take the file.
    The format follows --out's extension. Existing files are replaced only with --overwrite;
    checkpoints and a run's own files never.

    \b
    Examples:
      gan export runs/00000-dcgan_celeba64 --out faces.safetensors
      gan sample faces.safetensors --n 64 --out faces.png
      gan export runs/00003-cyclegan_horse2zebra --direction BtoA --out zebra2horse.safetensors
      gan export runs/00000-dcgan_celeba64 --best --out best.safetensors   # the checkpoint best by SWD
      gan export runs/00000-dcgan_celeba64 --out faces.pt                  # a plain torch file
    """
    from gan.checkpoint import CheckpointError, best_checkpoint, resolve_checkpoint
    from gan.exported import export_format_of, export_generator, sidecar_path
    from gan.outputs import check_outputs

    try:
        export_format = export_format_of(out, export_format)
        checkpoint = best_checkpoint(source) if best else resolve_checkpoint(source)
        check_outputs([out, sidecar_path(out)], inputs=[checkpoint], overwrite=overwrite)
        metadata = export_generator(checkpoint, out, export_format, direction)
    except (CheckpointError, OSError, ValueError) as error:
        fail(error)
    click.echo(f"wrote {out} ({metadata['network']}, step {metadata['step']}) and {sidecar_path(out).name} from "
               f"{metadata['source']}")
