"""torchvision's ImageFolder over a listing of files given to it, for `gan bench --data-root`'s baseline.

A module of its own, at the top level of it, so that loader workers started by spawn or forkserver
(macOS, Windows; Linux from Python 3.14) can unpickle the dataset: a class made inside a function
cannot be pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torchvision.datasets import ImageFolder


class ListedImageFolder(ImageFolder):
    """ImageFolder whose samples are those of `paths` in `root`'s subfolders, not a walk of its own:
    ImageFolder follows linked folders with no guard (two links to a parent had it walk about 2**40
    folders), and gan's listing leaves out what gan leaves out (macOS's `._name.jpg`, a FIFO named
    `x.png`), so that both sides time the same images."""

    def __init__(self, root: Path, paths: list[Path], transform: Callable | None = None):
        self.listed_root, self.listed_paths = Path(root), list(paths)  # (make_dataset runs inside __init__)
        super().__init__(str(root), transform=transform, allow_empty=True)

    def make_dataset(self, directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
        classes = [Path(path).relative_to(self.listed_root).parts for path in self.listed_paths]
        return [(str(path), class_to_idx[parts[0]]) for path, parts in zip(self.listed_paths, classes)
                if len(parts) > 1 and parts[0] in class_to_idx]
