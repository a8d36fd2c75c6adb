"""Measuring a checkpoint: `gan eval`."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import click

from gan.commands.common import UserPath, fail
from gan.core.wording import first_few, one_line, undecoded

DEFAULT_EVAL_METRICS = "fid,kid,swd"
MAX_NAMED = 5  # skipped images named in the summary line; the rest are counted


def _format_row(row: dict) -> str:
    return "  ".join(f"{key} {value:.4f}" if isinstance(value, float) else one_line(value) for key, value in row.items())


@click.command(name="eval")
@click.argument("checkpoint", type=UserPath(exists=True, path_type=Path))
@click.option("--data", "folder", type=UserPath(exists=True, file_okay=False, path_type=Path),
              help="Super-resolution (required): a folder of HR images. Paired (required): a folder of pairs, or "
                   "a root of split subfolders (train/ val/ ...; see --split). Unconditional: the real images to "
                   "compare with [default: the run's metrics.root where its training measured against one, else its "
                   "data.root].")
@click.option("--split", help="Paired checkpoints: the subfolder of --data to score, or \"all\" for every pair under "
                              "it [default: the run's data.val_split (else data.split) when --data has it, as "
                              "training validates]. CycleGAN: score <split>A/ and <split>B/ [default: the run's "
                              "data.val_split, else test, else A/ and B/].")
@click.option("--metrics", "metric_names",
              help="Unconditional checkpoints: comma-separated, of fid, kid, swd, pr (precision/recall) "
                   "[default: fid,kid,swd, skipping (with a warning) those whose weights are not on this machine].")
@click.option("--n", "count", default=10000, show_default=True,
              help="Unconditional checkpoints: generated images, and real images in the reference set.")
@click.option("--inception-weights", type=UserPath(dir_okay=False, path_type=Path),
              help="Inception-v3 weights file for fid/kid/pr, and for the fid/kid of translations "
                   "[default: torch-fidelity's cache folder, skipped with a warning when absent].")
@click.option("--cache-dir", type=UserPath(file_okay=False, path_type=Path),
              help="Where reference statistics are cached [default: the run's metrics.cache_dir, else "
                   "$XDG_CACHE_HOME/gan/reference-statistics or ~/.cache/gan/reference-statistics].")
@click.option("--json", "json_path", type=UserPath(dir_okay=False, path_type=Path),
              help="Unconditional checkpoints: where to write the results "
                   "[default: metrics-<step>.json in the run directory].")
@click.option("--csv", "csv_path", type=UserPath(dir_okay=False, path_type=Path),
              help="Image-to-image checkpoints: where to write per-image results "
                   "[default: eval-<data>-<step>.csv in the run directory].")
@click.option("--save-images", type=UserPath(file_okay=False, path_type=Path),
              help="Super-resolution checkpoints: also write each image as a bicubic | model | ground-truth strip "
                   "into this folder.")
@click.option("--tile", default=0, show_default=True,
              help="Process images larger than this many pixels (of the network's input) in overlapping tiles, "
                   "to bound the network's memory; 0: each image whole, as validation runs it (tiles differ from "
                   "it where the network sees further than a quarter of the overlap, or normalises per image).")
@click.option("--generator", "which", type=click.Choice(["ema", "live"]), default="ema", show_default=True,
              help="Unconditional checkpoints: score the EMA weights (when present) or the trained ones.")
@click.option("--best", is_flag=True, help="Use the run's best.pt (kept by train.keep_best) instead of its newest "
                                        "checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace existing --json, --csv or --save-images files (never a "
                                             "checkpoint or a run's own files; the default names in the run "
                                             "directory are replaced by each evaluation).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def evaluate(checkpoint: Path, folder: Path | None, split: str | None, metric_names: str | None, count: int,
             inception_weights: Path | None, cache_dir: Path | None, json_path: Path | None, csv_path: Path | None,
             save_images: Path | None, tile: int, which: str, best: bool, overwrite: bool, device: str) -> None:
    """Measure a checkpoint (CHECKPOINT: a run directory or a checkpoint file).

    Unconditional (DCGAN) checkpoints: FID, KID, SWD and precision/recall of --n images
    from the EMA generator (--generator live: the trained one) against --n real images of
    the run's data set, printed and written as JSON. FID/KID need the Inception-v3
    weights (docs/metrics.md); SWD needs nothing. Real-image statistics are cached, so
    later evaluations only generate.

    Image-to-image checkpoints: PSNR and SSIM on a --data folder, per image and mean.
    Paired checkpoints given a root of split subfolders score one split: the run's
    validation split by default, or --split NAME.
    Super-resolution checkpoints are measured as papers report them: the LR input is
    the bicubic downsampling of each HR image (after the run's own blur, noise and JPEG, as
    its validation makes it), PSNR/SSIM are on the Y channel (psnr, ssim)
    and on RGB (psnr_rgb, ssim_rgb) with `scale` pixels shaved, and plain bicubic
    upsampling is shown beside the model (bicubic_*).
    CycleGAN checkpoints: --data holds testA/ and testB/; each image goes to the
    other domain and back, and the cycle-reconstruction L1 and PSNR are reported.
    Paired and CycleGAN checkpoints: the translations are also scored as distributions,
    SWD (and FID, KID with the Inception weights) of the outputs against the targets, or of
    testA's A -> B translations against testB and testB's B -> A against testA (swd_AtoB,
    swd_BtoA, ...), printed and written as JSON beside the CSV.

    \b
    Examples:
      gan eval runs/00000-dcgan_celeba64 --metrics fid,kid,swd --n 10000
      gan eval runs/00000-dcgan_celeba64 --metrics swd --n 2000 --json swd.json
      gan eval runs/00002-sr_pix2pix_x4 --data datasets/sr/Set5
      gan eval runs/00004-edsr_x4 --data datasets/sr/Set5 --save-images set5_strips/
      gan eval runs/00001-pix2pix_facades --data datasets/facades/val --csv val.csv
      gan eval runs/00001-pix2pix_facades --data datasets/facades --split test
      gan eval runs/00003-cyclegan_horse2zebra --data datasets/horse2zebra
      gan eval runs/00002-sr_pix2pix_x4 --data datasets/sr/Set5 --best   # the checkpoint best by val/psnr
    """
    from gan.core.checkpoint import CheckpointError, best_checkpoint, load_checkpoint
    from gan.core.devices import DeviceUnavailable, select_device
    from gan.core.files import WriteError
    from gan.data.decode import ImageReadError
    from gan.inference.exported import read_checkpoint
    from gan.inference.outputs import OutputRefused
    from gan.inference.tiling import ImageTooLargeError, image_to_image_generator
    from gan.metrics.inception import InceptionWeightsDamaged, damaged_weights_advice, resolve_weights_path
    from gan.nets.running import NonFiniteOutput
    from gan.recipes import trains_unconditional
    from gan.recipes.loading import checked_state

    if csv_path is not None and csv_path.suffix.lower() == ".json":
        raise click.BadParameter(f"'{csv_path}' is named as JSON, and the CSV's record is written beside it under "
                                 f"its name with .json: give the CSV a name of its own, such as "
                                 f"'{csv_path.with_suffix('.csv')}'", param_hint="--csv")
    try:
        if best:
            path = best_checkpoint(checkpoint)
            state = checked_state(load_checkpoint(path), path)
        else:  # (a damaged newest names the one before, as gan sample and translate do)
            path, state = read_checkpoint(checkpoint)
        outputs = EvalOutputs(inputs=[checkpoint, path], overwrite=overwrite, scored=path)
        if split is not None and state["config"]["data"]["dataset"] not in ("paired", "unpaired"):
            raise ValueError(f"--split is for checkpoints trained on paired or unpaired data (pix2pix, cyclegan); "
                             f"'{path}' trained on '{state['config']['data']['dataset']}' data")
        unconditional = trains_unconditional(state["config"]["recipe"])
        refuse_options_for_other_checkpoints(path, unconditional, state["config"]["data"]["dataset"] == "sr_pairs")
        # named, the weights are asked for (a DCGAN's once its metrics are known to use them)
        if inception_weights is not None and not unconditional:
            resolve_weights_path(inception_weights)
        if unconditional:
            _evaluate_generative(state, path, folder, metric_names, count, inception_weights, cache_dir,
                                 json_path, which, select_device(device), outputs)
        else:
            if folder is None:
                image_to_image_generator(state, path)  # (one that takes latents and labels: no --data serves it)
                raise click.UsageError("image-to-image checkpoints need --data FOLDER")
            _evaluate_image_to_image(path, folder, split, csv_path, tile, select_device(device), save_images,
                                     inception_weights, outputs)
    except NonFiniteOutput as error:  # (raised once the checkpoint has loaded)
        fail(f"'{path}': {error}")
    except InceptionWeightsDamaged as error:  # (said as the weights of --inception-weights, or of the default place)
        where = "--inception-weights" if inception_weights else "the Inception-v3 weights at their default place"
        fail(f"{where}: {error}; {damaged_weights_advice(inception_weights)}")
    except (CheckpointError, FileNotFoundError, NotADirectoryError, DeviceUnavailable, ValueError, ImageReadError,
            WriteError, OutputRefused, ImageTooLargeError) as error:
        fail(error)


# Options that apply to one kind of checkpoint only (parameter name -> option as typed).
UNCONDITIONAL_ONLY = {"metric_names": "--metrics", "count": "--n", "json_path": "--json", "which": "--generator",
                      "cache_dir": "--cache-dir"}  # (the cache holds real images' statistics: translations' are not kept)
IMAGE_TO_IMAGE_ONLY = {"csv_path": "--csv", "save_images": "--save-images", "tile": "--tile"}


def refuse_options_for_other_checkpoints(path: Path, unconditional: bool, super_resolution: bool) -> None:
    """UsageError naming the options given on the command line that this kind of checkpoint does
    not read: a --csv given for a DCGAN would otherwise be dropped without a word, as would
    --inception-weights for super-resolution (scored by PSNR and SSIM alone)."""
    from click.core import ParameterSource

    context = click.get_current_context()

    def given(options: dict[str, str]) -> list[str]:
        return [option for name, option in options.items()
                if context.get_parameter_source(name) == ParameterSource.COMMANDLINE]

    others = given(IMAGE_TO_IMAGE_ONLY if unconditional else UNCONDITIONAL_ONLY)
    if others:
        kind = "an unconditional (dcgan)" if unconditional else "an image-to-image"
        applies = "image-to-image" if unconditional else "unconditional (dcgan)"
        raise click.UsageError(f"{', '.join(others)} {'applies' if len(others) == 1 else 'apply'} to {applies} "
                               f"checkpoints; '{path}' is {kind} checkpoint")
    if super_resolution and given({"inception_weights": "--inception-weights"}):
        raise click.UsageError(f"--inception-weights is for FID and KID, which super-resolution checkpoints are not "
                               f"scored by (PSNR and SSIM need no weights); '{path}' is one")


class EvalOutputs:
    """The files an evaluation writes, checked before it starts (gan/inference/outputs.py): an explicit
    --json, --csv or --save-images path as `gan sample` checks its own (never an input, a training-state
    name or an existing file of a run directory; any other existing file only with --overwrite). The
    default names in the run directory (metrics-<step>.json, eval-<data>-<step>.csv and its JSON) are
    eval's own results: evaluating the same step again replaces them."""

    def __init__(self, inputs: list[Path], overwrite: bool, scored: Path | None = None):
        self.inputs, self.overwrite = inputs, overwrite
        # the checkpoint file scored, as it was when loaded: a training run may replace it meanwhile
        self.scored, self.scored_identity = scored, _file_identity(scored)
        # (its run's config.toml, which every resume writes anew: a resume meanwhile may train its step again)
        self.run_config_identity = _file_identity(scored.parent / "config.toml") if scored is not None else None

    def check_scored_unchanged(self) -> None:
        """OutputRefused when the checkpoint scored is no longer the file that was loaded: a resume of its
        run that trains its step again (or sets best.pt aside) replaced it while it was scored, and a
        record of these scores under its name would pass for the new one's. A checkpoint-*.pt gone
        while its run only trained on past it (every checkpoint left is of a later step, and no resume
        rewrote config.toml) was pruned (train.keep_checkpoints): the scores are still those of its
        step's weights, written, with a warning."""
        from gan.core.checkpoint import checkpoint_step, list_checkpoints
        from gan.inference.outputs import OutputRefused

        if self.scored is None or _file_identity(self.scored) == self.scored_identity:
            return
        step, run_dir = checkpoint_step(self.scored), self.scored.parent
        left = [checkpoint_step(path) or 0 for path in list_checkpoints(run_dir)]
        pruned = (step is not None and not os.path.lexists(self.scored) and left and min(left) > step
                  and _file_identity(run_dir / "config.toml") == self.run_config_identity)
        if pruned:
            warnings.warn(f"'{self.scored}' was removed while it was scored (its run, training on, keeps its newest "
                          "train.keep_checkpoints checkpoints): the scores are of the weights it held, and are "
                          "written as its step's record", stacklevel=2)
            return
        what = "is gone" if not self.scored.exists() else "is another file now"
        raise OutputRefused(f"'{self.scored}' {what}: its run replaced or set it aside while it was scored (a "
                            "resume training its step again), so the scores above are of the checkpoint it "
                            "held before, and are not written as its record")

    def write_then_say(self, write: Callable[[], None], say: Callable[[], None]) -> None:
        """`write()` the evaluation's files, then `say()` its scores: a stdout that fails (a full disk, a
        closed pipe) loses no evaluation. The scores of a checkpoint replaced while it was scored are
        said, and nothing is written (`check_scored_unchanged`)."""
        from gan.inference.outputs import OutputRefused

        try:
            self.check_scored_unchanged()
        except OutputRefused:
            say()
            raise
        write()
        say()

    def check(self, outputs: list[Path], defaults: list[Path], checkpoint: Path | None = None,
              data: str | None = None, data_folder: Path | None = None, step: int = 0,
              run_config: dict | None = None, scored: tuple[list[str], int | None] | None = None,
              contents: str | None = None, run_record: dict | None = None) -> None:
        """OutputRefused unless every file of `outputs` may be written (never one of the images under
        `data_folder`, the images scored, nor one of or among the run's own data: its `run_config`'s
        folders, and as its checkpoint recorded them, `run_record`); those of
        `defaults` are eval's own, replaced without --overwrite only by an evaluation of the same
        `checkpoint` (at `step`) on the same `data` (its `contents`, `contents_digest`, unchanged), and one
        of `scored`'s (metrics, --n) that keeps all the record holds."""
        from gan.inference.outputs import check_outputs, refuse_joining_run_data, run_data_folders

        # (its images are guarded also where its config's relative folders name them from here: a checkpoint
        # may be older than its record of them; folders are listed only where an output may be one of their
        # images: CelebA's 202,599 took 20 s to list and stat)
        run_folders = [folder for _, folder in run_data_folders(run_config or {}, run_record, typed=True)]
        folders = _may_hold(outputs, [*([data_folder] if data_folder else []), *run_folders])
        images = [image for folder in folders for image in _images_under(folder)]
        check_outputs(outputs, inputs=[*self.inputs, *images], overwrite=self.overwrite, own=defaults)
        # (after: one of its images is said as the input it is)
        refuse_joining_run_data(outputs, run_data_folders(run_config or {}, run_record))
        if not self.overwrite and checkpoint is not None:
            for path in outputs:
                if path in defaults:
                    refuse_another_evaluation(path, checkpoint, data, step, scored, contents)


def contents_digest(folder: Path | None) -> str | None:
    """The names and sizes of the image files under `folder` as one digest (None for no folder): an
    evaluation's record keeps it, so that one of the same folder since changed is another data set's.
    A walk of names and sizes (0.09 s for 9,000 files), not `find_images`, which checks each (3 s)."""
    import hashlib

    from gan.data.decode import IMAGE_EXTENSIONS, holds_a_run, left_out_of_listing

    if folder is None or not folder.is_dir():
        return None
    digest, seen = hashlib.sha256(), set()
    for root, folders, files in os.walk(folder, followlinks=True):
        seen.add(os.path.realpath(root))  # (each real folder once: a linked folder may loop)
        if root != str(folder) and holds_a_run(files):  # (as listings do)
            folders.clear()
            continue
        folders[:] = sorted(name for name in folders if not left_out_of_listing(name)  # (a NAS's new thumbnails)
                            and os.path.realpath(os.path.join(root, name)) not in seen)
        for name in sorted(files):
            if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = os.path.join(root, name)
            try:
                size = os.stat(path).st_size
            except OSError:  # (a broken link: skipped where it is read)
                size = -1
            digest.update(os.fsencode(os.path.relpath(path, folder)) + f"\0{size}\n".encode())
    return digest.hexdigest()[:16]


def _file_identity(path: Path | None) -> tuple | None:
    """What tells one file at `path` from another put there by a rename: None when there is none.
    (More than `gan.inference.outputs.file_identity`'s device and inode: a pruned checkpoint's inode
    may be given to the new one renamed in.)"""
    try:
        stat = os.stat(path) if path is not None else None
    except OSError:
        return None
    return stat and (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _may_hold(outputs: list[Path], folders: list[Path]) -> list[Path]:
    """Those of `folders` that may hold one of `outputs`: that hold it, links resolved, or all of them
    where an output is a file of several hard links (one may be an image in any of them)."""
    if any(_hard_links(output) > 1 for output in outputs):
        return folders
    targets = [Path(os.path.realpath(output)) for output in outputs]
    return [folder for folder in folders
            if any(target.is_relative_to(os.path.realpath(folder)) for target in targets)]


def _hard_links(path: Path) -> int:
    try:
        return os.stat(path).st_nlink
    except OSError:  # (none yet: the usual case)
        return 0


def _images_under(folder: Path | None) -> list[Path]:
    """The images under `folder` (quietly: the evaluation reads and reports them); none when there are
    none to read, which the evaluation then says."""
    import warnings

    from gan.data.decode import find_images

    if folder is None or not folder.is_dir():
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return find_images(folder)
        except (OSError, ValueError):
            return []


def refuse_another_evaluation(path: Path, checkpoint: Path, data: str | None, step: int,
                              scored: tuple[list[str], int | None] | None = None, contents: str | None = None) -> None:
    """A default result file that records another checkpoint or another data set (a loose checkpoint of
    the same step beside this one, a data folder of the same name elsewhere) is not replaced without
    --overwrite: it is another evaluation, not an earlier run of this one. The run's best.pt is the
    checkpoint of its step under another name: the same evaluation. Nor is one that `scored`, the
    metrics and --n of this one (None: a translation's, of every image), would lose a metric or images
    of (a quick SWD over a long FID)."""
    import json

    from gan.core.checkpoint import BEST_NAME, checkpoint_path
    from gan.inference.outputs import OutputRefused

    try:  # (a CSV's record is the JSON beside it)
        stored = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # none yet, or unreadable: nothing to tell, so eval's own name is reused
        return
    if not isinstance(stored, dict):
        return
    option = "--csv" if path.suffix == ".csv" else "--json"
    keep = f"pass {option} PATH to keep both, or --overwrite to replace it"
    before = (Path(str(stored.get("checkpoint"))).name, stored.get("reference", stored.get("data")))
    same_weights = {BEST_NAME, checkpoint_path(Path(), step).name}
    if not (before[1] == data and (before[0] == checkpoint.name or (
            stored.get("step") == step and {before[0], checkpoint.name} <= same_weights))):
        raise OutputRefused(f"'{path}' holds an evaluation of {before[0]} on {before[1]}, not of {checkpoint.name} "
                            f"on {data}: {keep}")
    if isinstance(stored.get("data_contents"), str) and contents is not None and stored["data_contents"] != contents:
        raise OutputRefused(f"'{path}' holds an evaluation of {before[0]} on {data} as its images were then (files "
                            f"added, removed or changed since): {keep}")
    if scored is None:
        return
    names, count = scored
    recorded = _recorded_metrics(stored)
    held = stored.get("num_images")
    fewer = count is not None and isinstance(held, int) and held > count
    if set(recorded) <= set(names) and not fewer:
        return
    what, scores = (f" of {held} images", f" of {count}") if count is not None else ("", "")
    raise OutputRefused(f"'{path.with_suffix('.json')}' holds {', '.join(recorded) or 'scores'}{what}, which this evaluation "
                        f"({', '.join(names)}{scores}) would not keep: {keep}")


def _recorded_metrics(record: dict) -> list[str]:
    """The metrics of an evaluation's record, by the names --metrics gives them (a translation's
    carry a direction: fid_AtoB)."""
    from gan.metrics.generative import METRIC_NAMES

    prefixes = {"pr": "precision"}  # (the others' keys begin with their names; a metric of one's own too)
    return [name for name in METRIC_NAMES
            if any(str(key).startswith(prefixes.get(name, name)) for key in record)]


def _checked_metric_names(metric_names: str | None, inception_weights: Path | None, count: int) -> list[str]:
    """The metrics --metrics names (the default ones without it), after a usage error for a list that
    names none or an unknown one, --inception-weights that no metric uses, or an --n too small."""
    from gan.core.registry import ConfigError
    from gan.metrics.generative import INCEPTION_METRICS, METRIC_NAMES, check_metric_names, smallest_count
    from gan.metrics.inception import resolve_weights_path

    try:
        if metric_names is not None and not metric_names.strip(", "):
            raise click.BadParameter(f"name at least one metric of {', '.join(METRIC_NAMES)}",
                                     param_hint="--metrics")
        names = check_metric_names((metric_names or DEFAULT_EVAL_METRICS).split(","), "--metrics")
    except ConfigError as error:
        raise click.BadParameter(str(error)) from None
    if inception_weights is not None and not set(names) & set(INCEPTION_METRICS):  # (else checked, then unused)
        raise click.BadParameter(f"--inception-weights is for fid, kid and pr, and --metrics {','.join(names)} uses "
                                 "no weights: leave it out, or add one of those metrics", param_hint="--inception-weights")
    fewest, why = smallest_count(names)
    if count < fewest:  # (pr failed after both sets had passed through Inception)
        raise click.BadParameter(f"--n must be at least {fewest} ({why}), got {count}")
    if inception_weights is not None or (metric_names is not None and set(names) & set(INCEPTION_METRICS)):
        resolve_weights_path(inception_weights)  # (named, the file or a metric needing it: asked for, said first)
    return names


def _scored_names(names: list[str], explicit: bool, weights: Path | None) -> list[str]:
    """The metrics of `names` an evaluation will score: by default, those of Inception are dropped
    when its weights are absent (asked for by name, their absence is an error before any scoring)."""
    from gan.metrics.generative import INCEPTION_METRICS

    if explicit or not set(names) & set(INCEPTION_METRICS) or _weights_found(weights):
        return names
    return [name for name in names if name not in INCEPTION_METRICS]


def _weights_found(weights: Path | None) -> bool:
    """Whether the Inception weights file `weights` names (or the one at the default place) is there."""
    from gan.metrics.inception import InceptionWeightsNotFoundError, resolve_weights_path

    try:
        resolve_weights_path(weights)
    except InceptionWeightsNotFoundError:
        return False
    except ValueError:  # (a folder in its place: there, and refused when read, before any image is scored)
        pass
    return True


def _evaluate_generative(state: dict, path: Path, folder: Path | None, metric_names: str | None, count: int,
                         inception_weights: Path | None, cache_dir: Path | None, json_path: Path | None,
                         which: str, device, outputs: EvalOutputs) -> None:
    import json

    from gan.core.config import config_from_dict
    from gan.core.files import write_text_atomically
    from gan.inference.generators import generator_from_checkpoint
    from gan.inference.scoring import evaluate_generative

    names = _checked_metric_names(metric_names, inception_weights, count)
    loaded = generator_from_checkpoint(state, path, device, which)
    suffix = "" if loaded.used_ema or "generator_ema" not in state["networks"] else "-live"
    default = path.parent / f"metrics-{loaded.step:08d}{suffix}.json"
    json_path = json_path or default
    # relative folders are read where the run read them (its checkpoints record them whole), not from here
    recorded = state.get("data") if isinstance(state.get("data"), dict) else {}
    data_root = (recorded.get("folders") or {}).get("data.root")
    loaded.config["data"]["root"] = _where_it_read(data_root, loaded.config["data"]["root"], "data.root")
    metrics_root = _where_it_read(recorded.get("metrics_root"), loaded.config["metrics"]["root"], "metrics.root")
    run_config = config_from_dict(loaded.config)
    data = run_config.data
    root_key = "--data"
    metrics = run_config.metrics
    if folder is None and metrics.every and metrics.root:  # (the held-out faces its metrics.jsonl and best.pt measured)
        folder, root_key = Path(metrics_root).expanduser(), "the run's metrics.root"
        if not folder.is_dir():
            relative = ("" if Path(metrics.root).expanduser().is_absolute() or recorded.get("metrics_root") else
                        ", a relative path read from the folder gan runs in")
            raise FileNotFoundError(f"the run's metrics.root '{folder}'{relative}, the real images its training "
                                    "measured, is not there (moved since it trained?): give them with --data FOLDER")
        click.echo(f"real images: the run's metrics.root '{folder}', as its training measured (--data names others)",
                   err=True)
    reference = reference_of(folder or data)
    real_images = folder or (Path(data.root) if data.dataset != "synthetic" else None)
    # (where its training cached them, not a second copy of up to a GB in ~/.cache)
    cache_dir = cache_dir or (Path(metrics.cache_dir).expanduser() if metrics.cache_dir else None)
    contents = contents_digest(real_images)
    outputs.check([json_path], defaults=[default], checkpoint=path, data=reference, data_folder=real_images,
                  step=loaded.step, run_config=loaded.config, run_record=recorded,
                  scored=(_scored_names(names, explicit=metric_names is not None, weights=inception_weights), count),
                  contents=contents)
    # Asked for by name, a metric that cannot run is an error; by default it is skipped, saying why.
    # (A named --inception-weights file was checked on the way in.)
    result = evaluate_generative(loaded, names, count, device, folder, inception_weights, cache_dir,
                                 require_weights=metric_names is not None, progress_stream=sys.stderr,
                                 root_key=root_key)
    scores = {key: value for key, value in result.items() if isinstance(value, float)}
    if contents is not None:
        result["data_contents"] = contents

    def write() -> None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(json_path, json.dumps(result, indent=2) + "\n")

    outputs.write_then_say(write, lambda: click.echo(f"step {result['step']}  " + "  ".join(
        f"{key} {value:.4f}" for key, value in scores.items())))
    images = "image" if result["num_images"] == 1 else "images"
    click.echo(f"wrote {json_path} ({result['num_images']} generated vs {result['num_images']} real {images} "
               f"from {result['reference']}; {path})", err=True)


def reference_of(source) -> str:
    """What a DCGAN evaluation compares against, as its JSON records it: a --data folder (resolved), or
    the run's [data] (its folder, or "synthetic")."""
    if isinstance(source, Path):
        return str(source.resolve())
    return "synthetic" if source.dataset == "synthetic" else str(Path(source.root).resolve())


def _where_it_read(recorded: str | None, typed: str, key: str) -> str:
    """The folder a run's `key` names for an evaluation: as its checkpoint recorded it (absolute: a
    relative one names another folder from here); where that is gone (the project moved), the
    config's relative one found from here, said, as a resume from here reads it."""
    if not recorded or Path(typed).expanduser().is_absolute():
        return typed
    if not Path(recorded).is_dir() and typed and Path(typed).expanduser().is_dir():
        warnings.warn(f"the run's {key} '{recorded}' is gone: its '{typed}' is read from here "
                      f"('{os.path.abspath(typed)}'), as a resume from here reads it", stacklevel=2)
        return typed
    return recorded


def _recorded_folders(record: dict | None) -> dict | None:
    """A checkpoint's record of its training folders, absolute ("data.root": ...), or None."""
    folders = record.get("folders") if isinstance(record, dict) else None
    return folders if isinstance(folders, dict) else None


def _warn_if_trained_on(scored: list[Path], config: dict, trained_folders: dict | None) -> None:
    """Scores of the images a run trained on measure how well they were fitted, not how the generator
    does on new ones (a run trained on DIV2K's parent folder, scored on its DIV2K_valid_HR): said once,
    naming the training folder, when a scored folder is one the run read, or inside or around one.
    The training folders are the checkpoint's record of them, absolute (a relative data.root read
    from another working folder names another folder); for a checkpoint written before there was
    one, the config's folders that are absolute."""
    from gan.data.decode import folders_overlap
    from gan.data.unpaired import domain_folders

    data = config["data"]
    folders = trained_folders or {f"data.{key}": data[key] for key in ("root", "a_root", "b_root")
                                  if data.get(key) and Path(data[key]).is_absolute()}
    if not folders:
        return
    root = folders.get("data.root", "")
    if data["dataset"] == "sr_pairs":
        trained = [Path(root)] if root else []
    elif data["dataset"] == "paired":
        trained = [Path(root) / data["split"] if data["split"] not in ("", "all") else Path(root)] if root else []
    else:
        trained = list(domain_folders(root, data["split"], folders.get("data.a_root", ""),
                                      folders.get("data.b_root", "")))
    for folder in scored:
        for training_folder in trained:
            if training_folder.is_dir() and folders_overlap(folder, training_folder):
                warnings.warn(f"'{folder}' holds images this run trained on (its training folder: "
                              f"'{training_folder}'): their scores measure how well they were fitted, not how the "
                              "generator does on new images", stacklevel=2)
                return


def _evaluate_image_to_image(path: Path, folder: Path, split: str | None, csv_path: Path | None, tile: int, device,
                             save_images: Path | None, inception_weights: Path | None, outputs: EvalOutputs) -> None:

    from gan.core.run_folders import is_training_state_name
    from gan.inference.scoring import (
        cycle_folders,
        distribution_scores,
        evaluate_cycle,
        evaluate_paired,
        evaluate_super_resolution,
        infinite_scores,
        mean_row,
        paired_evaluation_folder,
        strip_paths,
    )
    from gan.inference.tiling import load_translator
    from gan.metrics.translation import TranslationMetrics

    translator = load_translator(path, device, tile)
    data = translator.config["data"]
    if save_images is not None:
        _check_strip_folder(save_images, folder, data["dataset"])
    image_sets = {}  # translations as distributions: not for SR, whose images differ in size
    # what is scored, and the name its CSV takes: the folder's as typed (`datasets/facades`, a link to
    # the data, gives "facades"), made absolute without following links (`--data .` has a name too)
    scored, csv_name = folder, Path(os.path.abspath(folder)).name
    if data["dataset"] == "paired":
        scored, split = paired_evaluation_folder(folder, data, split)
        csv_name = f"{csv_name}-{split}" if split else csv_name
    elif translator.config["recipe"] == "cyclegan":
        a_folder, b_folder, split = cycle_folders(folder, data, split)
        csv_name = f"{csv_name}-{split}" if split else csv_name
    _warn_if_trained_on([a_folder, b_folder] if translator.config["recipe"] == "cyclegan" else [scored],
                        translator.config, _recorded_folders(translator.data_record))
    # (a tiled pass may score otherwise than the whole-image one the run's val/ metrics make: a record of its own)
    csv_name = f"{csv_name}-tile{tile}" if tile else csv_name
    default = translator.checkpoint.parent / f"eval-{csv_name}-{translator.step:08d}.csv"
    csv_path = csv_path or default
    # beside the CSV, its record as JSON: what was scored, the mean, and the translations' scores as
    # distributions (not for SR, whose images differ in size)
    json_path = csv_path.with_suffix(".json")
    if is_training_state_name(json_path) and not is_training_state_name(csv_path):  # (--csv best.csv, with --best)
        raise click.BadParameter(f"'{csv_path}' would have its JSON record beside it as '{json_path.name}', a name gan "
                                 "keeps for a run's state (best.json): give the CSV another name, e.g. "
                                 f"{csv_path.with_stem(csv_path.stem + '-eval').name}", param_hint="--csv")
    planned = [csv_path, json_path]
    strips = strip_paths(folder, save_images) if save_images is not None else []
    if save_images is not None:
        _warn_of_other_strips(save_images, strips)
    started_ns = time.time_ns()
    distributions = data["dataset"] != "sr_pairs"
    weights_there = inception_weights is not None or _weights_found(None)
    kept = (["fid", "kid", "swd"] if weights_there else ["swd"], None) if distributions else None
    contents = contents_digest(scored)
    outputs.check(planned + strips, defaults=[default, default.with_suffix(".json")], checkpoint=path,
                  data=str(scored.resolve()), data_folder=folder, step=translator.step, run_config=translator.config,
                  scored=kept, contents=contents, run_record=translator.data_record)
    # Asked for by --inception-weights, FID/KID must run (checked here, before any image is scored);
    # by default they are skipped without the weights, said after the images are (a folder that is no
    # pairs is refused alone). (Not for SR, whose images differ in size.)
    def translation_metrics() -> TranslationMetrics:
        return TranslationMetrics(translator.device, inception_weights, require_weights=inception_weights is not None,
                                  progress_stream=sys.stderr)

    # (weights that are there are read now: damaged, they stop the command before the images are scored)
    metrics = translation_metrics() if distributions and weights_there else None
    if translator.config["recipe"] == "cyclegan":
        backward = load_translator(path, translator.device, tile, direction="BtoA")
        rows_iterator = evaluate_cycle(translator, backward, a_folder, b_folder, data["resolution"], image_sets)
    elif data["dataset"] == "sr_pairs":
        rows_iterator = evaluate_super_resolution(translator, folder, _degradation_of(data), save_images)
    else:
        rows_iterator = evaluate_paired(translator, scored, data, image_sets)
    # (a stop or failure anywhere after the first strip, the distribution scores and the record's write too, says
    # what the strips written are)
    with _partial_strips_said(strips, save_images, started_ns, csv_path):
        rows, skipped = _collect_rows(rows_iterator, scored)
        infinite = infinite_scores(rows)
        rows.append(mean_row(rows))
        # (JSON has no infinity: a mean infinite throughout is written as null)
        result = {"checkpoint": str(translator.checkpoint), "step": translator.step, "data": str(scored.resolve()),
                  "split": split, "mean": {key: value if math.isfinite(value) else None
                                           for key, value in rows[-1].items() if key != "image"},
                  # (file names as the CSV writes them: a name's bytes that are no UTF-8 as \xff, not a lone surrogate
                  # that JSON's readers take for U+FFFD)
                  "infinite_scores": {key: [undecoded(image) for image in images] for key, images in infinite.items()},
                  "skipped_images": {undecoded(one.image): one.reason for one in skipped},
                  "data_contents": contents, "tile": tile}
        scores = {}
        if image_sets and distributions:
            scores, skipped_metrics = distribution_scores(image_sets, metrics or translation_metrics())
            result.update({"images": image_counts(image_sets), "skipped": skipped_metrics, **scores})

        def say() -> None:
            click.echo(_format_row(rows[-1]))
            if scores:  # (none when every set was too small: the warnings said why)
                click.echo("  ".join(f"{name} {value:.4f}" for name, value in scores.items()))

        outputs.write_then_say(lambda: _write_evaluation(csv_path, rows, result), say)
    click.echo(f"wrote {csv_path} ({_scored_summary(len(rows) - 1, data['dataset'], folder, scored, split)}, "
               f"{translator.checkpoint}){_skipped_summary(skipped)}{_infinite_summary(infinite)}", err=True)
    click.echo(f"wrote {csv_path.with_suffix('.json')} (the record of this evaluation"
               + (", with the translations scored against real images of the target domain)" if image_sets else ")"),
               err=True)


@contextlib.contextmanager
def _partial_strips_said(strips: list[Path], save_images: Path | None, started_ns: int, csv_path: Path):
    """Says how many --save-images strips an evaluation that ended early (stopped, a full disk, an image
    too large; as it scored them or after, before its CSV and JSON were written) had written: the
    strips so far would pass for a set. A folder it made and wrote none into is removed."""
    made = save_images is not None and not save_images.exists()
    try:
        yield
    except BaseException:
        written = [strip for strip in strips if _written_since(strip, started_ns)]
        if written:
            whole = "the whole set" if len(written) == len(strips) else "a partial set"
            record = "its CSV and JSON" if _written_since(csv_path, started_ns) else "no CSV or JSON"
            click.echo(f"{len(written)} of the {len(strips)} strips were written to '{save_images}' before it ended: "
                       f"{whole}, with {record}", err=True)
        elif made:
            with contextlib.suppress(OSError):  # (only when empty)
                save_images.rmdir()
        raise


def _written_since(path: Path, started_ns: int) -> bool:
    """Whether `path` is a file written since `started_ns` (time.time_ns()): by this evaluation."""
    return path.is_file() and path.stat().st_mtime_ns >= started_ns


def _degradation_of(data: dict):
    """How the run's training made its LR inputs (`[data]` of its config), said when more than a
    bicubic downscale: eval makes them the same way."""
    from gan.data.super_resolution import Degradation, describe_degradation

    downsample = Degradation(data["scale"], data.get("blur_sigma", 0.0), data.get("noise_std", 0.0),
                             data.get("jpeg_quality", 0))
    if downsample != Degradation(data["scale"]):
        click.echo(f"LR inputs are made as in the run's training: {describe_degradation(downsample)}", err=True)
    return downsample


def _write_evaluation(csv_path: Path, rows: list[dict], result: dict) -> None:
    """The CSV of `rows` and, beside it as JSON, the record `result`, moved into place together: one
    that failed left an --overwrite's pair disagreeing (the new CSV beside the record of the evaluation
    before)."""
    import json

    from gan.core.files import missing_folders, remove_empty_folders, write_together
    from gan.inference.scoring import csv_text

    made = missing_folders([csv_path.parent])
    try:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        write_together({csv_path: lambda temp: temp.write_text(csv_text(rows), encoding="utf-8"),
                        csv_path.with_suffix(".json"): lambda temp: temp.write_text(
                            json.dumps(result, indent=2) + "\n", encoding="utf-8")})
    except BaseException:  # (stopped, or a full disk: a folder made for the pair was left empty, and a retry refused)
        remove_empty_folders(made)
        raise


def image_counts(image_sets: dict) -> dict:
    """The images each distribution score compared, for the JSON record: {"translations": N, "targets": M}
    for paired data; by direction for CycleGAN ({"AtoB": {...}, "BtoA": {...}}), as its scores are named."""
    counts = {name.lstrip("_"): {"translations": len(outputs), "targets": len(targets)}
              for name, (outputs, targets) in image_sets.items()}
    return counts.get("", counts)


def _scored_summary(count: int, dataset: str, folder: Path, scored: Path, split: str | None) -> str:
    """What the rows are, for the summary line: `2 pairs of split 'val' in 'facades'` for paired data
    (which split of a root, so that a mean over train and val together cannot pass unnoticed)."""
    if dataset == "unpaired":
        return f"{count} images of {f'{split}A/ and {split}B/' if split else 'A/ and B/'} in '{folder}'"
    if dataset != "paired":
        return f"{count} images"
    return f"{count} pairs of split '{split}' in '{folder}'" if split else f"{count} pairs in '{scored}'"


def _check_strip_folder(save_images: Path, folder: Path, dataset: str) -> None:
    """--save-images is for SR, and never inside --data: strips would overwrite the images measured
    (a strip of `a.png` is `a.png`), or be measured themselves next time."""
    if dataset != "sr_pairs":
        raise click.UsageError("--save-images is for super-resolution checkpoints")
    strips, data = save_images.resolve(), folder.resolve()
    if strips == data or data in strips.parents:
        raise ValueError(f"--save-images '{save_images}' is inside --data '{folder}': its strips would overwrite "
                         "or join the images being measured; give a folder outside it")


def _warn_of_other_strips(save_images: Path, strips: list[Path]) -> None:
    """A --save-images folder holding PNGs this evaluation writes no strip over (another data set's,
    another model's): its strips would join them, two evaluations in one folder without a word."""
    if not save_images.is_dir():
        return
    ours = {strip.relative_to(save_images) for strip in strips}
    others = sorted(path.relative_to(save_images).as_posix() for path in save_images.rglob("*.png")
                    if path.relative_to(save_images) not in ours)
    if others:
        warnings.warn(f"--save-images '{save_images}' holds {len(others)} PNG(s) this evaluation writes no strip over "
                      f"(the first: {one_line(others[0])}): its strips join them; give an empty folder to keep them "
                      "apart", stacklevel=2)


def _collect_rows(results, folder: Path) -> tuple[list[dict], list]:
    """The scored rows and the Skipped images of an evaluation, each printed as it comes; an error
    naming the folder when no image could be scored."""
    from gan.inference.scoring import Skipped

    rows, skipped = [], []
    for result in results:
        if isinstance(result, Skipped):
            skipped.append(result)
            click.echo(f"skipped {one_line(result.image)}: {result.reason}", err=True)
        else:
            rows.append(result)
            click.echo(_format_row(result), err=True)
    if not rows:
        first = skipped[0]
        raise FileNotFoundError(f"nothing to evaluate in '{folder}': none of its {len(skipped)} image file(s) could "
                                f"be scored ({one_line(first.image)}: {first.reason})")
    return rows, skipped


def _infinite_summary(infinite: dict[str, list[str]]) -> str:
    """`; 1 image(s) with an infinite score (identical to the target: bicubic_psnr) left out of every mean:
    a.png`, or nothing."""
    images = sorted({image for found in infinite.values() for image in found})
    if not images:
        return ""
    return (f"; {len(images)} image(s) with an infinite score (identical to the target: {', '.join(infinite)}) left "
            f"out of every mean: {first_few([one_line(image) for image in images], MAX_NAMED)}")


def _skipped_summary(skipped: list) -> str:
    """`; 2 image(s) skipped, in no row and no mean: a.png, b.jpg` for the summary line, or nothing."""
    if not skipped:
        return ""
    named = first_few([one_line(one.image) for one in skipped], MAX_NAMED)  # (a file name may hold a line end)
    return f"; {len(skipped)} image(s) skipped, in no row and no mean: {named}"
