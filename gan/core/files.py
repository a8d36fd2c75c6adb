"""Writing files so that none is ever seen half-written, and one writer per run directory.

Every file gan writes goes through `write_atomically`: the content goes to a temp file
named for its writer (`<name>.<pid>.<host>.<random>.tmp`) beside the target, is flushed to disk
and renamed over the target, so a reader sees the old file or the complete new one. A
failed write (a full disk reported as OSError by Python and PIL, as RuntimeError by
torch's zip writer, as SafetensorError by safetensors) removes the temp file and raises
`WriteError`, which names the path and the free space left.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import hashlib
import itertools
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import IO, Callable, Iterator

from gan.core.processes import stop_held_back
from gan.core.registry import ConfigError
from gan.core.wording import undecoded

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a run directory is then not protected
    fcntl = None

QUIET_SECONDS = 600  # a temp of another machine written more recently may be a write still under way
FOLDER_PATIENCE_S = 60.0  # how long a set of files waits for another command's to move into one folder
LOCK_ATTEMPTS = 100  # a lock file removed between its opening and its locking is opened again, so often
MAX_NAME_BYTES = 255  # what a file name may hold on most file systems (ext4, XFS, APFS, NTFS's 255 characters)
MAX_PATH_BYTES = {"linux": 4096, "darwin": 1024}.get(sys.platform, 260)  # a whole path: PATH_MAX (Windows' MAX_PATH)
LOCK_NAME = ".lock"
SWEEP_LOCK_NAME = ".sweep.lock"
NUMBERS_LOCK_NAME = ".run-numbers.lock"  # (in a folder of numbered runs, held while one is numbered)
RUN_NAME = re.compile(r"(\d{5,})-.*")  # a numbered run directory, 00007-name (a wider number past 99999)


class WriteError(OSError):
    """A file could not be written; the message names it and the free space on its disk."""


class RunDirectoryBusy(RuntimeError):
    """Another process is writing to the run directory."""


def run_order(path: Path) -> tuple[int, int, str]:
    """Sort key for the folders in a folder of runs: folders of other names by name, then numbered
    runs by their number (100000-name after 99999-name, which their names alone put first), so the
    last is the newest numbered run."""
    numbered = RUN_NAME.fullmatch(path.name)
    return (1, int(numbered[1]), path.name) if numbered else (0, 0, path.name)


def free_space(path: Path) -> str:
    """The free space on the disk holding `path`, for messages."""
    for folder in (path, *path.parents):
        try:
            exists = folder.exists()
        except OSError:  # (a path too long to look up: its folders above may be)
            continue
        if exists:
            try:
                free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free"
            except OSError:
                break
            # a disk out of inodes is full with space left: "48.8 MiB free: No space left" needs this
            return free + (", no free inodes" if _out_of_inodes(folder) else "")
    return "free space unknown"


def _out_of_inodes(folder: Path) -> bool:
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):  # (Windows has no statvfs)
        return False
    return bool(stats.f_files) and not stats.f_favail  # (f_files 0: a file system that does not count them)


def check_utf8_path(path: Path, what: str) -> None:
    """ConfigError when `path` (made absolute) is not UTF-8 text (bytes of another encoding), which
    TensorBoard's event files and their reader cannot name: said before anything is written."""
    try:
        os.fsencode(path.absolute()).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} '{undecoded(path)}' has a path that is not UTF-8 text (bytes of another encoding), which "
                         "TensorBoard's event files cannot name: give a folder whose path is") from None


def temp_name(path: Path) -> Path:
    """A temp file name beside `path` that no other writer uses, naming its writer's pid and machine
    (`is_stale_temp` judges a pid on the machine that wrote it alone). Within the 255 bytes a file
    name may hold: the start of a long name is kept (a legal name of 240 bytes failed to write)."""
    suffix = f".{os.getpid()}.{host_tag()}.{secrets.token_hex(4)}.tmp"
    return path.with_name(name_cut(path.name, MAX_NAME_BYTES - len(suffix)) + suffix)


def name_cut(name: str, limit: int) -> str:
    """`name` whole when it is at most `limit` bytes as the file system writes it, else its start cut
    to them, at the start of a UTF-8 character: one cut in half is no UTF-8 text (APFS refuses such
    a name, TensorBoard cannot name it). For what gan adds to a name it was given (`.abandoned-0`,
    a temp's pid and host), which a name of 255 bytes, legal itself, has no room left for."""
    encoded = os.fsencode(name)
    if len(encoded) <= limit:
        return name
    end = limit
    while end > max(limit - 3, 0) and encoded[end] & 0xC0 == 0x80:  # (a continuation byte: back to its lead)
        end -= 1
    return os.fsdecode(encoded[:end])


def _is_write_failure(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return True
    # torch's zip writer reports a full disk as RuntimeError ("... unexpected pos ...",
    # "file write failed"); safetensors as SafetensorError. Both are write failures here:
    # the writers only serialise data that is already known to be valid.
    return isinstance(error, RuntimeError) or type(error).__name__ == "SafetensorError"


def refuse_other_than_a_file(path: Path, named: str, file_name: str) -> None:
    """ValueError when `path` is there but no regular file, said of `named` (`loss.vgg_weights
    '/x'`) with the `file_name` it should name: a folder, or a device or a pipe (/dev/zero, a FIFO,
    of which "not found" was said, of a path that is there). For the weights files settings name."""
    if path.is_dir():
        raise ValueError(f"{named} is a folder; it names the file itself, e.g. '{path / file_name}'")
    if path.exists() and not path.is_file():
        raise ValueError(f"{named} is not a regular file (a device or a pipe); it names the file itself ({file_name})")


def another_unicode_form(path: Path) -> str:
    """For a path that does not exist: ` ('<that entry>' is there, ...)` when an entry on its way is there
    under a name that differs only in Unicode normalization (macOS writes `é` as `e` + an accent, a
    command line types it as one letter: two names on Linux that print alike), else nothing."""
    import unicodedata

    parts = Path(path).parts
    for depth, part in enumerate(parts):
        parent, here = Path(*parts[:depth]) if depth else Path("."), Path(*parts[:depth + 1])
        if os.path.lexists(here):
            continue
        wanted = unicodedata.normalize("NFC", part)
        try:
            names = os.listdir(parent)
        except OSError:
            return ""
        twin = next((name for name in names if name != part and unicodedata.normalize("NFC", name) == wanted), None)
        return "" if twin is None else (
            f" ('{parent / twin}' is there: a name that prints alike, its letters in another Unicode form, as macOS "
            "writes names; rename it to the composed form, e.g. `convmv -f utf8 -t utf8 --nfc -r --notest PATH`, "
            "or give its path as a listing prints it)")
    return ""


def missing_folders(folders: list[Path]) -> list[Path]:
    """The folders of `folders` and those above them that are missing now, deepest first: what `mkdir -p`
    of each makes (as written: x/../y makes x), for a caller to remove again (`remove_empty_folders`)."""
    missing: set[Path] = set()
    for folder in folders:
        absolute = folder.absolute()
        missing.update(each for each in itertools.takewhile(lambda each: not each.exists(), (absolute, *absolute.parents))
                       if each.name not in ("..", "."))
    return sorted(missing, key=lambda folder: len(folder.parts), reverse=True)


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove `folders` (`missing_folders`, deepest first) that are still empty: one another writer has
    put a file in since is theirs now, and stays."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at `path`, read in blocks (a checkpoint may be gigabytes), as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_folder(folder: Path) -> None:
    """`mkdir -p` whose failure (a disk full or gone read-only) is a WriteError naming the folder and
    why, as a failed write is: a writer that warns of those and goes on met a bare OSError otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(f"could not make the folder '{folder}'{why_write_failed(error, folder)}") from error


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temp)` to write the file's content to a temp path, then rename it to `path`.

    `write` may open the temp path itself (torch.save, PIL, safetensors take paths). Raises
    WriteError on any failure to write, with the temp file removed.
    """
    write_together({Path(path): write})


def write_together(writes: dict[Path, Callable[[Path], None]], new_only: bool = False, durable: bool = True) -> None:
    """`write_atomically` for files that belong together (weights and their description): each is
    written to its temp path, and only when all are whole are they renamed into place, so that a
    failure to write any leaves every one as it was. (Should a rename fail after others, those are
    undone: the files they replaced were kept as hard links until all were in place, or, where the
    file system has none, renamed aside.) WriteError names the file that failed. With `new_only`
    (a command without --overwrite, which checked that they were absent), a file that appeared
    meanwhile (another command's) is refused, not replaced: each is moved in by a hard link, which
    fails on an existing name. `durable=False` leaves the flush to disk to the caller (`flush_to_disk`:
    files staged by the thousand, flushed together before they move into place)."""
    writes = {Path(path): write for path, write in writes.items()}
    temps = {path: temp_name(path) for path in writes}
    kept: dict[Path, Path | None] = {}  # each file replaced -> what it held, under a temp name
    handled = sys.exc_info()[1]  # an error the caller is handling: not this write's to release
    current = next(iter(writes))  # the file being written or moved, for the message
    moved, aside = [], []
    try:
        for current in writes:  # (a set's renames would move a folder aside, as a file it replaces, and leave it)
            if os.path.isdir(current):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(current))
        for current, write in writes.items():
            write(temps[current])
            if durable:
                with open(temps[current], "rb+") as handle:
                    os.fsync(handle.fileno())
        # (two commands writing the same pair move theirs in one after the other: interleaved, the weights
        # of one would sit beside the description of the other)
        with folder_held(next(iter(writes)).parent) if len(writes) > 1 else contextlib.nullcontext():
            if len(writes) > 1 and not new_only:
                kept = {path: _linked_copy(path) for path in writes if os.path.lexists(path)}
            for current, temp in temps.items():
                if new_only:
                    move_in_new(temp, current)
                    moved.append(current)
                    continue
                if current in kept and kept[current] is None:  # (no hard link here: renamed aside, a moment unseen)
                    kept[current] = temp_name(current)
                    os.replace(current, kept[current])
                    aside.append(current)
                os.replace(temp, current)
                moved.append(current)
        for folder in dict.fromkeys(path.parent for path in writes) if durable else ():
            _fsync_folder(folder)
    except BaseException as error:
        # every file in place (a Ctrl-C during the folders' fsync): the write is done, and undoing a one-file
        # write, which keeps no copy of what it replaced, would delete it
        unrestored = [] if len(moved) == len(writes) else _undo_moves([*moved, *aside], kept)
        for leftover in temps.values():
            with contextlib.suppress(OSError):  # (its folder gone or unwritable): the write's own error is the one
                leftover.unlink(missing_ok=True)
        if not _is_write_failure(error) or isinstance(error, WriteError):  # (the folder held too long: said so)
            raise
        _release_frames(error, handled)
        if new_only and isinstance(error, FileExistsError):
            raise WriteError(f"'{current}' appeared while this command wrote it (another command's?): nothing was "
                             "replaced; run again with --overwrite to replace it") from None
        raise WriteError(f"could not write '{current}'{why_write_failed(error, current)}{''.join(unrestored)}") from error
    finally:
        for copy in kept.values():  # (copies no longer needed: all in place, or put back)
            if copy is not None:
                with contextlib.suppress(OSError):
                    copy.unlink(missing_ok=True)


def file_size_limit_said() -> str | None:
    """The largest file this process may write (RLIMIT_FSIZE, `ulimit -f`), in words for a message
    about a write that failed; None when unlimited (no full disk is to blame then)."""
    try:
        import resource
    except ImportError:  # (Windows)
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else f"this process may write files of at most {soft:,} bytes (ulimit -f)"


def _undo_moves(moved: list[Path], kept: dict[Path, Path | None]) -> list[str]:
    """Undo a set's renames after one of them failed: a file the write made is removed, one it replaced
    put back from its copy in `kept`. Returns a note for each copy that could not be put back (kept,
    and named; popped from `kept` so that it is not removed)."""
    unrestored = []
    for path in dict.fromkeys(moved):
        try:
            if path not in kept:  # (this write made it)
                path.unlink()
            else:  # (what it replaced, put back)
                os.replace(kept[path], path)
        except OSError:
            if path in kept:
                unrestored.append(f"; the earlier '{path}' is kept as '{kept.pop(path)}'")
    return unrestored


def why_write_failed(error: BaseException, path: Path) -> str:
    """Why writing `path` failed, in words, after the free space where that may be why."""
    reason = (str(error).splitlines() or [type(error).__name__])[0]
    opening = re.search(r"open file failed with strerror: (.*)", reason)  # (torch's zip writer, in its words)
    if opening:
        reason = opening[1]
    elif "unexpected pos" in reason or "file write failed" in reason:
        reason = "the writer could not write all of it (a full disk or quota?)"
    if isinstance(error, OSError) and error.errno == errno.ENAMETOOLONG:  # (it named the temp, or nothing)
        name_bytes, path_bytes = len(os.fsencode(path.name)), len(os.fsencode(os.path.abspath(path)))
        reason = (f"its name is {name_bytes} bytes, more than a file name holds here (at most {MAX_NAME_BYTES} on "
                  "most file systems); give a shorter name" if name_bytes > MAX_NAME_BYTES else
                  f"its path is {path_bytes} bytes, more than a path holds here (at most {MAX_PATH_BYTES} on "
                  "this system); give a shorter one")
    elif _is_too_large(error, reason) or "could not write all of it" in reason:
        limit = file_size_limit_said()
        if limit is not None:  # (`ulimit -f`: a limit of this process, no full disk)
            reason += f"; {limit}"
    # (no free space where permission was refused: "(0.0 MiB free): Permission denied" reads as a full disk)
    refused = (error.errno in (errno.EACCES, errno.EPERM, errno.EROFS) if isinstance(error, OSError) else
               any(words in reason for words in ("Permission denied", "Read-only file system")))  # (torch's, safetensors')
    return (": " if refused else f" ({free_space(path.parent)}): ") + reason


def _is_too_large(error: BaseException, reason: str) -> bool:
    """Whether the write failed as a file past the size limit (EFBIG): an OSError's errno, or the
    "File too large (os error 27)" of safetensors, whose Rust writer raises SafetensorError (before 0.6 in
    Rust's debug form, "IoError(Os { code: 27, kind: FileTooLarge, ... })")."""
    if isinstance(error, OSError):
        return error.errno == errno.EFBIG
    return f"(os error {errno.EFBIG})" in reason or "kind: FileTooLarge" in reason


@contextlib.contextmanager
def folder_held(folder: Path) -> Iterator[None]:
    """An exclusive flock on `folder` itself while a set of files moves into it (a pair written
    together, `gan sample`'s PNGs), so that two commands' sets take turns, where the system has one
    (else, or on a file system that refuses it, nothing is held). Another gan command holds it for
    the moment its moves take: a wait is said, and one past FOLDER_PATIENCE_S (the folder held by
    something else, `flock DIR gan ...` around this very command) is a WriteError, where a blocking
    flock waited in silence for ever, deaf to Ctrl-C held back meanwhile (`stop_signals_held`)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        handle = None
    if handle is not None and fcntl is not None:
        try:
            _take_flock(handle, folder, FOLDER_PATIENCE_S)
        except WriteError:
            os.close(handle)
            raise
        except OSError:  # (a file system that refuses flock: nothing is held)
            pass
    try:
        yield
    finally:
        if handle is not None:
            os.close(handle)  # (closing releases the flock)


def _take_flock(handle: int, folder: Path, patience_s: float) -> None:
    waited_since = None
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if stop_held_back():  # (Ctrl-C or SIGTERM came while waiting: nothing has moved in, so stop now)
                raise WriteError(f"stopped while waiting for '{folder}', which another process holds: nothing was "
                                 "moved in") from None
            now = time.monotonic()
            if waited_since is None:
                waited_since = now
                print(f"waiting for '{folder}': another process holds it (another gan command moving its files in, or "
                      f"an flock of the folder); giving up after {patience_s:.0f} s", file=sys.stderr, flush=True)
            elif now - waited_since > patience_s:
                raise WriteError(f"'{folder}' stayed held by another process for {patience_s:.0f} s (an flock of the "
                                 "folder: another command's, or `flock` around this one), so nothing was moved in; "
                                 "run again once it is released") from None
            time.sleep(0.05)


def move_in_new(temp: Path, path: Path) -> None:
    """`temp` into place as `path`, FileExistsError when `path` exists: a hard link, which never
    replaces (where the file system has none, a look and a rename, which leave a moment between).
    What commands without --overwrite move their outputs in with."""
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(temp, path)
        return
    os.unlink(temp)


def _linked_copy(path: Path) -> Path | None:
    """A hard link to `path` under a temp name (no data copied), or None where the file system has none."""
    link = temp_name(path)
    try:
        os.link(path, link)
    except OSError:
        return None
    return link


def _release_frames(error: BaseException | None, handled: BaseException | None) -> None:
    """A failed writer (torch's zip writer, say) still holds the unlinked temp open from the locals of
    its frames, in this error's traceback and those of the errors it was raised during (up to
    `handled`, the caller's own): let them go, so the space the temp took is free again and the
    message names what the disk has now."""
    while error is not None and error is not handled:
        traceback.clear_frames(error.__traceback__)
        error = error.__context__


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda temp: temp.write_text(text, encoding="utf-8"))


# Past this many files, one flush of their file system (Linux's syncfs) replaces a flush of each: on ext4
# an fsync took 0.26 ms alone and 3.6 ms beside other writers, 13 s to 3 minutes of a 50,000-image set.
MANY_FILES = 64


def flush_to_disk(paths: list[Path]) -> None:
    """Each file of `paths` flushed to disk, then each of their folders (its entries): what
    `write_together` does for a file, for files written with `durable=False`, at once (half the
    time of a flush as each is written, whose folder is flushed again after every file). Many
    files: each file system that holds them flushed whole, where the system can."""
    if len(paths) > MANY_FILES and _sync_file_systems(paths):
        return
    for path in paths:
        try:
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        except OSError as error:  # (a full disk or quota found at the flush: named as a write of it)
            raise WriteError(f"could not write '{path}'{why_write_failed(error, path)}") from error
    for folder in dict.fromkeys(path.parent for path in paths):
        _fsync_folder(folder)


def _sync_file_systems(paths: list[Path]) -> bool:
    """Flush the file system of each folder of `paths` (one syncfs call for each file system: its files'
    data and entries, these included); False where the system has no syncfs (then nothing is flushed)."""
    syncfs = syncfs_function()
    if syncfs is None:
        return False
    by_file_system = {}
    for folder in dict.fromkeys(path.parent for path in paths):
        by_file_system.setdefault(os.stat(folder).st_dev, folder)
    for folder in by_file_system.values():
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            if syncfs(descriptor) != 0:  # (a full disk or quota found at the flush: named as a write there)
                error = OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
                raise WriteError(f"could not write the files in '{folder}'{why_write_failed(error, folder)}")
        finally:
            os.close(descriptor)
    return True


def syncfs_function() -> Callable[[int], int] | None:
    """Linux's syncfs(fd) from the C library (it reports a write-back error of the file system since
    Linux 5.8), or None on other systems."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):  # (a C library without it)
        return None


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # some systems cannot open folders; the rename itself is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# what `temp_name` makes (earlier versions named no machine: those are judged as this one's)
TEMP_NAME = re.compile(r"(?P<target>.+)\.(?P<pid>\d+)(\.(?P<host>h[0-9a-f]{8}))?\.[0-9a-f]{8}\.tmp")


def written_name(name: str) -> str:
    """The file a temp of `temp_name`'s is written for (`name` itself when it is no such temp)."""
    match = TEMP_NAME.fullmatch(name)
    return name if match is None else match["target"]


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this machine is alive. Always true on Windows, where os.kill(pid, 0)
    sends a Ctrl-C to the process group `pid` rather than asking: a dead writer's temp is then left
    where it is (what it cleans up goes unremoved), never a live one's taken."""
    if sys.platform == "win32":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OverflowError, ValueError):  # not a pid this system can have
        return False
    return True


def host_tag(namespace: str | None = None) -> str:
    """This machine in the name of a temp that may sit in a folder other machines share (a cache's
    array, a sample's staging folder): 'h' and 8 hex digits of the hash of its host name and PID
    namespace (this process's, or `namespace`), so that a pid is judged dead only where it was given
    (a container sharing the host's name and a folder has pids of its own: its live writer's pid may
    be no process here)."""
    where = f"{socket.gethostname()} {namespace or _pid_namespace()}"
    return "h" + hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _host_name_tag() -> str:
    """The tag of this machine that versions before PID namespaces counted wrote: its host name's hash."""
    return "h" + hashlib.sha256(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:8]


def is_stale_temp(path: Path) -> bool:
    """Whether `path` is a temp file `temp_name` made for a writer that is gone (kill -9, a crash).
    A user's own `notes.tmp`, a folder, and a live writer's temp (a `gan eval` writing into the run
    directory right now) are not. Another machine's (or a container's before a restart: a new host
    name), whose pid says nothing here, is stale once untouched for QUIET_SECONDS."""
    match = TEMP_NAME.fullmatch(path.name)
    if match is None or not path.is_file() or path.is_symlink():
        return False
    if match["host"] not in (None, host_tag()):
        try:
            return time.time() - path.stat().st_mtime > QUIET_SECONDS
        except OSError:
            return False
    return int(match["pid"]) != os.getpid() and not process_alive(int(match["pid"]))


def remove_stale_temps(folder: Path, named_by_host: bool = False, locked_for: tuple[str, ...] = ()) -> None:
    """Remove the temp files that writers which died left in `folder`; nothing else. `named_by_host`
    for a folder gan does not own (a person's output folder, a cache folder they chose): only temps of
    `temp_name`'s present form, which names the machine, count there, as a person's own
    `budget.2023.20231231.tmp` has the form of an earlier version's temp. `locked_for`: the patterns of
    the files in `folder` that only the holder of its lock writes, which the caller holds (`RunLock.held`)."""
    for temp in folder.glob("*.tmp"):
        match = TEMP_NAME.fullmatch(temp.name)
        if (is_stale_temp(temp) and not (named_by_host and match["host"] is None)
                or is_earlier_lock_holders_temp(temp, locked_for)):
            temp.unlink(missing_ok=True)


def is_earlier_lock_holders_temp(path: Path, locked_for: tuple[str, ...]) -> bool:
    """Whether `path` is a temp of a file named by one of the `locked_for` patterns, which only the
    holder of the folder's lock writes, left by an earlier holder: stale whatever machine it names and
    however fresh, as that holder is gone now that the caller holds the lock (`is_stale_temp` kept the
    checkpoint temp of a node that died as it wrote it for QUIET_SECONDS: past the end of the run that
    resumed at once, as only a start removes temps)."""
    match = TEMP_NAME.fullmatch(path.name)
    if match is None or not path.is_file() or path.is_symlink():
        return False
    this_process = int(match["pid"]) == os.getpid() and match["host"] in (None, host_tag())
    return not this_process and any(fnmatch.fnmatchcase(match["target"], pattern) for pattern in locked_for)


# Descriptors of the run locks this process holds. A forked child (a DataLoader worker) shares
# their open files, and with them the flock: after a kill -9 of the trainer its workers would
# hold the run directory locked until they notice and exit, refusing an immediate restart. So
# every child drops them at once (`_drop_inherited_locks`); exec'd children never get them
# (Python opens files close-on-exec).
_HELD_LOCK_DESCRIPTORS: set[int] = set()
# /dev/null, opened once as the first lock is taken, for the children to point those at: a child forked
# with every descriptor in use (`ulimit -n` reached as a loader started its workers) could open none, and
# kept the lock with an "Exception ignored" traceback
_NULL_FOR_CHILDREN: list[int] = []


def _drop_inherited_locks() -> None:
    """In a forked child: point each held lock's descriptor at /dev/null, which ends the child's
    share in the lock (the parent's stays) and leaves the child's file object a harmless one."""
    for descriptor in _HELD_LOCK_DESCRIPTORS:
        os.dup2(_NULL_FOR_CHILDREN[0], descriptor)
    _HELD_LOCK_DESCRIPTORS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited_locks)


class RunLock:
    """An exclusive lock on a run directory for the life of a training process.

    It is an advisory `flock` on `<run_dir>/.lock`: the kernel releases it when the process
    ends in any way, kill -9 included, so a lock is never stale. Forked children (DataLoader
    workers) do not keep it (above). A second writer fails at once with the holder's pid.
    Readers (sample, translate, eval, export) take no lock: they only ever see complete files.
    """

    lock_name = LOCK_NAME
    says_unguarded = True  # where there is no flock, said in a warning (`warn_of_no_locks`)

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._handle: IO[bytes] | None = None
        self.held = False  # the flock taken (not where the file system refuses locks)

    def busy_message(self, holder: str) -> str:
        return (f"run directory '{self.run_dir}' is in use by another gan process ({holder}); one run "
                "directory has one writer: wait for it to end or stop it, or train into another directory")

    def __enter__(self) -> RunLock:
        handle = self.locked_handle()
        if handle.writable():  # (another user's lock file, opened read-only, keeps the record of its last writer)
            self._write_record(handle)
        self._handle = handle
        if not _NULL_FOR_CHILDREN:
            _NULL_FOR_CHILDREN.append(os.open(os.devnull, os.O_RDWR))
        _HELD_LOCK_DESCRIPTORS.add(handle.fileno())
        return self

    def _write_record(self, handle: IO[bytes]) -> None:
        """This process as the lock's holder, in the file for the next one to name (`_holder_said`)."""
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} {host_tag()} {_pid_namespace()} {_host_name()}\n".encode())
        except OSError as error:  # a full disk: the write names no file
            handle.close()
            raise WriteError(f"could not write '{self.run_dir / self.lock_name}' ({free_space(self.run_dir)}): "
                             f"{error}") from error

    def when_busy(self, record: str) -> None:
        """What a second writer does, `record` the first's lock file text: fail at once (RunDirectoryBusy). A
        lock that waits for its holder instead says so and returns (`BuildLock`)."""
        raise RunDirectoryBusy(self.busy_message(_holder_said(record))
                               + _if_its_machine_is_gone(record, self.run_dir / self.lock_name)) from None

    def locked_handle(self) -> IO[bytes]:
        """The lock file open, flock held (`when_busy` when another has it)."""
        path = self.run_dir / self.lock_name
        for _ in range(LOCK_ATTEMPTS):
            self.run_dir.mkdir(parents=True, exist_ok=True)
            try:
                # unbuffered: a write a full disk refuses fails at once, and closing has nothing left to flush
                handle = open_lock_file(path)
            except FileNotFoundError:  # (the folder removed since, by a start that failed: made again)
                continue
            if fcntl is None:  # (no flock on this system, Windows: the run directory is not guarded)
                if self.says_unguarded:
                    warn_of_no_locks(path, "this system has no flock")
                return handle
            try:
                self._flock(handle)
            except OSError as error:  # (some network file systems: ENOLCK, EOPNOTSUPP) as where there is no flock
                warn_of_no_locks(path, error)
                return handle
            except BaseException:  # (busy, or a stop while waiting)
                handle.close()
                raise
            # a lock taken on a file a failed start removed meanwhile (`remove_lock_file`) locks nothing
            # another writer would see: take the one at the path now
            if same_file(handle, path):
                self.held = True
                return handle
            handle.close()
        # (a file system whose files change identity between two looks at them: no lock holds there)
        raise WriteError(f"could not lock '{path}': the file was replaced each of {LOCK_ATTEMPTS} times it was "
                         "locked; train into a folder on another file system")

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            _HELD_LOCK_DESCRIPTORS.discard(self._handle.fileno())
            self._handle.close()  # closing releases the flock
            self._handle, self.held = None, False

    def _flock(self, handle: IO[bytes]) -> None:
        """The flock of the open lock file taken: at once, or once its holder lets go where `when_busy`
        returns (a stop signal raises KeyboardInterrupt in the wait, as Ctrl-C does)."""
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            self.when_busy(handle.read().decode(errors="backslashreplace"))
            fcntl.flock(handle, fcntl.LOCK_EX)


def open_lock_file(path: Path) -> IO[bytes]:
    """A lock file opened for reading and appending, unbuffered (a write a full disk refuses fails at
    once, and closing has nothing left to flush): never through a symlink, whose target (a file of
    someone's elsewhere) would be truncated and written, nor a pipe or device, whose open may wait
    for ever. WriteError naming it for those. One of another user's that this one may not write (in a
    shared folder of runs or caches) is opened read-only: its flock locks all the same, and its
    holder's record stays unwritten (`RunLock.__enter__`). One of this user's is made writable by
    whoever may write its folder (`share_as_its_folder`)."""
    no_wait = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        try:
            descriptor, writable = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | no_wait, 0o666), True
        except PermissionError as refused:  # (another user's file; or a folder this user may not write)
            descriptor, writable = _opened_despite(path, no_wait, refused)
    except OSError as error:
        if error.errno == errno.ELOOP:  # (O_NOFOLLOW on a symlink)
            raise WriteError(f"'{path}' is a symlink where gan keeps a lock file: remove it (gan writes its own)") \
                from None
        raise
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise WriteError(f"'{path}' is a pipe, socket or device where gan keeps a lock file: remove it (gan writes "
                         "its own)")
    if hasattr(os, "O_NONBLOCK"):  # (a regular file's reads and writes do not block anyway: as opened plainly)
        os.set_blocking(descriptor, True)
    if writable:
        share_as_its_folder(descriptor, path.parent)
    return open(descriptor, "a+b" if writable else "rb", buffering=0)  # noqa: SIM115 - the caller holds it


def _opened_despite(path: Path, no_wait: int, refused: PermissionError) -> tuple[int, bool]:
    """The existing lock file `path` opened where opening it to create or write was `refused`, and
    whether to write: without O_CREAT (which Linux's fs.protected_regular refuses on another user's
    file in a sticky folder, however writable the file), else read-only, which flock locks all the
    same. `refused` itself where neither opens it (no file there: its folder is what this user may
    not write)."""
    for flags in (os.O_RDWR | os.O_APPEND, os.O_RDONLY):
        try:
            return os.open(path, flags | no_wait), flags != os.O_RDONLY
        except PermissionError:
            continue
        except FileNotFoundError:
            break
    raise refused


def share_as_its_folder(descriptor: int, folder: Path) -> None:
    """Give the lock file open as `descriptor`, where this user owns it, the write permission its folder
    gives: its group's where the two share a group (a setgid folder of a lab's runs), everyone's in a
    folder everyone may write (a sticky cache folder). The umask (022) kept it to its maker, and every
    other user's command met "Permission denied" there. Nothing where that cannot be done."""
    try:
        lock, holder = os.fstat(descriptor), os.stat(folder)
        if lock.st_uid != os.geteuid():
            return
        if holder.st_mode & 0o020 and lock.st_gid != holder.st_gid:  # (a folder without setgid: its group, where
            with contextlib.suppress(OSError):  # this user is of it)
                os.fchown(descriptor, -1, holder.st_gid)
                lock = os.fstat(descriptor)
        writers = holder.st_mode & (0o002 | (0o020 if lock.st_gid == holder.st_gid else 0))
        mode = stat.S_IMODE(lock.st_mode)
        if writers and mode | writers | writers << 1 != mode:  # (to open it to write, a user must read it too)
            os.fchmod(descriptor, mode | writers | writers << 1)
    except (OSError, AttributeError):  # (a file system without modes; Windows: no geteuid, no fchmod)
        pass


def warn_of_no_locks(path: Path, error: OSError | str) -> None:
    """Said when the file system of `path` refuses a lock: what it would have guarded goes unguarded."""
    why = error if isinstance(error, str) else error.strerror or error
    warnings.warn(f"'{path}': its file system refuses locks ({why}), so nothing keeps a second "
                  "gan command from writing in the same folder at once: run one at a time there, or use a local disk",
                  stacklevel=1)  # (one place: said once a file under the default filter, however often it is locked)


def other_owner(path: Path) -> str | None:
    """The user who owns `path` (by name where known, else by uid), when that is not this process's;
    else None (this user's, gone, or a system without uids)."""
    try:
        uid = path.stat().st_uid
    except OSError:
        return None
    if not hasattr(os, "geteuid") or uid == os.geteuid():  # (Windows: no uids)
        return None
    try:
        import pwd

        return f"'{pwd.getpwuid(uid).pw_name}'"
    except (ImportError, KeyError):  # (a uid without a name here: a container's, another machine's)
        return f"uid {uid}"


def unreadable_by_this_user(path: Path, error: OSError) -> str:
    """What a refusal to read `path` (`error`) says of it: another user keeps it (a shared folder written
    under umask 077), which is no damage: 'cannot be read by this user (Permission denied; owned by ...)'."""
    owner = other_owner(path)
    whose = f"owned by {owner}" if owner else "another user's"
    return f"cannot be read by this user ({error.strerror or error}; {whose}, written under a umask that keeps it to them?)"


def same_file(handle: IO[bytes], path: Path) -> bool:
    """Whether the open `handle` is the file at `path` still (a lock file a failed start removed is not)."""
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except OSError:  # (gone)
        return False


def remove_lock_file(run_dir: Path) -> None:
    """Remove the `.lock` of a run directory a failed start made, holding the lock as it does: one
    taken meanwhile by another writer (a --run-dir of the same name) is not this start's to remove."""
    if not (run_dir / LOCK_NAME).exists():  # (taking the lock would make the folders: none to remove)
        return
    with contextlib.suppress(RunDirectoryBusy, OSError), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a file system refusing locks was said as the start took it)
        handle = RunLock(run_dir).locked_handle()  # (the flock alone: a full disk may be why the start failed)
        try:
            (run_dir / LOCK_NAME).unlink()
        finally:
            handle.close()


def _pid_namespace() -> str:
    """This process's PID namespace ('pid:[4026531836]' on Linux; '-' elsewhere): a pid means
    nothing in another (a container's pid 1 is no process here)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "-"


def _host_name() -> str:
    """This machine's name, one word, as a lock file records it for a person to read ('-' unknown)."""
    return "".join(socket.gethostname().split()) or "-"


def _holder_machine(record: str) -> str | None:
    """The machine a lock file's holder (`pid host namespace name`; fewer from older versions) runs on
    when it is not this one: its name, or '' where the record names none; None for this one."""
    _, host, namespace, name = (record.split() + ["", "", "", ""])[:4]
    if not host or host in (host_tag(namespace or None), _host_name_tag()):
        return None
    return "" if name == "-" else name


def _holder_said(record: str) -> str:
    """A lock file's holder in words: its pid, and where that pid is not one of this machine's
    processes, why (the machine it runs on, by name)."""
    pid, _, namespace = (record.split() + ["", "", ""])[:3]
    if not pid:
        return "pid unknown"
    machine = _holder_machine(record)
    if machine is not None:
        return f"pid {pid} on {f'{machine}, ' if machine else ''}another machine that shares this folder"
    if namespace and namespace != _pid_namespace():
        return f"pid {pid} in another PID namespace (a container's), not this machine's process {pid}"
    if pid.isdigit() and not process_alive(int(pid)):  # (a holder that opened another user's lock file read-only
        return f"pid unknown (the lock file names pid {pid}, which has ended)"  # could not write its own pid there)
    return f"pid {pid}"


def _if_its_machine_is_gone(record: str, path: Path) -> str:
    """For a lock held on another machine: what to do should that machine be down. The kernel that
    held the flock is gone with it; the file server frees the lock once it gives that machine up,
    and one kept for it (NFSv3's, until it boots again) locks that file alone, not a new one."""
    machine = _holder_machine(record)
    if machine is None:
        return ""
    named = machine or "that machine"
    return (f"; should {named} be down, the file server frees its lock once it gives {named} up (NFSv4: when its "
            f"lease runs out, about 90 s); one kept longer (NFSv3 keeps it until {named} starts again) goes with "
            f"the lock file: remove '{path}', but only once no gan process of {named} runs there")


class OutputsLock(RunLock):
    """The same lock on a folder a command writes a set of files into (`gan compare`'s --out): two
    writing at once could leave a figure of one set of runs beside a table of another."""

    lock_name = ".outputs.lock"

    def busy_message(self, holder: str) -> str:
        return (f"'{self.run_dir}' is being written by another gan process ({holder}): wait for it to end, or give "
                "another --out")


class SweepLock(RunLock):
    """The same lock on a sweep's folder: a second `gan sweep` into one --out would start the same
    runs again, and each would fail on the run-directory locks of the other's."""

    lock_name = SWEEP_LOCK_NAME

    def busy_message(self, holder: str) -> str:
        return (f"sweep folder '{self.run_dir}' is in use by another gan sweep ({holder}): wait for it to "
                "end or stop it (the same command then resumes its runs), or give another --out")


class BuildLock(RunLock):
    """The same lock on `<folder>/<name>.lock` while a process builds a file that others need too (a
    decoded-image cache, which each run of a sweep started at once needs): another process needing it
    waits, said in a line, rather than build a second copy beside it, and `waited` then tells it to
    look for what was built. The lock file goes as the lock is let go. Where there is no flock
    (Windows) none is taken: each builder writes a copy of its own, as without the lock."""

    def __init__(self, folder: Path, name: str, what: str):
        super().__init__(folder)
        self.lock_name = f"{name}.lock"
        self.what = what  # (named in the line said while waiting: "the decoded-image cache '...'")
        self.waited = False

    def when_busy(self, record: str) -> None:
        print(f"waiting for {self.what}: another process is building it ({_holder_said(record)}; its lock file "
              f"'{self.run_dir / self.lock_name}'), to read it once built", file=sys.stderr, flush=True)
        self.waited = True

    def __enter__(self) -> BuildLock:
        if fcntl is not None:
            super().__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        path = self.run_dir / self.lock_name
        # removed while held: a process that opened it meanwhile locks the file gone, and takes the one there
        if self._handle is not None and same_file(self._handle, path):
            with contextlib.suppress(OSError):
                path.unlink()
        super().__exit__(*exc_info)


def lock_is_held(path: Path) -> bool:
    """Whether a process holds the flock of the lock file `path` now; True too where that cannot be
    told (no flock, a file system refusing it), so that what may be in use is left alone."""
    handle = _locked_if_free(path)
    if handle is None:
        return True
    handle.close()
    return False


def remove_unheld_lock(path: Path) -> bool:
    """Remove the lock file `path` that no process holds (a build killed with -9 leaves it), holding its
    lock as it goes, as `remove_lock_file` does; False, leaving it, where one holds it (`lock_is_held`)."""
    handle = _locked_if_free(path)
    if handle is None:
        return False
    with handle:
        if same_file(handle, path):
            path.unlink(missing_ok=True)
    return True


def _locked_if_free(path: Path) -> IO[bytes] | None:
    """The existing lock file `path` open with its flock taken, when no process held it; None otherwise
    (held, gone, not a plain file, or no flock to tell by)."""
    if fcntl is None:
        return None
    try:
        handle = open(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)),
                      "rb", buffering=0)  # noqa: SIM115 - the caller holds it
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # (a pipe or folder of that name is no lock of gan's)
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
    except OSError:
        pass
    handle.close()
    return None
