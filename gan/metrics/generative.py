"""Generative metrics of a generator against a real image set: FID, KID, precision/recall, SWD.

Real images come from a run's `[data]` section (no augmentation), at the training
resolution, as uint8 like the generated ones. Their Inception features and SWD
descriptors are computed once and cached on disk, keyed by everything they depend
on, so evaluating during training costs only the generated side.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

import torch
from torch import nn
from torch.utils.data import Dataset

from gan.core.checkpoint import CheckpointError, failed_checksum, save_checkpoint, unloadable_reason
from gan.core.config import DataConfig
from gan.core.files import other_owner, remove_stale_temps, unreadable_by_this_user, written_name
from gan.core.images import signed_to_uint8
from gan.core.memory import available_memory, format_bytes
from gan.core.progress import print_above, stoppable_progress
from gan.core.registry import ConfigError, suggest
from gan.core.wording import printable
from gan.data.cache import user_cache_dir
from gan.metrics.feature_distances import (
    GaussianStatistics,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
)
from gan.metrics.inception import (
    InceptionWeightsNotFoundError,
    inception_features,
    load_inception,
    skipped_for_missing_weights,
)
from gan.metrics.swd import SWD_PATCHES, patch_descriptors, swd_directions, swd_from_descriptors, swd_memory_bytes
from gan.nets.running import eval_mode, generate, random_latents

METRIC_NAMES = ("fid", "kid", "swd", "pr")
INCEPTION_METRICS = ("fid", "kid", "pr")
PR_NEIGHBOURS = 3  # precision/recall's k (Kynkäänniemi et al.)


def smallest_count(names: Iterable[str]) -> tuple[int, str]:
    """The fewest images per set that `names` can score, and why: 2 for a distribution, more for pr,
    which compares each image with its k nearest neighbours."""
    if "pr" in names:
        return PR_NEIGHBOURS + 1, f"pr compares each image with its {PR_NEIGHBOURS} nearest neighbours"
    return 2, "a distribution needs 2 images"
# Bump when images, features or descriptors are computed differently: old caches then miss.
# 2: embedded ICC colour profiles applied when decoding the real images; 3: colour keys of 2- and 4-bit
# grey PNGs, 16-bit white-is-zero TIFFs, SWD of sizes with an odd pyramid level; 4: palette images' profiles,
# colour keys under a profile, the partition file in the key, images that fail to decode left out; 5: a BMP
# whose alpha is 0 everywhere read opaque, a float image with highlights above 1 read as 0..1
VERSION = 5


def check_metric_names(names: Iterable[str], key: str) -> list[str]:
    """The names, each checked against METRIC_NAMES (`key` is what the user set, for the message)."""
    names = [name.strip().lower() for name in names if name.strip()]
    for name in names:
        if name not in METRIC_NAMES:
            raise ConfigError(f"{key}: unknown metric '{printable(name, 80)}'{suggest(name, list(METRIC_NAMES))}; "
                              f"known: {', '.join(METRIC_NAMES)}")
    if not names:
        raise ConfigError(f"{key}: name at least one metric of {', '.join(METRIC_NAMES)}")
    return names


# ----------------------------------------------------------------------------- reference set


def reference_key(data: DataConfig, count: int, kind: str, files: str | None = None, weights: str = "") -> dict:
    """Everything the cached `kind` ('inception' or 'swd') statistics of a data set depend on, its
    files included: statistics of images since changed are recomputed, not reused. `files` is the
    data's `source_fingerprint` when already taken (it stats every file); `weights`, the digest of
    the Inception weights file that made the features (features of other weights would give a
    silently wrong FID)."""
    from gan.data import data_identity, source_fingerprint

    files = source_fingerprint(data) if files is None else files
    return {"version": VERSION, "kind": kind, "count": count, **data_identity(data), "files": files,
            **({"weights": weights} if weights else {})}


# What a reference set's statistics may be of before they are out of date: its files since changed,
# an earlier metric version (never read again by this gan; up to a GB each at 10,000 images)
OUT_OF_DATE_KEYS = ("version", "files")


# How `ReferenceCache.path` names a file: the metric's kind and 16 hex digits of its key's hash.
STATISTICS_NAME = re.compile(r"[a-z]+-[0-9a-f]{16}\.pt")


def is_reference_statistics(path: Path) -> bool:
    """Whether `path` is named as a reference statistics file (or its temp) is."""
    return STATISTICS_NAME.fullmatch(written_name(path.name)) is not None


class ReferenceCache:
    """Statistics files in a folder, one per key: `<kind>-<hash of key>.pt`, holding the key itself."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, key: dict) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.folder / f"{key['kind']}-{digest}.pt"

    def _remove_out_of_date(self, key: dict) -> None:
        """Remove the statistics `key` replaces (`replaced_by`). Each file's key is read alone
        (memory-mapped); one that does not load is left alone."""
        for path in self.folder.glob(f"{key['kind']}-*.pt"):
            if path == self.path(key):
                continue
            try:
                stored = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("key")
            except Exception:  # noqa: BLE001 - not statistics this gan can read: not its to remove
                continue
            if replaced_by(stored, key):
                _remove_replaced(path)

    def load(self, key: dict) -> dict[str, torch.Tensor] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except PermissionError as error:  # (another user's in a shared folder, written under umask 077): not damaged
            warnings.warn(f"the reference statistics '{path}' {unreadable_by_this_user(path, error)}: computed again "
                          "(ask its owner to make it readable, or set metrics.cache_dir to a folder of your own)",
                          stacklevel=2)
            return None
        except Exception as error:  # a truncated file from a killed run: recompute
            problem = unloadable_reason(path, error)
        else:  # (torch.load checks no CRC: a damaged statistic gave a silently wrong score, best.pt kept by it)
            damaged = failed_checksum(path)
            problem = f"its record '{damaged}' fails its checksum" if damaged else _not_statistics(stored)
        if problem:
            warnings.warn(f"the reference statistics '{path}' are damaged ({problem}): computed again", stacklevel=2)
            return None
        return stored["statistics"] if stored["key"] == key else None

    def store(self, key: dict, statistics: dict[str, torch.Tensor]) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # (a run killed as it stored statistics left its temp for good; the folder may be a person's)
            remove_stale_temps(self.folder, named_by_host=True)
            self._remove_out_of_date(key)
            save_checkpoint({"key": key, "statistics": statistics}, self.path(key))
        except (CheckpointError, OSError) as error:  # a read-only or full cache is slow, not fatal (WriteError)
            warnings.warn(f"could not cache reference statistics in '{self.folder}' ({error}); they are computed "
                          "again next time", stacklevel=2)


def _remove_replaced(path: Path) -> None:
    """Remove out-of-date statistics, said in a line; ones this user may not remove (another user's, in a
    sticky shared folder) are warned of and stay, unread, as the statistics that replace them are stored."""
    size = path.stat().st_size
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        owner = other_owner(path)
        warnings.warn(f"the out-of-date reference statistics '{path}' could not be removed ({error.strerror or error}) "
                      f"and stay, unread: {f'ask {owner} to remove them' if owner else 'remove them yourself'} to free "
                      f"their {size / 2**20:.1f} MiB", stacklevel=4)
        return
    print_above(f"removed the out-of-date reference statistics '{path}' of this data set ({size / 2**20:.1f} MiB)")


def replaced_by(stored: object, key: dict) -> bool:
    """Whether the statistics keyed `stored` are out of date once `key`'s are stored: of the same data set,
    count and kind (and weights), computed before its files changed or by an earlier metric version. Never
    a later version's: a newer gan sharing the cache (another checkout, or this one before a `git checkout`
    back) reads them, and each of the two removed the other's, to compute its own again."""
    if not isinstance(stored, dict) or not isinstance(stored.get("version"), int):
        return False
    same = {name: value for name, value in key.items() if name not in OUT_OF_DATE_KEYS}
    return (stored["version"] <= key["version"]
            and {name: value for name, value in stored.items() if name not in OUT_OF_DATE_KEYS} == same)


def _not_statistics(stored: object) -> str | None:
    """What keeps `stored` (a cache file's contents) from being `ReferenceCache.store`'s record, or None."""
    if not isinstance(stored, dict) or "key" not in stored or not isinstance(stored.get("statistics"), dict):
        return f"it holds {type(stored).__name__}, not a record of statistics and their key"
    return None


def reference_dataset(data: DataConfig, root_key: str = "data.root") -> Dataset:
    """The real images `data` describes, read as evaluation reads them (no flips); a folder's error
    names `root_key` as what set data.root (`gan eval --data`)."""
    from gan.data import build_dataset

    return build_dataset(dataclasses.replace(data, hflip=False), train=False, root_key=root_key)


def all_it_holds(data: DataConfig, count: int) -> str:
    """Why a reference set of `count` images is smaller than asked: the data set holds no more, or
    data.max_images keeps no more of it."""
    if data.max_images and count == data.max_images:
        return f"all that data.max_images = {data.max_images} keeps"
    return "all the data set holds"


def load_reference_images(data: DataConfig, count: int, seed: int = 0, dataset: Dataset | None = None,
                          advance: Callable[[int], None] | None = None) -> torch.Tensor:
    """uint8 (n, 3, R, R): a fixed random `count` of the data set's images (all if fewer), not augmented,
    less those that fail to decode (each named in a warning). `dataset` is `reference_dataset(data)`
    when the caller has built it already; `advance(1)` is told of each image read."""
    from gan.data.image_files import readable_items

    dataset = reference_dataset(data) if dataset is None else dataset
    size = len(dataset)
    indices = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:min(count, size)].sort().values
    images = []
    for item in readable_items(dataset, indices.tolist()):
        images.append(signed_to_uint8(item["image"]))
        if advance is not None:
            advance(1)
    return torch.stack(images)


# ----------------------------------------------------------------------------- the evaluator


class GenerativeEvaluator:
    """Scores sets of generated uint8 images against one real reference set.

    FID, KID and precision/recall need the Inception-v3 weights; with `require_weights`
    False (training) their absence only drops them, with one warning, which ends with
    `leave_out`, how not to ask for them.
    """

    def __init__(self, data: DataConfig, names: Iterable[str], count: int, device: torch.device,
                 inception_weights: str | None = None, cache_dir: str | Path | None = None,
                 require_weights: bool = True, batch_size: int = 64, progress_stream: TextIO | None = None,
                 root_key: str = "data.root", leave_out: str = ""):
        self.data, self.count, self.device, self.batch_size = data, count, device, batch_size
        self.root_key = root_key  # what set data.root's folder, for its errors
        self.progress_stream = progress_stream  # where a progress line of the slow SWD sort goes; None: silent
        # (training's) whether a stop came: a pass gives up at its next batch (PassStopped), for the checkpoint
        self.stop_noted: Callable[[], bool] | None = None
        self.names = check_metric_names(names, "metrics")
        self.cache = ReferenceCache(Path(cache_dir) if cache_dir else user_cache_dir("reference-statistics"))
        self.inception: nn.Module | None = None
        self.inception_digest = ""
        self.skipped: dict[str, str] = {}  # metric -> why it cannot run here
        if any(name in INCEPTION_METRICS for name in self.names):
            try:
                self.inception, self.inception_digest = load_inception(inception_weights, device)
            except InceptionWeightsNotFoundError as error:
                if require_weights:
                    raise
                dropped = [name for name in self.names if name in INCEPTION_METRICS]
                self.names = [name for name in self.names if name not in INCEPTION_METRICS]
                self.skipped = {name: str(error) for name in dropped}
                warnings.warn(skipped_for_missing_weights(", ".join(dropped), error, leave_out), stacklevel=2)
        self._reference: dict[str, dict[str, torch.Tensor]] | None = None
        self._real_images_asked = 0
        self._dataset: Dataset | None = None
        self._listed_files: str | None = ""  # the folder's source_fingerprint as the data set was listed

    def dataset(self, files: str | None = None) -> Dataset:
        """The real images' data set, built once (its folder's headers read: 20 s at CelebA's 202,599):
        the check before training and the first metrics pass both ask. The folder's fingerprint is
        taken before the listing (`files`, when just taken): statistics of the listed images are
        never filed under the key of the folder as it changed since."""
        if self._dataset is None:
            from gan.data import source_fingerprint

            try:
                listed = source_fingerprint(self.data) if files is None else files
            except OSError:  # (a folder missing or unlisted: the listing says so, naming the key that set it)
                listed = None
            self._dataset = reference_dataset(self.data, self.root_key)
            self._listed_files = listed
        return self._dataset

    def _kinds(self) -> list[str]:
        """The kinds of reference statistics the metrics asked for need."""
        return (["inception"] if self.inception is not None else []) + (["swd"] if "swd" in self.names else [])

    def statistics_cached(self) -> bool:
        """Whether the cache holds every reference statistic these metrics need, so that it is only read (a
        lab's shared statistics, made once, in a folder this user may not write). It reads every file's size."""
        from gan.data import source_fingerprint

        try:
            files = source_fingerprint(self.data)
        except OSError:  # (a folder missing or unlisted: the check of the real images says so)
            return False
        return all(self.cache.path(reference_key(self.data, self.count, kind, files, self.inception_digest
                                                 if kind == "inception" else "")).is_file() for kind in self._kinds())

    def reference(self) -> dict[str, dict[str, torch.Tensor]]:
        """Reference statistics by kind, from the cache or computed (and cached) now."""
        if self._reference is None:
            from gan.data import source_fingerprint

            kinds = self._kinds()
            images: torch.Tensor | None = None
            reference: dict[str, dict[str, torch.Tensor]] = {}  # (kept once whole: a pass given up computes it again)
            files = source_fingerprint(self.data) if kinds else ""
            if self._dataset is not None and files != self._listed_files:
                self._dataset = None  # (images added or changed since the check before training listed them)
            for kind in kinds:
                key = reference_key(self.data, self.count, kind, files,
                                    self.inception_digest if kind == "inception" else "")
                statistics = self.cache.load(key)
                if statistics is None:
                    if images is None:
                        images = self._load_reference_images(files)
                    statistics = self._statistics(kind, images)
                    self.cache.store(key, statistics)
                elif not reference and self.unreadable_real_images(statistics):
                    print_above(f"the cached reference statistics are of {int(statistics['num_images'])} real images: "
                                f"{self.unreadable_real_images(statistics)} of the {int(statistics['num_read'])} "
                                "could not be decoded when they were computed")
                reference[kind] = statistics
            self._reference = reference
        return self._reference

    @staticmethod
    def unreadable_real_images(statistics: dict[str, torch.Tensor]) -> int:
        """How many real images of a reference set failed to decode (0 for statistics cached before
        the count was kept)."""
        return int(statistics["num_read"]) - int(statistics["num_images"]) if "num_read" in statistics else 0

    def why_fewer(self) -> str:
        """Why the reference set holds fewer images than `count`: the data set holds no more (or
        data.max_images keeps no more), or images drawn for it failed to decode, or both."""
        statistics = next(iter(self.reference().values()))
        unreadable = self.unreadable_real_images(statistics)
        read = self.reference_size + unreadable
        if not unreadable:
            return all_it_holds(self.data, read)
        if read < self.count:
            return f"{all_it_holds(self.data, read)}, less {unreadable} that could not be decoded"
        return f"{unreadable} of the {read} drawn could not be decoded"

    def _load_reference_images(self, files: str) -> torch.Tensor:
        """The real images, announced with the number actually used: a data set smaller than the
        count asked for gives all it holds. `files`: the folder's fingerprint, just taken."""
        dataset = self.dataset(files)
        used = min(self.count, len(dataset))
        fewer = f"{all_it_holds(self.data, used)}, not the {self.count} asked for; " if used < self.count else ""
        # (mid-run, on a terminal, in the place of the progress line)
        print_above(f"computing reference statistics of {used} real images ({fewer}cached in {self.cache.folder})")
        advance = self.progress(used, "real image")
        images = load_reference_images(self.data, used, 0, dataset, advance)
        if len(images) < used:  # files that failed to decode, each named in a warning
            if advance is not None:
                advance(used - len(images))  # (the progress line ends as the others do)
            print_above(f"the reference set holds {len(images)} real images: {used - len(images)} of the {used} could "
                        "not be decoded (named above)")
        self._real_images_asked = used
        return images

    def _statistics(self, kind: str, images: torch.Tensor) -> dict[str, torch.Tensor]:
        # (with the number read: files that failed to decode are said again when the cache serves them)
        statistics = {"num_images": torch.tensor(len(images)), "num_read": torch.tensor(self._real_images_asked)}
        if kind == "inception":
            statistics["features"] = inception_features(self.inception, images, self.batch_size,
                                                        self.progress(len(images), "real image through Inception"))
        else:
            descriptors = patch_descriptors(images, device=self.device,
                                            advance=self.progress(len(images), SWD_PATCHES.format("real")))
            statistics.update({f"level{index}": level for index, level in enumerate(descriptors)})
        return statistics

    def check_memory_fits(self, key: str) -> None:
        """ConfigError when SWD's descriptors of this many generated and real images cannot fit in the
        memory available (`swd_memory_bytes`, a lower bound), naming `key`, the setting of the count:
        the kernel killed such a pass without a word (in training, before the step's checkpoint)."""
        if "swd" not in self.names:
            return
        available = available_memory(torch.device("cpu"))  # (the descriptors are kept there, wherever made)
        on_cpu = self.device.type == "cpu"
        if available is None or swd_memory_bytes(self.count, self.data.resolution, on_cpu) <= available:
            return  # (the real images counted only then: listing them reads every header, 20 s at CelebA's)
        count = min(self.count, len(self.dataset()))
        needed = swd_memory_bytes(count, self.data.resolution, on_cpu)
        if needed > available:
            fit = max(1, count * available // needed)
            raise ConfigError(f"{key} = {self.count}: SWD's patch descriptors of {count:,} generated and {count:,} real "
                              f"{self.data.resolution} px images need at least {format_bytes(needed)}, and "
                              f"{format_bytes(available)} is available to this process: at most about {fit:,} fit")

    @property
    def reference_size(self) -> int:
        """How many real images the reference set has (the data set may hold fewer than asked)."""
        return int(next(iter(self.reference().values()))["num_images"])

    def score(self, images: torch.Tensor) -> dict[str, float]:
        """Metrics of generated uint8 images (n, 3, R, R); n must equal `reference_size` for SWD."""
        reference = self.reference()
        scores: dict[str, float] = {}
        if self.inception is not None:
            real = reference["inception"]["features"].numpy()
            fake = inception_features(self.inception, images, self.batch_size,
                                      self.progress(len(images), "generated image through Inception")).numpy()
            if "fid" in self.names:
                scores["fid"] = frechet_distance(GaussianStatistics.of(real), GaussianStatistics.of(fake))
            if "kid" in self.names:
                scores["kid"], spread = kernel_inception_distance(real, fake)
                if spread is not None:  # None: both sets fit in one subset, which has no spread to give
                    scores["kid_std"] = spread
            if "pr" in self.names:
                scores["precision"], scores["recall"] = precision_recall(real, fake, PR_NEIGHBOURS)
        if "swd" in self.names:
            levels = sum(name.startswith("level") for name in reference["swd"])
            real_levels = [reference["swd"][f"level{index}"] for index in range(levels)]
            patches = patch_descriptors(images, seed=1, device=self.device,
                                        advance=self.progress(len(images), SWD_PATCHES.format("generated")))
            scores.update(swd_from_descriptors(real_levels, patches,
                                               images.shape[-1],
                                               advance=self.progress(swd_directions(images.shape[-1]), "SWD direction",
                                                                     "direction"),
                                               device=self.device))
        return scores


    def progress(self, total: int, unit: str, rate_unit: str = "img") -> Callable[[int], None] | None:
        """`advance(count)` of a progress line on `progress_stream`, which gives up once `stop_noted`;
        None when silent and not stopping."""
        return stoppable_progress(total, self.progress_stream, unit, rate_unit, self.stop_noted)


@torch.no_grad()
def generated_images(generator: nn.Module, count: int, seed: int = 0, batch_size: int = 64,
                     advance: Callable[[int], None] | None = None) -> torch.Tensor:
    """uint8 (count, 3, R, R) from latents drawn with their own seeded generator (the global RNG is
    untouched); `advance(n)` is told of each batch of n generated."""
    chunks = []
    with eval_mode(generator):
        for latents in random_latents(count, generator.latent_dim, seed).split(batch_size):
            chunks.append(signed_to_uint8(generate(generator, latents, batch_size)))
            if advance is not None:
                advance(len(latents))
    return torch.cat(chunks)


def score_generator(evaluator: GenerativeEvaluator, generator: nn.Module, seed: int = 0) -> dict[str, float]:
    """Generate as many images as the reference set has and score them."""
    count = evaluator.reference_size
    return evaluator.score(generated_images(generator, count, seed, evaluator.batch_size,
                                            evaluator.progress(count, "generated image")))

