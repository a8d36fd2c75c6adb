"""An image-to-image generator run on images or folders: `gan translate`."""

from __future__ import annotations

import itertools
import os
import shlex
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gan.commands.common import UserPath, fail
from gan.core.files import another_unicode_form, remove_empty_folders
from gan.core.wording import one_line

if TYPE_CHECKING:
    from PIL import Image


def _folders_read(source: Path) -> list[Path]:
    """`source` and the folders its links lead to (resolved), whose images a translation of it reads."""
    folders = [source.resolve()]
    for folder, subfolders, _ in os.walk(source):  # (links are not walked into: each is resolved once)
        folders += [(Path(folder) / name).resolve() for name in subfolders if (Path(folder) / name).is_symlink()]
    return folders


def _written(pairs: list[tuple[Path, Path]]) -> list[Path]:
    """The outputs of `pairs` whose input will be translated: one whose header does not read is
    skipped with its own warning, and has no output to warn of."""
    from gan.data.decode import check_header

    return [output for image, output in pairs if check_header(image) is None]


def planned_translations(source: Path, output: Path) -> list[tuple[Path, Path]]:
    """(input image, output file) pairs: one image to OUTPUT, or every image under a folder to
    the same relative name under OUTPUT."""
    from gan.core.images import GREY_ONLY, OUTPUT_FORMATS, image_format_of, palette_warning
    from gan.data.decode import IMAGE_EXTENSIONS, find_images
    from gan.inference.outputs import resolved

    if source.is_dir():
        if output.suffix.lower() in IMAGE_EXTENSIONS and not output.exists():  # (an existing file: refused below)
            raise ValueError(f"OUTPUT '{output}' is named as an image file, but a folder INPUT ('{source}') is "
                             "translated into a folder of images: give a folder name")
        # (one run into a new subfolder went well, the next into another translated the first's outputs again:
        # a x16 image among the x4 ones, in silence; as written too, for a linked subfolder INPUT's images follow)
        if any(resolved(output).is_relative_to(folder) for folder in _folders_read(source)) or Path(
                os.path.abspath(output)).is_relative_to(os.path.abspath(source)):
            raise ValueError(f"OUTPUT '{output}' is inside INPUT '{source}', whose images are read from its subfolders "
                             "too: its outputs would be inputs of the next translation of INPUT; give an OUTPUT folder "
                             "outside INPUT")
        # the outputs keep the inputs' names, so their formats, but for grey-only ones: colour goes to their kin;
        # and formats gan reads but does not write (AVIF) go to PNG
        pairs = [(image, output / image.relative_to(source)) for image in find_images(source)]
        grey = [path for _, path in pairs if path.suffix.lower() in GREY_ONLY]
        unwritable = [path for _, path in pairs if path.suffix.lower() not in (*OUTPUT_FORMATS, *GREY_ONLY)]
        renamed = {*grey, *unwritable}
        said = set(_written([pair for pair in pairs if pair[1] in renamed]))  # (not those skipped as unreadable)
        grey_said, unwritable_said = [path for path in grey if path in said], [path for path in unwritable if path in said]
        if grey_said:
            warnings.warn(f"{len(grey_said)} output(s) are named like grey-only inputs (the first: '{grey_said[0]}'), "
                          f"and hold colour: written as {GREY_ONLY[grey_said[0].suffix.lower()]} instead", stacklevel=2)
        if unwritable_said:
            warnings.warn(f"{len(unwritable_said)} output(s) are named like inputs in a format gan reads but does not "
                          f"write (the first: '{unwritable_said[0]}'): written as .png instead", stacklevel=2)
        pairs = _renamed(pairs, {path: GREY_ONLY[path.suffix.lower()] for path in grey}
                         | {path: ".png" for path in unwritable})
    elif output.is_dir():
        example = output / source.with_suffix(".png").name
        if example.resolve() == source.resolve():  # (not the input itself, which is refused)
            example = output / f"{source.stem}-translated.png"
        raise ValueError(f"OUTPUT '{output}' is a folder; one INPUT image is translated into one image file: "
                         f"give its name, such as '{example}'")
    elif not output.suffix:  # ('newdir/' arrives as 'newdir': its slash is gone)
        raise ValueError(f"OUTPUT '{output}' has no image extension; one INPUT image is translated into one image "
                         f"file: give its name with one (.png, .jpg, .webp, .bmp, .tif, .ppm or .gif), such as "
                         f"'{output.with_suffix('.png')}' or "
                         f"'{output / source.with_suffix('.png').name}' (a folder is made)")
    else:
        image_format_of(output)
        pairs = [(source, output)]
    palette = palette_warning(_written([pair for pair in pairs if pair[1].suffix.lower() == ".gif"]))
    if palette:
        warnings.warn(palette, stacklevel=2)
    return pairs


def _renamed(pairs: list[tuple[Path, Path]], suffixes: dict[Path, str]) -> list[tuple[Path, Path]]:
    """`pairs` with the outputs in `suffixes` given that suffix: `a.pgm` -> `a.ppm`, or `a.pgm.ppm`
    where another output already takes that name (`a.ppm` beside `a.pgm` in the folder), or
    `a.pgm-2.ppm` (the first number free) where that one is taken too (`a.pgm.ppm` in the folder).
    Names that differ only in case are taken as one (`A.ppm` beside `a.pgm`): one file on macOS's
    and Windows' disks, where the second write would replace the first."""
    taken = {str(path).casefold() for _, path in pairs if path not in suffixes}
    renamed = []
    for image, path in pairs:
        if path in suffixes:
            names = itertools.chain([path.with_suffix(suffixes[path]), path.with_name(path.name + suffixes[path])],
                                    (path.with_name(f"{path.name}-{number}{suffixes[path]}")
                                     for number in itertools.count(2)))
            path = next(name for name in names if str(name).casefold() not in taken)
            taken.add(str(path).casefold())
        renamed.append((image, path))
    return renamed


def refuse_swapped_arguments(checkpoint: Path, source: Path, output: Path) -> None:
    """ValueError when INPUT is a model and CHECKPOINT is not (images, or a folder of them): the two
    given the other way round, which would otherwise read as a run directory without checkpoints."""
    from gan.core.checkpoint import holds_a_run
    from gan.data.decode import IMAGE_EXTENSIONS

    model = holds_a_run(source) or (source.is_file() and source.suffix.lower() in (".pt", ".pth", ".safetensors"))
    images = (checkpoint.is_file() and checkpoint.suffix.lower() in IMAGE_EXTENSIONS) or (
        checkpoint.is_dir() and not holds_a_run(checkpoint))
    if model and images:
        command = shlex.join(["gan", "translate", str(source), str(checkpoint), str(output)])  # (pasted as it is)
        raise ValueError(f"'{checkpoint}' is no model and '{source}' is one: CHECKPOINT comes first, then INPUT: "
                         f"{command}")


def input_and_target(pair: Path, direction: str) -> tuple[Image.Image, Image.Image]:
    """The (input, target) halves of the A|B image at `pair` (A on the left) for a model trained
    `direction`: AtoB takes the left half, BtoA the right. ImageReadError when it cannot be read or
    split."""
    from gan.data.paired import read_side_by_side

    a_image, b_image = read_side_by_side(pair)
    return (b_image, a_image) if direction == "BtoA" else (a_image, b_image)


def check_paired_input(config: dict, checkpoint: Path) -> None:
    """--paired-input needs a model trained on pairs: its data.direction says which half is the input."""
    dataset = config["data"]["dataset"]
    if dataset != "paired":
        raise ValueError(f"--paired-input is for checkpoints trained on paired data (data.dataset = \"paired\", as "
                         f"pix2pix is); '{checkpoint}' is a {config['recipe']} checkpoint trained on '{dataset}' data")


def refuse_pair_shaped_inputs(config: dict, images: list[Path]) -> None:
    """Refuse inputs shaped like the A|B pairs the model trained on, passed without --paired-input or
    --whole-input: translated whole, the two halves would go through the network as one picture.
    Only where the run's training images say so (`training_pair_shapes`): a wide image may also be
    a panorama, or one side of wider pairs. When that data is not on this machine, inputs twice as
    wide as high are warned of instead."""
    from gan.data.decode import header_size
    from gan.data.paired import training_pair_shapes

    shapes = training_pair_shapes(config["data"])
    shaped = [(path, size) for path in images if (size := header_size(path)) is not None and shapes.fits(*size)]
    if not shaped:
        return
    (first, (width, height)), more = shaped[0], len(shaped) - 1
    others = f", as {'is' if more == 1 else 'are'} {more} more of the {len(images)} inputs" if more else ""
    direction = config["data"]["direction"]
    side = "the A half (the left one)" if direction == "AtoB" else "the B half (the right one)"
    what_to_do = (f"pass --paired-input to translate {side}, this {direction} model's input, or --whole-input to "
                  "translate each image whole")
    if shapes.known:
        aspects = (f"{shapes.lowest:.2f}:1" if shapes.highest - shapes.lowest < 0.005
                   else f"{shapes.lowest:.2f}:1 to {shapes.highest:.2f}:1")
        raise ValueError(f"'{one_line(first)}' is {width}x{height}, shaped like the A|B pairs this model trained on "
                         f"({aspects}){others}: {what_to_do}")
    warnings.warn(f"'{one_line(first)}' is {width}x{height}, twice as wide as high like an A|B pair{others}, and this "
                  f"model's training data ('{config['data']['root']}') is not here to tell whether it trained on such "
                  f"pairs: if these are pairs, {what_to_do}", stacklevel=2)


def _begun_log(output: Path, record: dict):
    """A folder translation's record and empty log, written in OUTPUT (made here: the folders made are
    returned too), for --continue after a stop."""
    from gan.core.files import WriteError, missing_folders
    from gan.inference.translation_record import TranslationLog

    made, log = missing_folders([output]), TranslationLog(output, record)
    try:
        log.begin()
    except (OSError, WriteError) as error:
        remove_empty_folders(made)
        fail(f"cannot write '{log.record_path}', the record --continue reads after a stop: {error}")
    return log, made


def translate_each(translator, pairs: list[tuple[Path, Path]], side_by_side: bool,
                   paired_direction: str | None = None, not_pairs: dict[Path, str] | None = None,
                   overwrite: bool = False, on_written: Callable[[Path, Path], None] | None = None,
                   instead: str | None = None) -> tuple[int, dict[Path, str]]:
    """Translate and write each pair in turn; returns (images written, {input skipped: why, in a
    few words}): unreadable, among `not_pairs` ({input: why it is no A|B pair}), or, in a folder,
    an output larger than the format it keeps can hold. With `paired_direction` each input is an
    A|B image: its input half is translated, and a side-by-side strip ends with the other half, the
    target. Without `overwrite`, an output that appeared since the outputs were checked (another
    command writing into the same folder) ends the command rather than being replaced. `on_written`
    (input, output) is called as each output is in place (a folder translation's log); a stop then
    says how --continue goes on, in place of the option `instead` (--overwrite) where it was given."""
    from gan.core.progress import Progress
    from gan.inference.outputs import file_identity

    progress = Progress(len(pairs), unit="image", log_interval=10.0)  # (a log: a line per 10 s, not per image)
    written, skipped, stopped = 0, {}, False
    begun: dict[Path, tuple[int, int] | None] = {}  # each output begun: the file its name held before
    try:
        for done, (image_path, output_path) in enumerate(pairs, 1):
            if not_pairs and image_path in not_pairs:
                warnings.warn(f"skipping '{one_line(image_path)}': it {not_pairs[image_path]}", stacklevel=1)
                skipped[image_path] = "not shaped like an A|B pair"
            else:
                begun[output_path] = file_identity(output_path)
                why_not = _translate_one(translator, image_path, output_path, side_by_side, paired_direction,
                                         f"{written} of {len(pairs)} image(s)", alone=len(pairs) == 1,
                                         new_only=not overwrite)
                if why_not:
                    skipped[image_path] = why_not
                else:
                    written += 1
                    if on_written is not None:
                        on_written(image_path, output_path)
            progress.update(done)
    except KeyboardInterrupt:  # each output is written whole or not at all: those done are kept, and counted
        stopped = True
        # (by what is in place: a stop just after an output was renamed in, as its folder was flushed, keeps it)
        written = sum(file_identity(path) not in (None, before) for path, before in begun.items())
        raise
    finally:
        progress.close()
        if stopped:
            again = ("with --overwrite translates them all again" if on_written is None else
                     f"with --continue in place of {instead} translates the rest" if instead else
                     "with --continue translates the rest")
            click.echo(f"stopped: {written} of {len(pairs)} image(s) were written, each complete (the same command "
                       f"{again})", err=True)
    return written, skipped


def _translate_one(translator, image_path: Path, output_path: Path, side_by_side: bool,
                   paired_direction: str | None, written_so_far: str, alone: bool, new_only: bool) -> str | None:
    """Translate one input and write its output: None when written, else why it was skipped, in a
    few words (unreadable; in a folder, an output too large for the format it keeps). Other
    failures end the command, saying the `written_so_far` ("3 of 10 image(s)")."""
    from gan.core.files import WriteError
    from gan.core.images import FormatLimitError, check_format_fits, save_image
    from gan.core.images import side_by_side as side_by_side_strip
    from gan.data.decode import ImageFolderGone, ImageReadError, read_rgb
    from gan.inference.tiling import ImageTooLargeError
    from gan.nets.running import NonFiniteOutput

    try:
        source, target = (input_and_target(image_path, paired_direction) if paired_direction
                          else (read_rgb(image_path), None))
    except ImageReadError as error:
        if alone or isinstance(error, ImageFolderGone):  # (a folder gone: each of its files would be skipped in turn)  # (one image: its error alone, not a warning, then the same as an error)
            fail(error)
        warnings.warn(f"skipping an unreadable input: {error}", stacklevel=1)
        return "unreadable"
    try:
        # the output's size follows from the input's: one its format cannot hold is refused before the work
        check_format_fits(output_path, *output_size(translator, source, target, side_by_side))
        result = translator(source)
        if side_by_side:
            result = side_by_side_strip([translator.prepare(source), result, *([target] if target else [])])
        save_image(result, output_path, new_only=new_only)
    except ImageTooLargeError as error:
        fail(f"'{one_line(image_path)}': {error}; {written_so_far} were written before it")
    except NonFiniteOutput as error:
        fail(f"'{one_line(image_path)}' through '{translator.checkpoint}': {error}; {written_so_far} were written "
             "before it")
    except (WriteError, FormatLimitError) as error:
        # (a folder's outputs keep their inputs' names and formats: the input is what to convert)
        kept_format = isinstance(error, FormatLimitError) and output_path.name == image_path.name
        hint = (f" (outputs keep their inputs' formats: convert '{one_line(image_path)}' to .png or .tif first)"
                if kept_format else "")
        if kept_format and not alone:  # (the other images are not to blame: they go on)
            warnings.warn(f"skipping: {error}{hint}", stacklevel=1)
            return "too large for its format"
        fail(f"{error}{hint}; {written_so_far} were written before it, each complete")
    return None


def output_size(translator, source, target, side_by_side: bool) -> tuple[int, int]:
    """(width, height) of what `_translate_one` writes for `source` (and an A|B pair's `target`): the
    output, or a strip of the images each at the last one's size (`gan.core.images.side_by_side`)."""
    upscale = translator.input_upscale * translator.output_upscale
    width, height = source.width * upscale, source.height * upscale
    if not side_by_side:
        return width, height
    last_width, last_height = target.size if target else (width, height)
    return last_width * (3 if target else 2), last_height


@click.command()
@click.argument("checkpoint", type=UserPath(exists=True, path_type=Path))
@click.argument("source", metavar="INPUT", type=UserPath(exists=True, path_type=Path))
@click.argument("output", type=UserPath(path_type=Path))
@click.option("--side-by-side", is_flag=True, help="Write input | output strips instead of outputs alone "
                                                "(input | output | target with --paired-input).")
@click.option("--paired-input/--whole-input", "paired_input", default=None,
              help="--paired-input: each input is an A|B pair (A left, B right), as in pix2pix's aligned data; "
                   "translate the half the model takes (its data.direction: AtoB the left, BtoA the right). "
                   "--whole-input: translate each image whole, even one shaped like such a pair. Without either, "
                   "inputs shaped like the A|B pairs the model trained on are refused.")
@click.option("--tile", default=0, show_default=True,
              help="Process images larger than this many pixels (of the network's input: for sr_pix2pix the "
                   "bicubic-enlarged image) in overlapping tiles, to bound the network's memory; 0: each image whole "
                   "(tiles differ from it where the network sees further than a quarter of the overlap, or "
                   "normalises per image).")
@click.option("--overlap", type=int, help="Overlap between tiles, blended linearly (with --tile) [default: 32].")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]),
              help="Which generator of a CycleGAN checkpoint to run [default: AtoB].")
@click.option("--best", is_flag=True, help="Use the run's best.pt (kept by train.keep_best) instead of its newest "
                                        "checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace existing files (never an input, a checkpoint or a run's "
                                             "own files).")
@click.option("--continue", "continue_", is_flag=True,
              help="Go on with a stopped translation of a folder: keep the outputs it wrote (each complete) and "
                   "translate the rest; refused unless OUTPUT's record is of this checkpoint, INPUT and options.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def translate(checkpoint: Path, source: Path, output: Path, side_by_side: bool, paired_input: bool | None, tile: int,
              overlap: int | None, direction: str | None, best: bool, overwrite: bool, continue_: bool,
              device: str) -> None:
    """Run an image-to-image generator on INPUT (an image, or a folder searched
    recursively) and write OUTPUT (an image, or a folder with the same relative names).

    CHECKPOINT is a run directory (newest checkpoint), a checkpoint file or an export. Any image
    size works: inputs are padded to the network's multiple and cropped back. No output may be
    an input; existing files are replaced only with --overwrite, a run's own files never.

    \b
    Examples:
      gan translate runs/00001-pix2pix_facades contour.jpg photo.png
      gan translate runs/00001-pix2pix_facades drawings/ photos/ --side-by-side
      gan translate runs/00001-pix2pix_facades facades/val/ strips/ --paired-input --side-by-side
      gan translate runs/00002-sr_pix2pix_x4 small.png large.png --tile 256
      gan translate runs/00003-cyclegan_horse2zebra zebras/ horses/ --direction BtoA
      gan translate runs/00002-sr_pix2pix_x4 small.png large.png --best   # the checkpoint best by val/psnr
      gan translate runs/00001-pix2pix_facades drawings/ photos/ --continue   # after a stop: the rest
    """
    from gan.core.checkpoint import CheckpointError, best_checkpoint
    from gan.core.devices import DeviceUnavailable, select_device
    from gan.inference.outputs import OutputRefused, check_outputs, refuse_joining_run_data, run_data_folders
    from gan.inference.scoring import not_shaped_like_pairs
    from gan.inference.tiling import check_tiling, load_translator
    from gan.inference.translation_record import (
        TranslationLog,
        left_to_translate,
        record_files,
        translation_record,
    )

    if continue_ and overwrite:
        raise click.UsageError("--continue keeps the outputs a stopped translation wrote, --overwrite replaces them: "
                               "give one")
    if continue_ and not source.is_dir():
        raise click.BadParameter("goes on with a folder INPUT's translation; one image is translated whole or not at "
                                 "all (--overwrite replaces its output)", param_hint="--continue")
    try:
        refuse_swapped_arguments(checkpoint, source, output)
        twin = another_unicode_form(output) if not os.path.lexists(output) else ""
        if twin and not continue_:  # (a folder typed composed beside the one macOS wrote decomposed)
            warnings.warn(f"OUTPUT '{output}' is new{twin}: the outputs go to a new folder of that name", stacklevel=1)
        pairs = planned_translations(source, output)
        if not continue_:  # (--continue: checked once the record says which outputs are this translation's)
            # (a folder named like an image, x.png/, is skipped as unreadable: it has no output to plan)
            try:
                check_outputs([output_path for image, output_path in pairs if not image.is_dir()],
                              inputs=[checkpoint, *(image for image, _ in pairs)], overwrite=overwrite)
            except OutputRefused as refused:
                recorded = source.is_dir() and record_files(output, source)[0].is_file()
                raise OutputRefused(f"{refused}, or --continue to keep them and translate the rest (a stopped "
                                    "translation's)" if recorded and "--overwrite" in str(refused) else refused) \
                    from None
        checkpoint = best_checkpoint(checkpoint) if best else checkpoint
        check_tiling(tile, overlap, overlap_option=True)
        if overlap is not None and tile == 0:
            warnings.warn(f"--overlap {overlap} changes nothing without --tile: each image goes through whole",
                          stacklevel=1)
        translator = load_translator(checkpoint, select_device(device), tile, overlap, direction)
        refuse_joining_run_data([output_path for image, output_path in pairs if not image.is_dir()],
                                run_data_folders(translator.config, translator.data_record))
        translator.show_tiles = True  # (one large image may take minutes, tile by tile)
        not_pairs = {}
        if paired_input:
            check_paired_input(translator.config, translator.checkpoint)
            # (photos halved as if they were pairs would be translated, and their halves shown as targets)
            not_pairs = not_shaped_like_pairs(
                [image for image, _ in pairs if not image.is_dir()], source if source.is_dir() else source.parent,
                translator.config["data"], advice="pass --whole-input to translate each image whole",
                consequence="their halves are translated and shown as if they were")
        elif paired_input is None:
            refuse_pair_shaped_inputs(translator.config, [image for image, _ in pairs])
        elif translator.config["data"]["dataset"] != "paired":  # (--whole-input: each image whole, as always here)
            warnings.warn(f"--whole-input changes nothing: '{translator.checkpoint}' trained on "
                          f"'{translator.config['data']['dataset']}' data, not A|B pairs, so every input goes through "
                          "whole", stacklevel=1)
        record = None
        if source.is_dir():
            record = translation_record(translator.checkpoint, translator.step, source, {
                "side_by_side": side_by_side, "paired_input": paired_input, "tile": tile,
                "overlap": translator.overlap if tile else None, "network": translator.network})
        planned, kept = len(pairs), 0
        if continue_:
            inputs = [checkpoint, *(image for image, _ in pairs)]
            pairs, kept, again = left_to_translate(pairs, output, record)
            try:
                check_outputs([output_path for image, output_path in pairs if not image.is_dir()], inputs=inputs,
                              overwrite=bool(again))
            except OutputRefused as refused:  # (outputs that appeared since the log was read: another --continue)
                raise OutputRefused(f"{str(refused).partition('; pass --overwrite')[0]}, written since this command "
                                    "read the log (another --continue into OUTPUT?): run --continue again once it "
                                    "ends") from None
            overwrite = bool(again)  # (outputs there that the log does not vouch for: written again)
            click.echo(f"--continue: {kept} of {planned} output(s) are there, kept; {len(pairs)} to translate"
                       + (f" ({again} of them again: not this translation's as its log has them, or their inputs "
                          "changed since)" if again else ""), err=True)
    except (CheckpointError, FileNotFoundError, NotADirectoryError, DeviceUnavailable, ValueError) as error:
        fail(error)
    if not pairs:
        click.echo(f"nothing to do: every output is in {output}", err=True)
        return
    log, made = None, []
    if record is not None:  # (--continue appends to the log it read)
        log, made = (TranslationLog(output, record), []) if continue_ else _begun_log(output, record)
    paired_direction = translator.config["data"]["direction"] if paired_input else None
    try:
        written, skipped = translate_each(translator, pairs, side_by_side, paired_direction, not_pairs, overwrite,
                                          on_written=log.written if log else None,
                                          instead="--overwrite" if overwrite and not continue_ else None)
    finally:
        if log is not None:
            log.close()
    if not written and not kept:
        if made:  # (a new OUTPUT of nothing but the record and log: not left behind)
            log.remove()
            remove_empty_folders(made)
        first, why = next(iter(skipped.items()))
        fail(f"wrote nothing: none of the {len(pairs)} input image(s) could be translated (the first: "
             f"'{one_line(first)}', {why})")
    counts = Counter(skipped.values())
    kinds = [f"{counts[why]} {'unreadable input(s)' if why == 'unreadable' else why}" for why in counts]
    skipped_note = f"; skipped {', '.join(kinds)}, warned about above" if skipped else ""
    kept_note = f" (and kept the {kept} written before the stop)" if kept else ""
    click.echo(f"wrote {written} image(s){kept_note} to {output} with {translator.checkpoint}{skipped_note}", err=True)
