"""A decoded-image cache: the data set cropped, resized and stored once as uint8 on disk.

Decoding JPEGs every epoch is what limits small-GAN training. With `data.cache` on,
the images are decoded once into `<cache_dir>/<hash>.npy` (N, 3, R, R) uint8, with a
JSON header beside it naming the source, count, resolution, crop and version; any
change there, or to the files themselves (names, sizes, times), rebuilds it. Training
then gathers batches from the array (memory-mapped, or copied whole onto the GPU) and
flips and normalises them as tensors (on the GPU when training there), with the same
flips as the uncached path. One process builds it at a time, holding `<hash>.lock` beside it:
under torchrun the first of each machine; any other process that needs it meanwhile (the runs
of a sweep, started at once) waits for that build, said in a line, and then maps it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import random
import re
import shutil
import stat
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from gan.core.distributed import SINGLE_PROCESS, ProcessGroup, barrier
from gan.core.files import (
    QUIET_SECONDS,
    BuildLock,
    WriteError,
    file_size_limit_said,
    free_space,
    host_tag,
    lock_is_held,
    missing_folders,
    other_owner,
    process_alive,
    remove_empty_folders,
    remove_unheld_lock,
    share_as_its_folder,
    unreadable_by_this_user,
    write_text_atomically,
)
from gan.core.images import signed_levels, uint8_to_signed
from gan.core.memory import format_bytes
from gan.core.progress import Progress
from gan.core.registry import ConfigError
from gan.core.wording import first_few, one_line
from gan.data.decode import ImageReadError, ProcessLimitError, UnreadableImageWarning
from gan.data.image_files import ImageFileDataset
from gan.data.sampling import ResumableSampler, shard

VERSION = 8  # 2: per-chunk checksums in the header, ctime in the files' fingerprint; 3: ICC profiles applied;
# 4: colour keys of 2- and 4-bit grey PNGs applied, 16-bit white-is-zero TIFFs inverted; 5: the profiles of
# palette images, and colour keys under a profile; 6: a PNG's eXIf chunk after its pixels turns nothing;
# 7: a BMP whose alpha is 0 everywhere read opaque, a float image with highlights above 1 read as 0..1
# 8: an undecodable file's slot holds the image standing in for it (SkipUnreadable), not the next one
CHECKSUM_IMAGES = 256  # images per checksum: verifying one chunk reads 12 MiB at 128 px
# Verified on every open unless data.cache_verify asks for all: chunks of this many bytes at random
# (~0.3 s: a whole cache of up to ~20,000 images at 64 px, a ninth of CelebA's 202,599), at least 2.
SAMPLED_BYTES = 256 * 2**20
SAMPLED_CHUNKS = 2
PROGRESS_S = 1.0  # the most seconds between the build's progress updates
NAME = re.compile(r"[0-9a-f]{20}")  # a cache's name: the start of its header's SHA-256 (`cache_name`)
# Temp files of a build: <name>.npy.<pid>.<host>.tmp (<host>: `host_tag`; <name>.npy.<pid>.tmp before),
# <name>.json.<pid>.<host>.<random>.tmp (`temp_name`'s; <name>.json.<pid>.<random>.tmp and .<pid>.tmp before)
TEMP_NAME = re.compile(r"[0-9a-f]{20}\.(?:npy|json)\.(?P<pid>\d+)(?:\.(?P<host>h[0-9a-f]{8}))?(?:\.[0-9a-f]+)?\.tmp")
LOCK_NAME = re.compile(r"[0-9a-f]{20}\.lock")  # held by a build while it runs (`BuildLock`), removed after
STAMP_NAME = re.compile(r"[0-9a-f]{20}\.used")  # a cache's last use by any user (`note_use`), beside its header
MAX_HEADER_BYTES = 16 * 2**20  # a header of a million images is ~150 KB; larger JSON is not ours to parse


def user_cache_dir(name: str) -> Path:
    """`$XDG_CACHE_HOME/gan/<name>`, or `~/.cache/gan/<name>`: where gan keeps what it can recompute.
    A relative XDG_CACHE_HOME is passed over, as the XDG specification says (it would name a new
    folder wherever a command runs); ConfigError where there is no home folder to go by."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "gan" / name
    try:
        home = Path.home()
    except RuntimeError:  # (HOME unset, and a user id the passwd file does not know: `docker run --user N`)
        raise ConfigError("there is no home folder to keep gan's caches in (HOME is unset, and this user has no home "
                          "in the passwd file): set HOME or XDG_CACHE_HOME, or the cache's own folder "
                          "(data.cache_dir, metrics.cache_dir, --cache-dir, gan cache --dir)") from None
    return home / ".cache" / "gan" / name


def cache_header(dataset: ImageFileDataset, identity: dict) -> dict:
    """What the cached array depends on: the data set's identity (source, resolution, crop, ...), its files."""
    return {"version": VERSION, **identity, "count": len(dataset), "resolution": dataset.resolution,
            "files": dataset.fingerprint}


BUILD_RECORDS = ("checksums", "undecodable")  # header fields the build writes, not part of the name


def cache_name(header: dict) -> str:
    """A cache's file name: the start of the SHA-256 of its header without what the build recorded
    (`BUILD_RECORDS`), so that a header proves it is gan's by hashing to its own name."""
    identity = {key: value for key, value in header.items() if key not in BUILD_RECORDS}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def chunk_checksums(images: np.ndarray, chunks: Iterable[int] | None = None) -> dict[int, str]:
    """BLAKE2 checksums of the array's chunks of CHECKSUM_IMAGES images (all, or those listed)."""
    count = -(-len(images) // CHECKSUM_IMAGES)
    return {chunk: hashlib.blake2b(np.ascontiguousarray(images[chunk * CHECKSUM_IMAGES:(chunk + 1) * CHECKSUM_IMAGES]),
                                   digest_size=16).hexdigest()
            for chunk in (range(count) if chunks is None else chunks)}


def chunks_verified_on_open(chunks: int, chunk_bytes: int) -> int:
    """How many of a cache's `chunks` of `chunk_bytes` each an open verifies: SAMPLED_BYTES' worth,
    at least SAMPLED_CHUNKS (2 of CelebA's 792 at 64 px let 2,441 zeroed faces train unsaid)."""
    return min(chunks, max(SAMPLED_CHUNKS, SAMPLED_BYTES // max(chunk_bytes, 1)))


def cache_damage(array_path: Path, header: dict, verify_all: bool) -> tuple[np.ndarray | None, str | None]:
    """The cached array memory-mapped and None, or None and what is wrong with it.

    Its shape, type and file size are checked against the header on every open; the checksums
    of `chunks_verified_on_open` chunks chosen at random (all with `verify_all`). Sampling catches
    a file cut short or overwritten at large, but can miss changed bytes in a chunk it skipped."""
    images, damage = cache_structure_damage(array_path, header)
    if images is None:
        return None, damage
    stored = header.get("checksums")
    if (not isinstance(stored, list) or len(stored) != -(-len(images) // CHECKSUM_IMAGES)
            or not all(isinstance(checksum, str) for checksum in stored)):  # (checksums are no part of its name)
        return None, "its header holds no checksums for its images"
    chunks = range(len(stored)) if verify_all else random.Random().sample(
        range(len(stored)), chunks_verified_on_open(len(stored), images[:CHECKSUM_IMAGES].nbytes))
    for chunk, checksum in chunk_checksums(images, chunks).items():
        if checksum != stored[chunk]:
            first = chunk * CHECKSUM_IMAGES
            return None, f"has images {first}-{min(first + CHECKSUM_IMAGES, len(images)) - 1} changed since it was built"
    return images, None


# The damage gan cannot mend: a folder (or another thing) where the array goes is not gan's to remove.
ARRAY_NOT_A_FILE = "is not a file"


def cache_structure_damage(array_path: Path, header: dict) -> tuple[np.ndarray | None, str | None]:
    """`cache_damage` without the checksums, which read every byte they cover: the array's shape,
    type and file size against the header (a file cut short fails here)."""
    shape = (header["count"], 3, header["resolution"], header["resolution"])
    if not array_path.is_file():  # (a build that died between its array and its header, or a file removed)
        return None, "is missing" if not array_path.exists() else ARRAY_NOT_A_FILE
    try:
        with open(array_path, "rb") as file:  # its own header first: a file cut short does not map
            version = np.lib.format.read_magic(file)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            stored_shape, _, dtype = read_header(file)
            offset = file.tell()
    except Exception as error:  # numpy raises ValueError, EOFError, OSError for damaged files
        size = _size(array_path)
        if size is None:  # (removed meanwhile: `gan cache clear` in another shell)
            return None, "is missing"
        if size == 0:
            return None, "is empty (0 bytes)"
        # (a file that is not one, a pickle say, is not met with numpy's advice to load it "unsafely")
        return None, "is not a NumPy array file" if "magic" in str(error) else f"is unreadable ({error})"
    if tuple(stored_shape) != shape or dtype != np.uint8:
        return None, f"holds {dtype}{list(stored_shape)} where the header says uint8{list(shape)}"
    expected_size, size = offset + math.prod(shape), _size(array_path)
    if size != expected_size:
        return None, "is missing" if size is None else f"is {size} bytes where its header needs {expected_size}"
    try:
        return np.load(array_path, mmap_mode="r"), None
    except Exception as error:
        return None, f"is unreadable ({error})"


def _size(path: Path) -> int | None:
    """`path`'s size in bytes; None once it is gone."""
    try:
        return path.stat().st_size
    except OSError:
        return None


def is_built(dataset: ImageFileDataset, identity: dict, cache_dir: Path) -> bool:
    """Whether `cache_dir` holds this data set's cache, complete by its header (its array is checked
    when opened): a run that only reads it needs no write access there."""
    header = cache_header(dataset, identity)
    name = cache_name(header)
    return _stored_header(header, cache_dir / f"{name}.json", cache_dir / f"{name}.npy") is not None


def _stored_header(header: dict, header_path: Path, array_path: Path) -> dict | None:
    """The header at `header_path` when it describes `header`'s data set and its array is there (the
    array itself is checked when opened, `cache_damage`); None otherwise."""
    stored = _read_header(header_path)
    matches = stored is not None and {key: stored.get(key) for key in header} == header and array_path.is_file()
    return stored if matches else None


def same_source(header: dict, identity: dict) -> bool:
    """Whether a cache's `header` is of the data set `identity` names, decoded before its files (or
    gan's format) changed. A CelebA cache keyed by the folder holding img_align_celeba/ (gan before
    2026-12-05 keyed it by data.root's spelling) is of its image folder too."""
    if any(header.get(key) != value for key, value in identity.items() if key != "root"):
        return False
    root, image_dir = header.get("root"), identity.get("root")
    if root == image_dir:
        return True
    if identity.get("dataset") != "celeba" or not isinstance(root, str) or not isinstance(image_dir, str):
        return False
    # (the folder holding it, or Kaggle's img_align_celeba/img_align_celeba/ named by the outer folder's parent)
    return Path(root) == Path(image_dir).parent or (
        Path(root) == Path(image_dir).parent.parent and _celeba_image_dir_of(root) == image_dir)


def _celeba_image_dir_of(root: str) -> str | None:
    """The image folder `data.root = root` names for CelebA now (None when it names none)."""
    from gan.data.image_files import celeba_image_dir

    try:
        return str(celeba_image_dir(root).resolve())
    except (OSError, ValueError):
        return None


def earlier_format(header: dict) -> str | None:
    """'cache format 5, this gan's is 6' for a cache an earlier (or later) gan wrote, which this gan
    never reads (the next run on its images rebuilds it and removes this one); None for this gan's."""
    version = header.get("version")
    return None if version == VERSION else f"cache format {version}, this gan's is {VERSION}"


def _later_format(header: dict) -> bool:
    """Whether a cache's `header` is of a later gan's format than this one's."""
    version = header.get("version")
    return isinstance(version, int) and version > VERSION


def load_or_build_cache(dataset: ImageFileDataset, identity: dict, cache_dir: Path, progress_stream=None,
                        verify_all: bool = False) -> np.ndarray:
    """The (N, 3, R, R) uint8 array of the data set, memory-mapped; built first if missing, stale
    or damaged (`cache_damage`), replacing older caches of the same source.

    One process builds it at a time (a `BuildLock` on `<name>.lock` beside it): another that needs
    it meanwhile (a sweep's runs started at once) waits, said in a line, then maps what was built.
    Where locks do not hold (no flock), each builder writes under temp names of its own and renames,
    so a reader maps either a complete old array or a complete new one."""
    header = cache_header(dataset, identity)
    name = cache_name(header)
    array_path, header_path = cache_dir / f"{name}.npy", cache_dir / f"{name}.json"
    for path in (array_path, header_path):
        if path.exists() and not path.is_file():
            raise WriteError(f"'{path}' is where this data set's decoded-image cache goes, but it is not a file: move "
                             "it away (gan never removes what it did not write), or set data.cache_dir elsewhere")
    header_was_there = os.path.lexists(header_path)
    images = _open_if_built(dataset, header, array_path, verify_all, say_why_not=True)
    if images is not None:
        return images
    with _building(array_path) as lock:
        # (built meanwhile by the process waited for, or, where none was there, by one just finished: read it;
        # one found damaged is looked at again only when waited for, as another sample of it might pass)
        if lock.waited or not header_was_there:
            images = _open_if_built(dataset, header, array_path, verify_all, say_why_not=False)
        return images if images is not None else _build_cache(dataset, identity, header, array_path, progress_stream)


def _open_if_built(dataset: ImageFileDataset, header: dict, array_path: Path, verify_all: bool,
                   say_why_not: bool) -> np.ndarray | None:
    """The cached array memory-mapped when it is there and sound (`cache_damage`), its last use noted;
    None when it needs building (with `say_why_not`, a warning of why, when its files were there)."""
    header_path = array_path.with_suffix(".json")
    stored = _stored_header(header, header_path, array_path)
    if stored is not None:
        images, damage = cache_damage(array_path, stored, verify_all)
        if images is not None:
            note_use(header_path)
            _report_undecodable(dataset, stored.get("undecodable"), array_path)
            return images
        if say_why_not:
            warnings.warn(f"the decoded-image cache '{array_path}' {damage}; rebuilding it", stacklevel=3)
    elif say_why_not and header_path.is_file():  # named by the hash of what it should say: edited, damaged, or its array gone
        what = (_unreadable(header_path) or "is not a JSON object" if _read_header(header_path) is None else
                "has no array beside it" if not array_path.is_file() else "does not describe this data set")
        warnings.warn(f"the decoded-image cache header '{header_path}' {what}; rebuilding the cache", stacklevel=3)
    return None


@contextlib.contextmanager
def _building(array_path: Path) -> Iterator[BuildLock]:
    """The cache's `BuildLock` held for the block (waited for, said in a line, while another process
    builds it); WriteError saying what to do where its folder cannot be written."""
    cache_dir = array_path.parent
    lock = BuildLock(cache_dir, array_path.stem, f"the decoded-image cache '{array_path}'")
    made = missing_folders([cache_dir])
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock.__enter__()
    except WriteError as error:  # (a full disk refused the lock's record: its empty file and folders were left)
        remove_unheld_lock(cache_dir / lock.lock_name)
        remove_empty_folders(made)
        if getattr(error.__cause__, "errno", None) not in (errno.ENOSPC, errno.EDQUOT):
            raise  # (a link or a pipe where the lock goes: its own words say what to do)
        raise WriteError(f"the decoded-image cache '{array_path}' cannot be built: {error}; set data.cache_dir to a "
                         "disk with room, or data.cache=\"off\"") from None
    except OSError as error:  # (a shared cache on a read-only disk, found missing or damaged: it cannot be built there)
        remove_empty_folders(made)
        raise _unwritable_folder(array_path, error) from None
    try:
        yield lock
    finally:
        lock.__exit__(None, None, None)


def _unwritable_folder(array_path: Path, error: OSError) -> WriteError:
    return WriteError(f"the decoded-image cache '{array_path}' needs building, but its folder data.cache_dir = "
                      f"'{array_path.parent}' cannot be written ({error.strerror or error}): set data.cache_dir to a "
                      "folder you may write, or data.cache = \"off\" to read the images themselves")


def _kept_by_its_owner(header_path: Path, owner: str, error: OSError) -> WriteError:
    """For a cache to rebuild over another user's header that this user may not remove (a sticky shared
    folder keeps each file its owner's to remove): the folder is writable; the header is in the way."""
    unreadable = _unreadable(header_path) is not None
    may_not = "may neither read nor remove" if unreadable else "may not remove"
    ask = f"ask {owner} to remove it" + (" or to make it and its .npy readable (chmod a+r)" if unreadable else "")
    return WriteError(f"the decoded-image cache header '{header_path}' is another user's ({owner}), which this user "
                      f"{may_not} ({error.strerror or error}), so its cache cannot be rebuilt there: {ask}, or set "
                      "data.cache_dir to a folder of your own")


def _build_cache(dataset: ImageFileDataset, identity: dict, header: dict, array_path: Path,
                 progress_stream) -> np.ndarray:
    """Decode the data set into its cache, with the cache's lock held: the old one and the out-of-date
    caches of the same source removed first, its header written last; the array memory-mapped."""
    cache_dir, header_path = array_path.parent, array_path.with_suffix(".json")
    try:
        header_path.unlink(missing_ok=True)  # the header, written last, marks a complete array
    except OSError as error:
        owner = other_owner(header_path)
        raise (_kept_by_its_owner(header_path, owner, error) if owner else _unwritable_folder(array_path, error)) \
            from None
    _remove_abandoned_temps(cache_dir)
    # Caches of the same source decoded before its files (or gan's format) changed: never read again,
    # and removed before the build, whose disk space they may be holding. (A run mapping one reads on.)
    # A later gan's cache is not out of date: a newer checkout sharing the folder reads it (each removed the other's).
    for older in list_caches(cache_dir):
        if older.name != array_path.stem and same_source(older.header, identity) and not _later_format(older.header):
            print(f"removing the out-of-date cache '{older.array_path}' of this data set "
                  f"({format_bytes(older.size_bytes)})", file=sys.stderr)
            try:
                older.remove()
            except OSError as error:  # (a file made immutable, another user's): the new cache is built beside it
                warnings.warn(f"the out-of-date cache '{older.array_path}' could not be removed "
                              f"({error.strerror or error}) and stays, unread: remove it yourself to free its space",
                              stacklevel=3)
    checksums = _build(dataset, array_path, progress_stream)
    undecodable = [str(dataset.paths[index]) for index in sorted(dataset.skip_unreadable.failed)]
    try:
        write_text_atomically(header_path, json.dumps({**header, "checksums": checksums, "undecodable": undecodable},
                                                      indent=1))
    except WriteError:  # (a full disk): the array without its header is no cache, and would hold the space
        array_path.unlink(missing_ok=True)  # that the next build needs
        raise
    note_use(header_path)  # (its use stamp made now, for the uses of every user)
    return np.load(array_path, mmap_mode="r")


def note_use(header_path: Path) -> None:
    """A cache's use, now, where `gan cache clear --older-than` reads its last: its header's time (its
    owner's alone to set) and its use stamp's, `<name>.used`, which its owner made writable by whoever may
    write the folder (`share_as_its_folder`), so that a use of another user's counts too: a shared cache
    another user read daily was cleared as unused. Nothing where neither can be set (a shared cache on a
    read-only disk is only read)."""
    stamp = header_path.with_suffix(".used")
    with contextlib.suppress(OSError):
        os.utime(header_path)
    if not os.path.lexists(stamp):  # (a cache an earlier gan built): made by its owner, who may remove it with the cache
        if other_owner(header_path) is None:
            _make_use_stamp(stamp)
    elif is_plain_file(stamp):  # (a link planted there would have its target's time set by every run; a folder: not ours)
        with contextlib.suppress(OSError):
            os.utime(stamp, follow_symlinks=False)


def is_plain_file(path: Path) -> bool:
    """Whether `path` is a regular file itself, not a link to one."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _make_use_stamp(stamp: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(stamp, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        try:
            share_as_its_folder(descriptor, stamp.parent)
        finally:
            os.close(descriptor)


def _report_undecodable(dataset: ImageFileDataset, undecodable, array_path: Path) -> None:
    """A reused cache still names the files that failed to decode when it was built (each slot holds
    the image that stands in for it, as in the uncached path), and counts them as skipped."""
    if not isinstance(undecodable, list) or not undecodable:
        return
    # (on one line, as the decoder names them: a file name may hold a line end or a terminal's escape)
    named = first_few([f"'{one_line(name)}'" for name in undecodable], 20, "; ")
    if dataset.skip_unreadable.strict:  # as the files themselves would be, read without the cache
        raise ImageReadError(f"{len(undecodable)} image file(s) could not be decoded when the cache '{array_path}' "
                             f"was built: {named} (data.strict / --strict makes this an error)")
    warnings.warn(f"{len(undecodable)} image file(s) could not be decoded when the cache '{array_path}' was built "
                  f"and are left out (each slot holds the readable image that stands in for it in training): {named}",
                  UnreadableImageWarning, stacklevel=4)
    # Marked as met, so that reading one from disk (the first preview, say) neither warns nor counts it again.
    skip, index_of = dataset.skip_unreadable, {str(path): index for index, path in enumerate(dataset.paths)}
    for name in undecodable:
        index = index_of.get(name)
        if index is None:  # (a header of other files would not have matched: counted all the same)
            skip.skipped_at_scan += 1
        else:
            skip.failed.add(index)
            skip.failed_anywhere[index] = True


def _read_header(path: Path) -> dict | None:
    try:
        header = json.loads(path.read_text())
    except (ValueError, OSError, RecursionError):
        return None  # missing or damaged: the cache is rebuilt
    return header if isinstance(header, dict) else None


def _unreadable(path: Path) -> str | None:
    """Why `path` cannot be read by this user (a shared cache folder another user wrote under umask
    077), or None when it can."""
    try:
        with open(path, "rb"):
            return None
    except OSError as error:
        return unreadable_by_this_user(path, error)


def _remove_abandoned_temps(cache_dir: Path) -> None:
    """Temp files of builds whose process is gone (killed, crashed): they can be gigabytes.
    `may_be_building` keeps those of a live build, this machine's or another's sharing the folder.
    And the lock files such builds left, which no process holds."""
    for temp in cache_dir.glob("*.tmp"):  # <name>.npy.<pid>.<host>.tmp, <name>.json.<pid>.<host>.<random>.tmp
        if _writer_pid(temp) is not None and temp.is_file() and not may_be_building(temp):
            _remove_or_warn(temp)
    for lock in cache_dir.glob("*.lock"):
        if LOCK_NAME.fullmatch(lock.name):
            with contextlib.suppress(OSError):  # (another user's in a sticky folder: a few bytes, locked as it is)
                remove_unheld_lock(lock)


def _remove_or_warn(temp: Path) -> None:
    """Remove a dead build's temp; one this user may not remove (another user's, in a sticky folder) is
    warned of, with its owner, and stays: the folder is writable, and this build goes on beside it."""
    try:
        temp.unlink(missing_ok=True)
    except OSError as error:
        owner = other_owner(temp)
        whose, ask = (f", another user's ({owner}),", f"ask {owner} to remove it") if owner else ("", "remove it yourself")
        warnings.warn(f"the temp file '{temp}' of a decoded-image cache build that died{whose} could not be removed "
                      f"({error.strerror or error}) and stays, holding {format_bytes(file_size(temp))}: {ask} to "
                      "free that space", stacklevel=2)


def _writer_pid(temp: Path) -> int | None:
    """The pid in a temp file's name (`TEMP_NAME`)."""
    match = TEMP_NAME.fullmatch(temp.name)
    return int(match["pid"]) if match else None


def _build(dataset: ImageFileDataset, array_path: Path, progress_stream) -> list[str]:
    """Decode the data set into `array_path`; returns the checksums of its chunks."""
    count, size = len(dataset), dataset.resolution
    print(f"decoding {count} images once into the cache '{array_path}' ({format_bytes(count * 3 * size * size)})",
          file=sys.stderr)
    temp = array_path.with_suffix(f".npy.{os.getpid()}.{host_tag()}.tmp")  # no file another process has open
    free_before = None
    try:
        array = np.lib.format.open_memmap(temp, mode="w+", dtype=np.uint8, shape=(count, 3, size, size))
        free_before = _free_bytes(temp.parent)  # (the temp still sparse: what the claim may take)
        _claim_space(temp)
        progress = Progress(count, 0, progress_stream, unit="image", log_interval=10.0)  # (a log: a line per 10 s)
        shown_at = time.perf_counter()
        for index in range(count):
            # an undecodable file gets the readable image that stands in for it uncached
            image = dataset.skip_unreadable(dataset.load, index, count)
            array[index] = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
            # by time, not count: large photos or a network disk decode a few a second (every 500th was a
            # silent minute); a terminal's line is redrawn each second, a log's is Progress's to space
            if index == count - 1 or time.perf_counter() - shown_at >= PROGRESS_S:
                progress.update(index + 1)
                shown_at = time.perf_counter()
        progress.close()
        checksums = list(chunk_checksums(array).values())
        array.flush()
        del array
        os.replace(temp, array_path)
    except (ImageReadError, ProcessLimitError):  # (OSErrors, but of reading: --strict, a folder gone, no files left)
        temp.unlink(missing_ok=True)
        raise
    except OSError as error:
        # the map, until dropped, holds the file's blocks, unlinked or not: the free space said was 0.0 MiB
        array = None  # noqa: F841 (dropped, not read)
        temp.unlink(missing_ok=True)
        if isinstance(error, FileNotFoundError) and not temp.exists() and array_path.parent.is_dir():
            raise WriteError(f"the decoded-image cache '{array_path}' was being built in '{temp.name}', which another "
                             "process removed meanwhile (gan cache clear, or a build of another machine or container "
                             "that took it for a dead one's): run again, or give this run a data.cache_dir of its "
                             "own") from error
        needed = count * 3 * size * size
        advice = _advice_for_an_unwritten_array(error, needed, free_before)
        raise WriteError(f"could not write the decoded-image cache '{array_path}' ({format_bytes(needed)} needed, "
                         f"{free_space(array_path.parent)}): {error}; {advice}, or data.cache=\"off\"") from error
    except BaseException:  # Ctrl-C or SIGTERM mid-build: no half-built array of gigabytes left behind
        temp.unlink(missing_ok=True)
        raise
    return checksums


def _free_bytes(folder: Path) -> int | None:
    """The free bytes on the disk holding `folder`; None where that cannot be told."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _advice_for_an_unwritten_array(error: OSError, needed: int, free_before: int | None) -> str:
    """Advice for an array that could not be written: a file size limit to raise; where the disk had
    room as the build began, a writer that took it meanwhile (its temp gone since, the free space said
    may be room again); otherwise a disk with room."""
    limit = file_size_limit_said() if error.errno == errno.EFBIG else None
    if limit:
        return f"{limit}: raise the limit"
    if error.errno == errno.ENOSPC and free_before is not None and free_before >= needed:
        return (f"the disk had {free_before / 2**20:.1f} MiB free as this build began, room for it: another writer "
                "filled it meanwhile (another cache's build, another program; what it held may be free again by "
                "now): run again once it is done")
    return "set data.cache_dir to a disk with room"


def _claim_space(path: Path) -> None:
    """Claim the disk space of the sparse file `path` now: a full disk is an error here, not a SIGBUS
    that kills the process in silence when a page of its memory map is written later."""
    with open(path, "rb+") as handle:
        size = os.fstat(handle.fileno()).st_size
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(handle.fileno(), 0, size)
        elif shutil.disk_usage(path.parent).free < size:  # (macOS: no fallocate; checked, then written)
            raise OSError(errno.ENOSPC, f"{size:,} bytes are needed", str(path))


@dataclass
class CacheEntry:
    """One decoded-image cache in a cache folder, as `gan cache list` shows it."""
    name: str
    array_path: Path
    header_path: Path
    header: dict

    @property
    def size_bytes(self) -> int:
        return sum(file_size(path) for path in (self.array_path, self.header_path))

    @property
    def stamp_path(self) -> Path:
        return self.header_path.with_suffix(".used")  # (`note_use`)

    @property
    def last_used(self) -> float:
        """The last use by any user: its header's time or its use stamp's, the later (`note_use`; a stamp that
        is not a plain file is none)."""
        return max(modified_at(self.header_path), modified_at(self.stamp_path) if self.has_stamp else 0.0)

    @property
    def has_stamp(self) -> bool:
        return is_plain_file(self.stamp_path)

    @property
    def files(self) -> list[Path]:
        """Its files, in the order `remove` removes them: its use stamp where that is a plain file (a folder or
        link of that name is not gan's)."""
        return [self.header_path, self.array_path, *([self.stamp_path] if self.has_stamp else [])]

    @property
    def array_not_a_file(self) -> bool:
        """Whether a folder (or another thing not gan's to remove) stands where the array goes."""
        return os.path.lexists(self.array_path) and not self.array_path.is_file()

    def remove(self) -> None:
        """Remove the cache, its header first (it marks the array complete), its use stamp last; nothing of
        it when its array is not a file (`array_not_a_file`): the header then says what the folder there is."""
        if self.array_not_a_file:
            raise IsADirectoryError(errno.EISDIR, f"it {ARRAY_NOT_A_FILE}, so not gan's to remove", str(self.array_path))
        for path in self.files:
            path.unlink(missing_ok=True)


def file_size(path: Path) -> int:
    """Bytes of a file; 0 when it is gone (another process may remove it while we look)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def modified_at(path: Path) -> float:
    """Last modification time; 0 (long ago) when the file is gone."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def gan_header(header_path: Path) -> dict | None:
    """The header at `header_path` if gan wrote it, else None. Proof: gan names a cache by the hash
    of its header (`cache_name`), so a JSON object that hashes to its own file name is gan's; the
    fields `cache_damage` reads must also have their types."""
    if not NAME.fullmatch(header_path.stem) or not header_path.is_file() or file_size(header_path) > MAX_HEADER_BYTES:
        return None
    header = _read_header(header_path)
    if header is None or cache_name(header) != header_path.stem:
        return None
    sizes = (header.get("count"), header.get("resolution"))
    checksums = header.get("checksums", [])
    if not all(type(size) is int and size >= 0 for size in sizes) or not isinstance(checksums, list):
        return None
    return header


def is_cache_array(path: Path) -> bool:
    """Whether `path` is named as gan names a cache's array and holds what gan writes there: an
    .npy of uint8 (N, 3, R, R). Only its header is read, so a cut-short array still counts."""
    if not NAME.fullmatch(path.stem) or path.suffix != ".npy" or not path.is_file():
        return False
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            shape, _, dtype = read_header[version](handle)
    except (OSError, ValueError, SyntaxError, EOFError, KeyError):  # not an .npy numpy.save or gan writes
        return False
    return dtype == np.uint8 and len(shape) == 4 and shape[1] == 3 and shape[2] == shape[3]


def may_be_building(path: Path) -> bool:
    """Whether a build may still be writing `path` (a temp file, or an array about to get its header):
    for an array's temp this machine wrote (its name holds `host_tag`), whether the process its name
    gives is alive; otherwise, also whether it was written in the last QUIET_SECONDS (a folder
    shared over the network may hold another machine's build, whose pid means nothing here)."""
    match = TEMP_NAME.fullmatch(path.name)
    alive = match is not None and process_alive(int(match["pid"]))
    if match is not None and match["host"] == host_tag():
        return alive
    return alive or time.time() - modified_at(path) < QUIET_SECONDS


@dataclass
class CacheFolder:
    """What a cache folder holds, sorted by what `gan cache` may do with each file."""
    caches: list[CacheEntry]  # complete caches, oldest use first
    leftovers: list[Path]  # gan's, never read again: arrays and use stamps whose header is gone, temps and locks
    # of dead builds
    building: list[Path]  # gan's, but a build may still be writing them (or holds them, its lock): never touched
    foreign: list[Path]  # not provably gan's: never touched


def remove_leftover(path: Path) -> None:
    """Remove a leftover `scan_cache_folder` found; a lock file a build has taken since stays."""
    if LOCK_NAME.fullmatch(path.name):
        remove_unheld_lock(path)
    else:
        path.unlink(missing_ok=True)


def list_caches(cache_dir: Path) -> list[CacheEntry]:
    """The caches in `cache_dir` whose headers gan wrote (`gan_header`), oldest use first."""
    entries = []
    for header_path in cache_dir.glob("*.json") if cache_dir.is_dir() else []:
        header = gan_header(header_path)
        if header is not None:
            entries.append(CacheEntry(header_path.stem, header_path.with_suffix(".npy"), header_path, header))
    return sorted(entries, key=lambda entry: entry.last_used)


def scan_cache_folder(cache_dir: Path) -> CacheFolder:
    """Every file of `cache_dir`, each one a cache's, a leftover, a running build's, or not gan's."""
    caches = list_caches(cache_dir)
    owned = {path for entry in caches for path in entry.files}
    folder = CacheFolder(caches, [], [], [])
    for path in sorted(cache_dir.iterdir()) if cache_dir.is_dir() else []:
        if path in owned:
            continue
        if TEMP_NAME.fullmatch(path.name) and path.is_file():
            (folder.building if may_be_building(path) else folder.leftovers).append(path)
        elif LOCK_NAME.fullmatch(path.name) and is_plain_file(path):
            (folder.building if lock_is_held(path) else folder.leftovers).append(path)  # (a killed build's: not held)
        elif STAMP_NAME.fullmatch(path.name) and is_plain_file(path):
            # (its cache gone, or being rebuilt, whose build holds its lock: the stamp goes on with the new header)
            lock = path.with_suffix(".lock")
            (folder.building if lock.is_file() and lock_is_held(lock) else folder.leftovers).append(path)
        elif is_cache_array(path) and not path.with_suffix(".json").exists():
            # an array beside a JSON that is not a gan header is not provably ours
            (folder.building if may_be_building(path) else folder.leftovers).append(path)
        else:
            folder.foreign.append(path)
    return folder


def load_or_build_shared_cache(dataset: ImageFileDataset, identity: dict, cache_dir: Path,
                               group: ProcessGroup = SINGLE_PROCESS, verify_all: bool = False) -> np.ndarray:
    """`load_or_build_cache` under torchrun: the first process of each machine builds (and
    verifies), the others wait at a barrier and then load what it built."""
    builder = group.local_rank == 0
    images = load_or_build_cache(dataset, identity, cache_dir, verify_all=verify_all) if builder else None
    barrier(group)
    return images if images is not None else load_or_build_cache(dataset, identity, cache_dir)


UPLOAD_CHUNK_BYTES = 256 * 2**20  # host memory an upload to the GPU holds at a time


def upload_to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """The cached array as one uint8 tensor on `device`, copied in chunks so host memory stays
    bounded (the array is memory-mapped); a clear error when the GPU cannot hold it."""
    needed = images.nbytes
    advice = ('use data.cache="mmap" (memory-mapped on the host), a lower data.resolution or fewer images '
              "(data.max_images)")
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        if needed > free:
            raise ConfigError(f'data.cache="device" needs {needed / 2**30:.2f} GiB of GPU memory for {len(images)} '
                              f"images of {images.shape[-1]} px; {device} has {free / 2**30:.2f} GiB free of "
                              f"{total / 2**30:.2f} GiB: {advice}")
    try:
        uploaded = torch.empty(images.shape, dtype=torch.uint8, device=device)
    except torch.cuda.OutOfMemoryError:
        raise ConfigError(f'data.cache="device" needs {needed / 2**30:.2f} GiB of GPU memory on {device}, '
                          f"which could not be allocated: {advice}") from None
    per_chunk = max(1, UPLOAD_CHUNK_BYTES // max(1, images[0].nbytes))
    for start in range(0, len(images), per_chunk):
        chunk = torch.from_numpy(np.array(images[start:start + per_chunk]))  # a writable copy of the mapped pages
        uploaded[start:start + len(chunk)].copy_(chunk)
    return uploaded


def _on_device(values: list, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small host list as a tensor on `device`; to a GPU through pinned memory, without a sync."""
    tensor = torch.tensor(values, dtype=dtype)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


def _flip_and_scale(images: torch.Tensor, flips: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, R, R) -> float in [-1, 1] by the table `levels` (see `signed_levels`), rows where
    `flips` is true mirrored, on their device."""
    mirrored = torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
    return levels[mirrored.long()]


class CachedBatches:
    """Endless batches `{"image": (B, 3, R, R) float in [-1, 1]}` gathered from a cached array.

    Sample order and flips come from the same ResumableSampler and per-sample seeds as the
    uncached loader, so the two paths give identical batches and resume the same way.
    Where the images are and what crosses to the GPU per batch:
    - on the device (`data.cache = "device"`): the whole array; only the batch's indices
      and flips cross, through pinned memory, so a step never waits for the host.
    - memory-mapped, training on CUDA: the batch's uint8 rows are gathered straight into
      pinned memory, copied asynchronously, and flipped and scaled on the GPU.
    - memory-mapped, training on the CPU: rows are flipped on uint8 and scaled into two
      reused buffers (allocating a fresh 12 MB tensor per batch costs more than filling
      it): a batch stays valid until the next-but-one is drawn, which the training loop,
      one step per batch, respects.
    """

    def __init__(self, images: np.ndarray, batch_size: int, seed: int, start_sample: int, hflip: bool,
                 device: torch.device, on_device: bool, group: ProcessGroup = SINGLE_PROCESS):
        sampler, batch_size = shard(ResumableSampler(len(images), seed, start=start_sample), batch_size, group)
        self.batch_size, self.hflip, self.device = batch_size, hflip, device
        # The mapped file, held open: cut short in place under the run (a copy or rsync --inplace over it),
        # reading past its new end would kill the process with SIGBUS, its steps since the checkpoint lost
        filename = getattr(images, "filename", None) if not on_device else None
        self.mapped = open(filename, "rb") if filename else None  # (open for the run's length)
        self.mapped_end = getattr(images, "offset", 0) + images.nbytes
        # np.asarray: a plain view of the memory map (its subclass costs time on every gather)
        self.images = upload_to_device(images, device) if on_device else np.asarray(images)
        self.samples: Iterator[tuple[int, int]] = iter(sampler)
        on_host_for_cpu = not on_device and device.type == "cpu"
        self.buffers = ([torch.empty(batch_size, *images.shape[1:], dtype=torch.float32) for _ in range(2)]
                        if on_host_for_cpu else [])  # (float32 as the networks, whatever the default dtype)
        self.levels = signed_levels(device)
        self.drawn = 0

    def __iter__(self) -> "CachedBatches":
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        keys = [next(self.samples) for _ in range(self.batch_size)]
        indices = [index for index, _ in keys]
        flips = [self.hflip and random.Random(seed).random() < 0.5 for _, seed in keys]
        self.drawn += 1
        if isinstance(self.images, torch.Tensor):
            rows = self.images[_on_device(indices, torch.int64, self.device)]
            return {"image": _flip_and_scale(rows, _on_device(flips, torch.bool, self.device), self.levels)}
        if self.mapped is not None and os.fstat(self.mapped.fileno()).st_size < self.mapped_end:  # (1 us)
            raise ImageReadError(f"the decoded-image cache '{self.mapped.name}' was cut short while this run read it "
                                 f"({os.fstat(self.mapped.fileno()).st_size} of its {self.mapped_end} bytes: a copy or "
                                 "truncate over it?); the next start rebuilds it")
        if self.device.type == "cuda":
            pinned = torch.empty((self.batch_size, *self.images.shape[1:]), dtype=torch.uint8, pin_memory=True)
            np.take(self.images, indices, axis=0, out=pinned.numpy())
            rows = pinned.to(self.device, non_blocking=True)
            return {"image": _flip_and_scale(rows, _on_device(flips, torch.bool, self.device), self.levels)}
        rows = torch.from_numpy(np.take(self.images, indices, axis=0))  # memory-mapped: copy just these rows
        for row, flip in enumerate(flips):  # on uint8, row by row: the cheapest flip here
            if flip:
                rows[row] = rows[row].flip(-1)
        buffer = self.buffers[self.drawn % 2]
        return {"image": uint8_to_signed(rows, out=buffer)}
