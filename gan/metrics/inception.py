"""Inception-v3 pool features for FID/KID, the way papers compute them.

The network, its TensorFlow-exact bilinear resize to 299x299 and its input scaling
come from torch-fidelity, as the original TensorFlow FID code (TTUR) computes them, loaded
with the TF-ported weights from a local file. pytorch-fid (half-pixel bilinear, 2x/255-1)
and clean-fid's default mode (antialiased bicubic) resize otherwise, by ~7-9 grey levels a
pixel at 64 px: their FIDs are not gan's (clean-fid's mode="legacy_tensorflow" is). Nothing
is downloaded: the file is looked for where torch-fidelity itself caches it.
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from gan.core.checkpoint import first_mismatch, quiet_torch_load, unloadable_reason
from gan.core.files import refuse_other_than_a_file
from gan.core.weights_files import layout_hint, weights_file_damage

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
FEATURE_SIZE = 2048
DIGEST_CHARS = 16  # of the file's SHA-256: what its features (and reference statistics) are known by
BN_COUNTER = "num_batches_tracked"  # BatchNorm's count of training steps: no weight, and optional in a file
# The file is 91 MiB; it is read whole (hashed, then loaded): a file far larger is another (a 20 GB one took 21 GB)
MAX_WEIGHTS_BYTES = 512 * 2**20


class InceptionWeightsNotFoundError(FileNotFoundError):
    """The Inception-v3 weights file is not on this machine (`path`: where it was looked for)."""

    def __init__(self, path: Path):
        super().__init__(
            f"Inception-v3 weights not found at '{path}'. FID, KID and precision/recall need the TF-ported weights "
            f"'{WEIGHTS_FILE}' (from {WEIGHTS_URL}); download it on a machine with internet and pass "
            f"--inception-weights PATH (metrics.inception_weights in a config), or put it at "
            f"'{default_weights_path()}'.")
        self.path = path


class InceptionWeightsDamaged(ValueError):
    """A file where the Inception-v3 weights are looked for that does not hold them (damaged, cut
    short, another network's)."""


def damaged_weights_advice(path: str | Path | None) -> str:
    """What to do about `InceptionWeightsDamaged` of `path` (None: the default place)."""
    fix = f"replace it with {WEIGHTS_URL}"
    return fix if path else f"{fix}, or remove it (FID and KID are then skipped, as without weights)"


# How a training run, and gan eval, leave out the metrics that need the weights (skipped_for_missing_weights).
NOT_IN_TRAINING = """gan train --set 'metrics.names=["swd"]'"""
NOT_IN_EVAL = "gan eval --metrics swd"


def skipped_for_missing_weights(skipped: str, error: InceptionWeightsNotFoundError, leave_out: str = "") -> str:
    """The warning when metrics that need the weights are skipped (`skipped`: "fid, kid"): where the
    file was looked for and how to provide it, where the error says it all on one long line; and, given
    `leave_out` (the setting that names the metrics), how not to ask for them, which ends the warning."""
    return (f"skipping {skipped}: Inception-v3 weights not found at '{error.path}'\n"
            f"  to compute them, download {WEIGHTS_URL} to that path, or name the file: gan eval "
            "--inception-weights PATH, gan train --set metrics.inception_weights=PATH"
            + (f"\n  not to ask for them: {leave_out}" if leave_out else ""))


def default_weights_path() -> Path:
    """Where torch-fidelity caches the weights: $TORCH_HOME/hub/checkpoints/."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def weights_setting(path: str | Path | None) -> str:
    """What a problem with the weights file is blamed on in a training config: the key that names it,
    or the default place it was found at without one."""
    return ("metrics.inception_weights" if path else
            "the Inception-v3 weights at their default place (metrics.inception_weights is unset)")


def resolve_weights_path(path: str | Path | None) -> Path:
    """`path`, or the default location; an error naming both the file and where to put it when absent."""
    resolved = Path(path).expanduser() if path else default_weights_path()
    refuse_other_than_a_file(resolved, f"the Inception-v3 weights path '{resolved}'", WEIGHTS_FILE)
    if not resolved.is_file():
        raise InceptionWeightsNotFoundError(resolved)
    size = resolved.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise InceptionWeightsDamaged(f"'{resolved}' is {size / 2**30:.1f} GiB, not torch-fidelity's Inception-v3 "
                                      f"weights ({WEIGHTS_FILE}, 91 MiB): give the path of that file")
    return resolved


def read_inception_weights(path: str | Path | None) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict of torch-fidelity's Inception-v3 weights at `path` (or the default location)
    and the start of the file's SHA-256 (its reference statistics are cached under it), the file read
    once. Read with `weights_only=True`, so a file holding pickled code is refused; a file that is
    not these weights is a ValueError naming it."""
    resolved = resolve_weights_path(path)
    contents = resolved.read_bytes()  # (92 MB)
    try:
        state = quiet_torch_load(io.BytesIO(contents), map_location="cpu")
    except Exception as error:  # noqa: BLE001 - torch raises many types for foreign files
        reason = unloadable_reason(Path(resolved), error, export_ok=False, instead="the plain state dict "
                                   "torch-fidelity and pytorch-fid read (not clean-fid's TorchScript inception-2015-12-05.pt)")
        raise InceptionWeightsDamaged(f"'{resolved}' is not a plain PyTorch state dict of Inception-v3 weights "
                                      f"({WEIGHTS_FILE}): {reason}") from None
    sha256 = hashlib.sha256(contents).hexdigest()
    # (torch.load checks neither the CRC of each zip record nor the SHA-256 the file's name may carry: a
    # flipped bit gave other features, and FID, without a word)
    damage = weights_file_damage(resolved, io.BytesIO(contents), sha256)
    if damage:
        raise InceptionWeightsDamaged(f"'{resolved}' is damaged: {damage}")
    if not isinstance(state, dict):
        raise InceptionWeightsDamaged(f"'{resolved}' holds a {type(state).__name__}, not torch-fidelity's Inception-v3 "
                                      f"weights ({WEIGHTS_FILE})")
    check_inception_state(state, resolved)
    return state, sha256[:DIGEST_CHARS]


def check_inception_state(state: dict, path: Path) -> None:
    """InceptionWeightsDamaged unless `state` (read from `path`) holds every weight of torch-fidelity's
    Inception-v3 by name, shape and kind, each finite: torchvision's inception_v3 (another file of the same
    network's name), a flipped exponent bit or integer weights would give wrong features, or fail minutes on.
    (BatchNorm's step counters left out: a file without them loads, as PyTorch's own files from before them do.)"""
    required = {name: tensor for name, tensor in _expected_weights().items() if not name.endswith(BN_COUNTER)}
    mismatch = first_mismatch(required, {name: tensor for name, tensor in state.items()
                                         if not str(name).endswith(BN_COUNTER)})
    if mismatch is not None:
        hint = layout_hint(state, required)
        raise InceptionWeightsDamaged(f"'{path}' does not hold torch-fidelity's Inception-v3 weights "
                                      f"({WEIGHTS_FILE}): {mismatch}" + (f"; {hint}" if hint else ""))
    bad = next((name for name, tensor in state.items() if not bool(torch.isfinite(tensor).all())), None)
    if bad is not None:
        raise InceptionWeightsDamaged(f"'{path}' holds non-finite (NaN or inf) weights ('{bad}'): the file is "
                                      "damaged")


def weights_digest(contents: bytes) -> str:
    """The start of the SHA-256 of a weights file's `contents`: what its features are known by."""
    return hashlib.sha256(contents).hexdigest()[:DIGEST_CHARS]


def weights_file_digest(path: str | Path | None) -> str:
    """`weights_digest` of the file at `path` (or the default place), read again; "" when it cannot be read."""
    try:
        return weights_digest(resolve_weights_path(path).read_bytes())
    except (OSError, ValueError):
        return ""


@functools.cache
def _expected_weights() -> dict[str, torch.Tensor]:
    """torch-fidelity's Inception-v3 state dict as its network holds it, on the meta device (no memory):
    the names, shapes and kinds a weights file must match. Built through a subclass that loads nothing."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args: object, **kwargs: object) -> None:
            return None

    with torch.device("meta"):
        network = Unloaded("inception-v3-compat", [str(FEATURE_SIZE)], feature_extractor_weights_path=_saved({}))
    return network.state_dict()


def _saved(state: dict[str, torch.Tensor]) -> io.BytesIO:
    """`state` as torch.save writes it, in memory: what torch-fidelity's loader reads in place of a file
    (a copy in a temp folder failed with a traceback where that folder had no room for 95 MB)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def load_inception(path: str | Path | None, device: torch.device) -> tuple[nn.Module, str]:
    """torch-fidelity's FID Inception-v3, returning (N, 2048) pool features for uint8 (N, 3, H, W) images,
    and its weights file's digest (`read_inception_weights`). Torch-fidelity's own loader (which
    unpickles) only ever sees a copy re-saved here, in memory, from the plain tensors read. The global
    random stream is left as it was: the initial weights the build draws are replaced at once (a run
    with FID on trained otherwise)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    state, digest = read_inception_weights(path)
    copy = _saved({name: tensor for name, tensor in state.items() if isinstance(tensor, torch.Tensor)})
    try:
        with torch.random.fork_rng(devices=[]):
            model = FeatureExtractorInceptionV3("inception-v3-compat", [str(FEATURE_SIZE)],
                                                feature_extractor_weights_path=copy)
    except RuntimeError as error:  # (checked above by name, shape and kind: a torch-fidelity of other layers)
        first = str(error).strip().splitlines()[-1].strip()
        raise InceptionWeightsDamaged(f"'{resolve_weights_path(path)}' does not match torch-fidelity's "
                                      f"Inception-v3: {first}") from None
    return model.to(device), digest


@torch.no_grad()
def inception_features(model: nn.Module, images: torch.Tensor, batch_size: int = 64,
                       advance: Callable[[int], None] | None = None) -> torch.Tensor:
    """(N, 2048) float32 CPU features of uint8 images (N, 3, H, W), computed in batches; `advance(n)`
    is told of each batch of n (on a CPU, 10,000 images take the best part of an hour)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"Inception features are computed from uint8 images, got {images.dtype}")
    device = next(model.parameters()).device
    chunks = []
    for chunk in images.split(batch_size):
        chunks.append(model(chunk.to(device))[0].float().cpu())
        if advance is not None:
            advance(len(chunk))
    return torch.cat(chunks) if chunks else torch.empty(0, FEATURE_SIZE)
