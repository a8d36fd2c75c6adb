"""Exported generators: the weights `gan sample` and `gan translate` need, without the training state.

`safetensors` (the default) holds only tensors, so loading it cannot run code. The file
is the generator's plain state dict, loadable by anyone, and its metadata entry "gan"
is JSON with what rebuilds it: the network spec, the run's config and the step, and the
folders the run read ("data", from its checkpoint: no output is written among them). A JSON
file with the same metadata is written beside it for people. Both are standard JSON, which
other tools' strict readers take (`standard_json`: an infinite config value as "inf"). `pt`
is the same as a plain torch file, which loads with `weights_only=True`. `onnx` is the generator as a
graph for ONNX Runtime (gan/inference/onnx_export.py), with the same metadata plus its input and
output shapes. The extension names the format (`.safetensors`, `.pt`, `.onnx`), since
readers go by it.

safetensors and pt read back as a checkpoint-shaped dict (specs, networks, config, step),
so every loader takes a run directory, a checkpoint or an export alike; ONNX files are
for other engines, and gan's loaders say so.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from gan.core.checkpoint import (
    EXPORT_FORMAT,
    FORMAT,
    CheckpointError,
    CheckpointVanished,
    checkpoints_by_content,
    is_safetensors_file,
    is_torch_file,
    load_checkpoint,
    other_version,
    resolve_checkpoint,
    stored_step,
    writers_of,
    written_by,
)
from gan.core.config import non_finite_restored
from gan.core.files import write_together
from gan.core.json_text import standard_json
from gan.core.processes import stops_held_to_the_end
from gan.recipes.loading import build_generator, checked_state, damaged

EXPORT_FORMATS = ("safetensors", "pt", "onnx")
# The extension decides how `load_source` reads a file back (".safetensors" in any case, ".onnx"
# refused, or else as a torch file), so it decides the format an export is written in.
EXPORT_EXTENSIONS = {".safetensors": "safetensors", ".pt": "pt", ".pth": "pt", ".onnx": "onnx"}
GENERATOR_WEIGHTS = ("ema", "live")  # the average of the trained weights, or the trained ones


def export_format_of(out: Path, requested: str | None = None) -> str:
    """The format of an export written to `out`: its extension's. `requested` (--format), when
    given, must be the same: a torch file under a safetensors name would not load back."""
    implied = EXPORT_EXTENSIONS.get(out.suffix.lower())
    if implied is None:
        extension = f"its extension '{out.suffix}'" if out.suffix else "its name, which has no extension"
        hidden = f" ('{out.name}' alone is a hidden file's name: give it a name before the extension)" if (
            out.name.lower() in EXPORT_EXTENSIONS) else ""
        raise ValueError(f"cannot tell the export format of '{out}' from {extension}: expected .safetensors, .pt (or "
                         f".pth) for a torch file, or .onnx{hidden}")
    if requested is not None and requested != implied:
        wanted = " or ".join(suffix for suffix, name in EXPORT_EXTENSIONS.items() if name == requested)
        kind = {"safetensors": "a safetensors file", "pt": "a torch file", "onnx": "an ONNX file"}[implied]
        raise ValueError(f"--format {requested} does not match the extension '{out.suffix}' of '{out}' ({kind}): "
                         f"name it {wanted}, or leave --format out")
    return implied


def sidecar_path(out: Path) -> Path:
    """The JSON written beside an export, describing it for people."""
    return out.with_name(out.name + ".json")


def generator_name(specs: dict, direction: str | None, path: Path) -> str:
    """`generator`, or `generator_<direction>` for checkpoints with one generator per direction."""
    directional = sorted(name.removeprefix("generator_") for name in specs if name.startswith("generator_"))
    if "generator" not in specs and not directional:
        raise CheckpointError(f"'{path}' holds no generator spec (its specs: {', '.join(map(str, specs)) or 'none'}); "
                              "was it written by `gan train`?")
    if direction is None:
        return "generator" if "generator" in specs else f"generator_{directional[0]}"
    if f"generator_{direction}" not in specs:
        if directional:  # a CycleGAN export holds the one direction it was exported with
            raise CheckpointError(f"'{path}' has no {direction} generator, only {' and '.join(directional)} (an export "
                                  f"holds the direction it was exported with: `gan export RUN --direction {direction}` "
                                  "writes that one)")
        raise CheckpointError(f"'{path}' has one generator and no directions; --direction is for CycleGAN "
                              "checkpoints")
    return f"generator_{direction}"


def export_generator(source: Path, out: Path, export_format: str | None = None, direction: str | None = None,
                     which: str = "ema", overwrite: bool = True) -> dict[str, Any]:
    """Write the generator of `source` to `out`, in the format of its extension (`export_format`,
    when given, must agree): with `which="ema"` its EMA weights when it has them, else the
    trained ("live") ones. Returns the metadata written. Without `overwrite`, an `out` (or its
    description) that another command wrote meanwhile is refused, not replaced."""
    if export_format is not None and export_format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format '{export_format}'; use {' or '.join(EXPORT_FORMATS)}")
    if which not in GENERATOR_WEIGHTS:
        raise ValueError(f"generator must be one of {', '.join(GENERATOR_WEIGHTS)}, got '{which}'")
    export_format = export_format_of(out, export_format)
    if export_format == "onnx":
        from gan.inference.onnx_export import require_onnx

        require_onnx()  # before loading anything
    path, state = read_checkpoint(Path(source))
    name = generator_name(state["specs"], direction, path)
    # built, as sample and translate build it, so that no file is written that they would refuse
    generator, stored = build_generator(state, path, name, which)
    weights = {key: value.contiguous() for key, value in state["networks"][stored].items()}
    folders_read = data_folders_read(state)
    metadata = {"format": EXPORT_FORMAT, "network": stored, "specs": {name: state["specs"][name]},
                "config": state["config"], "step": state["step"],
                "source": os.path.abspath(path),  # (where it came from, wherever the export is moved)
                **({"data": folders_read} if folders_read else {}),
                "written_by": written_by(), **({"trained_by": writers_of(state)} if writers_of(state) else {})}
    if export_format == "safetensors":
        from safetensors.torch import save_file

        metadata["weights_sha256"] = weights_digest(weights)  # (safetensors keeps no checksum of its own)
        write_weights = lambda temp: save_file(weights, str(temp), metadata={"gan": standard_json(metadata)})  # noqa: E731
    elif export_format == "pt":
        write_weights = lambda temp: torch.save({**metadata, "networks": {stored: weights}}, temp)  # noqa: E731
    else:
        metadata, write_weights = onnx_writer(generator, metadata)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The weights and their description are moved into place together, a stop (Ctrl-C, SIGTERM)
    # held back meanwhile: an --overwrite whose description failed to write deleted the new weights,
    # and the earlier export with them; one stopped between the two left new weights, old description.
    with stops_held_to_the_end("the export"):
        write_together({out: following_umask(write_weights),
                        sidecar_path(out): following_umask(lambda temp: temp.write_text(
                            standard_json(metadata, indent=2) + "\n", encoding="utf-8"))}, new_only=not overwrite)
    return metadata


# The entries of a checkpoint's "data" record that name folders (absolute, as training recorded them)
RECORDED_FOLDERS = ("folders", "metrics_root", "val_root")


def data_folders_read(state: dict[str, Any]) -> dict[str, Any]:
    """The folders the run of checkpoint `state` read, from its "data" record: an export carries them,
    so that sample and translate refuse outputs among the run's images from it as from the checkpoint
    (a relative data.root, which its config alone names, read from another working folder). Empty for
    a checkpoint written before the record."""
    record = state.get("data")
    return {key: record[key] for key in RECORDED_FOLDERS if key in record} if isinstance(record, dict) else {}


def onnx_writer(generator: torch.nn.Module,
                metadata: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Path], None]]:
    """`metadata` with the ONNX graph's description of `generator` (built by `build_generator`: input
    and output shapes, size multiple) added as "onnx", and what writes the graph to a path."""
    from gan.inference.onnx_export import onnx_program, write_onnx

    program, description = onnx_program(generator, metadata["config"])
    metadata = {**metadata, "onnx": description}
    return metadata, lambda path: write_onnx(program, metadata, path)


def following_umask(write: Callable[[Path], None]) -> Callable[[Path], None]:
    """`write`, with the file's permissions then set by the umask as for a plain open(): some
    writers (safetensors) create their file 0600 whatever the umask."""
    def write_then_set_mode(temp: Path) -> None:
        write(temp)
        os.chmod(temp, 0o666 & ~current_umask())

    return write_then_set_mode


def current_umask() -> int:
    """The process's umask. Reading it means setting it: the probe is 0o077, so that a file another
    thread creates in that instant is the more private, never the less."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def read_export(path: Path) -> dict[str, Any]:
    """A `.safetensors` export as a checkpoint-shaped dict (`.pt` exports load as checkpoints do)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            text = (handle.metadata() or {}).get("gan")
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"'{path}' is not a readable safetensors file: {error}") from None
    try:
        metadata = json.loads(text) if text is not None else None
    except (ValueError, RecursionError) as error:  # (RecursionError: nested thousands deep)
        raise damaged(path, f"its \"gan\" metadata entry is not valid JSON ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != EXPORT_FORMAT:
        newer_or_older = other_version(path, metadata.get("format") if isinstance(metadata, dict) else None,
                                       (EXPORT_FORMAT,))
        raise CheckpointError(newer_or_older or not_an_export(path, text))
    if not isinstance(metadata.get("network"), str):
        raise damaged(path, "its \"gan\" metadata has no \"network\" entry naming the weights it holds")
    if isinstance(metadata.get("config"), dict):  # (standard JSON: a float key's inf was written as "inf")
        metadata["config"] = non_finite_restored(metadata["config"])
    recorded = metadata.get("weights_sha256")  # (exports written before it was recorded have none)
    if recorded is not None and recorded != weights_digest(weights):
        raise damaged(path, "its weights differ from the SHA-256 digest written with them (a flipped bit, or an "
                            "edit), so they would load as wrong weights; export it again from its run (weights "
                            "edited on purpose, cast to half precision say, load once the \"weights_sha256\" entry "
                            "of its \"gan\" metadata is removed)")
    return {**metadata, "networks": {metadata["network"]: weights}}


def not_an_export(path: Path, text: str | None) -> str:
    """The message for a safetensors file that `gan export` did not write (`text`: its "gan" metadata
    entry, if any): weights converted from another project (BasicSR's, a paper's), which no gan command
    turns into an export (`gan export` reads gan's checkpoints alone)."""
    held = "no \"gan\" metadata entry" if text is None else "a \"gan\" metadata entry that is not an export's"
    return (f"'{path}' is not a gan export (a safetensors file with {held}): gan sample and translate read only "
            "the run directories, checkpoints and exports gan wrote, which rebuild the generator they hold")


def weights_digest(weights: dict[str, torch.Tensor]) -> str:
    """SHA-256 of every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(weights):
        tensor = weights[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_source(source: str | Path, unconditional: bool | None = None) -> tuple[Path, dict[str, Any]]:
    """(file, checkpoint-shaped state) of a run directory, checkpoint file or export, its structure
    checked (`checked_state`); `unconditional`: the kind of generator the command reads, for the
    run a folder of runs is answered with (`resolve_checkpoint`)."""
    source = Path(source)
    if source.suffix.lower() != ".safetensors" and is_safetensors_file(source):
        # (read by its contents: an earlier gan's export wrote safetensors whatever --out's extension)
        return source, checked_state(read_export(source), source)
    if source.suffix.lower() == ".onnx":
        raise CheckpointError(f"'{source}' is an ONNX export, for ONNX Runtime and other engines; gan sample and "
                              "translate read run directories, checkpoints and .safetensors or .pt exports (gan eval "
                              "run directories and checkpoints)")
    if source.suffix.lower() == ".safetensors" and not is_torch_file(source):  # (a checkpoint so named: read as one)
        if not source.is_file():
            raise CheckpointError(f"export '{source}' does not exist")
        return source, checked_state(read_export(source), source)
    # (in a run directory, a file under a checkpoint's name must be one: an export there is refused)
    return read_checkpoint(source, unconditional, (FORMAT,) if source.is_dir() else (FORMAT, EXPORT_FORMAT))


MAX_PRUNED_WHILE_READ = 20  # newest checkpoints pruned as they were read, before a reader gives up


def read_checkpoint(source: Path, unconditional: bool | None = None, formats: tuple[str, ...] = (FORMAT,)
                    ) -> tuple[Path, dict[str, Any]]:
    """(file, state) of a run directory's newest checkpoint or of a checkpoint file (`formats`: as
    `load_checkpoint`), its structure checked; a newest found damaged names the one before it."""
    # A run that trains on may prune the newest checkpoint between its choice and its read (a large one
    # read slowly, checkpoints every step): the newest is chosen again while the run keeps writing newer ones.
    vanished: list[Path] = []
    while True:
        path = resolve_checkpoint(source, unconditional)
        try:
            return path, checked_state(load_checkpoint(path, formats=formats), path)
        except CheckpointError as error:
            gone = isinstance(error, CheckpointVanished) or not os.path.lexists(path)
            if source.is_dir() and gone and path not in vanished and len(vanished) < MAX_PRUNED_WHILE_READ:
                vanished.append(path)
                continue
            if source.is_dir() and os.path.lexists(path):  # the newest is damaged: the one before may serve
                earlier = [other for _, other in checkpoints_by_content(source)
                           if other != path and stored_step(other) is not None]
                if earlier:
                    raise CheckpointError(f"{error}; give an earlier checkpoint of the run instead, e.g. "
                                          f"'{earlier[-1]}' (gan train --resume falls back to it)") from None
            raise
