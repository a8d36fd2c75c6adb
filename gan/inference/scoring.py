"""What `gan eval` does: generative metrics of unconditional checkpoints, image quality of
image-to-image ones.

Unconditional (DCGAN) checkpoints: FID, KID, precision/recall and SWD of generated
images against the run's training images (gan/metrics/generative.py).

Super-resolution checkpoints: each HR image in a folder is cropped to a multiple of the
scale, downsampled with bicubic filtering (no extra degradations, as benchmark papers
do), restored by the model and compared with the HR image on the Y channel with
`scale` pixels shaved, beside plain bicubic upsampling. Paired (pix2pix)
checkpoints: outputs are compared with targets on RGB. CycleGAN checkpoints: each
test image goes to the other domain and back, and the reconstruction is compared
with it (cycle-consistency L1, in [0, 1] units, and PSNR).

Translations are also scored as distributions (gan/metrics/translation.py): SWD, FID and
KID of a paired checkpoint's outputs against the targets, and of a CycleGAN's A -> B
translations of testA against testB (B -> A against testA).

An image that cannot be scored (unreadable, or too small for the metric) is reported as
`Skipped`: it has no row, no share of any mean and no place among the distributions. No
other image's scores ever stand in for it.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
import os
import random
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterator, TextIO

import numpy as np
import torch
from PIL import Image

from gan.core.config import config_from_dict
from gan.core.files import MAX_NAME_BYTES, name_cut
from gan.core.images import save_image, side_by_side, signed_to_uint8
from gan.core.wording import undecoded
from gan.data import reference_data
from gan.data.decode import ImageFolderGone, ImageReadError, check_header, find_images, header_size, read_rgb
from gan.data.paired import (
    PairedImages,
    augment_together,
    check_pair_shapes,
    detect_layout,
    matched_folders,
    pair_wide,
    refuse_splits_inside_sides,
    refuse_two_folders_of_single_images,
    training_layout,
    training_pair_shapes,
)
from gan.data.super_resolution import (
    Degradation,
    bicubic_resize,
    crop_to_multiple,
    scored_side,
    warn_of_low_resolution_copies,
)
from gan.inference.generators import LoadedGenerator
from gan.inference.tiling import Translator, fitting_in_memory, translate_tensor
from gan.metrics import psnr, signed_to_255, ssim
from gan.metrics.generative import (
    INCEPTION_METRICS,
    GenerativeEvaluator,
    score_generator,
    smallest_count,
)
from gan.metrics.image_quality import SSIM_WINDOW_SIZE, smallest_sr_image
from gan.metrics.inception import NOT_IN_EVAL
from gan.metrics.translation import TranslationMetrics, with_both_directions


@dataclasses.dataclass
class Skipped:
    """An image file that could not be scored: it gets no row and is in no mean."""
    image: str  # named as rows name images: relative to the data folder
    reason: str


def _to_255(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float64).copy()).permute(2, 0, 1)


def evaluate_generative(loaded: LoadedGenerator, names: list[str], count: int, device: torch.device,
                        data_root: Path | None = None, inception_weights: str | None = None,
                        cache_dir: str | None = None, require_weights: bool = True,
                        progress_stream: TextIO | None = None, root_key: str = "--data") -> dict:
    """Metrics of `count` generated images against as many real ones of the run's data set
    (or of `data_root`, which `root_key` set, read the way the run's `[data]` section says). Without
    `require_weights`, metrics whose Inception weights are absent are skipped with a warning (listed
    in "skipped")."""
    data = config_from_dict(loaded.config).data
    if data_root is not None:
        # a run on synthetic data has no way to read files: the folder is read as a plain image folder
        dataset = "folder" if data.dataset == "synthetic" else data.dataset
        data = dataclasses.replace(reference_data(data, str(data_root)), dataset=dataset)
    elif data.dataset != "synthetic" and not Path(data.root).is_dir():
        raise FileNotFoundError(f"the run's data.root '{data.root}' is not there (moved since it trained?): give its "
                                "real images with --data FOLDER")
    evaluator = GenerativeEvaluator(data, names, count, device, inception_weights, cache_dir, require_weights,
                                    progress_stream=progress_stream,
                                    root_key=root_key if data_root is not None else "data.root", leave_out=NOT_IN_EVAL)
    evaluator.check_memory_fits("--n")  # (before the real images' descriptors: the first of the two sets)
    # (as in training: SWD compares patches, of which one image has many; the Inception metrics need more)
    inception_scored = [name for name in evaluator.names if name in INCEPTION_METRICS]
    fewest, why = smallest_count(inception_scored) if inception_scored else (1, "")
    if evaluator.names and evaluator.reference_size < fewest:  # (before any generated image is scored)
        count_said = f"{evaluator.reference_size} image" + ("s" if evaluator.reference_size != 1 else "")
        raise ValueError(f"the real images ('{data.root or data.dataset}') are {count_said}, too few for --metrics "
                         f"{','.join(evaluator.names)}: at least {fewest} ({why})")
    if evaluator.names and evaluator.reference_size < count:  # (training says it in its line; eval's JSON holds it)
        warnings.warn(f"--n {count} is more than the {evaluator.reference_size} real images of "
                      f"'{data.root or data.dataset}' ({evaluator.why_fewer()}): "
                      f"{evaluator.reference_size} generated images are scored against them", stacklevel=2)
    scores = score_generator(evaluator, loaded.generator) if evaluator.names else {}
    reference = "synthetic" if data.dataset == "synthetic" else str(Path(data.root).resolve())
    unreadable = (evaluator.unreadable_real_images(next(iter(evaluator.reference().values())))
                  if evaluator.names else 0)
    return {"checkpoint": str(loaded.checkpoint), "step": loaded.step, "reference": reference,
            "num_images": evaluator.reference_size, **({"unreadable_real_images": unreadable} if unreadable else {}),
            "ema": loaded.used_ema, "skipped": evaluator.skipped, **scores}


def evaluate_super_resolution(translator: Translator, folder: Path, downsample: Degradation,
                              save_images: Path | None = None) -> Iterator[dict | Skipped]:
    """One row per HR image: PSNR/SSIM of the model and of bicubic upsampling, on the Y channel
    (most SR papers) and on RGB (the others), with `scale` pixels shaved. `downsample` makes each
    LR input as the run's validation does, its noise seeded by the image's place in the validation
    set (`sr_validation_places`), so the numbers equal the run's val/psnr and val/ssim. With
    `save_images`, each image is also written there as a bicubic | model | ground-truth strip.
    Unreadable images, and those smaller than `smallest_sr_image`, are Skipped."""
    scale = downsample.scale
    smallest = smallest_sr_image(scale)
    paths = find_images(folder)
    strip_names = _strip_names(paths, folder)
    sizes = {path: header_size(path) if check_header(path) is None else None for path in paths}
    places = sr_validation_places(sizes, scale)
    warn_of_low_resolution_copies({path: sizes[path] for path in places}, folder)
    for path in paths:
        name = path.relative_to(folder).as_posix()
        try:
            original = read_rgb(path)
        except ImageFolderGone:  # (each of its files would be skipped in turn, and a mean of the rest written)
            raise
        except ImageReadError as error:
            yield Skipped(name, str(error))
            continue
        hr_image = crop_to_multiple(original, scale)
        if min(hr_image.size) < smallest:
            yield Skipped(name, f"is {original.width}x{original.height} pixels; x{scale} evaluation needs at least "
                                f"{smallest}x{smallest} (SSIM's {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE} window after "
                                f"{scale} pixels are shaved from each border)")
            continue
        with fitting_in_memory(*hr_image.size, translator.device, translator.tile, str(path)):
            row, strip = _sr_row(translator, hr_image, downsample(hr_image, random.Random(places.get(path, 0))),
                                 save_images is not None)
        if strip is not None:
            save_image(strip, save_images / strip_names[path])
        yield {"image": name, **row}


def sr_validation_places(sizes: dict[Path, tuple[int, int] | None], scale: int) -> dict[Path, int]:
    """Each image's index in a run's SR validation set (which seeds its noise there), of the files
    `sizes` gives in order with their header's size (None where it does not read): among the files
    whose header reads (as `readable_images` keeps them, quietly: eval names the others in its own
    rows) and large enough to score (`SuperResolutionPairs.without_images_under`'s rule). A file that
    then fails to decode keeps its place, as it does in validation."""
    smallest, places = smallest_sr_image(scale), {}
    for path, size in sizes.items():
        if size is not None and scored_side(size, scale) >= smallest:
            places[path] = len(places)
    return places


def _sr_row(translator: Translator, hr_image: Image.Image, lr_image: Image.Image,
            strip: bool) -> tuple[dict, Image.Image | None]:
    """The model's and bicubic's PSNR/SSIM against `hr_image` (Y and RGB), and the strip to save."""
    scale = hr_image.width // lr_image.width
    restored = translator(lr_image)
    bicubic = bicubic_resize(lr_image, hr_image.size)
    reference, row = _to_255(hr_image), {}
    for prefix, image in (("", restored), ("bicubic_", bicubic)):
        for suffix, y_channel in (("", True), ("_rgb", False)):
            row[f"{prefix}psnr{suffix}"] = psnr(_to_255(image), reference, crop_border=scale, y_channel=y_channel,
                                                eight_bit=True)
            row[f"{prefix}ssim{suffix}"] = ssim(_to_255(image), reference, crop_border=scale, y_channel=y_channel,
                                                eight_bit=True)
    return row, side_by_side([bicubic, restored, hr_image]) if strip else None


def strip_paths(folder: Path, save_images: Path) -> list[Path]:
    """The strips `evaluate_super_resolution` writes into `save_images` for the images of `folder`."""
    return [save_images / name for name in _strip_names(find_images(folder), folder).values()]


def _strip_names(paths: list[Path], folder: Path) -> dict[Path, Path]:
    """Each image's strip file, `a.png` for `a.jpg`; `a.jpg.png`, its whole name and .png, when that
    would be another image's too (`a.png`; `a.png.jpg`'s `a.png.png` beside `a.png`'s), so that no
    strip overwrites another. Names that differ only in case are taken as one (`Img.png` for
    `img.jpg`'s beside `Img.png`'s), as `gan translate` takes them: one file on macOS's and Windows'
    disks. Each round gives a name its whole one, so the loop ends."""
    whole = {path: _whole_strip_name(path.relative_to(folder)) for path in paths}
    names = {path: path.relative_to(folder).with_suffix(".png") for path in paths}
    while True:
        taken = Counter(name.as_posix().casefold() for name in names.values())
        clashing = [path for path, name in names.items() if taken[name.as_posix().casefold()] > 1 and name != whole[path]]
        if not clashing:
            return names
        names.update({path: whole[path] for path in clashing})


def _whole_strip_name(relative: Path) -> Path:
    """`a.jpg.png` for the image `a.jpg`; for a name with no room left for `.png` (252 to 255 bytes,
    legal itself) its start and 8 hex digits of the whole path, `<start>-1a2b3c4d.png`: whole, it was
    too long to write, and the evaluation stopped partway, with no CSV or JSON."""
    name = f"{relative.name}.png"
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        digest = hashlib.sha256(os.fsencode(relative.as_posix())).hexdigest()[:8]
        name = f"{name_cut(relative.name, MAX_NAME_BYTES - len(f'-{digest}.png'))}-{digest}.png"
    return relative.with_name(name)


ImageSets = dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]]  # name -> (outputs, targets), uint8


def evaluate_paired(translator: Translator, folder: Path, data_config: dict,
                    image_sets: ImageSets | None = None) -> Iterator[dict | Skipped]:
    """One row per pair: PSNR/SSIM (RGB) of output against target, at the training resolution.
    Outputs and targets are collected in `image_sets[""]` as uint8 when it is given. A pair with
    a file that cannot be read is Skipped, named by its first file."""
    pairs = _evaluation_pairs(folder, data_config["layout"])
    if any(second is None for _, second in pairs) and training_layout(data_config) == "folders":
        raise ValueError(f"'{folder}' holds single images, which would be cut in halves as input | target, but this "
                         f"model trained on pairs in A/ and B/ folders ('{data_config['root']}'): give --data a folder "
                         "with A/ and B/ subfolders whose files pair by name (or split subfolders holding them)")
    not_pairs = not_shaped_like_pairs([first for first, second in pairs if second is None], folder, data_config)
    # strict: a pair that fails to decode raises instead of lending it the next pair's images
    dataset = PairedImages(pairs, data_config["resolution"], load_size=0, direction=data_config["direction"],
                           train=False, strict=True)
    for index, (first, _) in enumerate(dataset.pairs):
        name = first.relative_to(folder).as_posix()
        if first in not_pairs:
            yield Skipped(name, not_pairs[first])
            continue
        try:
            item = dataset[index]
        except ImageFolderGone:  # (each of its files would be skipped in turn, and a mean of the rest written)
            raise
        except ImageReadError as error:
            yield Skipped(name, str(error))
            continue
        with fitting_in_memory(item["input"].shape[-1], item["input"].shape[-2], translator.device, translator.tile,
                               str(first)):
            output = translate_tensor(translator.generator, item["input"][None].to(translator.device),
                                      translator.size_multiple, translator.tile, translator.overlap)
        if image_sets is not None:
            outputs, targets = image_sets.setdefault("", ([], []))
            outputs.append(signed_to_uint8(output[0].cpu().clamp(-1, 1)))
            targets.append(signed_to_uint8(item["target"]))
        output, target = signed_to_255(output[0].cpu()), signed_to_255(item["target"])
        yield {"image": name, "psnr": psnr(output, target, eight_bit=True),
               "ssim": ssim(output, target, eight_bit=True)}


EVALUATION_ADVICE = "give --data a folder (or --split) of A|B pairs"


def not_shaped_like_pairs(images: list[Path], folder: Path, data_config: dict, advice: str = EVALUATION_ADVICE,
                          consequence: str = "their scores mean nothing") -> dict[Path, str]:
    """{image: why it is skipped} for the A|B images of `folder` narrower than 2:1, for a model
    trained on A|B images at least that wide (or on A/ and B/ folders of square or wider images, side
    by side that wide): halved, such an image gives no input and target, and
    its scores would be nonsense. A few among pairs are strays, skipped; a ValueError ending in
    `advice` when they are half of the images or more (a folder of single photos, or of another
    layout). When the training images are not here to tell their shape, a warning only (ending in
    `consequence`): pairs of portrait halves are pairs too."""
    shapes = training_pair_shapes(data_config, side_by_side=True)
    if shapes.known and not shapes.highest:  # the run's pairs are not side by side at 2:1 or wider
        return {}
    sizes = {path: size for path in images if (size := header_size(path)) is not None}
    narrow = {path: size for path, size in sizes.items() if not pair_wide(*size)}
    if not narrow:
        return {}
    first, (width, height) = next(iter(narrow.items()))
    if not shapes.known:  # pairs of portrait halves are pairs too: without the training images, a warning
        warnings.warn(f"{len(narrow)} of the {len(sizes)} images in '{folder}' are narrower than 2:1 (the first: "
                      f"'{first.relative_to(folder).as_posix()}', {width}x{height}), and this model's training images "
                      f"('{data_config['root']}') are not here to tell whether it trained on such pairs: if these are "
                      f"not A|B pairs, {consequence}", stacklevel=2)
        return {}
    if len(narrow) < len(sizes) / 2:
        return {path: f"is {path_width}x{path_height}, narrower than the 2:1 of an A|B pair (input | target side by "
                      "side) while most images here are pairs" for path, (path_width, path_height) in narrow.items()}
    aspects = (f"{shapes.lowest:.2f}:1" if shapes.highest - shapes.lowest < 0.005
               else f"{shapes.lowest:.2f}:1 to {shapes.highest:.2f}:1")
    if len(sizes) == 1:
        raise ValueError(f"'{first}' is {width}x{height}, narrower than the 2:1 of the A|B pairs this model trained "
                         f"on ({aspects}): halved it is no input and target; {advice}")
    raise ValueError(f"'{folder}' is not a folder of A|B pairs like those this model trained on ({aspects}): "
                     f"{len(narrow)} of its {len(sizes)} images "
                     f"are narrower than 2:1 (the first: '{first.relative_to(folder).as_posix()}', {width}x{height}), "
                     f"and halved they are no input and target; {advice}")


SPLIT_NAMES = ("train", "val", "test")  # pix2pix's split subfolders, besides those a config names


def paired_evaluation_folder(root: Path, data_config: dict, split: str | None = None) -> tuple[Path, str | None]:
    """(folder of pairs, split) that `gan eval --data root` scores for a paired checkpoint.

    `split` (--split) names a subfolder of `root`, or "all" for every pair under it. By default the
    run's validation split (data.val_split, else data.split), as training validates, when `root`
    has that subfolder; a `root` without split subfolders is a folder of pairs itself (split None).
    A `root` with other split subfolders but not that one is an error: scoring them all together
    would mix the training pairs in."""
    splits = [*dict.fromkeys([data_config["split"], data_config["val_split"], *SPLIT_NAMES])]
    present = [name for name in splits if name not in ("", "all") and (root / name).is_dir()]
    if split is None:
        default = data_config["val_split"] or data_config["split"]
        if default in ("", "all") or not present:
            return root, None
        if (root / default).is_dir():
            return root / default, default
        raise FileNotFoundError(f"'{root}' has split subfolders {', '.join(present)} but no {default}/ (this run's "
                                f"validation split): pass --split NAME to score one of them, or --split all for every "
                                "pair under it")
    has = f"'{root}' has {', '.join(present)}" if present else f"'{root}' has no split subfolders"
    if not split.strip():  # an empty "$SPLIT" from a script: "all" would mix the training pairs in
        raise ValueError(f"--split is empty: name a split subfolder ({has}), or all for every pair")
    if split == "all":
        return root, None
    if not (root / split).is_dir():
        raise FileNotFoundError(f"--split {split}: '{root / split}' does not exist ({has}; --split all scores every "
                                "pair under it)")
    return root / split, split


def _evaluation_pairs(folder: Path, layout: str) -> list[tuple[Path, Path | None]]:
    """Every pair in `folder`, readable or not, so that each gets a row or is named as skipped: A/ and
    B/ files matched by name, or single AB images. Pairs whose aspect ratios differ are warned of."""
    if (detect_layout(folder) if layout == "auto" else layout) == "aligned":
        if layout == "auto":
            refuse_two_folders_of_single_images(folder)
        return [(path, None) for path in find_images(folder)]
    refuse_splits_inside_sides(folder)
    pairs = matched_folders(folder)
    check_pair_shapes([pair for pair in pairs if all(check_header(path) is None for path in pair)], folder,
                      strict=False)
    return pairs


def cycle_folders(root: Path, data_config: dict, split: str | None = None) -> tuple[Path, Path, str]:
    """The folders of both domains to score under `root`, and their split: `<split>A/` and
    `<split>B/` for --split, else for the run's data.val_split (as training validates), else
    CycleGAN's testA/ and testB/, else A/ and B/ (split "")."""
    if split is not None:
        if not ((root / f"{split}A").is_dir() and (root / f"{split}B").is_dir()):
            # ("all", every pair under --data, is a paired checkpoint's: CycleGAN scores one split of each domain)
            every = " ('all' is for paired checkpoints; a CycleGAN run scores one <split>A/ and <split>B/)" \
                if split == "all" else ""
            present = sorted(child.name for child in root.iterdir() if child.is_dir() and child.name[-1:] in "AB") \
                if root.is_dir() else []
            holds = f": it holds {', '.join(name + '/' for name in present[:6])}" if present else ""
            raise FileNotFoundError(f"'{root}' holds no {split}A/ and {split}B/ (--split {split}){every}{holds}")
        return root / f"{split}A", root / f"{split}B", split
    candidates = list(dict.fromkeys([data_config.get("val_split") or "test", "test", ""]))
    for name in candidates:
        if (root / f"{name}A").is_dir() and (root / f"{name}B").is_dir():
            return root / f"{name}A", root / f"{name}B", name
    raise FileNotFoundError(f"'{root}' holds neither {' nor '.join(f'{name}A/ and {name}B/' for name in candidates)}")


def evaluate_cycle(to_b: Translator, to_a: Translator, a_folder: Path, b_folder: Path, resolution: int,
                   image_sets: ImageSets | None = None) -> Iterator[dict | Skipped]:
    """One row per test image of either domain: L1 and PSNR of its reconstruction after a round trip.
    With `image_sets`, the translations of testA and the testB images are collected as "_AtoB"
    (outputs, targets), and those of testB with the testA images as "_BtoA", uint8. Unreadable
    images are Skipped."""
    # both listed first: an empty testB/ is refused before testA's rows are printed
    a_images, b_images = find_images(a_folder), find_images(b_folder)
    for domain, other, folder, images, forward, backward in (("A", "B", a_folder, a_images, to_b, to_a),
                                                             ("B", "A", b_folder, b_images, to_a, to_b)):
        for path in images:
            try:
                (image,) = augment_together([read_rgb(path)], resolution, 0, None, False)
            except ImageFolderGone:
                raise
            except ImageReadError as error:
                yield Skipped(f"{domain}/{path.relative_to(folder).as_posix()}", str(error))
                continue
            with fitting_in_memory(image.width, image.height, forward.device, forward.tile, str(path)):
                translated = forward(image)
                reconstructed = backward(translated)
            original, result = _to_255(image), _to_255(reconstructed)
            if image_sets is not None:
                image_sets.setdefault(f"_{domain}to{other}", ([], []))[0].append(_to_255(translated).to(torch.uint8))
                image_sets.setdefault(f"_{other}to{domain}", ([], []))[1].append(original.to(torch.uint8))
            yield {"image": f"{domain}/{path.relative_to(folder).as_posix()}",
                   "cycle_l1": float((original - result).abs().mean() / 255),
                   "cycle_psnr": psnr(result, original, eight_bit=True)}


def distribution_scores(image_sets: ImageSets, metrics: TranslationMetrics) -> tuple[dict[str, float], dict[str, str]]:
    """({'swd<name>': ..., 'fid<name>', 'kid<name>'} for each (outputs, targets) set, and CycleGAN's mean of
    both directions as 'swd' (...), {skipped metric: why}), by `metrics` (made before the images are
    translated, so that weights asked for and absent fail before that work).
    Sets of fewer than 2 images are left out, with a warning and their reason among the skipped."""
    scores, too_few = {}, {}
    for name, (outputs, targets) in image_sets.items():
        if len(outputs) < 2 or len(targets) < 2:  # a distribution of one image says nothing
            too_few[f"swd{name}"] = (f"{len(outputs)} translation(s) against {len(targets)} real image(s): a "
                                     "distribution needs at least 2 of each")
            warnings.warn(f"swd{name} not computed: {too_few[f'swd{name}']}", stacklevel=2)
            continue
        outputs_tensor = torch.stack(outputs)
        statistics = metrics.targets(torch.stack(targets), len(outputs_tensor))
        scores.update({f"{metric}{name}": value for metric, value in metrics.score(outputs_tensor, statistics).items()})
    return with_both_directions(scores), {**metrics.skipped, **too_few}


def mean_row(rows: list[dict]) -> dict:
    """Column means. An image identical to its target (a flat one, say) has an infinite PSNR: it is
    left out of every column's mean, so that the model and bicubic columns compare the same images
    and no mean is infinite whatever the others scored (`infinite_scores` names it); with no image
    finite throughout, the means are over all of them."""
    columns = [key for key in rows[0] if key != "image"]
    finite = [row for row in rows if all(math.isfinite(row[key]) for key in columns)] or rows
    return {"image": "mean", **{key: float(np.mean([row[key] for row in finite])) for key in columns}}


def infinite_scores(rows: list[dict]) -> dict[str, list[str]]:
    """Column -> the images whose score there is infinite (identical to their target), for columns with any."""
    columns = [key for key in rows[0] if key != "image"] if rows else []
    found = {key: [row["image"] for row in rows if not math.isfinite(row[key])] for key in columns}
    return {key: images for key, images in found.items() if images}


def _csv_value(value):
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6f}"
    if isinstance(value, str):  # a file name that is not UTF-8 holds lone surrogates: its bytes written as \xff
        return undecoded(value)
    return value


def csv_text(rows: list[dict]) -> str:
    """The rows as CSV text."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
    return text.getvalue()

