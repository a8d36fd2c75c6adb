"""Weights files made elsewhere (torchvision's VGG, torch-fidelity's Inception-v3): checked whole,
as gan's own checkpoints are, and, when one is not laid out as its reader expects, how it is laid out.

torch.load checks no checksum: a flipped bit in a download or a copy loads as silently wrong
weights, and so a changed perceptual loss or FID. A torch zip's records carry a CRC-32 each
(`failed_checksum`), and a file torch.hub fetched carries the start of its SHA-256 in its name
(`vgg19-dcbb9e9d.pth`: torch.hub's `check_hash` convention).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Iterable

import torch

from gan.core.checkpoint import failed_checksum
from gan.core.files import file_sha256

# name-<the start of its SHA-256, 8 hex digits or more>.ext, as torch.hub names what it fetches; digits alone
# are no hash taken (gan's own checkpoint-00000004.pt, a date: a hash of 8 digits alone, 2% of them, goes unchecked)
_NAMED_HASH = re.compile(r"-(?=[0-9]*[a-f])([0-9a-f]{8,})\.[A-Za-z0-9]+$")
DATA_PARALLEL_PREFIX = "module."  # (nn.DataParallel's and DistributedDataParallel's, on every key they save)


def named_sha256(path: Path) -> str | None:
    """The start of the SHA-256 that the name of `path` carries (vgg19-dcbb9e9d.pth: dcbb9e9d), or None."""
    match = _NAMED_HASH.search(path.name)
    return match.group(1) if match else None


def weights_file_damage(path: Path, contents: IO[bytes] | None = None, sha256: str | None = None) -> str | None:
    """Why the weights file `path` is damaged, in words, or None: a record of its zip that fails its CRC-32,
    or a SHA-256 that does not start as its name says. `contents`: the file as read already (else it is
    opened); `sha256`: its SHA-256 in hex, where the reader computed it (else it is computed, only for a
    name that carries one)."""
    damaged = failed_checksum(path if contents is None else contents)
    if damaged:
        return f"its record '{damaged}' fails its checksum"
    named = named_sha256(path)
    if named is None:
        return None
    actual = sha256 or file_sha256(path)
    if not actual.startswith(named):
        return (f"its SHA-256 starts {actual[:len(named)]} where its name says {named}: damaged, or another file under "
                "that name")
    return None


def layout_hint(state: dict, expected: Iterable[str]) -> str | None:
    """How a state dict that lacks the `expected` keys holds the weights after all, in words, or None:
    nested under one entry (a training script's {"state_dict": ...} or {"model": ...}), or under a prefix
    on every key (DataParallel's "module.")."""
    nested = [key for key, value in state.items()
              if isinstance(value, dict) and any(torch.is_tensor(tensor) for tensor in value.values())]
    if nested:
        return f"its weights may be nested under '{nested[0]}': save that entry alone"
    prefix = _common_prefix(state)
    if prefix and set(expected) <= {str(key).removeprefix(prefix) for key in state}:
        whose = " (DataParallel's)" if prefix == DATA_PARALLEL_PREFIX else ""
        return (f"every key starts with '{prefix}'{whose}: save the weights without it "
                f"({{k.removeprefix('{prefix}'): v for k, v in state.items()}})")
    return None


def _common_prefix(state: dict) -> str | None:
    """The first dotted part ("module.") that every key of `state` starts with, or None."""
    firsts = {str(key).partition(".")[0] + "." for key in state if "." in str(key)}
    return firsts.pop() if len(firsts) == 1 and all("." in str(key) for key in state) else None
