"""What a folder translation records in its OUTPUT, so that `gan translate --continue` goes on with it.

A stop at image 90,000 of 100,000 left --overwrite, which translated every image again. As it
begins, a translation writes its record (one per INPUT folder in OUTPUT): the weights (file, step,
SHA-256, network), the INPUT folder and the settings that shape each output. As it writes each
output (whole, under a temp name and renamed), it appends a line to its log: the output's name and
size, and the input's identity (device, inode, size, times). --continue keeps an output only where the log says this translation
wrote it, at that size, from an input unchanged since; it translates the rest, and refuses an
OUTPUT whose record is of another translation. Times alone could not tell: an --overwrite stopped
early left another checkpoint's outputs newer than their inputs, a `cp -r` of OUTPUT made every
file new, and `mv` or `cp -p` put in an edited input with an old time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import IO

from gan.core.files import another_unicode_form, file_sha256, write_text_atomically
from gan.inference.outputs import file_stamp

RECORD_PREFIX = ".gan-translation-"  # (hidden: not an image of OUTPUT read as INPUT later, nor listed by it)


def record_files(output: Path, source: Path | str) -> tuple[Path, Path]:
    """The record and log in OUTPUT of a translation of the INPUT folder `source`: one pair per INPUT
    folder, so that another folder translated into the same OUTPUT leaves a stopped one's to go on with."""
    key = hashlib.sha256(str(Path(source).resolve()).encode(errors="surrogateescape")).hexdigest()[:12]
    return output / f"{RECORD_PREFIX}{key}.json", output / f"{RECORD_PREFIX}{key}.log"


class ContinueRefused(ValueError):
    """--continue over an OUTPUT that holds no record of this translation."""


def translation_record(checkpoint: Path, step: int, source: Path, settings: dict) -> dict:
    """The record of a translation of folder `source` with the weights of `checkpoint` at `step`, and
    the options that shape each output (`settings`: --side-by-side, --tile, ...). The weights by their
    digest: a run retrained in place writes a checkpoint of the same name, step and size."""
    return {"checkpoint": str(Path(checkpoint).resolve()), "step": step,
            "checkpoint_sha256": file_sha256(Path(checkpoint)), "input": str(Path(source).resolve()),
            "settings": settings}


class TranslationLog:
    """The record in OUTPUT, and the log of the outputs written, appended as each is in place."""

    def __init__(self, output: Path, record: dict):
        self.output, self.record = output, record
        self.record_path, self.log_path = record_files(output, record["input"])
        self.handle: IO[str] | None = None
        self.broken = False

    def begin(self) -> None:
        """A new translation: its record, and an empty log (an earlier one's lines are not this one's)."""
        self.output.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.record_path, json.dumps(self.record, indent=2) + "\n")
        write_text_atomically(self.log_path, "")

    def remove(self) -> None:
        """Remove the record and log of a translation that wrote nothing."""
        for path in (self.record_path, self.log_path):
            path.unlink(missing_ok=True)

    def written(self, image: Path, output_path: Path) -> None:
        """Log an output in place (a line lost to a crash costs that output's translation again, no more).
        A log the disk refuses is given up with a warning, not the translation: --continue then
        translates again what it does not list."""
        if self.broken:
            return
        try:
            if self.handle is None:
                self.handle = open(self.log_path, "a", encoding="utf-8", errors="surrogateescape")
            self.handle.write(json.dumps({"output": _relative(output_path, self.output), "bytes": _size(output_path),
                                          "input": _identity(image)}) + "\n")
            self.handle.flush()
        except OSError as error:
            self.broken = True
            warnings.warn(f"cannot write '{self.log_path}' ({error.strerror or error}): the translation goes on, and "
                          "a --continue after a stop translates again the outputs it does not list", stacklevel=2)

    def close(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):  # (a full disk at the last flush: said as the line was lost)
                self.handle.close()
            self.handle = None


def left_to_translate(pairs: list[tuple[Path, Path]], output: Path,
                      record: dict) -> tuple[list[tuple[Path, Path]], int, int]:
    """(the pairs whose output is still to write, outputs kept, outputs there to write again): an
    output is kept where the log says this translation wrote it, at the size it has, from an input
    unchanged since. ContinueRefused when OUTPUT's record is missing or of another translation."""
    if not output.is_dir():
        what = "is a file, not a folder" if output.exists() else f"does not exist{another_unicode_form(output)}"
        raise ContinueRefused(f"--continue: OUTPUT '{output}' {what}: there is no translation there to go on with")
    record_path, log_path = record_files(output, record["input"])
    stored = _stored_record(record_path)
    differences = [f"{key} {_shown(stored.get(key))} then, {_shown(value)} now" for key, value in record.items()
                   if stored.get(key) != value]
    if differences:
        raise ContinueRefused(f"--continue: '{output}' holds a translation other than this one ({'; '.join(differences)}): "
                              "its outputs would be mixed with this one's; give the same checkpoint, INPUT and "
                              "options, or another OUTPUT, or pass --overwrite to translate every image again")
    logged = _logged(log_path)
    left, kept, again = [], 0, 0
    for image, output_path in pairs:
        entry = logged.get(_relative(output_path, output))
        there = _size(output_path)
        if entry is not None and there is not None and entry.get("bytes") == there and \
                entry.get("input") == _identity(image):
            kept += 1
            continue
        again += there is not None
        left.append((image, output_path))
    return left, kept, again


def _stored_record(path: Path) -> dict:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContinueRefused(f"--continue: '{path.parent}' holds no record of a translation of this INPUT gan began "
                              f"there ({path.name}, written by a folder translation): its files may be anyone's; pass "
                              "--overwrite to translate every image again") from None
    except IsADirectoryError:
        raise ContinueRefused(f"--continue: '{path}' is a folder, where gan keeps a translation's record: remove it, "
                              "then pass --overwrite to translate every image again") from None
    except (OSError, ValueError, RecursionError) as error:
        raise ContinueRefused(f"--continue: cannot read '{path}' ({error}); pass --overwrite to translate every image "
                              "again") from None
    if not isinstance(stored, dict):
        raise ContinueRefused(f"--continue: '{path}' is not a record gan wrote; pass --overwrite to translate every "
                              "image again")
    return stored


def _logged(path: Path) -> dict[str, dict]:
    """The log's entries by output name, the last of each; a line cut short (a crash) is left out."""
    entries: dict[str, dict] = {}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("output"), str):
                    entries[entry["output"]] = entry
    except OSError:  # (none: nothing is known to be this translation's)
        pass
    return entries


def _identity(path: Path) -> list[int] | None:
    """An input as its output was made from it (a link re-pointed names another file), as JSON keeps it."""
    stamp = file_stamp(path)
    return list(stamp) if stamp is not None else None


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _relative(path: Path, folder: Path) -> str:
    return os.path.relpath(path, folder)


def _shown(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else f"'{value}'"
