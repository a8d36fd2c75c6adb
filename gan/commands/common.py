"""What every command shares: how an expected error ends a command."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def fail(error: Exception | str) -> None:
    """Print `error` as one line and exit with 2: for errors the message explains (a bad file,
    key or value), where a traceback would only hide it."""
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


def refuse_folder_in_a_run(folder: Path, option: str) -> None:
    """ConfigError when `folder`, where new runs would go, is a run directory or lies in one."""
    from gan.core.registry import ConfigError
    from gan.inference.outputs import enclosing_run

    run = enclosing_run(folder)
    if run is not None:
        raise ConfigError(f"{option} '{folder}' is {'' if run == folder.resolve() else 'inside '}the run directory "
                          f"'{run}': new runs there would mix with its files; give a folder of runs, such as "
                          f"'{run.parent}'")
