"""What every command shares: how an expected error ends a command."""

from __future__ import annotations

import sys

import click


def fail(error: Exception | str) -> None:
    """Print `error` as one line and exit with 2: for errors the message explains (a bad file,
    key or value), where a traceback would only hide it."""
    click.echo(f"error: {error}", err=True)
    sys.exit(2)
