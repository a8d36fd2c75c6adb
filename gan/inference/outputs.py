"""Where `gan sample`, `gan translate`, `gan export` and `gan eval` may write (issue 27).

A command plans every path it will write and passes them all to `check_outputs` before it
writes any. Three kinds of output are refused even with --overwrite:

- an input of the command: paths are compared after resolving `..` and symlinks, and
  existing files also by device and inode, so another spelling, a symlinked folder or a
  hard link of an input is still that input;
- a name training writes (`checkpoint-*.pt`, `best.pt`, `best.json`), anywhere: a file of
  that name is taken for a run's state by resumes, `--best` and `gan sample RUN`;
- an existing file inside a run directory, and one of the names its training writes there
  even before it exists (config.toml, metrics.jsonl, events, anything in samples/): a run's
  record is only ever written by its training (and by `gan eval`, its own results, as below).

Any other existing file is replaced only with --overwrite, but for the results a command keeps
under names of its own choosing (`gan eval`'s metrics-<step>.json and eval-<data>-<step>.csv in
a run directory), which a new evaluation replaces. The writes themselves stay atomic
(gan/core/files.py). This module needs no torch: the checks run before a model loads.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path
from typing import Iterable, Sequence

from gan.core.checkpoint import holds_training_state
from gan.core.files import LOCK_NAME, MAX_NAME_BYTES, other_owner, remove_stale_temps
from gan.core.run_folders import RUN_CONFIG, is_run_directory, is_training_state_name, resolved
from gan.data.decode import left_out_of_listing

# What training writes into its run directory besides its state: refused there even before it
# exists, since training would later append to it or read it back.
RUN_RECORD_NAMES = (RUN_CONFIG, "metrics.jsonl", "events.out.tfevents.*", LOCK_NAME)


class OutputRefused(ValueError):
    """An output would replace an input, a run's file, or an existing file without --overwrite."""


def run_data_folders(config: dict, record: dict | None = None, typed: bool = False) -> list[tuple[str, Path]]:
    """The image folders a run read (trained, validated and measured on) as (key, folder), as its
    checkpoint (or an export, from it) recorded them (`record`, its "data"), absolute; and the
    config's absolute ones (an export written before it carried the record has none). With `typed`,
    also the config's relative ones, read from here (a checkpoint written before the record): a
    relative data.root names another folder from another working folder, and "." every folder below
    the one a command runs in."""
    data, metrics = config.get("data", {}), config.get("metrics", {})
    record = record if isinstance(record, dict) else {}
    recorded = record.get("folders") if isinstance(record.get("folders"), dict) else {}

    def usable(folder: object) -> bool:
        return isinstance(folder, str) and bool(folder) and (typed or Path(folder).expanduser().is_absolute())
    roots = [root for root in (data.get("root"), recorded.get("data.root")) if usable(root)]
    named = [*(pair for root in roots for pair in _read_under(data, Path(root).expanduser())),
             *((key, folder) for key in ("data.a_root", "data.b_root")
               for folder in (data.get(key.removeprefix("data.")), recorded.get(key))),
             ("data.val_root", data.get("val_root")), ("metrics.root", metrics.get("root")),
             ("data.val_root", record.get("val_root")), ("metrics.root", record.get("metrics_root"))]
    return [(key, Path(folder).expanduser()) for key, folder in named if isinstance(folder, Path) or usable(folder)]


def _read_under(data: dict, root: Path) -> list[tuple[str, Path]]:
    """The folders a run reads under its data.root: for paired and unpaired data, its data.split's and
    data.val_split's (results beside them, in facades/results/, are no data); for CelebA, its
    img_align_celeba/ (celeba/fid_samples beside it is no data; a folder inside it is refused, though
    CelebA reads its files alone: the run of data.dataset = "folder" on it that CelebA's shape
    warning advises, or any recursive reader, would take samples there for faces); else all of it."""
    from gan.data.image_files import celeba_image_dir

    splits = dict.fromkeys((data.get("split", ""), data.get("val_split") or data.get("split", "")))
    if data.get("dataset") == "unpaired":
        return _unpaired_under(data, root)
    if data.get("dataset") == "paired" and not {"", "all"} & set(splits):
        return [(f"data.split = '{split}'", root / split) for split in splits]
    if data.get("dataset") == "celeba":
        return [("data.root's CelebA images", celeba_image_dir(root))]
    return [("data.root", root)]


def _unpaired_under(data: dict, root: Path) -> list[tuple[str, Path]]:
    """The folders an unpaired run reads under its data.root: its data.split's <split>A/ and <split>B/,
    but for a domain that data.a_root or b_root gives; and its data.val_split's two, which validate it
    even then (gan.data takes both held-out folders from there, never one of each kind)."""
    from gan.data.unpaired import domain_folders

    split, val_split = data.get("split", ""), data.get("val_split", "")
    given = (data.get("a_root"), data.get("b_root"))
    trained = [folder for folder, own in zip(domain_folders(root, split), given) if not own]
    validated = list(domain_folders(root, val_split)) if val_split else []
    return [*((f"data.split = '{split}'", folder) for folder in trained),
            *((f"data.split = '{val_split}'", folder) for folder in validated)]


def refuse_joining_run_data(outputs: Sequence[Path], folders: list[tuple[str, Path]]) -> None:
    """OutputRefused for an image among `outputs` inside one of a run's data `folders`
    (`run_data_folders`): the run's next resume, validation or evaluation would read it as one of
    its images (an eval strip or a translation trained on, a 2048 px output made ground truth). A
    run directory, a hidden folder or a system folder there is left out of the data, and so may hold one."""
    from gan.data.decode import IMAGE_EXTENSIONS

    first_in = {}  # each folder images go to -> the first of them (a --separate set of 50,000: one folder)
    for output in outputs:
        if output.name.lower().endswith(IMAGE_EXTENSIONS):
            first_in.setdefault(output.parent, output)
    for output in first_in.values():
        real = resolved(output)
        for key, folder in folders:
            top = resolved(folder)
            if top not in real.parents:
                continue
            if not any(map(_left_out_of_data, real.parents[:real.parents.index(top)])):
                raise OutputRefused(f"'{output}' is inside '{top}', which its run reads ({key}): it would be read "
                                    "as one of the run's images (by a resume, a validation or an evaluation); give a "
                                    "folder outside it")


def _left_out_of_data(folder: Path) -> bool:
    """Whether reading a data set leaves `folder` out (`gan.data.decode`'s walk): hidden, a system's, or a run's."""
    return left_out_of_listing(folder.name) or ((folder / LOCK_NAME).exists() and (folder / RUN_CONFIG).exists())


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file `path` names, following symlinks; None when there is none."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def file_stamp(path: Path) -> tuple[int, ...] | None:
    """What changes when the file `path` names is replaced, rewritten in place, or put in by `mv` or
    `cp -p` with an old modified time: device, inode, size, modified and changed times; None when none."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


class _Inputs:
    """The files a command reads, by resolved path and by identity, each with its own spelling."""

    def __init__(self, paths: Iterable[Path]):
        self.by_path: dict[Path, Path] = {}
        self.by_identity: dict[tuple[int, int], Path] = {}
        for path in paths:
            self.by_path.setdefault(resolved(path), path)
            identity = file_identity(path)
            if identity is not None:
                self.by_identity.setdefault(identity, path)

    def matching(self, output: Path, resolved: Path, exists: bool) -> Path | None:
        """The input that `output` (resolved: `resolved`) would overwrite, or None."""
        if resolved in self.by_path:
            return self.by_path[resolved]
        identity = file_identity(output) if exists else None
        return self.by_identity.get(identity) if identity is not None else None


class _Folders:
    """What outputs need to know about their folders, looked up once per folder."""

    def __init__(self):
        self._resolved: dict[Path, Path] = {}
        self._runs: dict[Path, Path | None] = {}
        self._blockers: dict[Path, Path | None] = {}

    def resolve(self, path: Path) -> Path:
        """`path` with `..` and symlinks resolved, resolving each folder once (thousands of outputs
        share a few folders)."""
        if path.name in ("", ".", "..") or path.is_symlink():
            return resolved(path)
        if path.parent not in self._resolved:
            self._resolved[path.parent] = resolved(path.parent)
        return self._resolved[path.parent] / path.name

    def run_directory_of(self, folder: Path) -> Path | None:
        """The run directory that `folder` (resolved) is or lies in, or None."""
        if folder not in self._runs:
            if is_run_directory(folder):
                self._runs[folder] = folder
            else:
                self._runs[folder] = None if folder.parent == folder else self.run_directory_of(folder.parent)
        return self._runs[folder]

    def file_in_the_way(self, folder: Path) -> Path | None:
        """The nearest existing path above a file to be written in `folder`, when it is not a folder."""
        if folder not in self._blockers:
            if os.path.lexists(folder):
                self._blockers[folder] = None if folder.is_dir() else folder
            else:
                self._blockers[folder] = None if folder.parent == folder else self.file_in_the_way(folder.parent)
        return self._blockers[folder]


def not_a_folder(path: Path) -> str:
    """What `path`, which is no folder, is, in words: a symlink going nowhere is no "file"."""
    if path.is_symlink() and not path.exists():
        return f"a symlink to '{os.readlink(path)}', which does not exist (or links round in a loop)"
    return "a file"


def _refuse_protected(output: Path, resolved: Path, inputs: _Inputs, folders: _Folders, exists: bool,
                      own: bool = False) -> None:
    """Raise OutputRefused when `output` is one that --overwrite cannot allow, or cannot be a file.
    An `own` output may replace an existing file of a run directory."""
    if is_training_state_name(output) or is_training_state_name(resolved):
        raise OutputRefused(f"'{output}' is a name gan keeps for a run's state (checkpoint-*.pt, best.pt or "
                            "best.json); choose another name (not even --overwrite writes one)")
    source = inputs.matching(output, resolved, exists)
    if source is not None:
        raise OutputRefused(f"output '{output}' would overwrite the input '{source}'; write somewhere else "
                            "(not even --overwrite replaces an input)")
    if exists:
        run_dir = None if own else folders.run_directory_of(resolved.parent)
        if run_dir is not None:
            raise OutputRefused(f"'{output}' is a file of run directory '{run_dir}'; gan never replaces a run's "
                                "files, even with --overwrite: write somewhere else")
        if resolved.is_dir():
            raise OutputRefused(f"output '{output}' is a folder; expected a file name")
        if holds_training_state(resolved):
            raise OutputRefused(f"'{output}' is a checkpoint written by gan train (its discriminator, optimisers "
                                "and step too); gan never replaces one, even with --overwrite: write somewhere else")
    else:
        blocker = folders.file_in_the_way(output.parent)
        if blocker is not None:
            raise OutputRefused(f"'{blocker}' is {not_a_folder(blocker)}, so '{output}' cannot be written inside it")
        run_dir = folders.run_directory_of(resolved.parent)
        if run_dir is not None and _is_run_record(resolved, run_dir):
            raise OutputRefused(f"'{output}' is a name the run directory '{run_dir}' keeps for its training's own "
                                "records (config.toml, metrics.jsonl, events, samples/); write somewhere else")


def _is_run_record(resolved: Path, run_dir: Path) -> bool:
    """Whether `resolved`, a path inside `run_dir`, is one training writes: a record of the run
    directory itself, or anything in its samples/ folder."""
    if resolved.parent == run_dir:
        return any(fnmatch.fnmatchcase(resolved.name, pattern) for pattern in RUN_RECORD_NAMES)
    return resolved.is_relative_to(run_dir / "samples")


def _refuse_read_only_folders(outputs: Iterable[Path]) -> None:
    """OutputRefused when an output's folder (or, for one still to be made, the nearest folder that
    exists) cannot be written, so that a long evaluation or translation does not end in a refusal."""
    looked: set[Path] = set()
    for output in outputs:
        folder = next((parent for parent in output.parents if parent.exists()), None)
        if folder is None or folder in looked:
            continue
        looked.add(folder)
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            owner = other_owner(folder)  # (another user's run read by `gan eval`: not a read-only disk)
            why = f"belongs to another user ({owner})" if owner else "is read-only (a read-only disk or folder)"
            raise OutputRefused(f"'{output}' cannot be written: '{folder}' {why}; write the outputs elsewhere")


def _mode_of(path: Path) -> int | None:
    """`path`'s own mode (a symlink's, not its target's); None where nothing is there."""
    try:
        return os.lstat(path).st_mode
    except OSError:
        return None


def _special_kind(mode: int) -> str | None:
    """'a device', 'a pipe (FIFO)' or 'a socket' for such a `mode`; None for a file, folder or link."""
    return ("a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else None)


# Folders of the system's own files, devices and processes' descriptors (/dev/stdout, /dev/fd/1, /proc/self/fd/1),
# but for /dev/shm, a folder of files in memory that people write scratch outputs to.
SYSTEM_FOLDERS = (Path("/dev"), Path("/proc"), Path("/sys"))
SCRATCH_FOLDERS = (Path("/dev/shm"),)


def _refuse_long_name(output: Path) -> None:
    """OutputRefused for a name (the file's, or a folder's on its way) longer than a file name holds:
    its write failed only once the command got there, after the outputs before it were written."""
    long = next((part for part in output.parts if len(os.fsencode(part)) > MAX_NAME_BYTES), None)
    if long is not None:
        what = "its name is" if long == output.name else f"the name of its folder '{long}' is"
        raise OutputRefused(f"'{output}': {what} {len(os.fsencode(long))} bytes, more than a file name holds (at most "
                            f"{MAX_NAME_BYTES} on most file systems); give a shorter one")


def _refuse_special_file(output: Path, mode: int | None) -> None:
    """OutputRefused for a device, FIFO or socket (`mode`) where an output goes, or one a symlink there
    leads to, and for a path of the system's folders: an --overwrite renamed a file over it (`--json
    /dev/full --overwrite` replaced the device node with a JSON file, `--json /dev/stdout --overwrite`
    the system's link), and opening a FIFO to look at it waits for a writer."""
    if str(output) == "-":
        raise OutputRefused("'-' is no standard output here: outputs are files written under a temp name and "
                            "renamed; give a file name (gan eval and gan bench print their scores on stdout too)")
    folder = Path(os.path.realpath(Path(os.path.abspath(output)).parent))  # (a link to /dev named otherwise too)
    if (any(folder.is_relative_to(system) for system in SYSTEM_FOLDERS)
            and not any(folder.is_relative_to(scratch) for scratch in SCRATCH_FOLDERS)):
        raise OutputRefused(f"'{output}' is in {folder}, the system's devices and processes, not a folder of "
                            "files: an output is written to a new or regular file (never over this one, "
                            "--overwrite or not); give another path")
    if mode is None:  # (not there: a new file)
        return
    kind = _special_kind(mode)
    if kind is None and stat.S_ISLNK(mode):
        try:
            kind = _special_kind(os.stat(output).st_mode)  # (where it leads)
        except OSError:  # dangling, or a loop: named elsewhere
            kind = None
        kind = kind and f"a symlink to {kind}"
    if kind is not None:
        raise OutputRefused(f"'{output}' is {kind}, not a file: an output is written to a new or regular file "
                            "(never into or over this one, --overwrite or not); give another path")


def check_outputs(outputs: Sequence[Path], inputs: Iterable[Path] = (), overwrite: bool = False,
                  own: Iterable[Path] = ()) -> None:
    """Raise OutputRefused unless a command may write every path of `outputs`: none is an input,
    a training-state name, an existing file of a run directory, or planned twice; and, unless
    `overwrite`, none exists yet. `own` names the files a command keeps its results in by default
    (`gan eval`'s metrics-<step>.json in a run directory): a new result replaces them, without
    --overwrite and even in a run directory, but they are still never an input or a training-state
    name. Call it with all outputs before writing any: once they may be written, it removes the
    temp files of writers that died (kill -9) from their folders."""
    protected, folders = _Inputs(inputs), _Folders()
    owned = {folders.resolve(path) for path in own}
    planned: set[Path] = set()
    existing: list[Path] = []
    for output in outputs:
        _refuse_long_name(output)  # (before any look at it: the system refuses even that)
        resolved = folders.resolve(output)
        mode = _mode_of(output)  # (one look: thousands of outputs)
        exists = mode is not None  # a symlink counts, even a dangling one: the write replaces it
        _refuse_special_file(output, mode)
        _refuse_protected(output, resolved, protected, folders, exists, own=resolved in owned)
        if resolved in planned:
            raise OutputRefused(f"'{output}' would be written twice by this command; give its outputs distinct "
                                "names")
        planned.add(resolved)
        if exists and resolved not in owned:
            existing.append(output)
    for output in outputs:  # (`gan sample --out X --separate X`: X would be the grid file and its folder)
        folder = next((parent for parent in folders.resolve(output).parents if parent in planned), None)
        if folder is not None:
            raise OutputRefused(f"'{folder}' would be both a file this command writes and the folder of '{output}'; "
                                "give them distinct names")
    _refuse_read_only_folders(planned)
    if existing and not overwrite:
        raise OutputRefused(f"{len(existing)} of {len(outputs)} output file(s) already exist (the first: "
                            f"'{existing[0]}'); pass --overwrite to replace them")
    for folder in {path.parent for path in planned}:  # what a command killed there (kill -9) left half-written
        if folder.is_dir():
            remove_stale_temps(folder, named_by_host=True)  # (a person's folder: their own *.tmp stay)
