"""What a folder translation records in its OUTPUT, so that `gan translate --continue` goes on with it.

A stop at image 90,000 of 100,000 left --overwrite, which translated every image again. The record
names the weights (file, step, size, network), the INPUT folder and the settings that shape each
output, and its time is the translation's start; --continue keeps the outputs written since (each
whole, under a temp name and renamed) and translates the rest, and refuses an OUTPUT whose record
is of another translation: outputs of other weights or settings would sit among the new ones, unsaid.
"""

from __future__ import annotations

import json
from pathlib import Path

from gan.core.files import another_unicode_form, write_text_atomically

RECORD_NAME = ".gan-translation.json"  # (hidden: not an image of OUTPUT read as INPUT later, nor listed by it)


class ContinueRefused(ValueError):
    """--continue over an OUTPUT that holds no record of this translation."""


def translation_record(checkpoint: Path, step: int, source: Path, settings: dict) -> dict:
    """The record of a translation of folder `source` with the weights of `checkpoint` at `step`, and
    the options that shape each output (`settings`: --side-by-side, --tile, ...)."""
    return {"checkpoint": str(Path(checkpoint).resolve()), "step": step,
            "checkpoint_bytes": Path(checkpoint).stat().st_size, "input": str(Path(source).resolve()),
            "settings": settings}


def write_record(output: Path, record: dict) -> None:
    write_text_atomically(output / RECORD_NAME, json.dumps(record, indent=2) + "\n")


def left_to_translate(pairs: list[tuple[Path, Path]], output: Path,
                      record: dict) -> tuple[list[tuple[Path, Path]], int, int]:
    """(the pairs whose output is still to write, outputs kept, outputs to write again): an output
    is kept when it is there and not older than the record, written as the translation began (one
    older is another's: an --overwrite stopped before replacing it), nor than its input (edited
    since). ContinueRefused when OUTPUT's record is missing or of another translation."""
    path = output / RECORD_NAME
    if not output.is_dir():
        raise ContinueRefused(f"--continue: OUTPUT '{output}' does not exist{another_unicode_form(output)}: there is "
                              "no translation there to go on with")
    try:
        began = path.stat().st_mtime_ns  # (the file system's clock, as the outputs' times)
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContinueRefused(f"--continue: '{output}' holds no record of a translation gan began there ({RECORD_NAME}, "
                              "written by a folder translation): its files may be anyone's; pass --overwrite to "
                              "translate every image again") from None
    except (OSError, ValueError, RecursionError) as error:
        raise ContinueRefused(f"--continue: cannot read '{path}' ({error}); pass --overwrite to translate every image "
                              "again") from None
    differences = [f"{key} {_shown(stored.get(key) if isinstance(stored, dict) else None)} then, "
                   f"{_shown(value)} now" for key, value in record.items()
                   if not isinstance(stored, dict) or stored.get(key) != value]
    if differences:
        raise ContinueRefused(f"--continue: '{output}' holds a translation other than this one ({'; '.join(differences)}): "
                              "its outputs would be mixed with this one's; give the same checkpoint, INPUT and "
                              "options, or another OUTPUT, or pass --overwrite to translate every image again")
    left, kept, again = [], 0, 0
    for image, output_path in pairs:
        done = _modified_ns(output_path)
        if done is not None and done >= max(began, _modified_ns(image) or 0):
            kept += 1
            continue
        again += done is not None
        left.append((image, output_path))
    return left, kept, again


def _modified_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _shown(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else f"'{value}'"
