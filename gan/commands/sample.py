"""Images from an unconditional generator: `gan sample`."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import click

from gan.commands.common import UserPath, fail
from gan.core.wording import counted, one_line

if TYPE_CHECKING:  # the command imports torch only when it runs
    import torch

# The latents come from torch's CPU generator, which seeds itself from a seed's low 32 bits:
# a larger seed would silently give a smaller one's images.
MAX_SEED = 2**32 - 1
# One command writes at most this many images: --separate names them 00000.png .. 99999.png.
MAX_IMAGES = 100_000
BATCH = 64  # images generated and written at a time, so memory does not grow with --n
SAMPLE_NAME = re.compile(r"\d{5,}\.png")  # --separate's images: 00000.png, 00001.png, ...


def check_seed(seed: int) -> None:
    """A usage error for a seed the latent generator cannot take as its own."""
    if not 0 <= seed <= MAX_SEED:
        why = (" (torch's CPU generator uses the seed's low 32 bits, so a larger seed would repeat a smaller one's "
               "images)" if seed > MAX_SEED else "")
        raise click.BadParameter(f"{seed} is out of range: expected 0 .. {MAX_SEED}{why}", param_hint="--seed")


def image_count(count: int, steps: int) -> int:
    """The number of images --n (and --interpolate) ask for; a usage error beyond MAX_IMAGES."""
    total = count * (steps or 1)
    if total > MAX_IMAGES:
        asked = f"{count:,} rows × --interpolate {steps:,} steps = {total:,} images" if steps else f"{total:,} images"
        raise click.BadParameter(f"{asked} is more than the {MAX_IMAGES:,} one command writes (--separate names "
                                 "them 00000.png .. 99999.png); sample the rest with another --seed into another "
                                 "folder", param_hint="--n")
    return total


def separate_path(folder: Path, index: int) -> Path:
    return folder / f"{index:05d}.png"


def refuse_a_grid_among_samples(out: Path | None, separate: Path | None, total: int) -> None:
    """An --out grid in the --separate folder, or in a folder inside it (past the samples' own names,
    refused as written twice): FID, which scores the folder's images with its subfolders', would take
    the grid for one more sample."""
    if out is None or separate is None:
        return
    folder, samples = out.parent.resolve(), separate.resolve()
    if folder != samples and samples not in folder.parents:
        return
    if folder == samples and out.name in {separate_path(separate, index).name for index in range(total)}:
        return
    fail(f"--out '{out}' is in the --separate folder '{separate}', whose images are scored as samples: the grid "
         "would be one more; give it another folder")


def refuse_outputs_below_a_sample_set(out: Path | None, separate: Path | None) -> None:
    """An --out grid into a folder that holds a --separate set (an earlier command's numbered PNGs), or
    into one below it, and a --separate set into a folder below one, short of the folder the command
    runs in: FID, which scores every image of the folder and its subfolders, would take the grid for
    one more sample, or two sets for one. (The grid in this command's own --separate folder is
    `refuse_a_grid_among_samples`' to refuse, samples in the folder itself `samples_left_beside`'s.)
    Folders above the one the command runs in are not looked at: a stray /tmp/00000.png would refuse
    every output under /tmp."""
    here = Path.cwd().resolve()

    def below_here(folder: Path) -> list[Path]:
        return [parent for parent in folder.parents if here in parent.parents]

    if out is not None:
        folder = Path(os.path.abspath(out.parent))
        for candidate in (folder, *below_here(folder)):
            if separate is not None and candidate.resolve() == separate.resolve():
                break
            if samples := _samples_in(candidate):
                fail(f"--out '{out}' is in '{candidate}', which holds a --separate set of "
                     f"{counted(len(samples), 'sample')} (the first: {samples[0]}): FID would score the grid as one "
                     "more; give it another folder")
    for candidate in below_here(Path(os.path.abspath(separate))) if separate is not None else ():
        if samples := _samples_in(candidate):
            fail(f"--separate '{separate}' is in '{candidate}', which holds a --separate set of "
                 f"{counted(len(samples), 'sample')} (the first: {samples[0]}): FID would score the two sets as one; "
                 "give a folder outside it")


def _samples_in(folder: Path) -> list[str]:
    """The names of the --separate samples in `folder`, sorted (none where it cannot be listed: not
    there yet, or writing into it is refused with its own words)."""
    try:
        return sorted(path.name for path in folder.iterdir() if is_sample_name(path.name))
    except OSError:
        return []


def is_sample_name(name: str) -> bool:
    """Whether `name` is one --separate gives its images: 00000.png, 00001.png, ..."""
    return SAMPLE_NAME.fullmatch(name) is not None


def what_spoils_the_set(separate: Path, total: int) -> str | None:
    """What is wrong with the --separate folder for a set of `total` samples (`samples_left_beside`,
    `other_images_beside`); None when nothing is."""
    return samples_left_beside(separate, total) or other_images_beside(separate)


def samples_left_beside(separate: Path, total: int) -> str | None:
    """What is wrong with a --separate folder holding sample PNGs past those this command writes (an
    earlier, larger --n): replaced in part, the folder would mix two sets, which FID would score as one."""
    if not separate.is_dir():
        return None
    others = sorted(path.name for path in separate.iterdir() if is_sample_name(path.name) and int(path.stem) >= total)
    if others:
        return (f"--separate '{separate}' holds {len(others)} sample(s) past the {total} this command writes (the "
                f"first: {others[0]}): the folder would mix two sets; give an empty folder, or remove them first")
    return None


def other_images_beside(separate: Path) -> str | None:
    """What is wrong with a --separate folder holding image files other than its numbered samples, in
    it or below it (a grid written there earlier, photos, a set in a subfolder): FID tools score every
    image of a folder, and torch-fidelity's and clean-fid's recursive listings its subfolders' too."""
    others = other_images_in(separate)
    if others:
        return (f"--separate '{separate}' holds {counted(len(others), 'image file')} other than its numbered samples "
                f"(the first: {one_line(others[0])}), which FID tools would score with the samples; give an empty folder, "
                "or remove them first")
    return None


def other_images_in(folder: Path) -> list[str]:
    """The image files in `folder` and its subfolders, but for the numbered samples in `folder` itself:
    paths relative to it, sorted. Hidden names are passed over, as gan's own listings pass over them
    (and with them a sample command's staging folder)."""
    from gan.data.decode import IMAGE_EXTENSIONS

    if not folder.is_dir():
        return []
    found = []
    for root, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        inside = Path(root).relative_to(folder)
        found += [str(inside / name) for name in files if not name.startswith(".")
                  and name.lower().endswith(IMAGE_EXTENSIONS) and not (inside == Path() and is_sample_name(name))]
    return sorted(found)


def planned_outputs(out: Path | None, separate: Path | None, total: int) -> list[Path]:
    """Every file the command will write: the grid, then one PNG per image."""
    grid = [out] if out is not None else []
    return grid + ([separate_path(separate, index) for index in range(total)] if separate is not None else [])


class StagedOutputs:
    """A command's output files, written first into a staging folder beside each (under the names
    they get) and moved into place together at the end, with the stop signals held back for the
    moves: a command that fails or is stopped leaves each file it would have replaced as it was (an
    earlier set's PNGs, which FID would score as a whole), and none of its own.

    A `new_folder` (the --separate folder, when it does not exist yet) is staged whole beside where
    it goes and renamed into place in one step: not even a kill -9 leaves part of the set there. A
    `samples` check (the --separate folder and the count written) is made again as the moves begin,
    under the folder's lock: another command's larger set may have come in meanwhile."""

    def __init__(self, overwrite: bool = False, new_folder: Path | None = None,
                 samples: tuple[Path, int] | None = None) -> None:
        self.overwrite = overwrite  # else a target that appeared since the outputs were checked is refused
        self.new_folder = new_folder
        self.samples = samples
        self.moves: list[tuple[Path, Path]] = []
        self.folders: list[Path] = []
        self.committed = False
        self.moved = 0  # files moved into place by a commit that failed
        self.stop_held_back = False  # a stop came as the files moved into place, and ended nothing

    def path_for(self, target: Path) -> Path:
        """Where to write `target` until `commit`."""
        from gan.core.files import host_tag

        beside = self.new_folder.parent if target.parent == self.new_folder else target.parent
        folder = beside / f"{STAGING_PREFIX}{os.getpid()}.{host_tag()}.tmp"
        if folder not in self.folders:
            remove_stale_staging(beside)
            self.folders.append(folder)
        staged = folder / self.new_folder.name / target.name if beside != target.parent else folder / target.name
        self.moves.append((staged, target))
        return staged

    def commit(self) -> None:
        from gan.core.files import flush_to_disk
        from gan.core.processes import stop_signals_held

        # (staged unflushed: one flush of them all here, before any moves into place, takes half the time)
        flush_to_disk([staged for staged, _ in self.moves])
        # (the command's last step: once its files are in place, a stop ends nothing, to the process's exit)
        with stop_signals_held(to_the_end=True) as received:
            self._move_in(self.moves, rename_new_folder=self.new_folder is not None)
            self.committed = True
            for folder in self.folders:  # (emptied: the new folder's staged tree, moved in file by file, too)
                for inner, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
                    with contextlib.suppress(OSError):
                        os.rmdir(inner)
        self.stop_held_back = bool(received)  # (outside a command, delivered: a KeyboardInterrupt instead)

    def _renamed_into_place(self) -> bool:
        """The new folder, staged whole, renamed into place in one step; False when a folder of that
        name came into being meanwhile (another command's set, say), whose files then move in one by
        one, checked as into any folder that is there. (Its parent is not locked: something else
        holding it would have cost the whole set.)"""
        from gan.core.files import WriteError

        staged_folder = next(staged.parent for staged, target in self.moves if target.parent == self.new_folder)
        if os.path.lexists(self.new_folder):
            return False
        try:
            os.rename(staged_folder, self.new_folder)  # (onto a name that is free, or an empty folder)
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):  # (filled by another command a moment ago)
                return False
            raise WriteError(f"could not move '{staged_folder}' into place as '{self.new_folder}': {error}") from error
        return True

    def _move_in(self, moves: list[tuple[Path, Path]], rename_new_folder: bool) -> None:
        """`moves`, holding each target folder that is there: two commands moving their sets into one
        folder take turns (interleaved, the folder would hold part of each, which would pass for a
        whole set). Those into the new folder go in one rename where `rename_new_folder`; one by one,
        checked again holding it, where it came into being meanwhile."""
        from gan.core.files import WriteError, folder_held

        one_by_one = False
        with contextlib.ExitStack() as held:
            for folder in sorted({target.parent for _, target in moves}):
                held.enter_context(folder_held(folder))
            # (another command may have written a target while this one sampled, after its outputs were checked)
            if self.samples is not None and (problem := what_spoils_the_set(*self.samples)) is not None:
                raise WriteError(f"{problem} (another command wrote them while this one sampled): nothing was replaced")
            appeared = [target for _, target in moves if not self.overwrite and os.path.lexists(target)]
            if appeared:
                raise WriteError(f"{len(appeared)} output(s) appeared while sampling ('{appeared[0]}'; another "
                                 "command wrote it?): nothing was replaced; run again with --overwrite to replace them")
            if rename_new_folder:
                one_by_one = not self._renamed_into_place()
                moves = moves if one_by_one else [move for move in moves if move[1].parent != self.new_folder]
            for done, (staged, target) in enumerate([] if one_by_one else moves):
                try:
                    self._move(staged, target)
                except OSError as error:  # (a folder where a file goes, say: it cannot be undone, so it is said)
                    self.moved = done
                    raise WriteError(f"could not move '{staged}' into place as '{target}' after {done} of "
                                     f"{len(moves)} files: {error}; the folder holds part of the new set until "
                                     "the command runs again") from error
        if one_by_one:  # (its lock taken now that it is there: a flock is not taken twice by one process)
            self._move_in(moves, rename_new_folder=False)

    def _move(self, staged: Path, target: Path) -> None:
        """`staged` into place as `target`; without overwrite, never over a file that appeared meanwhile
        (a hard link fails on an existing name, where a rename would replace it)."""
        from gan.core.files import move_in_new

        if self.overwrite:
            os.replace(staged, target)
        else:
            move_in_new(staged, target)

    def named_as_targets(self, message: str) -> str:
        """`message` with the staged file it names named as the file it becomes: the user gave that one."""
        for staged, target in reversed(self.moves):  # (a write that failed: the newest, as a rule)
            if str(staged) in message:
                return message.replace(str(staged), str(target))
        return message

    def discard(self) -> int:
        """Remove what was written so far; returns how many files there were."""
        written = sum(staged.is_file() for staged, _ in self.moves)
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)
        return written


STAGING_PREFIX = ".gan-sample-staging."  # + <pid>.<host>.tmp (`host_tag`)


def remove_stale_staging(folder: Path) -> None:
    """Staging folders that a killed `gan sample` on this machine left in `folder` (they hold only
    its PNGs). Another machine's, in a shared folder, may be a live command's: left alone."""
    from gan.core.files import host_tag, process_alive

    if not folder.is_dir():
        return
    for staging in folder.glob(f"{STAGING_PREFIX}*.tmp"):
        match = re.fullmatch(rf"{re.escape(STAGING_PREFIX)}(\d+)\.(h[0-9a-f]{{8}})\.tmp", staging.name)
        if (match and match[2] == host_tag() and not process_alive(int(match[1])) and staging.is_dir()
                and not staging.is_symlink()):
            shutil.rmtree(staging, ignore_errors=True)


def replaced_note(staged: StagedOutputs) -> str:
    """What a failed or stopped command says of the files it would have replaced: kept as they were
    (the new set is written beside them, so an --overwrite needs room for both)."""
    return ("; the files it would have replaced are as they were (an --overwrite writes the new files beside "
            "them and then swaps them in: it needs disk room for both)"
            if staged.overwrite and not staged.moved and any(target.exists() for _, target in staged.moves) else "")


def check_grid_fits(out: Path, total: int, image_height: int, image_width: int, num_columns: int | None) -> None:
    """Fail before writing anything when the --out grid would be too large for image readers or
    for its file's format. `num_columns`: an --interpolate walk's steps (its rows are --n)."""
    import torch

    from gan.core.images import MAX_GRID_PIXELS, FormatLimitError, check_format_fits, grid_size
    from gan.core.memory import available_memory, format_bytes

    width, height = grid_size(total, image_height, image_width, num_columns)
    try:
        check_format_fits(out, width, height)
    except FormatLimitError as error:
        fewer = "shorter walks with --interpolate" if num_columns and width > height else "fewer images with --n"
        fail(f"--out {error}, or {fewer}")
    if width * height > MAX_GRID_PIXELS:
        fail(f"--out: a grid of {total:,} images of {image_width}×{image_height} would be {width:,}×{height:,} "
             f"pixels, more than the {MAX_GRID_PIXELS:,} that image readers open without a warning; write them "
             "with --separate alone, or fewer with --n")
    # (in memory twice over at least as it is encoded: 20,000 faces at 64 px, a 261 MB canvas, peaked 0.74 GB
    # above the generator's; under a 1 GB limit the kernel killed it once every image was generated)
    needed, available = 2 * width * height * 3, available_memory(torch.device("cpu"))
    if available is not None and needed > available:
        fail(f"--out: a grid of {total:,} images of {image_width}×{image_height} ({width:,}×{height:,} pixels) needs "
             f"at least {format_bytes(needed)} of memory as it is drawn and encoded, and {format_bytes(available)} is "
             "available to this process: write them with --separate alone, or fewer with --n")


def image_batches(generator: torch.nn.Module, latents: torch.Tensor) -> Iterator[torch.Tensor]:
    """(<= BATCH, 3, H, W) images in [-1, 1] for consecutive slices of `latents`, one slice at a time."""
    from gan.nets.running import generate

    for chunk in latents.split(BATCH):
        yield generate(generator, chunk, batch_size=BATCH)


def write_samples(batches: Iterator[torch.Tensor], out: Path | None, separate: Path | None, num_columns: int | None,
                  staged: StagedOutputs, total: int) -> None:
    """Write each batch's images into `separate` as they come, then the grid of all to `out`, each
    where `staged` says until it commits them. A progress line
    counts the `total` images when there is more than one batch of them (in a log, every 10 s)."""
    from gan.core.images import GridCanvas, save_image, signed_to_pil
    from gan.core.progress import Progress

    grid, done = None, 0
    progress = Progress(total, unit="image", log_interval=10.0) if total > BATCH else None
    try:
        for batch in batches:
            if separate is not None:
                for image in batch:
                    save_image(signed_to_pil(image), staged.path_for(separate_path(separate, done)), durable=False)
                    done += 1
            else:
                done += len(batch)
            if out is not None:  # (in uint8 as it comes: bounded, check_grid_fits has passed)
                grid = grid or GridCanvas(total, *batch.shape[-2:], num_columns=num_columns)
                grid.add(batch)
            if progress:
                progress.update(done)
        if grid is not None:
            save_image(grid.image(), staged.path_for(out), durable=False)
    finally:
        if progress:
            progress.close()


def checked_image_count(count: int, steps: int | None, out: Path | None, separate: Path | None, seed: int) -> int:
    """The number of images the options ask for, after a usage error for any option that cannot be used."""
    from gan.core.images import image_format_of, palette_warning

    if out is None and separate is None:
        raise click.UsageError("give --out FILE.png and/or --separate DIR")
    if count < 1:
        raise click.UsageError(f"--n must be at least 1, got {count}")
    if steps is not None and steps < 2:
        raise click.UsageError(f"--interpolate must be at least 2 (the two ends), got {steps}")
    check_seed(seed)
    total = image_count(count, steps or 0)
    if out is not None:
        try:
            image_format_of(out)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--out") from None
        palette = palette_warning([out])
        if palette:
            warnings.warn(palette, stacklevel=1)
    if separate is not None:
        if (problem := what_spoils_the_set(separate, total)) is not None:
            fail(problem)
        refuse_a_grid_among_samples(out, separate, total)
    refuse_outputs_below_a_sample_set(out, separate)
    return total


# What a command says of a stop held back while its files moved into place: it ended nothing
STOPPED_IN_PLACE = "stopped once every file was in place: nothing is missing"


def write_all_or_none(batches: Iterator[torch.Tensor], out: Path | None, separate: Path | None,
                      num_columns: int | None, total: int, overwrite: bool, checkpoint: Path) -> None:
    """Write the images, all of them or (failed or stopped) none: part of a set would pass for a whole one
    (FID's, say), so a failed command leaves none of its files, nor its folders, and the ones it would
    replace as they were."""
    from gan.core.files import WriteError, missing_folders, remove_empty_folders
    from gan.nets.running import NonFiniteOutput

    staged = StagedOutputs(overwrite, new_folder=separate if separate is not None and not os.path.lexists(separate)
                           else None, samples=(separate, total) if separate is not None else None)
    created = missing_folders([path.parent for path in planned_outputs(out, separate, 1)])
    try:
        write_samples(batches, out, separate, num_columns, staged, total)
        staged.commit()
        if staged.stop_held_back:
            click.echo(STOPPED_IN_PLACE, err=True)
    except (WriteError, NonFiniteOutput, OSError) as error:
        removed = staged.discard()
        remove_empty_folders(created)
        removed_note = (f"; removed the {removed} file(s) it had written" if removed else "") + replaced_note(staged)
        fail(f"'{checkpoint}': {error}{removed_note}" if isinstance(error, NonFiniteOutput)
             else f"{staged.named_as_targets(str(error))}{removed_note}")
    except KeyboardInterrupt:
        if not staged.committed:
            from gan.core.processes import stop_signals_held

            # (seconds for a large set: a second Ctrl-C, which people press, left the staging folder and its
            # thousands of PNGs behind, unsaid)
            with stop_signals_held():
                removed = staged.discard()
                remove_empty_folders(created)
                click.echo(f"removed the {removed} file(s) it had written{replaced_note(staged)}", err=True)
            raise
        # (a stop held back while the files moved into place, delivered once all were there, as it is outside a
        # command (`stop_signals_held`): the command is done)
        click.echo(STOPPED_IN_PLACE, err=True)


@click.command()
@click.argument("source", type=UserPath(exists=True, path_type=Path))
@click.option("--n", "count", default=64, show_default=True, help="Number of samples (rows with --interpolate).")
@click.option("--out", type=UserPath(dir_okay=False, path_type=Path), help="PNG file for the grid.")
@click.option("--separate", type=UserPath(file_okay=False, path_type=Path),
              help="Also write one PNG per sample into this folder.")
@click.option("--seed", default=0, show_default=True, help="Latent seed: the same seed gives the same images, image i the same whatever --n is.")
@click.option("--interpolate", "steps", type=int, default=None,
              help="Write a latent interpolation instead: --n rows of this many steps each (at least 2).")
@click.option("--generator", "which", type=click.Choice(["ema", "live"]), default="ema", show_default=True,
              help="The EMA weights (when the checkpoint has them) or the trained ones.")
@click.option("--best", is_flag=True, help="Use the run's best.pt (kept by train.keep_best) instead of its newest "
                                        "checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace existing files (never a checkpoint or a run's own files).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def sample(source: Path, count: int, out: Path | None, separate: Path | None, seed: int, steps: int | None,
           which: str, best: bool, overwrite: bool, device: str) -> None:
    """Generate images from SOURCE: a run directory (newest checkpoint), checkpoint file or export.

    Uses the EMA generator when the checkpoint has one (--generator live for the trained weights).
    Existing files are replaced only with --overwrite; a run's own files never.

    \b
    Examples:
      gan sample runs/00000-dcgan_demo --n 64 --out faces.png
      gan sample runs/00000-dcgan_demo/checkpoint-00001500.pt --n 16 --seed 7 --out seven.png
      gan sample runs/00000-dcgan_demo --n 100 --separate faces/      # one PNG per sample
      gan sample runs/00000-dcgan_demo --interpolate 10 --n 6 --out walk.png
      gan sample runs/00000-dcgan_demo --best --n 64 --out best.png   # the checkpoint best by SWD
    """
    from gan.core.checkpoint import CheckpointError, best_checkpoint
    from gan.core.devices import DeviceUnavailable, select_device
    from gan.inference.generators import load_generator
    from gan.inference.outputs import OutputRefused, check_outputs, refuse_joining_run_data, run_data_folders
    from gan.nets.running import NonFiniteOutput, interpolation_latents, random_latents

    total = checked_image_count(count, steps, out, separate, seed)
    steps = steps or 0  # 0: samples, not an interpolation
    try:
        planned = planned_outputs(out, separate, total)
        check_outputs(planned, inputs=[source], overwrite=overwrite)
        loaded = load_generator(best_checkpoint(source) if best else source, select_device(device), which)
        generator, path, used_ema = loaded.generator, loaded.checkpoint, loaded.used_ema
        # (samples among the real images: a resume would train on them, metrics.root would score them as real)
        refuse_joining_run_data(planned, run_data_folders(loaded.config, loaded.data_record))
    except (OutputRefused, CheckpointError, DeviceUnavailable) as error:
        fail(error)
    if steps:
        latents = interpolation_latents(count, steps, generator.latent_dim, seed)
    else:
        latents = random_latents(count, generator.latent_dim, seed)
    batches = image_batches(generator, latents)
    try:
        first = next(batches)
    except NonFiniteOutput as error:
        fail(f"'{path}': {error}")
    if out is not None:
        check_grid_fits(out, total, *first.shape[-2:], num_columns=steps or None)
    write_all_or_none(itertools.chain([first], batches), out, separate, steps or None, total, overwrite, path)
    # (what it wrote on stderr, as every command whose result is files says it: the paths are the user's own)
    if out is not None:
        click.echo(f"wrote {out} ({total} image{'s' if total != 1 else ''})", err=True)
    if separate is not None:
        click.echo(f"wrote {total} PNG{'s' if total != 1 else ''} to {separate}", err=True)
    click.echo(f"from {path} ({'EMA generator' if used_ema else 'generator'}, seed {seed})", err=True)
