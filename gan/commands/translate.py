"""An image-to-image generator run on images or folders: `gan translate`."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import click

from gan.commands.common import fail


def planned_translations(source: Path, output: Path) -> list[tuple[Path, Path]]:
    """(input image, output file) pairs: one image to OUTPUT, or every image under a folder to
    the same relative name under OUTPUT."""
    from gan.data.decode import find_images
    from gan.images import image_format_of

    if source.is_dir():
        return [(image, output / image.relative_to(source)) for image in find_images(source)]
    image_format_of(output)
    return [(source, output)]


def translate_each(translator, pairs: list[tuple[Path, Path]], side_by_side: bool) -> tuple[int, list[Path]]:
    """Translate and write each pair in turn; returns (images written, inputs skipped as unreadable)."""
    from gan.data.decode import ImageReadError, read_rgb
    from gan.files import WriteError
    from gan.images import save_image
    from gan.images import side_by_side as side_by_side_strip
    from gan.progress import Progress

    progress = Progress(len(pairs), unit="image")
    written, skipped = 0, []
    try:
        for done, (image_path, output_path) in enumerate(pairs, 1):
            try:
                image = read_rgb(image_path)
            except ImageReadError as error:
                warnings.warn(f"skipping {error}", stacklevel=1)
                skipped.append(image_path)
                continue
            result = translator(image)
            if side_by_side:
                result = side_by_side_strip([translator.prepare(image), result])
            try:
                save_image(result, output_path)
            except WriteError as error:
                fail(f"{error}; {written} of {len(pairs)} image(s) were written before it, each complete")
            written += 1
            progress.update(done, {}, done / max(time.perf_counter() - progress.started_at, 1e-9))
    finally:
        progress.close()
    return written, skipped


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
@click.option("--overwrite", is_flag=True, help="Replace existing files (never an input, a checkpoint or a run's "
                                             "own files).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def translate(checkpoint: Path, source: Path, output: Path, side_by_side: bool, tile: int, overlap: int,
              direction: str | None, best: bool, overwrite: bool, device: str) -> None:
    """Run an image-to-image generator on INPUT (an image, or a folder searched
    recursively) and write OUTPUT (an image, or a folder with the same relative names).

    CHECKPOINT is a run directory (newest checkpoint), a checkpoint file or an export. Any image
    size works: inputs are padded to the network's multiple and cropped back. No output may be
    an input; existing files are replaced only with --overwrite, a run's own files never.

    \b
    Examples:
      gan translate runs/00001-pix2pix_facades contour.jpg photo.png
      gan translate runs/00001-pix2pix_facades drawings/ photos/ --side-by-side
      gan translate runs/00002-sr_pix2pix_x4 small.png large.png --tile 256
      gan translate runs/00003-cyclegan_horse2zebra zebras/ horses/ --direction BtoA
      gan translate runs/00002-sr_pix2pix_x4 small.png large.png --best   # the checkpoint best by val/psnr
    """
    from gan.checkpoint import CheckpointError, best_checkpoint
    from gan.outputs import check_outputs
    from gan.tiling import load_translator
    from gan.train import DeviceUnavailable, select_device

    try:
        pairs = planned_translations(source, output)
        check_outputs([output_path for _, output_path in pairs],
                      inputs=[checkpoint, *(image for image, _ in pairs)], overwrite=overwrite)
        checkpoint = best_checkpoint(checkpoint) if best else checkpoint
        translator = load_translator(checkpoint, select_device(device), tile, overlap, direction)
    except (CheckpointError, FileNotFoundError, NotADirectoryError, DeviceUnavailable, ValueError) as error:
        fail(error)
    written, skipped = translate_each(translator, pairs, side_by_side)
    if not written:
        fail(f"wrote nothing: the {len(pairs)} input image(s) could not be read (the first: '{skipped[0]}')")
    skipped_note = f"; skipped {len(skipped)} unreadable input(s), warned about above" if skipped else ""
    click.echo(f"wrote {written} image(s) to {output} with {translator.checkpoint}{skipped_note}", err=True)
