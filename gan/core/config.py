"""Typed run configuration: dataclasses filled from a TOML file plus `--set KEY=VALUE`.

Checked here, at the edge: unknown keys, wrong types and values out of range are errors
that name the key and say what is valid. This module imports no torch and no registry,
so reading a TOML file is cheap; `gan.training.resolve` then checks the names the registries hold
(recipe, dataset, networks, loss, metrics). The resolved config (every default filled
in) is what a run directory keeps.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import tomllib
import types
import typing
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gan.core.json_text import NON_FINITE_TEXT
from gan.core.presets import LOSS_PRESETS
from gan.core.registry import ConfigError, suggest
from gan.core.typecheck import coerce, shown, type_name
from gan.core.wording import printable


class _Keys:
    """What a config section's keys are: its fields alone (each section a dataclass with slots), so a
    key misspelled in Python, `config.train.step = 5`, fails there, naming the nearest key, where it
    was kept and never read."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            object.__setattr__(self, name, value)
        except AttributeError:
            keys = [key.name for key in dataclasses.fields(self)]
            raise AttributeError(f"{type(self).__name__} has no key '{printable(name, 80)}'{suggest(name, keys)}; "
                                 f"its keys: {', '.join(keys)}") from None


@dataclass(slots=True)
class DataConfig(_Keys):
    dataset: str = "celeba"  # celeba | folder | synthetic | paired | sr_pairs | unpaired
    root: str = ""  # folder of images (celeba: img_align_celeba/ or its parent)
    resolution: int = 128  # square training resolution (paired, sr_pairs: the crop size)
    crop: int = 148  # celeba only: centred square side in official 178x218 pixels
    split: str = "all"  # celeba: all | train | valid | test; paired, unpaired: the subfolder to train on
    val_split: str = ""  # paired, unpaired: subfolder for preview grids and evaluation ("" = split)
    val_root: str = ""  # sr_pairs: folder of validation HR images ("" = root)
    a_root: str = ""  # unpaired: folder of domain A ("" = root/<split>A)
    b_root: str = ""  # unpaired: folder of domain B ("" = root/<split>B)
    hflip: bool = True  # random horizontal flips (paired: the same flip on both sides)
    rot90: bool = False  # sr_pairs: random 90-degree rotations of both sides (with hflip: all 8 orientations)
    layout: str = "auto"  # paired: auto | aligned (A|B side by side) | folders (A/ and B/)
    direction: str = "AtoB"  # paired: AtoB | BtoA (which side is the input)
    load_size: int = 286  # paired, unpaired: resize to this, then random-crop `resolution`; 0 = no jitter
    scale: int = 4  # sr_pairs: downsampling factor 2, 3, 4 or 8
    upsample_input: bool = True  # sr_pairs: input is the LR image bicubic-upsampled to HR size
    blur_sigma: float = 0.0  # sr_pairs: Gaussian blur (px) before downsampling; 0 = off
    noise_std: float = 0.0  # sr_pairs: Gaussian noise on the LR image, in 0-255 grey levels; 0 = off
    jpeg_quality: int = 0  # sr_pairs: JPEG-compress the LR image at this quality; 0 = off
    max_images: int = 0  # use only the first N images (sorted by path); 0 = all
    strict: bool = False  # unreadable image files are errors instead of skipped with a warning
    num_workers: int = 2  # DataLoader worker processes; 0 = load in the training process
    cache: str = "off"  # celeba, folder: off | mmap (decoded once to a file, memory-mapped) | device (copied to the GPU;
    # on the CPU read as mmap)
    cache_dir: str = ""  # decoded-image caches; "" = $XDG_CACHE_HOME/gan/decoded or ~/.cache/gan/decoded
    cache_verify: bool = False  # check every checksum of the cache on opening, not a random sample of them
    synthetic_size: int = 20000  # synthetic only: number of distinct images


@dataclass(slots=True)
class ModelConfig(_Keys):
    generator: str = "dcgan"
    discriminator: str = "dcgan"
    generator_args: dict[str, Any] = field(default_factory=dict)  # constructor keyword arguments
    discriminator_args: dict[str, Any] = field(default_factory=dict)
    init_generator: str = ""  # start the generator from the trained one of this checkpoint (a run directory: its
    # newest), the other networks and state fresh: dcgan, pix2pix, srresnet, srgan (required); "none" = random weights
    init_discriminator: bool = False  # with init_generator: the discriminator too, from that checkpoint (built alike)


@dataclass(slots=True)
class LossConfig(_Keys):
    preset: str = ""  # vanilla | lsgan | hinge | wgan-gp: a loss with its paper's settings (gan/core/presets.py); "" = none
    adversarial: str = "vanilla"  # vanilla | lsgan | hinge | wgan-gp
    label_smoothing: float = 0.0  # one-sided: real target 1 - label_smoothing (vanilla, lsgan)
    instance_noise: float = 0.0  # std of Gaussian noise added to D inputs, annealed linearly to 0
    instance_noise_steps: int = 0  # steps over which instance noise anneals to 0; 0 = train.steps
    gp_weight: float = 10.0  # wgan-gp gradient penalty weight
    r1_gamma: float = 0.0  # R1 penalty gamma/2 * E||grad D(real)||^2 on D (Mescheder et al. 2018); 0 = off
    r1_every: int = 16  # R1 is lazy: computed every N steps with gamma scaled by N (StyleGAN2); 1 = every step
    diffaugment: str = ""  # DiffAugment (Zhao et al. 2020) of every image D sees: any of "color,translation,cutout"
    augment_p: float | str = 1.0  # DiffAugment: probability of each augmentation per image; "adaptive" = ADA
    augment_target: float = 0.6  # adaptive: the r_t = E[sign D(real)] that p is moved to hold (ADA's 0.6)
    augment_interval: int = 4  # adaptive: D steps between adjustments of p
    augment_images: int = 500000  # adaptive: images over which p can cross from 0 to 1 (ADA's 500k)
    l1_weight: float = 100.0  # pix2pix: weight of the L1 distance to the target
    cycle_weight: float = 10.0  # cyclegan: weight of each cycle-consistency L1 term (lambda)
    identity_weight: float = 0.5  # cyclegan: identity loss weight, as a fraction of cycle_weight; 0 = off
    pool_size: int = 50  # cyclegan: generated images kept for each discriminator; 0 = off
    content: str = "mse"  # srgan: content loss, mse or l1 (pixels) or vgg (perceptual)
    vgg_layer: str = "relu5_4"  # srgan: VGG layer of the perceptual loss (relu2_2 = VGG22, relu5_4 = VGG54)
    vgg_arch: str = "vgg19"  # srgan: vgg19 or vgg16
    vgg_weights: str = ""  # srgan: torchvision weights file; "" = $TORCH_HOME/hub/checkpoints; "random" = tests
    vgg_feature_scale: float = 0.0784313725490196  # srgan: features multiplied by this (1/12.75, as SRGAN)
    adversarial_weight: float = -1.0  # pix2pix, srgan: weight of the adversarial term; -1 = the recipe's default
    # (pix2pix 1 as the paper, srgan 1e-3); srgan: 0 = no discriminator (SRResNet)


@dataclass(slots=True)
class TrainConfig(_Keys):
    steps: int = 10000  # generator updates
    batch_size: int = 64
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    d_steps: int = 1  # discriminator updates per generator update
    lr_schedule: str = "linear_decay"  # linear_decay | cosine | step (gan/recipes/schedules.py), after warmup_steps
    lr_decay_steps: int = 0  # linear_decay: both rates fall linearly towards 0 over the last N steps (1/(N+1) last)
    lr_milestones: list[int] = field(default_factory=list)  # step: learning rates times lr_gamma after each
    lr_gamma: float = 0.5  # step: the factor at each milestone
    warmup_steps: int = 0  # learning rates rise linearly from 0 over the first N steps (any schedule)
    adversarial_start: int = 0  # pix2pix, srgan, cyclegan: reconstruction loss alone for N steps, then G's
    # adversarial term and D's updates start
    divergence_bound: float = 1e6  # a logged value (a loss, a gradient norm, a D score) or weight beyond this stops the run as a NaN does
    ema_decay: float = 0.999  # EMA of generator weights; 0 = off
    ema_bn_batches: int = 32  # EMA generator: BatchNorm statistics recomputed for its own weights over this many
    # batches of fresh latents at each preview, metrics and checkpoint step; 0 = copied from the live generator
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: str = "auto"  # NHWC memory format for networks and images: auto (= on for CUDA) | on | off
    compile: str = "auto"  # torch.compile G and D: auto (= on for CUDA) | on | off; falls back to eager on failure
    compile_backend: str = "inductor"  # torch.compile backend: inductor | aot_eager | eager (the last two debug)
    compile_mode: str = "default"  # inductor: default | max-autotune-no-cudagraphs
    cuda_graph: str = "auto"  # replay each training step as one CUDA graph: auto (= on for CUDA) | on | off
    optimizer_kernel: str = "auto"  # Adam: auto (fused on CUDA, foreach on CPU) | fused | foreach | loop
    cudnn_benchmark: bool = True  # let cuDNN time its convolution algorithms (CUDA only)
    sync_debug: bool = False  # CUDA: raise on any host-GPU sync inside a steady-state step (a check)
    dist_timeout_s: int = 3600  # torchrun: how long a process waits in a collective (rank 0 writing checkpoints,
    # computing metrics or building the data cache) before the run is declared hung
    sync_batchnorm: bool = False  # torchrun on CUDA: BatchNorm statistics over the global batch, not per GPU
    checkpoint_every: int = 1000  # steps; a checkpoint is also written at the end and on SIGINT/SIGTERM
    keep_checkpoints: int = 3  # newest checkpoints kept in the run directory
    keep_best: str = ""  # keep best.pt, the checkpoint best by this metric (BEST_METRICS); "" = off


@dataclass(slots=True)
class LogConfig(_Keys):
    every: int = 50  # steps between TensorBoard scalars and progress lines
    image_every: int = 500  # steps between sample grids (TensorBoard and samples/*.png)
    num_samples: int = 64  # images in each sample grid (fixed latents)
    eval_every: int = 0  # steps between validation metrics (recipes that have them, e.g. PSNR/SSIM); 0 = off


@dataclass(slots=True)
class MetricsConfig(_Keys):
    every: int = 0  # steps between generative metrics of the (EMA) generator (dcgan); 0 = off
    names: list[str] = field(default_factory=lambda: ["swd", "fid", "kid"])  # of fid, kid, swd, pr; also what
    # the validation of translations (pix2pix on A|B pairs, CycleGAN) scores by, of swd, fid, kid
    num_samples: int = 2048  # generated images per evaluation, and real images in the reference set
    root: str = ""  # real images to compare with, read as [data] says (all of them); "" = the training images.
    # A held-out folder measures generalisation rather than memorisation (data.max_images runs)
    inception_weights: str = ""  # fid/kid/pr: Inception-v3 weights file; "" = torch-fidelity's cache folder
    cache_dir: str = ""  # reference statistics; "" = $XDG_CACHE_HOME/gan/reference-statistics or ~/.cache/gan/...


@dataclass(slots=True)
class Config(_Keys):
    recipe: str = "dcgan"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


# ----------------------------------------------------------------------------- reading


def _sections_holding(key: str) -> list[str]:
    """The sections of the config that have a key named `key` (`steps`: ['train']), for a key set
    in the wrong one."""
    return [name for name, section in typing.get_type_hints(Config).items() if dataclasses.is_dataclass(section)
            and key in {inner.name for inner in dataclasses.fields(section)}]


def _keys_of_section(dotted: str) -> list[str]:
    """The keys of the config section a dotted name gives (`model`, `train`), or [] for none."""
    if dotted not in {field.name for field in dataclasses.fields(Config)}:
        return []
    section = typing.get_type_hints(Config)[dotted]
    return [field.name for field in dataclasses.fields(section)] if dataclasses.is_dataclass(section) else []


def _fill(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """Build dataclass `cls` from a (possibly partial) nested dict, checking keys and types."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        full_key = f"{prefix}{key}"
        if key not in hints:
            where = f"[{prefix[:-1]}]" if prefix else "the top level"
            named = f"'{printable(full_key, 80)}'"
            elsewhere = _sections_holding(key)
            top_level = [field.name for field in dataclasses.fields(Config)
                         if not dataclasses.is_dataclass(typing.get_type_hints(Config)[field.name])]
            if "." in key and not prefix:  # ("train.steps" = 5: TOML reads a quoted key as one name, dots and all)
                section, _, name = (printable(part, 80) for part in key.rpartition("."))
                hint = (f" (a quoted key is one name, dots and all: write {printable(key, 80)} = ... unquoted, or "
                        f"{name} = ... under [{section}])")
            elif "." in key:  # ("train.d_lr" = 1e-4 under [train]: named train.train.d_lr, which no one wrote)
                section, _, name = (printable(part, 80) for part in key.rpartition("."))
                named = f'"{printable(key, 80)}" under {where}'
                known = _keys_of_section(key.rpartition(".")[0])
                if key.rpartition(".")[2] not in known:  # (no such key there: "train.dlr" is one letter off)
                    hint = suggest(key.rpartition(".")[2], known or names)
                elif key.startswith(prefix):
                    hint = f" (a quoted key is one name, dots and all: write {name} = ... under {where})"
                else:  # ("loss.adversarial" under [train]: a key of another section)
                    hint = (f" (a quoted key is one name, dots and all, and under {where} it is that section's: write "
                            f"{name} = ... under [{section}])")
            elif prefix and key in top_level:  # (the classic TOML slip: a key after a [section] line is that section's)
                hint = (f" ({key} is a top-level key: in a file, before the first [section] line, as TOML puts every "
                        f"key below a [section] line in that section; --set {key}=...)")
            else:
                hint = (f" ({key} is in {' and '.join(f'[{section}]' for section in elsewhere)}: "
                        f"{' or '.join(f'{section}.{key}' for section in elsewhere)})" if elsewhere
                        else suggest(key, names))
            raise ConfigError(f"unknown config key {named}{hint}; valid keys in {where}: "
                              f"{', '.join(names)}")
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            if not isinstance(value, dict):
                example = dataclasses.fields(annotation)[0].name
                raise ConfigError(f"'{full_key}' is a section; set its keys, e.g. {full_key}.{example}=...")
            kwargs[key] = _fill(annotation, value, f"{full_key}.")
        else:
            kwargs[key] = coerce(value, annotation, full_key)
    return cls(**kwargs)


def parse_value(key: str, text: str, option: str = "--set") -> Any:
    """The value of `option` KEY=TEXT: a TOML value (`3`, `2e-4`, `true`, `"x"`, `[1, 2]`), else the bare text.

    For a key of type str the text stays as written unless it is a quoted TOML string: read as
    TOML, `data.root=2024_01` would become 202401 and `1e3` 1000.0. A table is refused: it would
    replace the whole section, dropping the keys the file sets in it."""
    try:
        parsed = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        parsed = {"value": text}
        _refuse_bare_text(key, text)
    except RecursionError:
        raise ConfigError(f"{option} {key}: the value is {_NESTED_TOO_DEEPLY}") from None
    except ValueError as error:  # (Python's own limit: an integer of more than 4,300 digits)
        raise ConfigError(f"{option} {key}: {_value_unread(error)}") from None
    # (checked past the try: inside it, its `except ValueError` took this ConfigError for a too-long integer)
    if set(parsed) != {"value"}:  # (a line break, and a key after it: dropped without a word)
        raise ConfigError(f"{option} {key}: the value '{printable(text, 80)}' holds a line break followed by more "
                          "TOML; give one value (a command substitution's output of several lines, say, needs cutting)")
    value = parsed["value"]
    annotation = key_annotation(key)
    if annotation is str and not isinstance(value, str):
        return text
    if _nested_too_deeply(value, key, MAX_NESTING - key.count(".")) is not None:  # (the key's tables count too)
        raise ConfigError(f"{option} {key}: the value is {_NESTED_TOO_DEEPLY}")
    if isinstance(value, dict) and _is_section(annotation):
        example = next(iter(flatten_config(value, f"{key}.").items()), (f"{key}.KEY", "VALUE"))
        example_value = example[1] if example[1] == "VALUE" else toml_value(example[1])
        raise ConfigError(f"{option} {key}={printable(text, 80)} would replace all of [{key}], dropping the keys the "
                          f"config file sets there; set one key at a time: --set {printable(example[0], 80)}="
                          f"{printable(example_value, 80)}")
    return value


def key_annotation(key: str) -> Any:
    """The type of the dotted config `key` (`train.steps` -> int); None when the dataclasses do not
    name it (a network argument, or a typo that filling them reports)."""
    annotation: Any = Config
    for part in key.split("."):
        if not dataclasses.is_dataclass(annotation):
            return None
        annotation = typing.get_type_hints(annotation).get(part)
    return annotation


def _is_section(annotation: Any) -> bool:
    """Whether a key of type `annotation` is a table of keys (`data`, `model.generator_args`)."""
    return dataclasses.is_dataclass(annotation) or annotation is dict or typing.get_origin(annotation) is dict


def _union_options(annotation: Any) -> tuple:
    return typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()


def _takes_text(annotation: Any) -> bool:
    """Whether a bare word can be a value of `annotation` (or another check reports it better)."""
    return annotation in (None, Any, str) or _is_section(annotation) or str in _union_options(annotation)


def _refuse_bare_text(key: str, text: str) -> None:
    """A value that is not TOML, for a key that takes no text: the type error, with the TOML spelling
    the user most likely meant (`.5` is 0.5 in TOML; strings in a list need quotes). A key that takes
    a number or a word (`loss.augment_p`) is refused too when the text is a number TOML cannot read."""
    annotation = key_annotation(key)
    hint = toml_hint(key, text)
    number_meant = float in _union_options(annotation) and hint and not text.startswith("[")
    if _takes_text(annotation) and not number_meant:
        return
    raise ConfigError(f"{key}: expected {type_name(annotation)}, got {shown(text)}{hint}")


def toml_hint(key: str, text: str) -> str:
    """'; TOML needs ...' for a number or list written as other languages allow; '' otherwise (and for
    text of more than HINTED_CHARACTERS: a spelling to copy of a value that long is no line to read)."""
    if len(text) > HINTED_CHARACTERS:
        return ""
    if re.fullmatch(r"[+-]?\.\d+([eE][+-]?\d+)?", text):
        return f"; TOML needs a digit before the point: {key}={text.replace('.', '0.', 1)}"
    if re.fullmatch(r"[+-]?\d+\.([eE][+-]?\d+)?", text):
        return f"; TOML needs a digit after the point: {key}={text.replace('.', '.0', 1)}"
    if text.lower() in ("true", "false"):
        return f"; TOML writes booleans in lower case: {key}={text.lower()}"
    bracketed = text.startswith("[") and text.endswith("]")
    if bracketed or typing.get_origin(key_annotation(key)) is list:
        inside = text[1:-1] if bracketed else text.strip("[]")  # a bracket left open or unopened is no item's
        items = [item.strip().strip("'\"") for item in inside.split(",") if item.strip()]
        numbers = all(re.fullmatch(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?", item) for item in items)
        listed = ", ".join(item if numbers else json.dumps(item) for item in items)
        what = ("strings in a TOML list need quotes" if bracketed
                else "a TOML list is written in brackets, opened and closed" if text.startswith("[") or text.endswith("]")
                else "a TOML list is written in brackets")
        return f"; {what}: --set '{key}=[{listed}]'"
    return ""


HINTED_CHARACTERS = 200


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply one `key.sub=value` to a nested dict in place."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects KEY=VALUE (for example train.steps=1000), got '{printable(assignment, 80)}'")
    key, text = assignment.split("=", 1)
    # (spaces and tabs around the `=` only: str.strip took a path's own trailing no-break space too)
    set_key(tree, key.strip(" \t"), parse_value(key.strip(" \t"), text.strip(" \t")))


def set_key(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted `key` of a nested dict in place, making its sections as needed."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"--set: malformed key '{printable(key, 80)}'")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {printable(key, 80)}: '{printable(part, 80)}' is a value, not a section")
        node = child
    node[parts[-1]] = value


OVERRIDES_FORM = 'overrides is a list of "KEY=VALUE" strings, such as ["train.steps=200"]'


def override_list(overrides: Any, caller: str) -> list[str]:
    """`overrides` as a list of "KEY=VALUE" strings, as --set gives them, from any iterable of strings
    (a generator read once). TypeError for a string alone (it was read a character at a time: "--set
    expects KEY=VALUE ..., got 't'"), bytes, a dict (read by its keys), None, and for an item that is no
    string, named by its index (a long list was printed whole, 33,928 characters, naming no item)."""
    if isinstance(overrides, (str, bytes, Mapping)) or not isinstance(overrides, Iterable):
        wrap = "; put it in a list" if isinstance(overrides, str) else ""
        raise TypeError(f"{caller}: {OVERRIDES_FORM}; got {type(overrides).__name__} {printable(repr(overrides), 80)}{wrap}")
    items = list(overrides)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"{caller}: {OVERRIDES_FORM}; item {index} of the {len(items)} given is {type(item).__name__} "
                            f"{printable(repr(item), 80)}")
    return items


def read_config(path: str | Path | None, overrides: list[str] = (),
                trained: tuple[Path, dict[str, Any]] | None = None) -> Config:
    """Read a TOML config (or start from defaults when `path` is None), apply overrides, check keys,
    types and ranges. `trained` is (checkpoint, its config) for a run's own config.toml: the settings
    that file lacks are the run's, not the defaults (`fill_from_trained`). `gan.training.resolve.load_config`
    also checks the names against the registries, then warns of settings that change nothing (`gan.core.inert`)."""
    return read_config_and_given_keys(path, overrides, trained)[0]


def read_config_and_given_keys(path: str | Path | None, overrides: list[str] = (),
                               trained: tuple[Path, dict[str, Any]] | None = None) -> tuple[Config, set[str]]:
    """`read_config`, and the keys its overrides set (some settings that change nothing are warned of
    only when given there: `gan.core.inert.WARNED_WHEN_GIVEN`)."""
    overrides = override_list(overrides, "read_config")
    tree: dict[str, Any] = {}
    cut_line: str | None = None
    if path is not None:
        path = Path(path)
        tree, cut_line = (_read_toml(path), None) if trained is None else _read_run_config(path)
        _check_sections(tree, path)
    if trained is not None:
        tree = fill_from_trained(tree, path, *trained, cut_line)
    if path is not None and (trained is not None or _is_run_config(path)):
        _upgrade_written_config(tree, path)
    as_written = copy.deepcopy(tree)
    tree, overrides = _apply_preset(tree, list(overrides), path)
    for assignment in overrides:
        apply_override(tree, assignment)
    try:
        config = _checked(tree)
    except ConfigError as error:
        # (the file alone with its own preset: a key that contradicts it is the file's)
        raise naming_the_file(error, path, lambda: _checked(_apply_preset(copy.deepcopy(as_written), [], path)[0])) \
            from None
    return config, {assignment.partition("=")[0].strip() for assignment in overrides}


def checked_config(config: Config) -> Config:
    """`config`, built or edited in Python (`config.log.every = 0`), checked as a file's is: its keys'
    types and ranges, with the same ConfigError. Returned as read from a file: a whole number given
    to a float key as a float, `~` expanded."""
    return _checked(config_to_dict(config))


def _checked(tree: dict[str, Any]) -> Config:
    """The Config a TOML tree describes, its keys, types and ranges checked (`~` expanded first)."""
    config = _fill(Config, tree, "")
    _expand_home(config)
    check_values(config)
    return config


def naming_the_file(error: ConfigError, path: Path | None, check_file_alone: Callable[[], object]) -> ConfigError:
    """`error` with the config file named when the file alone, as written, gives it (`check_file_alone`
    raises the same): a key, value or name of the file, not of a --set (whose own messages name --set)."""
    if path is None or str(error).startswith(f"{path}:"):
        return error
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_file_alone()
    except ConfigError as own:
        if str(own) == str(error):
            return ConfigError(f"{path}: {error}")
    except Exception:  # noqa: BLE001 - (the file alone may fail otherwise: then it is not the file's to name)
        pass
    return error


def _read_run_config(path: Path) -> tuple[dict[str, Any], str | None]:
    """A run's config.toml as a dict, and the last line when the file was cut short inside it (no
    line end, and not valid TOML: `g_lr = 0.` or `root = "/da`): the lines before it are read, and
    `fill_from_trained` takes the rest from the checkpoint. Any other invalid TOML is an error."""
    try:
        return _read_toml(path), None
    except ConfigError as error:
        try:  # (only a TOML error can be a cut: a file that is no UTF-8 text, or unreadable, stays refused)
            text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
        except (OSError, UnicodeDecodeError):
            raise error from None
        if text.endswith("\n"):
            raise
        complete, _, cut = text.rpartition("\n")
        try:
            return _shallow(tomllib.loads(complete + "\n" if complete else ""), path), cut
        except tomllib.TOMLDecodeError as before:  # (a hand edit saved without a last line end: its place said)
            raise ConfigError(f"{path}: not valid TOML: {before}") from None


def fill_from_trained(tree: dict[str, Any], path: Path | None, checkpoint: Path, trained: dict[str, Any],
                      cut_line: str | None = None) -> dict[str, Any]:
    """A run's config.toml (`tree`, read from `path`; None when the file is gone) with the settings it
    lacks taken from `trained`, the config its `checkpoint` holds, with a warning. A file cut short (a
    full disk, a copy) keeps its first lines, and read alone it would resume another experiment: every
    missing key at its default. A last line without its line end (gan ends every line) may have lost
    part of its value (`steps = 200` of `steps = 20000`), so it too is taken from the checkpoint;
    `cut_line` is such a line that was not even valid TOML (`_read_run_config` left it out)."""
    if path is None:
        warnings.warn(f"the run's config.toml is missing: its settings are taken from '{checkpoint}', the config "
                      "the run trained with, and config.toml is written again", stacklevel=3)
        return trained
    written = flatten_config(tree)
    missing = [key for key in flatten_config(trained) if key not in written]
    if not missing or tree.get("recipe", trained.get("recipe")) != trained.get("recipe"):
        return tree  # (a checkpoint of another recipe is another run's: the resume names it)
    cut = ""
    if cut_line is not None:
        cut = f"; its last line, {cut_line.strip()[:60]!r}, ends without a line end and is not valid TOML, so it is " \
              "taken from there as well"
    elif written and not path.read_bytes().endswith(b"\n"):
        last = list(written)[-1]
        *sections, name = last.split(".")
        table = tree
        for section in sections:
            table = table[section]
        del table[name]
        cut = f"; its last line, {last}, ends without a line end, so that value may be cut short too and is taken " \
              "from there as well"
    warnings.warn(f"'{path}' lacks {len(missing)} of the run's settings (the first: {missing[0]}): cut short or "
                  f"edited; they are taken from '{checkpoint}', the config the run trained with, not from the "
                  f"defaults{cut}", stacklevel=3)
    return _merged(trained, tree)


def read_run_config(path: Path, trained: tuple[Path, dict[str, Any]] | None) -> dict[str, Any]:
    """A run's config.toml as a dict, for a reader of the run (gan compare), as a resume reads it:
    what the file lacks (cut short, emptied: read alone, every default) taken from `trained`, the
    newest checkpoint and its config, with `fill_from_trained`'s warning. ConfigError naming the file."""
    if trained is None:
        return _read_toml(path)
    tree, cut_line = _read_run_config(path)
    return fill_from_trained(tree, path, *trained, cut_line)


# `$HOME`, `${DATA}`: a shell's variables, which a TOML file (or a quoted --set) leaves as written
ENVIRONMENT_VARIABLE = re.compile(r"\$(?:\{\w+\}|[A-Za-z_]\w*)")


def _expand_home(config: Config) -> None:
    """`~/data` in a path key is the home folder's, as a shell would read it (a shell leaves the `~` of
    `--set data.root=~/data` alone, and a TOML file never expands it): else a literal `./~/` folder.
    A `~user` of no user here, or a `$VARIABLE` (gan expands none) in a path that does not exist as
    written, is refused: the run made a folder named `$HOME` in the working folder, without a word."""
    for key in PATH_KEYS:
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value.startswith("~"):
            expanded = os.path.expanduser(value)
            if expanded.startswith("~"):
                raise ConfigError(f"{key} = {shown(value)}: this machine has no user '{printable(value[1:].split('/')[0], 80)}' whose "
                                  "home folder '~' could name; write the path out")
            setattr(getattr(config, section), name, expanded)
            value = expanded
        problem = unexpanded_variable(value, f"--set {key}=")
        if problem:
            raise ConfigError(f"{key} = {shown(value)}: {problem}")


def unexpanded_variable(path: str, unquoted: str) -> str | None:
    """Why `path` is refused when it holds a `$VARIABLE` and names nothing as written, else None: a
    shell expands it where it is not quoted (as in `{unquoted}$HOME/...`), and gan does not. For a
    config's path keys and a command's paths alike."""
    if ENVIRONMENT_VARIABLE.search(path) and not os.path.lexists(path):
        return (f"gan expands no environment variables in paths (a shell does, in an unquoted {unquoted}$HOME/...); "
                "write the path out")
    return None


def toml_text(text: str) -> dict[str, Any]:
    """`tomllib.loads` of a config file's text. Windows editors may start UTF-8 files with a
    byte-order mark, which TOML does not allow: every reader of a config.toml goes through this."""
    return tomllib.loads(text.removeprefix("\ufeff"))


def check_config_file(path: Path) -> None:
    """ConfigError naming `path` unless it is a regular file of a config's size (read whole, a file of
    gigabytes given by mistake took as much memory before TOML refused it)."""
    if not path.is_file():
        kind = "is not a regular file (a device, a pipe or a folder)" if path.exists() else "does not exist"
        shipped = (" (the shipped configs are in the experiments/ folder of a gan checkout; an installed "
                   "wheel holds none)" if not path.exists() and path.parts[:1] == ("experiments",) else "")
        raise ConfigError(f"config file '{path}' {kind}{shipped}")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file '{path}' is {size / 2**20:,.1f} MiB, not a config (a few KB of TOML): give "
                          "the config's path")


def _read_toml(path: Path) -> dict[str, Any]:
    """The TOML file at `path` as a dict; ConfigError naming the file when it cannot be read."""
    check_config_file(path)
    try:
        tree = toml_text(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}: {error.object[error.start:error.start + 1]!r}); "
                          "TOML config files are UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{path}: {_NESTED_TOO_DEEPLY}") from None
    except ValueError as error:  # (Python's own limit: an integer of more than 4,300 digits)
        raise ConfigError(f"{path}: {_value_unread(error)}") from None
    except OSError as error:
        raise ConfigError(f"config file '{path}' cannot be read: {error.strerror or error}") from None
    return _shallow(tree, path)  # (past the try: its `except ValueError` would take this ConfigError for another)


MAX_NESTING = 16  # arrays and tables inside each other: a config's deepest key, a list of lists in
# [model.generator_args], is 4; deeper is no config (from ~330 it overflowed the recursion of the checks)
_NESTED_TOO_DEEPLY = (f"nested too deeply to read (arrays or tables more than {MAX_NESTING} inside each other); no "
                      "config needs more than a few levels")


def _shallow(tree: dict[str, Any], path: Path) -> dict[str, Any]:
    """`tree`, read from `path`, unless a value in it is nested deeper than MAX_NESTING: refused once
    here, where it enters, so that no check that recurses into values (coercing, showing) meets it."""
    key = _nested_too_deeply(tree, "", MAX_NESTING + 1)  # (+1: the file's own top-level table)
    if key is not None:
        raise ConfigError(f"{path}: {printable(key, 80)} is {_NESTED_TOO_DEEPLY}")
    return tree


def _nested_too_deeply(value: Any, key: str, levels: int) -> str | None:
    """The dotted key (`data.root`) of the first value within `value` (the value of `key`) that holds
    more than `levels` arrays or tables inside each other, else None. It looks no deeper than `levels`:
    its own recursion stays short."""
    if not isinstance(value, (list, dict)):
        return None
    if levels == 0:
        return key
    if isinstance(value, dict):
        children = ((f"{key}.{name}" if key else name, item) for name, item in value.items())
    else:  # (an array's items are its key's)
        children = ((key, item) for item in value)
    for child_key, item in children:
        found = _nested_too_deeply(item, child_key, levels - 1) if isinstance(item, (list, dict)) else None
        if found is not None:
            return found
    return None


def _value_unread(error: ValueError) -> str:
    """Python's refusal to read an integer of thousands of digits, as what is wrong with the value."""
    return f"an integer too long to read ({str(error).split(';')[0]}); a 64-bit integer has at most 19 digits"


def _check_sections(tree: dict[str, Any], path: Path, cls: type | None = None, prefix: str = "") -> None:
    """A section the file writes as a value (`data = 3`, `[[data]]`) is the file's mistake: named
    here, before a `--set data.x` over it could be blamed."""
    hints = typing.get_type_hints(cls or Config)
    for key, value in tree.items():
        annotation, name = hints.get(key), f"{prefix}{key}"
        if not (dataclasses.is_dataclass(annotation) or typing.get_origin(annotation) is dict):
            continue
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            raise ConfigError(f"{path}: [{name}] is a section, but the file writes [[{name}]] (an array of "
                              f"tables): write [{name}] once, with its keys below it")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: [{name}] is a section, but the file sets {name} = {shown(value)}: write "
                              f"[{name}] with its keys below it")
        if dataclasses.is_dataclass(annotation):
            _check_sections(value, path, annotation, f"{name}.")


def _apply_preset(tree: dict[str, Any], overrides: list[str], path: Path | None) -> tuple[dict[str, Any], list[str]]:
    """Fill the keys of the loss preset in effect (gan/core/presets.py): one named with `--set` over the
    file (the last such `--set` wins; "" means none), else one the file names under the file's own
    keys. Returns the tree and the other overrides, still to be applied over it."""
    named = [assignment for assignment in overrides if assignment.split("=", 1)[0].strip() == "loss.preset"]
    others = [assignment for assignment in overrides if assignment not in named]
    if named:
        scratch: dict[str, Any] = {}
        apply_override(scratch, named[-1])
        name = scratch["loss"]["preset"]
        tree = _merged(tree, _preset_tree(name, "--set loss.preset")) if name else tree
        if isinstance(tree.setdefault("loss", {}), dict):  # (else filling it names the mistake)
            tree["loss"]["preset"] = name
    else:
        name = tree.get("loss", {}).get("preset", "") if isinstance(tree.get("loss"), dict) else ""
        if name:
            tree = _merged(_preset_tree(name, f"{path}: loss.preset"), tree)
    return tree, others


def _preset_tree(name: Any, where: str) -> dict[str, Any]:
    if not isinstance(name, str) or name not in LOSS_PRESETS:
        raise ConfigError(f"{where} = {shown(name)} is no preset{suggest(str(name), list(LOSS_PRESETS))}; known: "
                          f"{', '.join(LOSS_PRESETS)}, or \"\" for none")
    tree: dict[str, Any] = {}
    for key, value in LOSS_PRESETS[name].values.items():
        set_key(tree, key, value)
    return tree


def _merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`base` with `top`'s values over it, section by section (new dicts; the inputs are unchanged)."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        merged[key] = _merged(below, value) if isinstance(value, dict) and isinstance(below, dict) else value
    return merged


# The names a run directory gives its config and its checkpoints (gan/core/checkpoint.py, which
# imports torch), spelled here so that reading a config needs none.
RUN_CONFIG = "config.toml"
CHECKPOINT_GLOB = "checkpoint-*.pt"


def _is_run_config(path: Path) -> bool:
    """Whether `path` is the config.toml a run directory wrote beside its checkpoints (what
    `gan train --resume` reads), rather than a config file a person wrote."""
    return path.name == RUN_CONFIG and any(path.parent.glob(CHECKPOINT_GLOB))


def _upgrade_written_config(tree: dict[str, Any], path: Path) -> None:
    """Keep resumed runs doing what they did. Before `train.adversarial_start` existed, pix2pix
    ignored `loss.adversarial_weight` (weight 1) while the resolved config.toml recorded srgan's
    1e-3 for it; a run directory from then must go on with weight 1. Only a run's own config.toml:
    a config a person writes with 1e-3 means 1e-3."""
    loss, train = tree.get("loss"), tree.get("train")
    if (tree.get("recipe") == "pix2pix" and isinstance(loss, dict) and isinstance(train, dict)
            and "adversarial_start" not in train and loss.get("adversarial_weight") == 1e-3):
        loss["adversarial_weight"] = 1.0
        warnings.warn(f"{path}: loss.adversarial_weight = 0.001 was recorded by a pix2pix run from before "
                      "train.adversarial_start, which ignored it; the run goes on with weight 1.0, as it trained",
                      stacklevel=3)


def check_values(config: Config) -> None:
    """Check the ranges and combinations that types alone cannot. Names that registries hold
    (recipe, dataset, networks, loss, metrics) are checked by `gan.training.resolve`, above them."""
    _check_preset(config)
    _check_loss_values(config.loss)
    _check_train_values(config.train)
    _check_data_values(config.data)
    _check_range("log.num_samples", config.log.num_samples, 1, MAX_PREVIEW_SAMPLES)
    _check_range("metrics.num_samples", config.metrics.num_samples, 2, MAX_METRIC_SAMPLES)
    _check_text(config)
    if config.metrics.root and config.data.dataset not in IMAGE_FOLDER_DATASETS:
        raise ConfigError(f"metrics.root is read as [data] says, and data.dataset {shown(config.data.dataset)} has no "
                          "image folder to read it with (celeba or folder do)")
    for key in PATH_KEYS:
        section, name = key.split(".")
        _check_path(key, getattr(getattr(config, section), name))
    for key, low in (("log.every", 1), ("log.image_every", 1), ("log.eval_every", 0), ("metrics.every", 0)):
        section, name = key.split(".")
        _check_range(key, getattr(getattr(config, section), name), low, math.inf)
    _check_integer_sizes(config)  # (last: a key with its own range names it more precisely)


def _check_loss_values(loss: LossConfig) -> None:
    """[loss]'s ranges, and the settings that need another loss."""
    # (losses without targets by name: a misspelt one, `lsgn`, is named unknown where names are resolved)
    if loss.label_smoothing and loss.adversarial in ("hinge", "wgan-gp"):
        raise ConfigError(f"loss.label_smoothing applies to vanilla and lsgan, not {shown(loss.adversarial)} (it has "
                          f"no targets to smooth; this config sets {loss.label_smoothing}): turn it off with "
                          "--set loss.label_smoothing=0")
    _check_range("loss.label_smoothing", loss.label_smoothing, 0.0, 0.5)
    _check_range("loss.instance_noise", loss.instance_noise, 0.0, MAX_INSTANCE_NOISE)
    _check_range("loss.r1_gamma", loss.r1_gamma, 0.0, math.inf)
    _check_range("loss.r1_every", loss.r1_every, 1, math.inf)
    _check_augment_probability(loss)
    if loss.adversarial_weight != -1.0:
        _check_range("loss.adversarial_weight", loss.adversarial_weight, 0, math.inf)
    _check_choice("loss.content", loss.content, ("mse", "l1", "vgg"))
    _check_choice("loss.vgg_arch", loss.vgg_arch, ("vgg16", "vgg19"))
    _check_range("loss.gp_weight", loss.gp_weight, 0.0, math.inf)
    if loss.adversarial == "wgan-gp" and loss.gp_weight == 0:  # (as a recipe without the penalty is refused)
        raise ConfigError("loss.adversarial = 'wgan-gp' with loss.gp_weight = 0 trains its critic unconstrained, "
                          "which the Wasserstein loss needs bounded: a weight > 0 (10 in the WGAN-GP paper), or "
                          "another loss (vanilla, lsgan, hinge)")
    if not (loss.vgg_feature_scale > 0 and math.isfinite(loss.vgg_feature_scale)):
        # (0 multiplies both images' features to zeros: a perceptual loss of 0 that trains nothing)
        raise ConfigError(f"loss.vgg_feature_scale must be a finite number > 0, got {loss.vgg_feature_scale}: the "
                          "perceptual loss compares features multiplied by it, so 0 leaves nothing to learn from "
                          "(SRGAN: 1/12.75)")
    for name in ("instance_noise_steps", "l1_weight", "cycle_weight", "identity_weight", "pool_size"):
        _check_range(f"loss.{name}", getattr(loss, name), 0, math.inf)


FLOAT32_MAX = 3.4028234663852886e38  # (without importing torch: commands' start-up stays light)


def _check_train_values(train: TrainConfig) -> None:
    """[train]'s ranges, choices, and compile settings that do not go together."""
    _check_range("train.ema_decay", train.ema_decay, 0.0, 1.0 - 1e-12)
    for name in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints"):
        _check_range(f"train.{name}", getattr(train, name), 1, math.inf)
    _check_range("train.d_steps", train.d_steps, 1, MAX_D_STEPS)
    _check_range("train.dist_timeout_s", train.dist_timeout_s, 1, MAX_DIST_TIMEOUT_S)
    _check_choice("train.channels_last", train.channels_last, ("auto", "on", "off"))
    _check_choice("train.compile", train.compile, ("auto", "on", "off"))
    _check_choice("train.compile_backend", train.compile_backend, ("inductor", "aot_eager", "eager"))
    if train.compile_mode == "reduce-overhead":
        raise ConfigError("train.compile_mode 'reduce-overhead' (a CUDA graph per network) is not offered: a GAN "
                          "step calls a network again before its backward pass, which those graphs do not survive "
                          "(an H200 run read an overwritten generator output); train.cuda_graph replays the whole "
                          "step as one graph instead. Set train.compile_mode=default (a saved run resumes with "
                          "--set train.compile_mode=default)")
    _check_choice("train.compile_mode", train.compile_mode, ("default", "max-autotune-no-cudagraphs"))
    if train.compile_mode != "default" and train.compile_backend != "inductor":
        raise ConfigError(f"train.compile_mode '{train.compile_mode}' is an inductor mode; "
                          f"train.compile_backend is '{train.compile_backend}'")
    _check_choice("train.cuda_graph", train.cuda_graph, ("auto", "on", "off"))
    _check_choice("train.keep_best", train.keep_best, ("", *BEST_METRICS), "empty: no best.pt")
    _check_choice("train.lr_schedule", train.lr_schedule, ("linear_decay", "cosine", "step"))
    _check_range("train.lr_gamma", train.lr_gamma, 1e-12, 1.0)
    milestones = train.lr_milestones
    if any(m < 1 for m in milestones) or milestones != sorted(set(milestones)):
        raise ConfigError(f"train.lr_milestones must be increasing steps >= 1, got {shown(milestones)}")
    _check_choice("train.optimizer_kernel", train.optimizer_kernel, ("auto", "fused", "foreach", "loop"))
    _check_range("train.ema_bn_batches", train.ema_bn_batches, 0, MAX_EMA_BN_BATCHES)
    _check_range("train.seed", train.seed, 0, 2**32 - 1)
    for name in ("g_lr", "d_lr"):
        _check_range(f"train.{name}", getattr(train, name), 0, math.inf)
    for name in ("beta1", "beta2"):
        _check_range(f"train.{name}", getattr(train, name), 0.0, 1.0 - 1e-12)
    for name in ("g_lr", "d_lr"):  # (Adam's first step, bias-corrected, is lr / (1 - beta1): in float32)
        first_step = getattr(train, name) / (1 - train.beta1)
        if first_step > FLOAT32_MAX:  # (a traceback in torch's kernel: "cannot be converted ... without overflow")
            raise ConfigError(f"train.{name} = {getattr(train, name):g} with train.beta1 = {train.beta1:g} makes "
                              f"Adam's first step, lr / (1 - beta1) = {first_step:.3g}, larger than float32 holds "
                              f"({FLOAT32_MAX:.3g}); learning rates are well below 1 (the shipped configs: 1e-4 to 2e-4)")
    if not 0 < train.divergence_bound <= math.inf:
        raise ConfigError(f"train.divergence_bound must be > 0 (inf turns the check off), got {train.divergence_bound}")
    for name in ("lr_decay_steps", "warmup_steps", "adversarial_start"):
        _check_range(f"train.{name}", getattr(train, name), 0, math.inf)


def _check_data_values(data: DataConfig) -> None:
    """[data]'s ranges and choices (a setting read only by another dataset is warned of: gan.core.inert)."""
    _check_range("data.resolution", data.resolution, 1, MAX_RESOLUTION)
    _check_range("data.crop", data.crop, 1, math.inf)
    # (it was cut to the width, the same as 178, without a word; another data set's, which reads no crop, is warned of)
    if data.crop > CELEBA_OFFICIAL_WIDTH and data.dataset == "celeba":
        raise ConfigError(f"data.crop = {data.crop} is wider than CelebA's aligned faces ({CELEBA_OFFICIAL_WIDTH} px "
                          f"at the official 178x218 size, which data.crop counts in): at most {CELEBA_OFFICIAL_WIDTH}")
    _check_choice("data.layout", data.layout, ("auto", "aligned", "folders"))
    _check_choice("data.direction", data.direction, ("AtoB", "BtoA"))
    if data.cache == "ram":  # the old name; the decoded images were never in RAM but in a file on disk
        warnings.warn('data.cache = "ram" is now called "mmap" (the decoded images are a memory-mapped file on '
                      'disk); "ram" still works', FutureWarning, stacklevel=4)
        data.cache = "mmap"
    _check_choice("data.cache", data.cache, ("off", "mmap", "device"))
    _check_choice("data.scale", data.scale, (2, 3, 4, 8))
    _check_range("data.jpeg_quality", data.jpeg_quality, 0, 100)
    _check_range("data.load_size", data.load_size, 0, MAX_RESOLUTION)  # images are resized to it: memory
    if data.dataset in ("paired", "unpaired") and data.load_size > 2 * data.resolution:
        # (data.resolution = 128 with the 256-px default of 286: crops of 45% of the side, trained at 2.2x the
        # scale that validation and gan eval, which resize whole images to 128, score)
        warnings.warn(f"data.load_size = {data.load_size} with data.resolution = {data.resolution}: each training "
                      f"crop is {data.resolution / data.load_size:.0%} of the side of an image resized to "
                      f"{data.load_size}, while evaluation resizes whole images to {data.resolution}, so the network "
                      f"trains at {data.load_size / data.resolution:.1f}x the scale it is scored at; the reference's "
                      f"jitter at this size is data.load_size = {round(data.resolution * 286 / 256)} (0: none)",
                      UserWarning, stacklevel=4)
    _check_range("data.blur_sigma", data.blur_sigma, 0.0, MAX_BLUR_SIGMA)
    _check_range("data.noise_std", data.noise_std, 0.0, 255.0)  # grey levels: more is noise alone
    _check_range("data.synthetic_size", data.synthetic_size, 1, MAX_SYNTHETIC_SIZE)
    _check_range("data.num_workers", data.num_workers, 0, MAX_LOADER_WORKERS)
    _check_range("data.max_images", data.max_images, 0, math.inf)

MAX_CONFIG_BYTES = 16 * 2**20  # a config is a few KB (a run's, with its resume notes, tens)
MAX_METRIC_SAMPLES = 1_000_000  # 20x FID's customary 50,000; more is a typo that would exhaust memory
MAX_PREVIEW_SAMPLES = 1024  # a 32x32 grid: more is no grid a person can look at, and costs memory every preview
MAX_SYNTHETIC_SIZE = 10_000_000  # each epoch's order is a list of this many: 10M is 40x CelebA already
MAX_LOADER_WORKERS = 256  # processes; more is a typo that would fork until the machine stops
MAX_DIST_TIMEOUT_S = 7 * 24 * 3600  # a week: far past any wait rank 0 causes; more overflows the group's clocks
MAX_INSTANCE_NOISE = 10.0  # std, on images in [-1, 1]: 5x their whole range already hides them from D
MAX_D_STEPS = 100  # discriminator updates per generator update (WGAN uses 5); more is a typo
MAX_EMA_BN_BATCHES = 10_000  # batches of BatchNorm statistics per EMA evaluation; more is a typo
MAX_RESOLUTION = 8192  # pixels a side; more is a typo (a 8192^2 batch of 64 is already 50 GB of float input)
IMAGE_FOLDER_DATASETS = ("celeba", "folder")  # single images of a folder: what data.cache decodes, metrics.root reads
CELEBA_OFFICIAL_WIDTH = 178  # px of CelebA's aligned faces at the official size, which data.crop counts in
MAX_BLUR_SIGMA = 100.0  # HR pixels; more blurs any training crop into one colour
MAX_INTEGER = 2**63 - 1  # TOML's integers are 64-bit: a larger one makes a config.toml other readers refuse


def _check_text(config: Config) -> None:
    """Every string must be text that config.toml can hold: a `--set` value with bytes that are not
    UTF-8 (read from the command line as lone surrogates) would make a file no resume can read."""
    for key, value in flatten_config(config_to_dict(config)).items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise ConfigError(f"{key} holds bytes that are not UTF-8 text ('{printable(text, 80)}': bytes of "
                                      f"another encoding), which config.toml cannot hold: "
                                      f"{_utf8_advice(key)}") from None


def _utf8_advice(key: str) -> str:
    """What to do about a value of `key` that is not UTF-8 text."""
    if key in PATH_KEYS:
        return "rename it, or link to it from a path that is UTF-8 text, and give that path"
    return "give the value as UTF-8 text"


PATH_KEYS = ("data.root", "data.val_root", "data.a_root", "data.b_root", "data.cache_dir", "model.init_generator",
             "loss.vgg_weights", "metrics.inception_weights", "metrics.cache_dir", "metrics.root")


def _check_path(key: str, value: str) -> None:
    """A path the file system can name: no NUL, no name longer than 255 bytes, at most 4096 in all."""
    encoded = value.encode("utf-8", "surrogateescape")
    longest = max((len(part.encode("utf-8", "surrogateescape")) for part in Path(value).parts), default=0)
    if "\0" in value or len(encoded) > 4096 or longest > 255:
        raise ConfigError(f"{key} is not a usable path ({len(encoded)} bytes, longest name {longest} bytes; the limits "
                          f"are 4096 and 255, and no NUL): {value[:80]}...")


# What `train.keep_best` can follow, and which way is better. swd/fid/kid/precision/recall come
# from [metrics] (unconditional recipes), val/* from validation (log.eval_every).
BEST_METRICS = {"swd/mean": "lower", "fid": "lower", "kid": "lower", "precision": "higher", "recall": "higher",
                "val/psnr": "higher", "val/ssim": "higher", "val/swd": "lower", "val/fid": "lower", "val/kid": "lower",
                "val/cycle_l1": "lower",
                # CycleGAN's, one per direction of translation (val/swd, ... are the mean of both)
                **{f"val/{metric}_{direction}": "lower" for metric in ("swd", "fid", "kid")
                   for direction in ("AtoB", "BtoA")}}


def _check_preset(config: Config) -> None:
    """A preset names a loss with its settings: other settings may refine it, another loss may not."""
    preset = config.loss.preset
    if not preset:
        return
    if config.recipe != "dcgan":
        raise ConfigError(f"loss.preset sets the unconditional recipe's loss and optimiser (recipe dcgan); recipe "
                          f"'{config.recipe}' keeps its own paper's settings: remove loss.preset = {preset!r}")
    own = LOSS_PRESETS[preset].values["loss.adversarial"]
    if config.loss.adversarial != own:
        raise ConfigError(f"loss.adversarial = {shown(config.loss.adversarial)} contradicts loss.preset = {preset!r} (the "
                          f"{own} loss at its paper's settings): choose --set loss.preset={printable(config.loss.adversarial, 80)}, "
                          "or no preset (--set loss.preset=) and set the keys one by one")


def _check_augment_probability(loss: LossConfig) -> None:
    if isinstance(loss.augment_p, str):
        if loss.augment_p != "adaptive":
            raise ConfigError(f"loss.augment_p must be a probability in [0, 1] or \"adaptive\", got {shown(loss.augment_p)}")
        if loss.adversarial == "wgan-gp":
            raise ConfigError("loss.augment_p = \"adaptive\" steers by the sign of D's output on reals, which a "
                              "WGAN critic's arbitrary offset makes meaningless; use a fixed loss.augment_p")
    else:
        _check_range("loss.augment_p", loss.augment_p, 0.0, 1.0)
    if loss.augment_p != 1.0 and not loss.diffaugment:
        raise ConfigError(f"loss.augment_p = {loss.augment_p!r} sets how often DiffAugment applies; "
                          "loss.diffaugment names no augmentation (e.g. \"color,translation,cutout\")")
    _check_range("loss.augment_target", loss.augment_target, 1e-6, 1.0 - 1e-6)
    _check_range("loss.augment_interval", loss.augment_interval, 1, math.inf)
    _check_range("loss.augment_images", loss.augment_images, 1, math.inf)


def _check_choice(key: str, value: Any, choices: tuple, empty: str = "") -> None:
    """`value` among `choices`; `empty` says what the choice "" means (in a list, an empty word is invisible)."""
    if value not in choices:
        listed = [f'""{f" ({empty})" if empty else ""}' if choice == "" else str(choice) for choice in choices]
        raise ConfigError(f"{key} must be one of {', '.join(listed)}; got {shown(value)}")


def _check_integer_sizes(config: Config) -> None:
    """Every integer fits in 64 bits, as TOML's do (Python's reader takes more; others refuse the file)."""
    for key, value in flatten_config(config_to_dict(config)).items():
        for number in value if isinstance(value, list) else [value]:
            _check_fits_64_bits(key, number)


def _check_fits_64_bits(key: str, number: object) -> None:
    """An integer beyond 64 bits, named (a 400-digit one by its length: float() of it overflows)."""
    if isinstance(number, int) and not isinstance(number, bool) and abs(number) > MAX_INTEGER:
        # (str() of more than 4,300 digits raises in Python itself)
        digits = len(str(abs(number))) if number.bit_length() < 14_000 else "over 4,000"
        said = number if isinstance(digits, int) and digits <= 30 else f"an integer of {digits} digits"
        raise ConfigError(f"{key} = {said} does not fit in 64 bits, as TOML's integers must (at most {MAX_INTEGER})")


def _check_range(key: str, value: float, low: float, high: float) -> None:
    """`value` in [low, high]; a bound of inf means "no bound", never that infinity is a value."""
    if isinstance(value, int) and abs(value).bit_length() > 1000:  # (math.isfinite of it overflows: said first)
        _check_fits_64_bits(key, value)
    if not (low <= value <= high and math.isfinite(value)):
        bound = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        finite = "" if math.isfinite(value) or math.isnan(value) else "a finite number "
        raise ConfigError(f"{key} must be {finite}{bound}, got {value}")


def config_from_dict(tree: dict[str, Any]) -> Config:
    """Rebuild a Config from `config_to_dict` output (as stored in checkpoints)."""
    return _fill(Config, tree, "")


def non_finite_restored(tree: dict[str, Any], section: type = Config) -> dict[str, Any]:
    """`tree` (a config as `standard_json` wrote it) with the text "inf", "-inf" or "nan" of a float
    key read back as the number: standard JSON has none (train.divergence_bound = inf turns a check
    off), and a float key refuses text. Text keys keep their text."""
    hints = typing.get_type_hints(section)
    restored = {}
    for key, value in tree.items():
        annotation = hints.get(key)
        if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
            value = non_finite_restored(value, annotation)
        elif isinstance(value, str) and value in NON_FINITE_TEXT and float in (annotation, *_union_options(annotation)):
            value = NON_FINITE_TEXT[value]
        restored[key] = value
    return restored


def config_to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def flatten_config(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config as a dict (`config_to_dict`, a config.toml read back) -> {"train.steps": 4000, ...}."""
    items = {}
    for key, value in tree.items():
        items.update(flatten_config(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return items


# ----------------------------------------------------------------------------- writing


_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _is_control(char: str) -> bool:
    """A character TOML's basic strings hold only as an escape."""
    return ord(char) < 0x20 or ord(char) == 0x7F


def toml_value(value: Any) -> str:
    """`value` (a bool, number, string or list of them) as TOML text that `tomllib` reads back equal:
    control characters escaped (TOML forbids them raw), the rest as it is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_TOML_ESCAPES.get(char) or (f"\\u{ord(char):04x}" if _is_control(char) else char)
                             for char in value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if value is None:
        raise ConfigError("TOML has no null; use a value or leave the key out")
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_lines(tree: dict[str, Any], prefix: str) -> list[str]:
    lines = [f"{key} = {toml_value(value)}" for key, value in tree.items() if not isinstance(value, dict)]
    for key, value in tree.items():
        if isinstance(value, dict):
            lines += ["", f"[{prefix}{key}]", *_toml_lines(value, f"{prefix}{key}.")]
    return lines


def dump_config(config: Config) -> str:
    """The resolved config as TOML text that `load_config` reads back to an equal Config."""
    return "\n".join(_toml_lines(config_to_dict(config), "")).lstrip() + "\n"
