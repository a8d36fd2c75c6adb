"""Checkpoints: written atomically, read without unpickling code, found by step.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it
loads with `torch.load(weights_only=True)`. Files are `checkpoint-<step>.pt` in the
run directory; the newest that loads is the one a resume continues from. With
`train.keep_best`, `best.pt` beside them is the checkpoint best by a metric so far, and
`best.json` says which metric, its value and the step.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import warnings
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from gan.core.files import LOCK_NAME, MAX_NAME_BYTES, name_cut, run_order, write_atomically, write_text_atomically
from gan.core.memory import out_of_memory
from gan.core.wording import printable

FORMAT = "gan.checkpoint/1"
# An export's (gan/inference/exported.py), and the extensions only exports have, named here for messages.
EXPORT_FORMAT = "gan.export/1"
EXPORT_SUFFIXES = (".safetensors", ".onnx")
BEST_NAME, BEST_RECORD = "best.pt", "best.json"
METRICS_RECORD = "metrics.jsonl"  # a run's generative evaluations, one JSON row each
_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")


def written_by() -> dict[str, str]:
    """The versions of gan and torch writing a checkpoint or export (kept in it: a file's numbers
    compared across versions, or a network that no longer fits, can then be traced to them)."""
    from gan import __version__

    return {"gan": __version__, "torch": str(torch.__version__)}  # (a TorchVersion would be pickled as an object)


def writers_of(state: dict[str, Any]) -> dict[str, str] | None:
    """A loaded file's `written_by`, its versions as short strings (None where it names none: earlier
    versions wrote none, and an edited file may hold anything there)."""
    versions = state.get("written_by")
    if not isinstance(versions, dict):
        return None
    return {str(name)[:20]: str(version)[:40] for name, version in versions.items()}


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message names the file."""


class CheckpointVanished(CheckpointError):
    """The checkpoint is not there (any more): a run that trains on may have pruned it as it was chosen."""


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / f"checkpoint-{step:08d}.pt"


def checkpoint_step(path: Path) -> int | None:
    """The step in a `checkpoint-<step>.pt` name; None for any other file."""
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(run_dir: Path | str) -> list[Path]:
    """Checkpoints in `run_dir`, oldest step first by their names (`checkpoints_by_content` reads
    the steps they hold)."""
    found = [(step, p) for p in Path(run_dir).glob("checkpoint-*.pt")
             if (step := checkpoint_step(p)) is not None and not p.is_dir()]  # (a folder of that name is no file)
    return [path for _, path in sorted(found)]


def quiet_torch_load(path: Path | IO[bytes], **options: Any) -> Any:
    """torch.load with weights_only=True, without torch's warnings about the pickle protocol of a file
    that is no torch zip (a raw pickle) or about a TorchScript archive it would pass to torch.jit.load:
    gan's own error says what the file is (`unloadable_reason`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        warnings.filterwarnings("ignore", message="'torch.load' received a zip file that looks like a TorchScript")
        return torch.load(path, weights_only=True, **options)


def stored_entry(path: Path, key: str) -> Any:
    """One entry of a checkpoint, read cheaply (memory-mapped: the tensors are not read); None for a
    file that does not load as a checkpoint of this format."""
    try:
        state = quiet_torch_load(path, map_location="cpu", mmap=True)
    except Exception:  # noqa: BLE001 - a damaged or foreign file: the resume's fallback reports it
        return None
    return state.get(key) if isinstance(state, dict) and state.get("format") == FORMAT else None


def is_torch_file(path: Path) -> bool:
    """Whether `path` starts as torch.save's files do (a zip archive, or an older pickle): a checkpoint or a
    .pt export under another extension (`.safetensors`, say) is read by its contents, not its name."""
    try:
        with open(path, "rb") as file:
            return file.read(len(_ZIP_MAGIC)).startswith((_ZIP_MAGIC, _LEGACY_MAGIC))
    except OSError:
        return False


def is_safetensors_file(path: Path) -> bool:
    """Whether the regular file `path` starts as a safetensors file does: an 8-byte little-endian
    header length that fits the file, then the header's JSON object."""
    try:
        if not path.is_file():  # (a FIFO is not opened: that would wait for a writer)
            return False
        with open(path, "rb") as file:
            start, size = file.read(9), os.fstat(file.fileno()).st_size
    except OSError:
        return False
    return len(start) == 9 and 2 <= int.from_bytes(start[:8], "little") <= size - 8 and start[8:9] == b"{"


def holds_training_state(path: Path) -> bool:
    """Whether `path` is a checkpoint `gan train` wrote, whatever its name (a user's copy kept as
    `celeba_final.pt`): read cheaply, from its zip magic, then memory-mapped."""
    try:
        with open(path, "rb") as file:
            if file.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
                return False
    except OSError:
        return False
    return stored_entry(path, "format") is not None


def stored_step(path: Path) -> int | None:
    """The step a checkpoint holds; None for a file that does not load as a checkpoint of this format."""
    step = stored_entry(path, "step")
    return step if isinstance(step, int) else None


def holds_a_run(folder: Path) -> bool:
    """Whether `folder` is a run directory: its config.toml, or checkpoints whose config stands in
    for one gone."""
    return (folder / "config.toml").is_file() or bool(folder.is_dir() and list_checkpoints(folder))


def made_by_gan_train(folder: Path) -> bool:
    """Whether `folder` is a run `gan train` made: its config.toml and beside it what a run writes from
    its start on (its lock first, then its event file, samples/, metrics.jsonl, checkpoints); a
    config.toml alone is a person's. For folders found inside another, not named as runs
    (`holds_a_run` takes those at their word): `--run-dir .` called a user's photos/ with a
    config.toml of its own a run."""
    return (folder / "config.toml").is_file() and (
        (folder / LOCK_NAME).is_file() or any(folder.glob("events.out.tfevents.*")) or (folder / "samples").is_dir()
        or (folder / METRICS_RECORD).is_file() or bool(list_checkpoints(folder)))


_SET_ASIDE_MARK = ".abandoned-"


def set_aside_path(run_dir: Path, number: int) -> Path:
    """Where `gan train --run-dir` moves a start that died before its first checkpoint (its
    `number`th): beside it, for a person to look at, and no run of a sweep's comparison. A name
    with no room left for the mark (a legal one of 244 to 255 bytes) is cut to make it: whole, the
    new name was too long to make, and the folder could never be started again."""
    mark = f"{_SET_ASIDE_MARK}{number}"
    return run_dir.with_name(name_cut(run_dir.name, MAX_NAME_BYTES - len(mark)) + mark)


def is_set_aside(folder: Path) -> bool:
    """Whether `folder` is a start `set_aside_path` named."""
    return re.fullmatch(rf".+{re.escape(_SET_ASIDE_MARK)}\d+", folder.name) is not None


def trained_config(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """(checkpoint, config) of the newest checkpoint in `run_dir` that holds its run's config: the
    settings the run trained with, which a config.toml cut short or removed lacks. None when none does."""
    for path in reversed(list_checkpoints(run_dir)):
        config = stored_entry(path, "config")
        if isinstance(config, dict):
            return path, config
    return None


def checkpoints_by_content(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in `run_dir`, oldest first by the step each holds, with a
    warning for a name that disagrees (a copy renamed by hand). A file that does not load keeps
    the step of its name, so that a resume tries it in its place and reports it."""
    return [(step, path) for step, path, _ in _read_checkpoint_steps(run_dir)]


def _read_checkpoint_steps(run_dir: Path) -> list[tuple[int, Path, bool]]:
    """checkpoints_by_content's list, each with whether the file loads as a checkpoint."""
    for folder in sorted(path for path in run_dir.glob("checkpoint-*.pt") if path.is_dir()):
        warnings.warn(f"'{folder}' is a folder named like a checkpoint: it is passed over, and a checkpoint of its "
                      "step cannot be saved in its place; move it out of the run directory", stacklevel=3)
    found = []
    for path in list_checkpoints(run_dir):
        named, held = checkpoint_step(path), stored_step(path)
        if held is not None and held != named:
            warnings.warn(f"'{path}' holds step {held}, not the {named} of its name: it is ordered by the step "
                          "it holds", stacklevel=3)
        found.append((named if held is None else held, path, held is not None))
    # of two holding one step, the one whose name says so is the newer (the other is a copy from elsewhere)
    return sorted(found, key=lambda item: (item[0], checkpoint_step(item[1]) == item[0], item[1]))


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` atomically (gan/core/files.py): a crash at any moment leaves either
    the old file or the complete new one. On failure (disk full, say) the temp file is
    removed and WriteError raised, naming the path and the free space."""
    write_atomically(path, lambda temp: torch.save(state, temp))


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu",
                    formats: tuple[str, ...] = (FORMAT,)) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (weights only: no code is unpickled);
    `formats` are the values of its "format" entry accepted (an export's too, say)."""
    path = Path(path)  # (text from Python, as a notebook gives it)
    if not path.is_file():
        if path.is_symlink() and not path.exists():  # (not pruned: a link whose file was moved or deleted)
            raise CheckpointError(f"checkpoint '{path}' is a link to '{os.readlink(path)}', which does not exist")
        raise CheckpointVanished(f"checkpoint '{path}' does not exist")
    if path.suffix.lower() in EXPORT_SUFFIXES and EXPORT_FORMAT not in formats and not is_torch_file(path):
        raise CheckpointError(_export_given(path))
    try:
        # (one open file for the load and the checksums: a file renamed over `path` meanwhile, a run's new
        # best.pt, is not checked in the place of the one loaded)
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after the checksums
    except FileNotFoundError:  # there a moment ago
        raise CheckpointVanished(f"checkpoint '{path}' was removed as it was read (a run training on prunes its "
                                 "older checkpoints, and a resume sets best.pt aside): run the command again") from None
    with handle:
        return _loaded(path, handle, map_location, formats)


def _loaded(path: Path, handle: IO[bytes], map_location: str | torch.device, formats: tuple[str, ...]) -> dict[str, Any]:
    """`load_checkpoint` of the file open as `handle` (named `path` in messages)."""
    try:
        state = quiet_torch_load(handle, map_location=map_location)
    except Exception as error:  # torch raises many types for truncated or foreign files
        if out_of_memory(error):  # (no damage: a good checkpoint called corrupt might be deleted)
            raise
        # torch's own text can advise weights_only=False, which would run the file's code: never pass it on
        reason = unloadable_reason(path, error)
        if reason == _TORCHSCRIPT:  # (whole, not corrupt: the same file downloaded again is refused again)
            raise CheckpointError(f"'{path}' is {_TORCHSCRIPT}, not a gan checkpoint: expected "
                                  f"{_expected(formats)}") from None
        # a damaged torch file is most likely a checkpoint cut short: what a command takes would not help
        expected = "" if reason == _DAMAGED else f": expected {_expected(formats)}"
        raise CheckpointError(f"'{path}' is corrupt or not a gan checkpoint ({reason}){expected}") from None
    if isinstance(state, dict) and state.get("format") == EXPORT_FORMAT and EXPORT_FORMAT not in formats:
        raise CheckpointError(_export_given(path, state.get("source")))
    if not isinstance(state, dict) or state.get("format") not in formats:
        newer_or_older = other_version(path, state.get("format") if isinstance(state, dict) else None, formats)
        raise CheckpointError(newer_or_older
                              or f"'{path}' is not a gan checkpoint ({_held(state)}): expected {_expected(formats)}")
    handle.seek(0)
    damaged = failed_checksum(handle)
    if damaged:
        raise CheckpointError(f"'{path}' is corrupt: its record '{damaged}' fails its checksum (the file was damaged "
                              "after it was written, on disk or in a copy)")
    return state


def failed_checksum(path: Path | IO[bytes]) -> str | None:
    """The first record of a torch zip file (a path, or the file open) whose bytes fail their CRC-32,
    or None. torch.load does not check them: a flipped bit in the tensors' bytes would load as
    silently wrong weights."""
    if not zipfile.is_zipfile(path):  # torch's legacy format has no checksums to check
        return None
    if hasattr(path, "seek"):
        path.seek(0)  # (is_zipfile read the end of the file)
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        return f"? ({error})"
    # (the archive's top folder is the name torch.save wrote it under: the atomic write's temp name)
    return (damaged.partition("/")[2] or damaged) if damaged else None


# What each "format" entry is, in words, for the messages of files that are none of them.
_FORMAT_WORDS = {FORMAT: ("a checkpoint written by `gan train` (checkpoint-*.pt, best.pt)", "a run directory"),
                 EXPORT_FORMAT: ("an export written by `gan export`",)}
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes zip archives
_LEGACY_MAGIC = b"\x80\x02\x8a"  # ... and wrote pickles before PyTorch 1.6 (older hub weights files)
_DAMAGED = "a damaged or truncated torch file"
_TORCHSCRIPT = "a TorchScript archive (compiled code, which gan does not load)"


def export_source(path: Path) -> str | None:
    """The checkpoint an export was written from, as the JSON `gan export` writes beside it names
    it; None without one."""
    try:
        source = json.loads(path.with_name(path.name + ".json").read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError, AttributeError, RecursionError):  # (RecursionError: nested thousands deep)
        return None
    return printable(source) if isinstance(source, str) else None


def _export_given(path: Path, source: object = None) -> str:
    """The message for an export given where a checkpoint is needed (gan eval, export, train, or a
    run directory): it holds one generator's weights, without the run's other networks and state."""
    if source is None:  # a .safetensors or .onnx export: the JSON written beside it names its checkpoint
        source = export_source(path)
    origin = f" of '{printable(source)}'" if isinstance(source, str) else ""
    if checkpoint_step(path) is not None or path.name == BEST_NAME:  # copied into a run under a checkpoint's name
        return (f"'{path}' is named as a checkpoint, but is an export{origin} written by `gan export`: move it out "
                "of the run directory (a run's checkpoints hold every network and the training state)")
    what = ("an ONNX graph of one generator, for ONNX Runtime and other engines"
            if path.suffix.lower() == ".onnx" and not is_safetensors_file(path)
            else "one generator's weights, for gan sample and translate")
    return (f"'{path}' is an export{origin} written by `gan export`: {what}; this command takes the run directory or "
            "checkpoint it was exported from")


def _expected(formats: tuple[str, ...]) -> str:
    """`formats` as the kinds of file a command takes: "a checkpoint ..., a run directory or an export ..."."""
    words = [word for name in formats for word in _FORMAT_WORDS.get(name, (f"a file of format {name}",))]
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


def unloadable_reason(path: Path, error: Exception, export_ok: bool = True, instead: str = "") -> str:
    """Why `torch.load(path, weights_only=True)` failed with `error`, in words of our own (torch's
    would advise weights_only=False, which would run whatever code the file holds). `export_ok`:
    the command also reads gan's safetensors exports, which a safetensors file may be meant as;
    `instead`: what the reader takes in its place, said after a TorchScript archive."""
    try:
        with path.open("rb") as file:
            start = file.read(9)
    except OSError as read_error:
        return f"it cannot be read: {read_error.strerror}"
    if not start:
        return "it is empty (0 bytes): a download or copy that never wrote it"
    if start[8:9] == b"{" and int.from_bytes(start[:8], "little") < 100_000_000:  # (its JSON header's length, then it)
        if not export_ok:
            return "a safetensors file, where a torch file (.pth) is read"
        return "a safetensors file: gan sample and translate read one as an export, whatever its name"
    if not start.startswith((_ZIP_MAGIC, _LEGACY_MAGIC)):
        return "not a torch file"
    if is_torchscript_archive(path) or "torchscript archive" in str(error).lower():
        return f"{_TORCHSCRIPT}; give {instead}" if instead else _TORCHSCRIPT
    if "weights only load failed" in str(error).lower():
        return "it holds Python objects besides tensors, numbers and strings, which gan never unpickles"
    return _DAMAGED


def is_torchscript_archive(path: Path) -> bool:
    """Whether `path` is a zip that torch.jit.save wrote (a traced or scripted network: its code/ folder
    and constants.pkl, which torch.save never writes), not a state dict."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name.partition("/")[2] for name in archive.namelist()]  # (below the archive's top folder)
    except (zipfile.BadZipFile, OSError):
        return False
    return any(name == "constants.pkl" or name.startswith("code/") for name in names)


def other_version(path: Path, stored: object, formats: tuple[str, ...]) -> str | None:
    """The message for a file of one of `formats`' kinds but another version (`gan.checkpoint/2`
    where this gan reads `gan.checkpoint/1`): written by another gan, not a foreign file. None otherwise."""
    if not isinstance(stored, str):
        return None
    kind = stored.rpartition("/")[0]
    readable = [name for name in formats if name.rpartition("/")[0] == kind]
    if not kind or not readable:
        return None
    return (f"'{path}' was written by another version of gan (format {stored[:40]!r}; this one reads "
            f"{', '.join(readable)}): read it with the gan that wrote it")


def gan_file_words(state: object) -> str | None:
    """What a loaded file that gan wrote is, in words (`a checkpoint written by `gan train` ...`), by its
    "format" entry; None for any other file."""
    stored = state.get("format") if isinstance(state, dict) else None
    if not isinstance(stored, str) or not stored.startswith("gan."):
        return None
    known = _FORMAT_WORDS.get(stored)
    return known[0] if known else f"a file written by another version of gan (format {stored[:40]!r})"


def _held(state: object) -> str:
    """What a loaded file that is no gan checkpoint holds, briefly."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}"
    if "format" not in state:
        return "it has no \"format\" entry"
    return f"its format is {str(state['format'])[:40]!r}"


def resolve_checkpoint(run_or_file: Path | str, unconditional: bool | None = None) -> Path:
    """A checkpoint file itself, or the newest checkpoint in a run directory (by the step it holds).
    Given a folder of runs, the error names one to give instead: one of an `unconditional` (dcgan)
    generator or not, as the command reads (None: any)."""
    run_or_file = Path(run_or_file)  # (text from Python too)
    if run_or_file.is_file():
        return run_or_file
    if run_or_file.is_dir():
        found = checkpoints_by_content(run_or_file)
        if not found:
            runs = sorted((path for path in run_or_file.iterdir() if path.is_dir() and list_checkpoints(path)),
                          key=run_order)
            if runs and not (run_or_file / "config.toml").exists():
                fitting = [run for run in runs if unconditional is None or (_recipe_of(run) == "dcgan") == unconditional]
                example = f"give one of them, e.g. '{fitting[-1]}'" if fitting else (
                    f"it holds no run of {'an unconditional' if unconditional else 'an image-to-image'} generator, "
                    "which this command reads")
                raise CheckpointError(f"'{run_or_file}' is a folder of runs, not a run: {example}")
            if not (run_or_file / "config.toml").is_file():  # (an image folder given in its place, say)
                raise CheckpointError(f"'{run_or_file}' is no run directory: it holds no checkpoint-*.pt and no "
                                      "config.toml; give the run directory `gan train` made, or a checkpoint file")
            best = (f"; it keeps '{run_or_file / BEST_NAME}': give that file (the --best of gan sample, translate, "
                    "eval and export reads it)"
                    if (run_or_file / BEST_NAME).is_file() else "")
            raise CheckpointError(f"no checkpoint-*.pt in run directory '{run_or_file}'{best}")
        return found[-1][1]
    raise CheckpointError(_neither_file_nor_folder(run_or_file))


def _neither_file_nor_folder(path: Path) -> str:
    """Why `path` is no checkpoint file and no run directory: gone, a link to nothing, or something else
    (a FIFO, say). A missing file was "neither a checkpoint file nor a run directory", as if it were there."""
    given = "give a checkpoint file, or the run directory `gan train` made"
    if path.is_symlink():
        return f"'{path}' is a link to nothing ('{os.readlink(path)}': a broken or looping link): {given}"
    if not os.path.lexists(path):
        return f"'{path}' does not exist: {given}"
    return f"'{path}' is neither a checkpoint file nor a run directory"


def _recipe_of(run_dir: Path) -> str | None:
    """The recipe a run's config.toml names; None when it cannot be read."""
    import tomllib

    from gan.core.config import toml_text

    try:
        recipe = toml_text((run_dir / "config.toml").read_text(encoding="utf-8")).get("recipe")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return recipe if isinstance(recipe, str) else None


def best_checkpoint(run_dir: Path | str) -> Path:
    """`run_dir`'s best.pt (`train.keep_best`); CheckpointError when the run kept none."""
    run_dir = Path(run_dir)  # (text from Python too)
    path = run_dir / BEST_NAME
    if run_dir.is_file():
        raise CheckpointError(f"--best takes a run directory, and '{run_dir}' is a file: drop --best to use it, or "
                              "give the run directory whose best.pt to use")
    if not run_dir.is_dir():
        raise CheckpointError(f"--best takes a run directory; '{run_dir}' is not one")
    if not path.is_file():
        aside = sorted([*run_dir.glob("best-discarded-*.pt"), *run_dir.glob("best-other-*.pt")],
                       key=lambda found: found.stat().st_mtime)
        if aside:  # (a resume set it aside: the run has none until it scores one again)
            why = ("it was measured on images since changed" if aside[-1].name.startswith("best-other-images-")
                   else "it was measured through other Inception-v3 weights"
                   if aside[-1].name.startswith("best-other-weights-")
                   else "it was scored on another count of images" if aside[-1].name.startswith("best-other-count-")
                   else "its record, by an earlier gan, did not say what it was measured on"
                   if aside[-1].name.startswith("best-other-unrecorded-")
                   else "it came from steps it trained again")
            raise CheckpointError(f"no {BEST_NAME} in run directory '{run_dir}' now: a resume set the last one aside "
                                  f"as '{aside[-1].name}' ({why}), and the run keeps a new one once it scores one; "
                                  "give that file, or drop --best")
        raise CheckpointError(f"no {BEST_NAME} in run directory '{run_dir}': the run kept none ({_why_no_best(run_dir)})")
    return path


def _why_no_best(run_dir: Path) -> str:
    """Why a run kept no best.pt, as far as its config.toml tells."""
    from gan.core.config import toml_text

    try:
        config = toml_text((run_dir / "config.toml").read_text(encoding="utf-8"))
        metric = config["train"]["keep_best"]
        validates, measures = config["log"]["eval_every"], config["metrics"]["every"]
    except (OSError, ValueError, KeyError, TypeError):
        return "train.keep_best names the metric to keep it by"
    if not metric:
        return "train.keep_best is empty"
    if str(metric).startswith("val/") and not validates:
        return f"train.keep_best = '{metric}' follows validation, and log.eval_every = 0 switched it off"
    if not str(metric).startswith("val/") and not measures:
        return f"train.keep_best = '{metric}' follows [metrics], and metrics.every = 0 switched them off"
    return f"train.keep_best = '{metric}': no evaluation of it was kept yet, or the run does not compute it"


# Between the digest of the images a best.pt's score was measured on and that of the Inception-v3 weights
# it was measured through, for the metrics that use them (`evaluated_on`).
MEASURED_THROUGH = "/inception-"
# After the images' digest, the number of images a generative metric scored (metrics.num_samples): SWD,
# FID and KID are biased by it, so scores of other counts are no rivals (records of earlier gans lack it).
COUNTED = "/count-"


class BestCheckpoint:
    """best.pt and best.json in a run directory: the checkpoint with the best value of `metric`
    so far (`direction` "lower" or "higher"), carried on from best.json when a run resumes."""

    def __init__(self, run_dir: Path, metric: str, direction: str, specs: dict[str, Any] | None = None):
        self.run_dir, self.metric, self.lower = run_dir, metric, direction == "lower"
        self.specs = specs  # this run's network specs: a best.pt of other networks is not its best
        self.value: float | None = None
        self.step: int | None = None  # where the best so far was kept
        # The signature of the images its value was measured on: "" where its record names none (an earlier
        # gan's), None where the value is this run's own bar (a rewind's, from metrics.jsonl) or there is none.
        self.evaluated_on: str | None = None
        self.other: tuple[str, float, int | None] | None = None  # (metric, value, step) of a best by another metric
        record, malformed = run_dir / BEST_RECORD, None
        if record.is_file():
            try:
                saved = json.loads(record.read_text())
            except (OSError, ValueError, RecursionError):  # (RecursionError: nested thousands deep)
                saved = None
            value = saved.get("value") if isinstance(saved, dict) else None
            usable = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            malformed = None if usable else str(value if saved else 'unreadable')[:40]
            if usable:
                step = saved.get("step")
                if not isinstance(step, int) or isinstance(step, bool):  # a record written before it had one
                    step = stored_step(run_dir / BEST_NAME) if (run_dir / BEST_NAME).is_file() else None
                if saved.get("metric") == metric:
                    self.value, self.step = float(value), step
                    self.evaluated_on = saved.get("evaluated_on") if isinstance(saved.get("evaluated_on"), str) else ""
                elif (run_dir / BEST_NAME).is_file():
                    self.other = (str(saved.get("metric")), float(value), step)
        self._agree_with_best_pt()
        if malformed is not None and self.value is None:
            # NaN, text, a torn file: it would never be beaten, freezing best.pt
            warnings.warn(f"'{record}' is malformed ({malformed} is no metric value): the next evaluation "
                          "replaces it and best.pt", stacklevel=2)

    def discard_after(self, step: int, count: int | None = None) -> str | None:
        """A resume from `step` trains the steps after it again: a best.pt kept at one of them is
        set aside (renamed, not deleted). The score to beat is then the best of the run's metrics.jsonl
        up to `step` of rows scored on `count` images, as this run now scores (a fresh start would call
        any score, however worse, a new best; a row of another count is no rival), and the first
        evaluation that beats it keeps best.pt anew. Returns what was done, for the log, or None when
        the best so far is from `step` or before."""
        if self.step is None or self.step <= step:
            return None
        aside = set_aside_best(self.run_dir, f"best-discarded-{self.step:08d}")
        message = (f"best.pt ({self.metric} {self.value:.4g} at step {self.step}) came from steps this resume from "
                   f"step {step} trains again: set aside as {aside}.pt")
        self.value = self.step = None
        bar = self._best_recorded_up_to(step, count) if count is not None else None
        if bar is None:
            return f"{message}; the next evaluation keeps best.pt anew"
        self.value, self.step, self.evaluated_on = bar[1], bar[0], None  # (measured as this run measures)
        return (f"{message}; best.pt is kept anew by the first evaluation that beats {bar[1]:.4g}, step {bar[0]}'s "
                f"(the best of {METRICS_RECORD} up to step {step}, whose checkpoint it does not hold)")

    def _best_recorded_up_to(self, step: int, count: int) -> tuple[int, float] | None:
        """(step, value) of the best finite value of this metric in the run's metrics.jsonl at `step`
        or before, among rows of `count` images; None when there is none (a val/ metric, which it does
        not hold, say)."""
        found = None
        try:
            lines = (self.run_dir / METRICS_RECORD).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        for line in lines:
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if not isinstance(row, dict) or row.get("num_images") != count:
                continue
            at, value = row.get("step"), row.get(self.metric)
            if (isinstance(at, int) and not isinstance(at, bool) and at <= step and isinstance(value, (int, float))
                    and not isinstance(value, bool) and math.isfinite(value)
                    and (found is None or (value < found[1] if self.lower else value > found[1]))):
                found = (at, float(value))
        return found

    def set_aside_other_metric(self) -> str | None:
        """A best.pt kept by another metric (train.keep_best changed on a resume) would be replaced
        by the next evaluation's: it is set aside under its metric's name instead. Returns what was
        done, for the log, or None when best.pt is this metric's or there is none."""
        if self.other is None:
            return None
        metric, value, step = self.other
        aside = set_aside_best(self.run_dir, f"best-by-{_slug(metric)}" + (f"-{step:08d}" if step is not None else ""))
        self.other = None
        at = f" at step {step}" if step is not None else ""
        said = (f"best.pt was kept by {metric} ({value:.4g}{at}): set aside as {aside}.pt, as this run now keeps "
                f"best.pt by {self.metric} (train.keep_best)")
        taken_back = self._take_back_own_best()
        return f"{said}; {taken_back}" if taken_back else said

    def _take_back_own_best(self) -> str | None:
        """The best.pt this metric kept before the run switched train.keep_best away from it (set
        aside as best-by-<metric>-<step>.pt), made best.pt again: the best to beat, where a fresh start
        would call a worse score the best. Returns what was done, or None when there is none."""
        for path in sorted(self.run_dir.glob(f"best-by-{_slug(self.metric)}*.pt"), key=lambda found: found.stat().st_mtime,
                           reverse=True):
            try:
                state = load_checkpoint(path)
            except CheckpointError:
                continue
            held = state.get("best") if isinstance(state, dict) else None
            value, step = (held or {}).get("value"), state.get("step")
            if (not isinstance(held, dict) or held.get("metric") != self.metric or isinstance(value, bool)
                    or not isinstance(value, (int, float)) or not math.isfinite(value) or not isinstance(step, int)
                    or (self.specs is not None and state.get("specs") != self.specs)):
                continue
            os.replace(path, self.run_dir / BEST_NAME)
            record = path.with_suffix(".json")
            measured = {"evaluated_on": held["evaluated_on"]} if isinstance(held.get("evaluated_on"), str) else {}
            write_text_atomically(self.run_dir / BEST_RECORD, json.dumps(
                {"metric": self.metric, "value": value, "step": step, **measured}) + "\n")
            record.unlink(missing_ok=True)
            self.value, self.step, self.evaluated_on = float(value), step, measured.get("evaluated_on", "")
            return (f"its own best by {self.metric} ({value:.4g} at step {step}), set aside as {path.name} when the "
                    "run kept it by another metric, is best.pt again")
        return None

    def set_aside_measured_elsewhere(self, evaluated_on: str, images: str,
                                     weights: str = "the Inception-v3 weights") -> str | None:
        """A best.pt measured on other images than this run's `evaluated_on` (`images` says which:
        a resume reads its evaluation folder again, since changed), or through other Inception-v3
        weights (`weights` says where they are), is no rival for this run's scores: set aside, said as
        discard_after does; so is one whose record does not say what this run's does (an earlier gan
        recorded no images, or no count or weights), which may have been measured on anything. None when
        both are the same, when the score to beat is this run's own (a rewind's bar from metrics.jsonl), or
        when this run's `evaluated_on` is "" (a recipe that cannot say)."""
        if self.value is None or self.evaluated_on is None or not evaluated_on:
            return None
        recorded_images, _, recorded_weights = self.evaluated_on.partition(MEASURED_THROUGH)
        images_now, _, weights_now = evaluated_on.partition(MEASURED_THROUGH)
        recorded_images, _, recorded_count = recorded_images.partition(COUNTED)
        images_now, _, count_now = images_now.partition(COUNTED)
        if recorded_images == images_now and recorded_weights == weights_now and recorded_count == count_now:
            return None
        unrecorded = [what for what, recorded, now in (("images", recorded_images, images_now),
                                                       ("count", recorded_count, count_now),
                                                       ("Inception-v3 weights", recorded_weights, weights_now))
                      if now and not recorded]
        if unrecorded:
            aside = set_aside_best(self.run_dir, f"best-other-unrecorded-{self.step:08d}")
            why = (f"on what its record, written by an earlier gan, does not name (its {' and '.join(unrecorded)}): "
                   "it may not be comparable with this run's scores")
        elif recorded_images != images_now:
            aside = set_aside_best(self.run_dir, f"best-other-images-{self.step:08d}")
            why = f"on other images than {images} hold now (files added, removed or changed since)"
        elif recorded_count != count_now:
            aside = set_aside_best(self.run_dir, f"best-other-count-{self.step:08d}")
            why = (f"on {recorded_count} images, where this run now scores {count_now} (metrics.num_samples): the "
                   f"metric's value depends on the count")
        else:
            aside = set_aside_best(self.run_dir, f"best-other-weights-{self.step:08d}")
            why = f"through other Inception-v3 weights than {weights} now (a file replaced or named anew since)"
        message = (f"best.pt ({self.metric} {self.value:.4g} at step {self.step}) was measured {why}: set aside as "
                   f"{aside}.pt; the next evaluation keeps best.pt anew, and the metric's curve changes its ground here")
        self.value = self.step = self.evaluated_on = None
        return message

    def improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return self.value is None or (value < self.value if self.lower else value > self.value)

    def record(self, value: float, evaluated_on: str | None = None) -> dict[str, Any]:
        """What best.pt holds of its score (its "best" entry)."""
        return {"metric": self.metric, "value": value, **({"evaluated_on": evaluated_on} if evaluated_on else {})}

    def save(self, state: dict[str, Any], step: int, value: float, evaluated_on: str | None = None) -> None:
        """best.pt, then best.json (each atomically); WriteError when the disk refuses. Once best.pt
        is written it is the best so far, also when best.json then fails (best.pt records its own
        metric, value and step, which a resume reads when the two disagree). `evaluated_on`: the
        signature of the images the value was measured on."""
        record = self.record(value, evaluated_on)
        save_checkpoint({**state, "best": record}, self.run_dir / BEST_NAME)
        self.value, self.step, self.evaluated_on = value, step, evaluated_on
        write_text_atomically(self.run_dir / BEST_RECORD, json.dumps({**record, "step": step}) + "\n")

    def _agree_with_best_pt(self) -> None:
        """Take best.pt's own record (metric, value, step) where best.json disagrees with it: a
        best.json that failed to write after best.pt did, or one edited by hand."""
        path = self.run_dir / BEST_NAME
        if not os.path.lexists(path):
            if self.value is not None:  # deleted by hand: a record kept without it would never be beaten
                warnings.warn(f"'{self.run_dir / BEST_RECORD}' records {self.metric} {self.value:.4g} of step "
                              f"{self.step}, but {BEST_NAME} is gone: the record is dropped, so the next evaluation "
                              f"keeps {BEST_NAME} anew", stacklevel=3)
                self.value = self.step = None
            return
        if not path.is_file():
            warnings.warn(f"'{path}' is a folder, not a checkpoint: no best.pt can be kept until it is moved out "
                          "of the way", stacklevel=3)
            self.value = self.step = None
            return
        try:
            state = load_checkpoint(path)  # (checks every record's CRC: a flipped bit counts as damage)
        except CheckpointError as error:
            # a damaged best.pt kept as the best would never be beaten, and never replaced
            warnings.warn(f"{error}: its record is dropped, so the next evaluation keeps best.pt anew", stacklevel=3)
            self.value = self.step = None
            return
        if self.specs is not None and state.get("specs") != self.specs:
            where = f" (a link to '{path.resolve()}')" if path.is_symlink() else ""
            warnings.warn(f"'{path}'{where} holds other networks than this run's: its record is dropped, so the "
                          "next evaluation keeps this run's own best.pt in its place", stacklevel=3)
            self.value = self.step = None
            return
        held = state.get("best") if isinstance(state, dict) else None
        if not isinstance(held, dict):
            return
        value, step = held.get("value"), state.get("step")
        if not (isinstance(value, (int, float)) and math.isfinite(value) and isinstance(step, int)):
            return
        if held.get("metric") != self.metric:  # kept by another metric, whatever best.json says
            self.other, self.value, self.step = (str(held.get("metric")), float(value), step), None, None
            return
        self.other = None
        if (value, step) != (self.value, self.step):
            warnings.warn(f"'{self.run_dir / BEST_RECORD}' disagrees with {BEST_NAME}, which holds {self.metric} "
                          f"{value:.4g} of step {step}: best.pt's own record is used", stacklevel=3)
            self.value, self.step = float(value), step
        self.evaluated_on = held["evaluated_on"] if isinstance(held.get("evaluated_on"), str) else ""


def _slug(metric: str) -> str:
    """A metric's name as a file name's part: val/psnr -> val-psnr."""
    return re.sub(r"[^A-Za-z0-9]+", "-", metric)


def set_aside_best(run_dir: Path, name: str) -> str:
    """Rename best.pt and best.json to `name`.pt and .json (with -1, -2, ... where an earlier resume
    set aside one of that name: both are kept); returns the name used."""
    aside, taken = name, 0
    while any((run_dir / f"{aside}{suffix}").exists() for suffix in (".pt", ".json")):
        taken += 1
        aside = f"{name}-{taken}"
    for kept, suffix in ((BEST_NAME, ".pt"), (BEST_RECORD, ".json")):
        if (run_dir / kept).exists():
            os.replace(run_dir / kept, run_dir / f"{aside}{suffix}")
    return aside


def discard_untracked_best_after(run_dir: Path, step: int) -> str | None:
    """For a resume from `step` that keeps no best.pt (train.keep_best off, or its metric not
    computed): a best.pt of a later step came from the steps it trains again, and `--best` would
    still take it; it is set aside as BestCheckpoint.discard_after does. Returns what was done."""
    path = run_dir / BEST_NAME
    kept_at = stored_step(path) if path.is_file() else None
    if kept_at is None or kept_at <= step:
        return None
    aside = set_aside_best(run_dir, f"best-discarded-{kept_at:08d}")
    return (f"best.pt (of step {kept_at}) came from steps this resume from step {step} trains again: set aside as "
            f"{aside}.pt; this run keeps no best.pt")


def prune_checkpoints(run_dir: Path, keep: int, written: Path, said: set[Path] | None = None) -> None:
    """Delete all but the newest `keep` checkpoints by the steps they hold, never one that holds a
    later step than `written` (the checkpoint just saved), whatever the names say. A file that does
    not load as a checkpoint, or fails its checksum, is neither counted nor deleted: a damaged one
    would take the place of a good one, and a foreign file named like a checkpoint is the user's.
    Such a file is warned of once for a `said` set the caller keeps (a run saves every few steps)."""
    said = set() if said is None else said
    ordered = []
    for step, path, loads in _read_checkpoint_steps(run_dir):
        if not loads:
            if path in said:
                continue
            said.add(path)
            warnings.warn(f"'{path}' does not load as a checkpoint: it is not counted among the "
                          f"{keep} kept, nor deleted; move it out of the run directory", stacklevel=2)
        else:
            ordered.append((step, path))
    newest = next((step for step, path in ordered if path == written), None)
    if newest is None:
        return
    kept = 0
    for step, path in reversed(ordered):  # newest first: the kept are checked whole, the rest go
        if kept < keep or step >= newest:
            # (the step's entry reads from a damaged file: only its records' checksums tell)
            damaged = None if path == written else failed_checksum(path)
            if damaged:
                if path not in said:
                    said.add(path)
                    warnings.warn(f"'{path}' is corrupt (its record '{damaged}' fails its checksum): it is not "
                                  f"counted among the {keep} kept, and goes with the older ones once {keep} good ones "
                                  "are newer; move it out of the run directory to keep it", stacklevel=2)
            else:
                kept += 1
        else:
            path.unlink(missing_ok=True)


def capture_rng_state() -> dict[str, Any]:
    """Every RNG the training process draws from, as plain tensors and numbers."""
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)), "pos": int(numpy_state[2]),
                  "has_gauss": int(numpy_state[3]), "cached_gaussian": float(numpy_state[4])},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def rng_state_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's random-number state, tried on throwaway generators (a hand-made
    or damaged one was a traceback mid-resume), or None."""
    try:
        torch.Generator().set_state(state["torch"])
        version, internal, gauss = state["python"]
        random.Random().setstate((version, tuple(internal), gauss))
        numpy_state = state["numpy"]
        np.random.RandomState().set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32),
                                           numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        _restore_cuda_rng_states(list(state["cuda"]))


def _restore_cuda_rng_states(saved: list[torch.Tensor]) -> None:
    """Each GPU's random state as saved, for the GPUs this machine has: a checkpoint holds one per GPU
    visible where it was written (8 on a node), and restoring them all on a 1-GPU machine was an
    IndexError mid-resume. A GPU this process draws on with no state saved starts afresh, said."""
    for index, rng in enumerate(saved[:torch.cuda.device_count()]):
        torch.cuda.set_rng_state(rng, index)
    used = torch.cuda.current_device()
    if used >= len(saved):
        warnings.warn(f"the checkpoint holds the random state of {len(saved)} GPU(s), none for cuda:{used}, which this "
                      "process draws on: its stream starts afresh, so the run goes on as an uninterrupted one would "
                      "not, exactly", stacklevel=3)


def first_mismatch(expected: dict[str, Any], given: dict[str, Any]) -> str | None:
    """What first differs between a network's state dict and weights to load into it, or None."""
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    if missing:
        return f"parameter '{missing[0]}' is missing from the file ({len(missing)} missing in all)"
    if unexpected:
        return f"parameter '{unexpected[0]}' is not in the network ({len(unexpected)} such in all)"
    for key, tensor in expected.items():
        other = given[key]
        if not hasattr(other, "shape"):
            return f"'{key}' is not a tensor"
        if tuple(other.shape) != tuple(tensor.shape):
            return f"parameter '{key}' has shape {list(other.shape)} in the file and {list(tensor.shape)} in the network"
        # loading would cast, say, float weights into int zeros without a word
        if isinstance(other, torch.Tensor) and _kind(other.dtype) != _kind(tensor.dtype):
            return f"parameter '{key}' is {other.dtype} in the file and {tensor.dtype} in the network"
    return None


def _kind(dtype: torch.dtype) -> str:
    """float (any precision: a half-precision export loads into a float32 network), int or bool."""
    return "bool" if dtype == torch.bool else "float" if dtype.is_floating_point or dtype.is_complex else "int"


def refuse_non_finite(weights: dict[str, torch.Tensor], path: Path, stored: str) -> None:
    """CheckpointError naming the first weight that is NaN or infinite: a generator with one gives
    black or noise images, never an error of its own."""
    for key, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"'{path}': {stored} parameter '{key}' is not finite (NaN or inf): the run "
                                  "diverged before this checkpoint; use an earlier checkpoint or best.pt")
