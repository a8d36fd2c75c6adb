"""A frozen VGG feature extractor for perceptual (content) losses (Johnson et al.; SRGAN).

torchvision's VGG16/VGG19 `features` stack truncated after a named layer (`relu2_2`,
`relu5_4`, ...: "VGG22" and "VGG54" in the SRGAN paper). Weights come from a local
file in torchvision's format; nothing is downloaded. Inputs are images in [-1, 1],
mapped to ImageNet normalisation inside.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from gan.core.checkpoint import first_mismatch, gan_file_words, quiet_torch_load, unloadable_reason
from gan.core.files import refuse_other_than_a_file
from gan.core.processes import stop_signals_held
from gan.core.weights_files import layout_hint, weights_file_damage
from gan.nets import register_network

# torchvision's file names for the ImageNet weights, as torch.hub caches them.
WEIGHT_FILES = {"vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth"}
WEIGHT_URL = "https://download.pytorch.org/models/{}"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's VGG configurations (its `cfgs` "D" and "E"): each 3x3 convolution's output channels, "M" a 2x2
# max pool; its `features` stack puts a ReLU after each convolution. (The names and keys are read from these,
# not from a torchvision model: importing torchvision in a config check let a Ctrl-C leave it half imported.)
VGG_LAYOUTS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


class WeightsNotFoundError(FileNotFoundError):
    """The pretrained weights file is missing; the message says which file to put where."""


def torchvision_vgg(arch: str) -> nn.Module:
    """torchvision's VGG `arch`, untrained; torchvision imported here, not with the zoo (its import, 1.2 s,
    held up every command, most of which never build a VGG)."""
    with stop_signals_held():  # (a Ctrl-C mid-import left modules half imported: every later import failed)
        from torchvision import models

    return getattr(models, arch)(weights=None)


def layer_names(features: nn.Sequential) -> list[str]:
    """Names for the layers of a torchvision VGG `features` stack, in order:
    conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ..."""
    names, block, index = [], 1, 1
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            names.append(f"conv{block}_{index}")
        elif isinstance(layer, nn.ReLU):
            names.append(f"relu{block}_{index}")
            index += 1
        elif isinstance(layer, nn.MaxPool2d):
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            raise TypeError(f"unexpected layer {layer!r} in a VGG feature stack")
    return names


def default_weights_path(arch: str) -> Path:
    """Where torch.hub caches torchvision's weights: $TORCH_HOME/hub/checkpoints/<file>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHT_FILES[arch]


def resolve_weights(arch: str, weights: str) -> Path | None:
    """The weights file to load ('' = torch's hub cache), or None for 'random'."""
    if weights == "random":
        return None
    path = Path(os.path.expanduser(weights)) if weights else default_weights_path(arch)
    refuse_other_than_a_file(path, f"loss.vgg_weights '{path}'", WEIGHT_FILES[arch])
    if not path.is_file():
        file_name = WEIGHT_FILES[arch]
        raise WeightsNotFoundError(
            f"{arch} weights not found at '{path}'. Put torchvision's ImageNet weights file {file_name} "
            f"(from {WEIGHT_URL.format(file_name)}) at '{default_weights_path(arch)}', or point to it with "
            f"--set loss.vgg_weights=/path/to/{file_name}"
        )
    return path


def load_vgg_weights(vgg: nn.Module, state: object, path: Path, arch: str) -> None:
    """Load the features of torchvision's `arch` state dict `state` (read from `path`) into `vgg`;
    ValueError in one line when it is another network's (a summary of the keys, not torch's list of
    hundreds), nested in a training checkpoint, or not finite."""
    if not isinstance(state, dict):
        raise ValueError(f"'{path}' holds a {type(state).__name__}, not a state dict of {arch} weights "
                         "(loss.vgg_weights)")
    written_by_gan = gan_file_words(state)
    if written_by_gan:  # (its tensors nested under 'rng' were taken for weights to save alone)
        file_name = WEIGHT_FILES[arch]
        raise ValueError(f"'{path}' is {written_by_gan}, not torchvision's {arch} weights (loss.vgg_weights): give "
                         f"the ImageNet weights file {file_name} (from {WEIGHT_URL.format(file_name)})")
    # The loss reads the convolutional features alone: a file of them alone, or with a classifier of
    # other classes (Places365's, say), holds all it needs; the classifier is never loaded.
    expected = {f"features.{key}": value for key, value in vgg.features.state_dict().items()}
    state = {key: value for key, value in state.items() if not str(key).startswith("classifier.")}
    if state and all(f"features.{key}" in expected for key in state):  # (`vgg.features.state_dict()` saved: 0.weight)
        state = {f"features.{key}": value for key, value in state.items()}
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        raise ValueError(f"'{path}' is not a torchvision {arch} state dict (loss.vgg_weights): {len(missing)} of "
                         f"its {len(expected)} weights missing (first: {', '.join(missing[:3]) or '-'}), "
                         f"{len(unexpected)} unknown (first: {', '.join(map(str, unexpected[:3])) or '-'}); "
                         f"{not_vgg_hint(state, list(expected), arch)}")
    mismatch = first_mismatch(expected, state)  # (shapes, and kinds: integer weights would load as truncated floats)
    if mismatch is not None:
        raise ValueError(f"'{path}' is not a torchvision {arch} state dict (loss.vgg_weights): {mismatch}")
    try:
        vgg.features.load_state_dict({key.removeprefix("features."): value for key, value in state.items()})
    except RuntimeError as error:  # (checked above: what is left of torch's own refusals)
        first = str(error).strip().splitlines()[-1].strip()
        raise ValueError(f"'{path}' is not a torchvision {arch} state dict (loss.vgg_weights): {first}") from None
    bad = next((key for key, tensor in state.items()
                if torch.is_tensor(tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all()), None)
    if bad is not None:
        raise ValueError(f"'{path}' holds non-finite (NaN or inf) weights ({bad}): the file is damaged; "
                         f"fetch {WEIGHT_FILES[arch]} again (loss.vgg_weights)")


def not_vgg_hint(state: dict, expected: list[str], arch: str) -> str:
    """What a state dict without the `expected` keys of VGG `arch` holds instead, as far as its keys tell:
    the other VGG's features, weights nested or prefixed ("module."), or another network's."""
    held = {str(key) if str(key).startswith("features.") else f"features.{key}" for key in state}
    other = next((name for name in WEIGHT_FILES if name != arch and held == vgg_feature_keys(name)), None)
    if other is not None:  # (vgg16-397923af.pth where vgg19 is read: 13 of 16 convolutions, some at other indices)
        return f"this is {other.upper()}'s: set loss.vgg_arch = \"{other}\""
    return layout_hint(state, expected) or f"is it another network's? (expected torchvision's {arch}: {WEIGHT_FILES[arch]})"


@functools.cache
def vgg_feature_keys(arch: str) -> frozenset[str]:
    """The keys of VGG `arch`'s features in torchvision's state dict (features.0.weight, ...): a weight and
    a bias for each convolution, at its index in the stack."""
    return frozenset(f"features.{index}.{kind}" for index, name in enumerate(vgg_layer_names(arch))
                     if name.startswith("conv") for kind in ("weight", "bias"))


def read_vgg_state(path: Path, arch: str) -> object:
    """What the weights file `path` of VGG `arch` holds, read without unpickling code and checked whole (each
    zip record's CRC-32; the SHA-256 its name may carry: vgg19-dcbb9e9d.pth); ValueError in one line."""
    try:  # weights only: a file holding pickled code is refused, in one line
        state = quiet_torch_load(path, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - torch raises many types for foreign files
        instead = f"torchvision's {arch} state dict, {WEIGHT_FILES[arch]} (from {WEIGHT_URL.format(WEIGHT_FILES[arch])})"
        raise ValueError(f"'{path}' is not a plain PyTorch state dict of {arch} weights (loss.vgg_weights): "
                         f"{unloadable_reason(Path(path), error, export_ok=False, instead=instead)}") from None
    damage = weights_file_damage(Path(path))  # (torch.load checks neither: a flipped bit loads as other weights)
    if damage:
        raise ValueError(f"'{path}' is damaged (loss.vgg_weights): {damage}; replace it with torchvision's "
                         f"{WEIGHT_FILES[arch]} (from {WEIGHT_URL.format(WEIGHT_FILES[arch])})")
    return state


def vgg_layer_names(arch: str) -> list[str]:
    """The layer names of VGG `arch` (vgg19 or vgg16), as `layer_names` gives them for torchvision's
    `features` stack, read from its layout (VGG_LAYOUTS): no torchvision import."""
    names, block, index = [], 1, 1
    for channels in VGG_LAYOUTS[arch]:
        if channels == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            index += 1
    return names


def weights_digest(module: nn.Module) -> str:
    """The start of a SHA-256 of `module`'s weights (VGG19's features: 80 MB, 0.2 s)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode() + b"\0")
        digest.update(tensor.detach().cpu().contiguous().numpy())
    return digest.hexdigest()[:16]


@register_network("feature_extractor", "vgg")
class VGGFeatures(nn.Module):
    """images (N, 3, H, W) in [-1, 1] -> features of `layer` (N, C, H', W'); frozen, always in eval mode."""

    def __init__(
        self,
        layer: str = "relu5_4",  # the last layer kept: relu2_2 = SRGAN's VGG22, relu5_4 = VGG54
        arch: str = "vgg19",  # vgg19 or vgg16
        weights: str = "",  # torchvision weights file; "" = torch's hub cache; "random" = untrained (tests only)
    ):
        super().__init__()
        if arch not in WEIGHT_FILES:
            raise ValueError(f"arch must be one of {', '.join(WEIGHT_FILES)}, got '{arch}'")
        path = resolve_weights(arch, weights)
        if path is None:
            warnings.warn(f"{arch} perceptual loss uses RANDOM weights (loss.vgg_weights = \"random\"): "
                          "fine for tests and smoke runs, meaningless for training", stacklevel=2)
            vgg = torchvision_vgg(arch)
        else:  # (built empty: the random weights VGG19 draws, 1.5 s on a CPU, were replaced at once)
            with torch.device("meta"):
                vgg = torchvision_vgg(arch)
            vgg.features.to_empty(device="cpu")
            load_vgg_weights(vgg, read_vgg_state(path, arch), path, arch)
        names = layer_names(vgg.features)
        if layer not in names:
            raise ValueError(f"unknown VGG layer '{layer}'; valid: {', '.join(names)}")
        self.layer = layer
        # (of every layer: a resume checks that its loss reads the same weights, whatever layer it now takes)
        self.weights_digest = f"{arch}:{weights_digest(vgg.features)}"
        self.features = vgg.features[: names.index(layer) + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # BatchNorm-free, but stay in eval whatever the caller does

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(((images + 1) / 2 - self.mean) / self.std)
