"""A run's generator written for sampling and translating: `gan export`."""

from __future__ import annotations

from pathlib import Path

import click

from gan.commands.common import UserPath, fail


@click.command()
@click.argument("source", type=UserPath(exists=True, path_type=Path))
@click.option("--out", required=True, type=UserPath(dir_okay=False, path_type=Path),
              help="File to write: name.safetensors, name.pt for a torch file, or name.onnx for ONNX Runtime.")
@click.option("--format", "export_format", type=click.Choice(["safetensors", "pt", "onnx"]),
              help="safetensors (tensors only), a plain torch file, or an ONNX graph; must agree with --out's "
                   "extension [default: --out's extension]")
@click.option("--generator", "which", type=click.Choice(["ema", "live"]), default="ema", show_default=True,
              help="The EMA weights (when the checkpoint has them) or the trained ones.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), help="CycleGAN: which generator (AtoB when not given).")
@click.option("--best", is_flag=True, help="Use the run's best.pt (kept by train.keep_best) instead of its newest "
                                        "checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace existing files (never a checkpoint, the source or a run's "
                                             "own files).")
def export(source: Path, out: Path, export_format: str | None, which: str, direction: str | None, best: bool,
           overwrite: bool) -> None:
    """Write the generator of SOURCE (run directory or checkpoint) for sampling and translating.

    The EMA weights when the run has them (--generator live: the trained ones); the network
    spec, config and step go into the file's metadata and a JSON beside it. `gan sample` and
    `gan translate` take .safetensors and .pt files. The format follows --out's extension.
    Existing files are replaced only with --overwrite; checkpoints and a run's own files never.

    .onnx (needs pip install onnx onnxscript onnxruntime) is a graph for ONNX Runtime, with a dynamic batch
    axis. Image-to-image generators also take any H and W that are multiples of the network's
    size multiple (2**num_downs for the U-Net, 4 for the ResNet, any size for SRResNet) and at
    least its smallest size (8 for the ResNet): pad other sizes, run, then crop. The JSON beside the file, and its
    "gan" metadata entry, state the multiple ("size_multiple"), the smallest size
    ("smallest_size"), the input and output shapes and channel order (RGB), and for pix2pix-style
    super-resolution the bicubic upsampling inputs need first (Pillow's, a = -0.5).

    \b
    Examples:
      gan export runs/00000-dcgan_celeba64 --out faces.safetensors
      gan sample faces.safetensors --n 64 --out faces.png
      gan export runs/00003-cyclegan_horse2zebra --direction BtoA --out zebra2horse.safetensors
      gan export runs/00000-dcgan_celeba64 --best --out best.safetensors   # the checkpoint best by SWD
      gan export runs/00000-dcgan_celeba64 --out faces.pt                  # a plain torch file
      gan export runs/00003-cyclegan_horse2zebra --out horse2zebra.onnx    # for ONNX Runtime
    """
    from gan.core.checkpoint import CheckpointError, best_checkpoint, resolve_checkpoint
    from gan.inference.exported import export_format_of, export_generator, sidecar_path
    from gan.inference.onnx_export import OnnxExportFailed, OnnxUnavailable, require_onnx
    from gan.inference.outputs import check_outputs

    try:
        export_format = export_format_of(out, export_format)
        if export_format == "onnx":
            require_onnx()  # before any work
        checkpoint = best_checkpoint(source) if best else resolve_checkpoint(source)
        check_outputs([out, sidecar_path(out)], inputs=[checkpoint], overwrite=overwrite)
        # (a run's newest is chosen again as it is read: a run that trains on may have pruned this one)
        metadata = export_generator(checkpoint if best else source, out, export_format, direction, which, overwrite)
    except (CheckpointError, OSError, ValueError, OnnxUnavailable, OnnxExportFailed) as error:
        fail(error)
    click.echo(f"wrote {out} ({metadata['network']}, step {metadata['step']}) and {sidecar_path(out)} from "
               f"{metadata['source']}", err=True)  # (on stderr, as every command whose result is files says it)
