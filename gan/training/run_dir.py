"""A run's directory: numbered for a new run, found for a named one (`--run-dir`, `gan sweep`),
and what a start that died before its first checkpoint left there set aside or removed."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Collection

try:
    import fcntl
except ImportError:  # Windows: no locking; numbers can collide only for simultaneous starts
    fcntl = None

from gan.core.checkpoint import METRICS_RECORD, list_checkpoints, made_by_gan_train, set_aside_path, stored_step
from gan.core.config import toml_text
from gan.core.files import (
    LOCK_NAME,
    MAX_NAME_BYTES,
    NUMBERS_LOCK_NAME,
    RUN_NAME,
    RunLock,
    is_stale_temp,
    missing_folders,
    name_cut,
    open_lock_file,
    remove_empty_folders,
    run_order,
    same_file,
)
from gan.core.registry import ConfigError
from gan.core.wording import first_few

if TYPE_CHECKING:
    from gan.core.config import Config


def create_run_dir(out: Path | str, name: str) -> Path:
    """Create the next numbered run directory `out/00007-name`.

    The number is chosen and the folder made under a lock on `out`, so runs started
    at the same moment get different numbers.
    """
    out = Path(out)  # (text from Python, as train()'s refusals suggest calling it)
    with NumbersLock(out).locked_handle():
        # every number taken, by a folder or anything else, and of any width (past 99999: 100000-...)
        numbers = [int(match[1]) for path in out.iterdir() if (match := RUN_NAME.fullmatch(path.name))]
        run_dir = out / run_name_within(f"{max(numbers, default=-1) + 1:05d}-{name}")
        run_dir.mkdir()
    return run_dir


class NumbersLock(RunLock):
    """The lock on `out`'s .run-numbers.lock while a start picks its run's number and makes its folder
    (`out` made where missing): another start waits for it. Taken again where a start that failed
    removed the file meanwhile (`discard_numbering`). Where there is no flock the run directory's own
    lock says so."""

    lock_name = NUMBERS_LOCK_NAME
    says_unguarded = False

    def when_busy(self, record: str) -> None:
        """(Another start numbers its run: a moment's wait, with nothing to say.)"""


def made_by_numbering(out: Path) -> list[Path]:
    """What numbering a run in `out` (`create_run_dir`) makes that is missing now: its .run-numbers.lock,
    then `out` and the folders above it, deepest first (as written: x/../y makes x)."""
    lock = [] if os.path.lexists(out / NUMBERS_LOCK_NAME) else [out.absolute() / NUMBERS_LOCK_NAME]
    return lock + missing_folders([out])


def discard_numbering(made: list[Path]) -> None:
    """Remove what numbering a run made (`made_by_numbering`) for a start that failed, which leaves
    no run directory: a refused start left its --out with a .run-numbers.lock alone in it. The lock
    only while no other start holds it or has a numbered run beside it (theirs then), the folders
    only where empty."""
    for path in made:
        if path.name == NUMBERS_LOCK_NAME:
            _remove_numbers_lock(path)
    remove_empty_folders([path for path in made if path.name != NUMBERS_LOCK_NAME])


def _remove_numbers_lock(path: Path) -> None:
    with contextlib.suppress(OSError), open_lock_file(path) as lock:  # (BlockingIOError: another start's now)
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if same_file(lock, path) and not any(RUN_NAME.fullmatch(entry.name) for entry in path.parent.iterdir()):
            path.unlink()


# What a run's name cut to fit leaves free: its start set aside (`.abandoned-99`) or a sweep's log of
# it (`.log`) keeps the whole name
RUN_NAME_ROOM = len(set_aside_path(Path("run"), 99).name) - len("run")


def run_name_within(name: str) -> str:
    """A run directory's `name` (`00003-adversarial=hinge-seed=0`) whole where a file name holds it
    (255 bytes), else cut to leave RUN_NAME_ROOM and ended in 8 hex digits of the whole name, so runs
    cut alike stay apart: a config file's long name, or a sweep of many keys, made names too long to
    make. (A name that fits is kept as it was: a sweep begun with it records it.)"""
    if len(os.fsencode(name)) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
    return f"{name_cut(name, MAX_NAME_BYTES - RUN_NAME_ROOM - len(digest) - 1)}-{digest}"


# What a run writes into its directory before its first checkpoint (and gan eval beside it):
# a folder holding only these is a start that died, safe to set aside.
RUN_FILE_PATTERNS = (LOCK_NAME, "config.toml", METRICS_RECORD, "best.json", "events.out.tfevents.*", "samples",
                     "metrics-*.json", "eval-*.csv", "eval-*.json")
# What only a start of gan train leaves (the lock is taken first, the event file follows): without
# either, a config.toml there is a person's, not a dead start's.
START_EVIDENCE = (LOCK_NAME, "events.out.tfevents.*")


def start_or_resume(run_dir: Path | str, config_file: Path | None = None) -> bool:
    """For a run trained into a named directory (`gan train --run-dir`, `gan sweep`): True when
    `run_dir` has a checkpoint to resume. A folder holding only what a start that died before its
    first checkpoint wrote (its lock or event file among them) is set aside whole as
    `<name>.abandoned-N` (said in one line; a best.pt beside the start's lock or event file too),
    so the run starts clean and nothing is lost. Any other folder is refused, untouched
    (`dead_start_files`), and so are the folder the command runs in and a link.
    RunDirectoryBusy when another process trains there (said before a resume's settings are compared)."""
    run_dir = Path(run_dir)  # (text from Python, as train() takes it)
    if not run_dir.is_dir():
        return False
    if list_checkpoints(run_dir):  # (busy, said first: its settings are not compared with a run training now)
        RunLock(run_dir).locked_handle().close()
        return True
    if dead_start_files(run_dir, config_file):
        _set_aside(run_dir)
    return False


# What numbers new runs instead, said to a folder refused for a run by the name it was given under:
# gan train's option, or train()'s argument in Python
NUMBERED_RUNS = {"--run-dir": "--out makes numbered run folders inside a folder",
                 "run_dir": "gan.training.run_dir.create_run_dir(folder, name) makes numbered run folders inside a "
                            "folder"}


# What a fresh ext4 file system holds at its mount point: a scratch volume mounted as a run's folder is empty
# what file systems and file browsers put in any folder (a mount point's; Windows Explorer's on a share), by lower-case name
FILE_SYSTEMS_OWN = frozenset({"lost+found", "thumbs.db", "desktop.ini"})


def dead_start_files(run_dir: Path, config_file: Path | None = None, option: str = "--run-dir") -> list[str]:
    """The names of what a start of gan train that died before its first checkpoint left in `run_dir`, a
    folder without checkpoints (its lock left out; hidden files, .DS_Store, a mount point's lost+found and
    Windows's Thumbs.db and desktop.ini count for nothing). A folder holding anything else is refused (ConfigError), untouched: files gan did not write (a data
    folder, a folder of runs, a person's config.toml with no start's lock or event file beside it,
    the CONFIG file of the command itself), or a best.pt without the checkpoints to resume. `option`
    names the folder in the message: `--run-dir`, or `run_dir` for train() from Python."""
    entries = sorted((entry for entry in run_dir.iterdir() if entry.name == LOCK_NAME or not (
        entry.name.startswith(".") or entry.name.lower() in FILE_SYSTEMS_OWN)), key=run_order)  # (runs by number: 100000- after 99999-)
    started = any(fnmatch.fnmatchcase(entry.name, pattern) for entry in entries for pattern in START_EVIDENCE)
    # (a start killed between its first best.pt and the checkpoint of that step leaves one: set aside too)
    dead_best = started and _best_of_the_first_checkpoint(run_dir)
    foreign = [entry.name for entry in entries
               if not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in RUN_FILE_PATTERNS)
               and not is_stale_temp(entry) and not (dead_best and entry.name == "best.pt")]
    if config_file is not None and config_file.resolve().parent == run_dir.resolve():
        foreign.insert(0, f"{config_file.name}, the CONFIG file of this command")
    elif not started and any(entry.name != LOCK_NAME for entry in entries):
        foreign = foreign or [entry.name for entry in entries]  # a person's config.toml, say: no start left it
    runs = [entry.name for entry in entries if entry.is_dir() and made_by_gan_train(entry)]
    if runs and not (run_dir / "config.toml").exists():  # (gan's own runs: said as such, not as foreign files)
        raise ConfigError(f"{option} '{run_dir}' is a folder of runs ({first_few(runs, 3)}), not a run: give a new "
                          f"folder, or one of them to resume it, e.g. {option} {run_dir / runs[-1]}; "
                          f"{NUMBERED_RUNS[option]}")
    if foreign:
        what = ("a best.pt but no checkpoint-*.pt to resume from" if foreign == ["best.pt"]
                else f"files gan did not write ({first_few(foreign, 5)}) and no checkpoint")
        raise ConfigError(f"{option} '{run_dir}' holds {what}: it is not a run gan can start or resume there, and "
                          f"nothing in it was touched; give a new or empty folder ({NUMBERED_RUNS[option]})")
    return [entry.name for entry in entries if entry.name != LOCK_NAME]


def _best_of_the_first_checkpoint(run_dir: Path) -> bool:
    """Whether the best.pt in `run_dir` holds a step no later than the run's first checkpoint (its
    config.toml's train.checkpoint_every): what a start killed between the two writes leaves. A
    best.pt of later steps is a finished run's whose checkpoints were deleted: the user's, kept."""
    try:
        every = toml_text((run_dir / "config.toml").read_text(encoding="utf-8"))["train"]["checkpoint_every"]
    except (OSError, ValueError, KeyError, TypeError):  # (unreadable, not TOML, or not a run's)
        return False
    step = stored_step(run_dir / "best.pt") if (run_dir / "best.pt").is_file() else None
    return isinstance(every, int) and step is not None and step <= every


def _set_aside(run_dir: Path) -> None:
    """Rename the dead start in `run_dir` to `<name>.abandoned-N`, said in one line; refused for a
    link (the link would dangle) and for the folder the command runs in (it would train there)."""
    real = run_dir.resolve()  # ('.' has no name to extend)
    if run_dir.is_symlink():
        raise ConfigError(f"--run-dir '{run_dir}' is a link to '{real}', which holds a start that stopped before its "
                          "first checkpoint: give the folder itself, or a new one")
    if Path.cwd().resolve().is_relative_to(real):
        raise ConfigError(f"--run-dir '{run_dir}' holds a start that stopped before its first checkpoint and is the "
                          "folder this command runs in, so it cannot be set aside: run from another folder, or give "
                          "a new one")
    with RunLock(run_dir):
        number = 0
        while set_aside_path(real, number).exists():
            number += 1
        aside = set_aside_path(real, number)
        real.rename(aside)
    print(f"'{run_dir}' held a start that stopped before its first checkpoint: set aside as '{aside}'; "
          "starting afresh", file=sys.stderr)


def start_outputs(run_dir: Path) -> set[Path]:
    """What a new run writes before its first checkpoint that `discard_start` removes, those in
    `run_dir` now: config.toml, the event file, the preview grids."""
    from gan.training.records import PREVIEW_FILE  # (the loop that calls this has it loaded)

    previews = (path for path in (run_dir / "samples").glob("[0-9]*-*.png") if PREVIEW_FILE.fullmatch(path.name))
    return {path for path in (run_dir / "config.toml", *run_dir.glob("events.out.tfevents.*"), *previews)
            if os.path.lexists(path)}


def discard_start(run_dir: Path, found_before: Collection[Path] = ()) -> None:
    """What a new run wrote before its first step failed, or before its first checkpoint when that
    step's failed (config.toml, the event file, that step's preview grids): nothing to resume, so
    the failed command leaves no run directory (`gan train` removes the emptied one), where a
    half-left one would read as foreign to `--run-dir` and `gan compare`. Only what the start
    wrote: a file of those names there before it began (`found_before`, its `start_outputs` then)
    is kept (a person's config.toml was deleted with the failed start's files)."""
    for path in start_outputs(run_dir) - set(found_before):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (run_dir / "samples").rmdir()  # only when empty


# What a resume that changes settings (`gan train --resume RUN --set ...`) writes atop config.toml, a
# line per setting it changed (`# resumed at step 4 with loss.adversarial 'vanilla' -> 'hinge'`), kept
# by later resumes and in every checkpoint: config.toml holds the settings the run ends with, and these
# say since which step (`gan compare` tells such runs from those trained one way throughout).
_RESUME_NOTE = re.compile(r"^# resumed at step (\d+) with (.+)$", re.MULTILINE)


def resume_notes(notes: list[tuple[int, str]]) -> str:
    """The lines atop config.toml of `notes`, (step, `key old -> new`) each."""
    return "".join(f"# resumed at step {step} with {change}\n" for step, change in notes)


def notes_continued(earlier: list[tuple[int, str]], step: int, changes: list[str]) -> list[tuple[int, str]]:
    """The notes of a run resumed at `step` with `changes`: the `earlier` ones of steps before it (a
    later one's steps are trained again, and one at `step` is this resume's to say), then its own."""
    return [(at, change) for at, change in earlier if at < step] + [(step, change) for change in changes]


def notes_of(value: object) -> list[tuple[int, str]] | None:
    """A checkpoint's `resume_notes` entry as notes; None where it holds none (one written before
    checkpoints kept them, or edited into another shape)."""
    if not isinstance(value, list) or not all(isinstance(note, (list, tuple)) and len(note) == 2
                                              and isinstance(note[0], int) and isinstance(note[1], str)
                                              for note in value):
        return None
    return [(step, change) for step, change in value]


def settings_changed_at(run_dir: Path) -> list[tuple[int, str]]:
    """(step, `key old -> new`) of each setting a resume changed in the run in `run_dir` (its config.toml)."""
    try:
        return notes_in((run_dir / "config.toml").read_bytes())
    except OSError:
        return []


def notes_in(found: bytes | None) -> list[tuple[int, str]]:
    """The resume notes of a config.toml's bytes."""
    try:
        text = found.decode("utf-8") if found is not None else ""
    except UnicodeDecodeError:
        return []
    return [(int(step), change) for step, change in _RESUME_NOTE.findall(text)]


# What `--on-nan rollback` writes atop the config.toml it halves the learning rates in: the same
# `--run-dir` line then continues with them, where rates that merely differ by a power of two (a line
# with both doubled: another experiment) are refused. A resume that changes settings rewrites the
# file whole, without it: its rates are the ones given from then on.
_ROLLBACK_NOTE = re.compile(r"^# --on-nan rollback halved train\.g_lr and train\.d_lr (\d+) time", re.MULTILINE)


def rollback_note(halvings: int) -> str:
    """The comment line recording that config.toml's rates are those given, halved `halvings` times."""
    return (f"# --on-nan rollback halved train.g_lr and train.d_lr {halvings} time(s): 1/{2 ** halvings} of the "
            "rates given\n")


def rollback_halvings(run_dir: Path) -> int:
    """How many times `--on-nan rollback` halved the rates the run's config.toml holds (0: never, or
    set since by a resume)."""
    try:
        return _halvings_noted((run_dir / "config.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return 0


def _halvings_noted(text: str) -> int:
    match = _ROLLBACK_NOTE.search(text)
    return int(match.group(1)) if match else 0


def rollback_note_kept(found: bytes | None, config: Config) -> str:
    """The rollback note of the config.toml a resume writes anew (`found`: its bytes), when `config`
    keeps the rates it holds (else "": set by the resume, they are the ones given)."""
    try:
        text = found.decode("utf-8") if found is not None else ""
        rates = toml_text(text).get("train", {})
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ""
    halvings = _halvings_noted(text)
    kept = isinstance(rates, dict) and (rates.get("g_lr"), rates.get("d_lr")) == (config.train.g_lr, config.train.d_lr)
    return rollback_note(halvings) if halvings and kept else ""
