"""What makes a folder a run directory, told without torch (commands ask before a model loads), and
the folders new runs must not go in: a run's own, or one inside it (`gan train`, `gan sweep`, and
`gan.training.loop.train` from Python alike)."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from gan.core.files import LOCK_NAME
from gan.core.registry import ConfigError

# The names gan/core/checkpoint.py gives a run's state, spelled here so that this module needs
# no torch (tests/test_outputs.py checks that they agree).
TRAINING_STATE_NAMES = ("checkpoint-*.pt", "best.pt", "best.json")
RUN_CONFIG = "config.toml"


def is_training_state_name(path: Path) -> bool:
    """Whether `path` is named like a checkpoint, best.pt or best.json."""
    return any(fnmatch.fnmatchcase(path.name, pattern) for pattern in TRAINING_STATE_NAMES)


def is_run_directory(folder: Path) -> bool:
    """Whether `folder` is a run directory: its config.toml beside training state, or beside
    the lock of a run that has written none yet."""
    if not (folder / RUN_CONFIG).is_file():
        return False
    try:
        return (folder / LOCK_NAME).exists() or any(is_training_state_name(path) for path in folder.iterdir())
    except OSError:  # an unreadable folder: its config.toml alone says run
        return True


def resolved(path: Path) -> Path:
    """`path` with `..` and symlinks resolved; a looping link (which Path.resolve raises on) as far as
    it goes, made absolute."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return Path(os.path.abspath(path))


def enclosing_run(folder: Path) -> Path | None:
    """The run directory that `folder` is, or lies inside, or None: a folder of new runs there would
    mix with that run's own files."""
    for candidate in (resolved(folder), *resolved(folder).parents):  # (a looping link: as far as it goes)
        if is_run_directory(candidate):
            return candidate
    return None


def refuse_folder_in_a_run(folder: Path, option: str) -> None:
    """ConfigError when `folder`, where new runs would go, is a run directory or lies in one
    (`option` names it in the message: `--out`, `--run-dir's parent`)."""
    run = enclosing_run(folder)
    if run is not None:
        raise ConfigError(f"{option} '{folder}' is {'' if run == resolved(folder) else 'inside '}the run directory "
                          f"'{run}': new runs there would mix with its files; give a folder of runs, such as "
                          f"'{run.parent}'")
