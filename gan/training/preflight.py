"""Before step 1, every path a run will need, checked at once: a run that cannot finish
says so before it starts, rather than at its first validation with its steps lost.

The loop calls it once the recipe and its training set are built (their constructors have
read the training folders, `model.init_generator` and the VGG weights by then). It checks,
where the config turns each on: the evaluation set that previews and validation read
(`data.val_root`, `data.val_split`; its preview images decoded), `metrics.root`, the Inception
weights a metric will read (named in `metrics.inception_weights`, or at their default place),
and that the run directory and the caches can be written; and that a batch's activations can
fit in the memory left (`check_batch_fits`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from gan.core.checkpoint import BEST_RECORD, METRICS_RECORD
from gan.core.config import Config, DataConfig
from gan.core.distributed import ProcessGroup, gather_objects
from gan.core.files import check_utf8_path, missing_folders, remove_empty_folders, temp_name
from gan.core.inert import scores_translations
from gan.core.memory import available_memory, format_bytes
from gan.core.registry import ConfigError
from gan.data import build_dataset, data_identity, data_signature, reference_data, training_folders
from gan.data.cache import is_built, user_cache_dir
from gan.data.decode import folders_overlap, header_size
from gan.data.image_files import ImageFileDataset
from gan.metrics.generative import INCEPTION_METRICS, smallest_count
from gan.metrics.inception import (
    InceptionWeightsDamaged,
    InceptionWeightsNotFoundError,
    damaged_weights_advice,
    default_weights_path,
    read_inception_weights,
    resolve_weights_path,
    weights_setting,
)
from gan.nets.running import (
    LARGE_PASS_PIXELS,
    eval_mode,
    largest_layer_bytes_per_pixel,
    layer_output_bytes,
    live_layers,
)
from gan.recipes.losses import SCORE_SHAPES, scores_misfit


def check_run_can_finish(config: Config, run_dir: Path, load_previews: Callable[[], object] | None,
                         dataset: Dataset | None = None, writes: bool = True,
                         reference: Callable[[], Dataset] | None = None,
                         statistics_cached: Callable[[], bool] | None = None) -> None:
    """ConfigError listing every problem found, one per line; nothing when there is none.
    `load_previews`: loads the evaluation images that the recipe's previews show (image-to-image
    recipes; an unconditional one draws latents), so that an evaluation set none of whose files
    decode (ones damaged past their header pass the folder scan) stops the run now. `dataset`: the training set,
    whose decoded-image cache, when already built, needs no write access. `writes`: whether this
    process writes the run directory and the metrics' cache (torchrun's rank 0 alone: another
    rank's probe there recreated a run directory that rank 0 had removed on a failed start).
    `reference`: gives the metrics' real images of metrics.root, built once for the check and the
    metrics (the evaluator's); else they are built here. `statistics_cached`: whether the reference
    statistics the metrics need are in metrics.cache_dir already (the evaluator's), which then needs
    no write access."""
    problems = run_problems(config, run_dir, load_previews, dataset, writes, reference, statistics_cached)
    if problems:
        raise ConfigError("this run could not finish, so it does not start:\n" +
                          "\n".join(f"  - {problem}" for problem in problems))


def refuse_other_data(config: Config, dataset: Dataset, group: ProcessGroup) -> None:
    """ConfigError on every process of a torchrun run whose processes listed other training images
    (each machine reads its own copy of data.root): the sample stream is a permutation of the count,
    and each process decodes its share of a batch from its own list, so lists that differ drew some
    images twice and others never, in silence (and counts that differ failed a collective at the end)."""
    if not group.distributed:
        return
    every = gather_objects({"signature": data_signature(dataset), "folders": training_folders(config.data)}, group)
    differing = [rank for rank, other in enumerate(every) if other["signature"] != every[0]["signature"]]
    if not differing:
        return

    def described(rank: int) -> str:
        signature, where = every[rank]["signature"], every[rank]["folders"]
        folder = ", ".join(f"{key} '{value}'" for key, value in where.items()) or "its data"
        return f"rank {rank}: {signature['images']} images in {folder}"

    first = every[differing[0]]["signature"]
    what = ("the counts differ" if first["images"] != every[0]["signature"]["images"] else
            "the file names differ" if first["names"] != every[0]["signature"]["names"] else
            "files of the same names differ in size")
    more = f", and {len(differing) - 1} more rank(s)" if len(differing) > 1 else ""
    raise ConfigError(f"the processes of this torchrun run read other training images ({described(0)}; "
                      f"{described(differing[0])}: {what}{more}): "
                      "each process draws its share of every batch by index from its own list, so every machine "
                      "needs the same copy of the data set")


def _reference_set(data, root: str) -> Dataset:
    """The metrics' real images, read as [data] says from `root`: a missing folder's message names
    metrics.root, the key that set it here."""
    return build_dataset(reference_data(data, root), train=False, root_key="metrics.root")


def _too_few_real_images(metrics, reference: Dataset, where: str) -> None:
    """Refuse a reference set smaller than the Inception metrics that will run can score (pr's
    neighbours, a distribution's two): they failed at the first metrics pass. SWD compares patches,
    which one image has many of; metrics whose weights are absent are dropped, not run."""
    scored = [name for name in metrics.names if name in INCEPTION_METRICS]
    fewest, why = smallest_count(scored)
    if not scored or len(reference) >= fewest:
        return
    try:
        resolve_weights_path(metrics.inception_weights)
    except InceptionWeightsNotFoundError:
        return
    count = f"{len(reference)} real image" + ("s" if len(reference) != 1 else "")
    raise ConfigError(f"{where} gives {count} to score against, too few for metrics.names = "
                      f"{list(metrics.names)}: at least {fewest} ({why})")


def _read_weights(path: str | None) -> None:
    """Read the Inception weights at `path` (or the default place), a damaged file said with what to do."""
    try:
        read_inception_weights(path)
    except InceptionWeightsDamaged as error:
        raise InceptionWeightsDamaged(f"{error}; {damaged_weights_advice(path)}") from None


def run_problems(config: Config, run_dir: Path, load_previews: Callable[[], object] | None,
                 dataset: Dataset | None = None, writes: bool = True,
                 reference: Callable[[], Dataset] | None = None,
                 statistics_cached: Callable[[], bool] | None = None) -> list[str]:
    problems: list[str] = []

    def check(what: str, test: Callable[[], object]) -> None:
        try:
            test()
        except (ConfigError, FileNotFoundError, NotADirectoryError, ValueError, OSError) as error:
            problems.append(f"{what}: {error}")

    data, metrics = config.data, config.metrics
    if load_previews is not None:
        check("the evaluation images (previews, validation)", load_previews)
    if metrics.every and metrics.root:
        real_images = reference or (lambda: _reference_set(data, metrics.root))
        check("metrics.root", lambda: _too_few_real_images(metrics, real_images(), f"'{metrics.root}'"))
    elif metrics.every and dataset is not None:
        where = (f"data.synthetic_size = {data.synthetic_size}" if data.dataset == "synthetic" else
                 f"data.root '{data.root}'" + (f" with data.max_images = {data.max_images}" if data.max_images else ""))
        check("metrics.names", lambda: _too_few_real_images(metrics, dataset, where))
    if (scores_translations(config) and set(metrics.names) & set(INCEPTION_METRICS)
            and (metrics.inception_weights or default_weights_path().is_file())):
        # read, not only found: a damaged file stopped image-to-image runs at their first validation (FID,
        # KID of translations); the generative metrics' evaluator has read the file before this check
        check(weights_setting(metrics.inception_weights), lambda: _read_weights(metrics.inception_weights))
    elif metrics.inception_weights and metrics.every and set(metrics.names) & set(INCEPTION_METRICS):
        check("metrics.inception_weights", lambda: resolve_weights_path(metrics.inception_weights))
    if writes:
        check("the run directory", lambda: _require_writable(run_dir, "the run directory"))
        check("samples/", lambda: _require_folder_or_nothing(run_dir / "samples", "its preview grids"))
    if writes and metrics.every:
        check(METRICS_RECORD, lambda: _require_file_or_nothing(run_dir / METRICS_RECORD, "its metrics' rows"))
    if writes and config.train.keep_best:
        check(BEST_RECORD, lambda: _require_file_or_nothing(run_dir / BEST_RECORD, "its best checkpoint's record"))
    if writes and run_dir.is_dir():  # (the final checkpoint failed to write there, after every step had trained)
        for folder in sorted(run_dir.glob("checkpoint-*.pt")):
            check(folder.name, lambda folder=folder: _require_file_or_nothing(folder, "a checkpoint"))
    if data.cache != "off":
        cache = Path(data.cache_dir) if data.cache_dir else user_cache_dir("decoded")
        prebuilt = isinstance(dataset, ImageFileDataset) and is_built(dataset, data_identity(data), cache)
        if not prebuilt:  # (a cache already built is only read)
            check("data.cache_dir", lambda: _require_writable(cache, _cache_folder("data.cache_dir", data.cache_dir)))
    if writes and metrics.every:
        cache = Path(metrics.cache_dir) if metrics.cache_dir else user_cache_dir("reference-statistics")
        check("metrics.cache_dir", lambda: _require_writable_unless(
            statistics_cached, cache, _cache_folder("metrics.cache_dir", metrics.cache_dir)))
    return problems


def _require_writable_unless(already_there: Callable[[], bool] | None, folder: Path, what: str) -> None:
    """`_require_writable`, but a cache folder that holds what the run reads from it already (a lab's
    shared reference statistics, a read-only HOME's) is only read: asked only of a folder that cannot
    be written, as the question may cost a look at every data file."""
    try:
        _require_writable(folder, what)
    except PermissionError as error:
        try:
            there = already_there is not None and already_there()
        except OSError as unreadable:  # (another user's private folder: "[Errno 13] ... '<file>'" was all it said)
            raise PermissionError(f"{error}, nor can what it holds be read: {unreadable.strerror or unreadable}; "
                                  "set it to a folder of your own") from None
        if not there:
            raise PermissionError(f"{error} (it does not hold what this run needs from it yet, which the run "
                                  "would write there)") from None


def _cache_folder(key: str, value: str) -> str:
    """A cache folder as messages name it: by its key where the config sets it, else as the default that
    HOME (or XDG_CACHE_HOME) placed (a HOME that is a file made it a path no folder can take)."""
    return key if value else f"the default cache folder ({key} is unset; it lies under XDG_CACHE_HOME or HOME)"


def warn_if_validation_reads_training_data(config: Config) -> None:
    """Validation that scores the images the run trains on measures fit, not generalisation, and
    best.pt then follows it: said once, before step 1, when the config leaves no held-out images:
    validation reads a training folder, or one inside it or around it (each is read with its
    subfolders). (data.a_root/b_root alone, which name training folders, are warned of where read.)"""
    data = config.data
    if data.dataset == "sr_pairs":
        folders = [("data.root", data.root, "data.val_root", data.val_root)] if data.val_root else []
        why = "data.val_root is empty" if not data.val_root else None
        advice = "set data.val_root to a folder of held-out images (Set5, say)"
    elif data.dataset == "paired":
        val_split = data.val_split or data.split
        folders = [(_split_key("data.split", data.split), _split_folder(data.root, data.split),
                    _split_key("data.val_split", val_split), _split_folder(data.root, val_split))]
        why = _same_split(data)
        advice = "set data.val_split to a held-out split folder (pix2pix's val)"
    elif data.dataset == "unpaired" and (not (data.a_root or data.b_root) or (data.root and data.val_split)):
        from gan.data.unpaired import domain_folders

        trained = domain_folders(data.root, data.split, data.a_root, data.b_root)
        validated = domain_folders(data.root, data.val_split or data.split)
        folders = [(f"the training folder of domain {domain}", str(train), f"the validation folder of domain {domain}",
                    str(val)) for domain, train, val in zip("AB", trained, validated)]
        why = _same_split(data) if not (data.a_root or data.b_root) else None
        advice = "set data.val_split to a held-out split folder (CycleGAN's test)"
    else:
        return
    for train_key, train_folder, val_key, val_folder in folders:
        if why is None:
            why = _overlap(train_key, train_folder, val_key, val_folder)
    if why:
        warnings.warn(f"validation scores the images this run trains on ({why}), so its val/ scores and best.pt "
                      f"measure how well they are fitted, not how the generator does on new ones: {advice}",
                      stacklevel=2)


def _same_split(data: DataConfig) -> str | None:
    return ("data.val_split is empty" if not data.val_split else
            "data.val_split is data.split" if data.val_split == data.split else None)


def _split_folder(root: str, split: str) -> str:
    """The folder a paired split reads: data.root itself for "all"."""
    return root if split in ("", "all") else str(Path(root) / split)


def _split_key(key: str, split: str) -> str:
    return f"{key} = {split!r} (data.root{'' if split in ('', 'all') else '/' + split})"


def _overlap(train_key: str, train_folder: str, val_key: str, val_folder: str) -> str | None:
    """How the validation folder shares the training folder's images, or None: the same folder, or
    one inside the other (training and validation each read their folder with its subfolders)."""
    overlap = folders_overlap(Path(train_folder), Path(val_folder))
    if overlap == "same":
        return f"{val_key} is {train_key}" + (f", '{train_folder}'" if not train_key.startswith("data.") else "")
    if overlap == "second inside":
        return f"{val_key}, '{val_folder}', is inside {train_key}, '{train_folder}'"
    if overlap == "first inside":
        return f"{train_key}, '{train_folder}', is inside {val_key}, '{val_folder}'"
    return None


def _require_folder_or_nothing(folder: Path, holding: str) -> None:
    """A file where the run makes a folder fails at its first write, long after step 1."""
    if os.path.lexists(folder) and not folder.is_dir():
        raise NotADirectoryError(f"'{folder}' is a file where the run keeps {holding} in a folder: move it out of "
                                 "the run directory")


def _require_file_or_nothing(path: Path, holding: str) -> None:
    """A folder where the run writes a file fails at its first write, long after step 1."""
    if path.is_dir():
        raise IsADirectoryError(f"'{path}' is a folder where the run keeps {holding} in a file: move it out of the "
                                "run directory")


def _require_writable(folder: Path, what: str) -> None:
    """`folder` exists or can be made, and a file can be written in it (tried: a permission check
    would pass for root on a folder it still cannot write, such as a read-only mount); its path is
    UTF-8 text, as TensorBoard's event files name it. The folders made to try it are removed again
    (a refused run left its cache folders made); their writers make them when they write."""
    check_utf8_path(folder, what)
    if folder.exists() and not folder.is_dir():
        kind = "a file" if folder.is_file() else "a device, pipe or socket"  # (/dev/null was "a file")
        raise NotADirectoryError(f"{what} '{folder}' is {kind}, not a folder: move it, or name another folder")
    made = missing_folders([folder])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temp_name(folder / ".write-test")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"{what} '{folder}' cannot be written: {error.strerror or error}") from None
    finally:
        remove_empty_folders(made)


def check_pools_fit(pools: dict, config: Config, device: torch.device) -> None:
    """ConfigError when the pools of generated images (CycleGAN's, `loss.pool_size` images for each
    discriminator, made whole at step 1) cannot fit in the memory left on `device`; warned of when they
    take over half of it. A pool_size of 1000000 for 100 got the process killed by the kernel at step 1,
    without a word (under a memory limit: "out of memory ... a smaller train.batch_size")."""
    available = available_memory(device)
    images = sum(pool.size for pool in pools.values())
    if available is None or not images:
        return
    needed = images * 3 * config.data.resolution ** 2 * 4  # (float32 RGB: AMP's halves take half)
    held = (f"loss.pool_size {config.loss.pool_size} keeps {len(pools)} pools of that many generated "
            f"{config.data.resolution}x{config.data.resolution} images ({format_bytes(needed)}), and {device} has "
            f"{format_bytes(available)} available")
    most = max(1, available // (2 * 3 * config.data.resolution ** 2 * 4 * len(pools)))
    if needed > available:
        raise ConfigError(f"{held}: at most about {most:,} fit beside training (the reference keeps 50)")
    if 2 * needed > available:
        warnings.warn(f"{held}: the run may be stopped for lack of memory; at most about {most:,} fit beside "
                      "training (the reference keeps 50)", stacklevel=2)


def check_batch_fits(networks: dict[str, nn.Module], config: Config, device: torch.device) -> None:
    """ConfigError when `train.batch_size` images cannot fit in the memory left on `device`, judged
    by a lower bound: the outputs of every layer of every trained network in one forward pass
    (measured at batch 1, in eval mode and without gradients, so no training state changes),
    times the batch, plus what the first step allocates whatever the batch: the gradients and
    Adam's two moments of every trained weight (3x them; at 256 px, DCGAN's are 0.7 GB, six times
    its activations at batch 4). A step needs more (backward), so a refused batch could never have
    run: without this, the kernel kills the process with no message once memory runs out."""
    available = available_memory(device)
    if available is None:
        return
    trained = [parameter for name, network in networks.items() if not name.endswith("_ema")
               for parameter in network.parameters() if parameter.requires_grad]
    weights = sum(parameter.numel() for parameter in trained)
    state = 3 * sum(parameter.numel() * parameter.element_size() for parameter in trained)
    if state > available:
        raise ConfigError(f"the networks' gradients and Adam's moments need {format_bytes(state)} (3x their "
                          f"{weights:,} trained weights) from the first step, and {device} has {format_bytes(available)} "
                          "available: train smaller networks (model.generator_args.channels, "
                          "model.discriminator_args.channels) or at a lower data.resolution")
    measured = [_activation_bytes_or_none(network, example) for name, network in networks.items()
                if not name.endswith("_ema") and (example := example_input(name, network, config, device)) is not None]
    per_image = sum(filter(None, measured))
    if not per_image:  # (no network's input could be told)
        return
    needed = per_image * config.train.batch_size + state
    fit = f"at most about {max(1, (available - state) // (2 * per_image)):,} images fit in a batch"
    beside = f" beside {format_bytes(state)} of gradients and Adam's moments" if state else ""
    if needed > available:
        raise ConfigError(f"train.batch_size {config.train.batch_size} needs at least {format_bytes(needed)} for one "
                          f"step's activations ({format_bytes(per_image)} per image, measured by a forward pass of each "
                          f"network; the backward pass needs about as much again){beside}, and {device} has "
                          f"{format_bytes(available)} available: {fit}")
    if needed + per_image * config.train.batch_size > available:  # (with the backward pass: it may still fit)
        warnings.warn(f"train.batch_size {config.train.batch_size} needs about {format_bytes(needed + needed - state)} "
                      f"for one step's activations with the backward pass ({format_bytes(per_image)} per image "
                      f"forward, as much again backward){beside}, more than the {format_bytes(available)} {device} has "
                      f"available: the run may be stopped for lack of memory; {fit}", stacklevel=2)


def check_validation_fits(recipe, config: Config, device: torch.device) -> None:
    """ConfigError when the largest SR validation image cannot go through the generator whole in the
    memory left on `device` (validation scores each image whole, as papers do): on the CPU the kernel
    kills such a run at its first validation, before that step's checkpoint, and a resume is killed
    there again. Judged as `gan translate` judges a pass (`live_layers` x the largest layer output)."""
    if (not config.log.eval_every or config.data.dataset != "sr_pairs" or getattr(recipe, "generator", None) is None
            or getattr(recipe, "evaluation_images", None) is None):
        return
    dataset = recipe.evaluation_images.get()
    sizes = {path: size for path in getattr(dataset, "paths", []) if (size := header_size(path)) is not None}
    if not sizes:
        return
    path, (width, height) = max(sizes.items(), key=lambda item: item[1][0] * item[1][1])
    shrink = 1 if config.data.upsample_input else config.data.scale
    pixels = (width // shrink) * (height // shrink)
    available = available_memory(device)
    if pixels <= LARGE_PASS_PIXELS or available is None:
        return
    # (pix2pix on SR data, sr_pix2pix: a U-Net takes inputs of a multiple of 256 px, the probe too)
    needed = pixels * largest_layer_bytes_per_pixel(recipe.generator, getattr(recipe, "size_multiple", 1),
                                                    device) * live_layers(recipe.generator)
    if needed > available:
        where = "data.val_root" if config.data.val_root else "data.root"
        raise ConfigError(f"the validation image '{path}' ({width}x{height}) would need about {format_bytes(needed)} "
                          f"to go through the generator whole, and {device} has {format_bytes(available)} available: "
                          f"validation scores each image of {where} whole, so take it out (or a crop of it), or set "
                          "log.eval_every = 0")


def check_scores_per_image(recipe, config: Config, device: torch.device) -> None:
    """ConfigError when a discriminator gives other than one tensor of scores, one score or one map of
    scores per image, for two at the training resolution: one for the whole batch (a mean of one's own)
    trained in silence, every image's gradient 1/N of its own, and so did an AC-GAN head's (N, 2), its
    columns averaged. One it cannot run on such images is left to training."""
    size = config.data.resolution
    for name, spec in recipe.check(config).items():
        network = recipe.networks.get(name)
        if spec.role != "discriminator" or network is None:
            continue
        channels = spec.kwargs.get("in_channels", spec.kwargs.get("image_channels", 3))
        try:
            with torch.no_grad(), eval_mode(network):
                scores = network(torch.zeros(2, channels, size, size, device=device, dtype=torch.float32))
        except (RuntimeError, ValueError, TypeError):
            continue
        key = "model.discriminator" if name == "discriminator" or name.startswith("discriminator_") else name
        if not isinstance(scores, torch.Tensor):  # (a tuple was said to be "of shape tuple", one for the batch)
            raise ConfigError(f"{key} = '{spec.name}' returned a {type(scores).__name__}, not a tensor: a "
                              f"discriminator gives one tensor of scores, {SCORE_SHAPES} (docs/layout.md)")
        misfit = scores_misfit(tuple(scores.shape), 2)
        if misfit:
            raise ConfigError(f"{key} = '{spec.name}' gives scores of shape {tuple(scores.shape)} for 2 images: a "
                              f"discriminator gives one score per image, {SCORE_SHAPES}, {misfit} (docs/layout.md)")


def example_input(name: str, network: nn.Module, config: Config, device: torch.device) -> torch.Tensor | None:
    """A zero input of one item for `network` as training feeds it: latents for an unconditional
    generator, else images at the training resolution (low resolution for a generator that upsamples),
    of its first convolution's channels. None when the network's first layer is no Conv2d (a network
    of one's own, an MLP say): the check cannot tell its input, and leaves it out."""
    if hasattr(network, "latent_dim"):
        return torch.zeros(1, network.latent_dim, device=device, dtype=torch.float32)
    first = next((module for module in network.modules() if isinstance(module, (nn.Conv2d, nn.Linear))), None)
    if not isinstance(first, nn.Conv2d):
        return None
    size = config.data.resolution
    if name.startswith("generator") and config.data.dataset == "sr_pairs" and not config.data.upsample_input:
        size //= config.data.scale
    return torch.zeros(1, first.in_channels, size, size, device=device, dtype=torch.float32)


def _activation_bytes_or_none(network: nn.Module, inputs: torch.Tensor) -> int | None:
    """`activation_bytes`, or None when the network refuses the input guessed for it (a network of
    one's own whose first module is not its input layer): left out, the estimate stays a lower bound,
    and training meets the network with its real input."""
    try:
        return activation_bytes(network, inputs)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, TypeError):
        return None


def activation_bytes(network: nn.Module, inputs: torch.Tensor) -> int:
    """Bytes of every leaf module's output in one forward pass of `inputs`, in eval mode."""
    with eval_mode(network):
        return sum(layer_output_bytes(network, lambda: network(inputs)))
