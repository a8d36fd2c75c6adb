"""Runs side by side, seeds pooled: `gan compare`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from gan.commands.common import UserPath, fail, file_error


@click.command()
@click.argument("paths", nargs=-1, required=True, type=UserPath(exists=True, file_okay=False, path_type=Path))
@click.option("--metric", help="The scalar to rank by [default: val/psnr for pix2pix and SR runs, val/cycle_l1 "
                                "for CycleGAN runs, else swd/mean].")
@click.option("--better", type=click.Choice(["lower", "higher"]),
              help="Which values of --metric are better [default: gan's word for its metrics (SWD, FID, KID lower; "
                   "PSNR, SSIM, precision, recall, images/s higher), else lower, with a warning].")
@click.option("--out", type=UserPath(file_okay=False, path_type=Path),
              help="Folder for compare.md, compare.csv and compare.png [default: the sweep folder, when one is "
                   "given alone].")
def compare(paths: tuple[Path, ...], metric: str | None, better: str | None, out: Path | None) -> None:
    """Compare runs (RUN_OR_SWEEP_DIR ...): runs that differ only in train.seed form a group.

    Per group: seeds, best and final value of the metric (mean ± std over seeds), the step
    of the best, final loss/d and loss/g, images/s; and one figure of the loss and metric
    curves (mean line, min-max band over seeds; losses smoothed as TensorBoard does).

    \b
    Examples:
      gan compare sweeps/loss
      gan compare sweeps/loss --metric fid
      gan compare sweeps/loss --metric health/diversity_ratio --better higher
      gan compare runs/00003-dcgan_celeba64 runs/00004-dcgan_celeba64 --out comparisons/two
    """
    from gan.tools.compare import CompareError
    from gan.tools.compare import compare as run_compare

    if out is not None and out.suffix.lower() in (".png", ".md", ".csv", ".jpg", ".svg", ".pdf") and not out.is_dir():
        raise click.UsageError(f"--out '{out}' looks like a file name; --out names a folder, which gets compare.md, "
                               f"compare.csv and compare.png (--out {out.with_suffix('')}, say)")
    unique: dict[Path, Path] = {}  # (one folder named twice, `sweeps/a sweeps/a/`, is one folder)
    for path in paths:
        unique.setdefault(path.resolve(), path)
    paths = tuple(unique.values())
    given_out = out is not None
    if out is None:
        if len(paths) != 1 or (paths[0] / "config.toml").is_file():
            raise click.UsageError("give --out DIR (a run directory has one writer: its training)")
        out = paths[0]
    _refuse_files_of_others(out, given_out)
    _refuse_a_folder_it_cannot_write(out, given_out)
    try:
        table, _ = run_compare(list(paths), metric, out, better)
    except (CompareError, OSError) as error:  # OSError: the outputs could not be written
        fail(file_error(error) if isinstance(error, OSError) and error.filename else error)
    click.echo(table, nl=False)
    # (stdout carries the table alone: `gan compare SWEEP > table.md` read this line as a row)
    click.echo(f"wrote {out / 'compare.md'}, compare.csv and compare.png", err=True)


# How the files gan compare writes begin: files of those names that begin otherwise are someone else's.
OWN_BEGINNINGS = {"compare.md": "| group | seeds |", "compare.csv": "group,seeds,"}


def _refuse_a_folder_it_cannot_write(out: Path, given_out: bool) -> None:
    """Refused before the runs are read (minutes for a large sweep): an `out` where no file can be
    written (a read-only mount: tried, as root passes every permission check), or, when it does not
    exist yet, the nearest folder above it that does. Nothing is made."""
    from gan.core.files import temp_name

    folder = out
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return  # (a file on the way: writing says so, naming it)
    probe = temp_name(folder / ".compare-write-test")
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        way = "give another --out folder" if given_out else "give --out DIR for the comparison's files"
        fail(f"'{folder}' cannot be written ({error.strerror or error}): {way}")


def _refuse_files_of_others(out: Path, given_out: bool) -> None:
    """Refused: writing into `out` (--out, or the sweep folder given alone) where that would replace a
    compare.md, compare.csv or compare.png gan compare did not write (compare.png by the company it keeps)."""
    for name, beginning in OWN_BEGINNINGS.items():
        path = out / name
        try:  # (a pipe or device there is no file of ours: never opened, where a FIFO's read waited for ever)
            ours = not os.path.lexists(path) or (path.is_file() and not path.is_symlink() and path.read_text(
                encoding="utf-8", errors="replace").startswith(beginning))
        except OSError:
            ours = False
        if not ours or (name == "compare.md" and (out / "compare.png").exists() and not path.exists()):
            shown = path if not ours else out / "compare.png"
            where = "another --out folder" if given_out else "--out DIR"
            raise click.UsageError(f"'{shown}' was not written by gan compare, and it would be replaced: give "
                                   f"{where} for the comparison's files")
