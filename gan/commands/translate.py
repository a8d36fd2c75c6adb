"""An image-to-image generator run on images or folders: `gan translate`."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import click

from gan.commands.common import fail


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.argument("source", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--side-by-side", is_flag=True, help="Write input | output strips instead of outputs alone.")
@click.option("--tile", default=512, show_default=True, help="Process larger images in tiles of this many pixels.")
@click.option("--overlap", default=32, show_default=True, help="Overlap between tiles, blended linearly.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]),
              help="Which generator of a CycleGAN checkpoint to run [default: AtoB].")
@click.option("--best", is_flag=True, help="Use the run's best.pt (kept by train.keep_best) instead of its newest "
                                        "checkpoint.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def translate(checkpoint: Path, source: Path, output: Path, side_by_side: bool, tile: int, overlap: int,
              direction: str | None, best: bool, device: str) -> None:
    """Run an image-to-image generator on INPUT (an image, or a folder searched
    recursively) and write OUTPUT (an image, or a folder with the same relative names).

    CHECKPOINT is a run directory (newest checkpoint), a checkpoint file or an export. Any image
    size works: inputs are padded to the network's multiple and cropped back.

    \b
    Examples:
      gan translate runs/00001-pix2pix_facades contour.jpg photo.png
      gan translate runs/00001-pix2pix_facades drawings/ photos/ --side-by-side
      gan translate runs/00002-sr_pix2pix_x4 small.png large.png --tile 256
      gan translate runs/00003-cyclegan_horse2zebra zebras/ horses/ --direction BtoA
      gan translate runs/00002-sr_pix2pix_x4 small.png large.png --best   # the checkpoint best by val/psnr
    """
    from gan.checkpoint import CheckpointError, best_checkpoint
    from gan.data.decode import ImageReadError, find_images, read_rgb
    from gan.files import WriteError
    from gan.images import image_format_of, save_image
    from gan.images import side_by_side as side_by_side_strip
    from gan.progress import Progress
    from gan.tiling import load_translator
    from gan.train import DeviceUnavailable, select_device

    try:
        checkpoint = best_checkpoint(checkpoint) if best else checkpoint
        translator = load_translator(checkpoint, select_device(device), tile, overlap, direction)
        if source.is_dir():
            inputs = [(image, output / image.relative_to(source)) for image in find_images(source)]
        else:
            image_format_of(output)
            inputs = [(source, output)]
    except (CheckpointError, FileNotFoundError, NotADirectoryError, DeviceUnavailable, ValueError) as error:
        fail(error)
    progress = Progress(len(inputs), unit="image")
    written = 0
    for done, (image_path, output_path) in enumerate(inputs, 1):
        try:
            image = read_rgb(image_path)
        except ImageReadError as error:
            warnings.warn(f"skipping {error}", stacklevel=1)
            continue
        result = translator(image)
        if side_by_side:
            result = side_by_side_strip([translator.prepare(image), result])
        try:
            save_image(result, output_path)
        except WriteError as error:
            progress.close()
            fail(f"{error}; {written} of {len(inputs)} image(s) were written before it, each complete")
        written += 1
        progress.update(done, {}, done / max(time.perf_counter() - progress.started_at, 1e-9))
    progress.close()
    click.echo(f"wrote {len(inputs)} image(s) to {output} with {translator.checkpoint}", err=True)
