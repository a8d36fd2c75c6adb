"""Before step 1, every path a run will need, checked at once: a run that cannot finish
says so before it starts, rather than at its first validation with its steps lost.

The loop calls it once the recipe and its training set are built (their constructors have
read the training folders, `model.init_generator` and the VGG weights by then). It checks,
where the config turns each on: the evaluation set that previews and validation read
(`data.val_root`, `data.val_split`), `metrics.root`, Inception weights named in
`metrics.inception_weights`, and that the run directory and the caches can be written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from gan.config import Config
from gan.data import build_dataset
from gan.data.cache import user_cache_dir
from gan.files import temp_name
from gan.metrics.generative import INCEPTION_METRICS
from gan.metrics.inception import resolve_weights_path
from gan.registry import ConfigError

def check_run_can_finish(config: Config, run_dir: Path, evaluation_set: bool) -> None:
    """ConfigError listing every problem found, one per line; nothing when there is none.
    `evaluation_set`: the recipe's previews and validation read `[data]`'s evaluation images
    (image-to-image recipes; an unconditional one draws latents)."""
    problems = run_problems(config, run_dir, evaluation_set)
    if problems:
        raise ConfigError("this run could not finish, so it does not start:\n" +
                          "\n".join(f"  - {problem}" for problem in problems))


def run_problems(config: Config, run_dir: Path, evaluation_set: bool) -> list[str]:
    problems: list[str] = []

    def check(what: str, test: Callable[[], object]) -> None:
        try:
            test()
        except (ConfigError, FileNotFoundError, NotADirectoryError, ValueError, OSError) as error:
            problems.append(f"{what}: {error}")

    data, metrics = config.data, config.metrics
    if evaluation_set:
        check("the evaluation images (previews, validation)", lambda: build_dataset(data, train=False))
    if metrics.every and metrics.root:
        check("metrics.root", lambda: build_dataset(dataclasses.replace(data, root=metrics.root, max_images=0),
                                                    train=False))
    if metrics.every and metrics.inception_weights and set(metrics.names) & set(INCEPTION_METRICS):
        check("metrics.inception_weights", lambda: resolve_weights_path(metrics.inception_weights))
    check("the run directory", lambda: _require_writable(run_dir, "the run directory"))
    if data.cache != "off":
        cache = Path(data.cache_dir) if data.cache_dir else user_cache_dir("decoded")
        check("data.cache_dir", lambda: _require_writable(cache, "data.cache_dir"))
    if metrics.every:
        cache = Path(metrics.cache_dir) if metrics.cache_dir else user_cache_dir("reference-statistics")
        check("metrics.cache_dir", lambda: _require_writable(cache, "metrics.cache_dir"))
    return problems


def _require_writable(folder: Path, what: str) -> None:
    """`folder` exists or can be made, and a file can be written in it (tried: a permission check
    would pass for root on a folder it still cannot write, such as a read-only mount)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temp_name(folder / ".write-test")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"{what} '{folder}' cannot be written: {error.strerror or error}") from None
