"""The decoded-image caches: `gan cache list|verify|clear`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


def _cache_dir_option(command):
    return click.option("--dir", "cache_dir", type=click.Path(file_okay=False, path_type=Path),
                        help="Cache folder (data.cache_dir) [default: $XDG_CACHE_HOME/gan/decoded or "
                             "~/.cache/gan/decoded].")(command)


def _resolve_cache_dir(cache_dir: Path | None) -> Path:
    from gan.data.cache import user_cache_dir

    return cache_dir or user_cache_dir("decoded")


@click.group()
def cache() -> None:
    """The decoded-image caches that data.cache builds: list, verify and clear them.

    \b
    Examples:
      gan cache list
      gan cache verify                     # every checksum of every cache
      gan cache clear --older-than 30      # caches no run used for 30 days
    """


@cache.command(name="list")
@_cache_dir_option
def cache_list(cache_dir: Path | None) -> None:
    """Show each cache: size, images, resolution, last use and the folder it was decoded from."""
    import datetime

    from gan.data.cache import list_caches, orphan_files

    folder = _resolve_cache_dir(cache_dir)
    entries, orphans = list_caches(folder), orphan_files(folder)
    click.echo(f"{folder}: {len(entries)} cache(s)")
    for entry in entries:
        used = datetime.datetime.fromtimestamp(entry.last_used).strftime("%Y-%m-%d %H:%M")
        header = entry.header
        click.echo(f"  {entry.name}  {entry.size_bytes / 2**20:9.1f} MiB  {header.get('count', '?'):>7} images  "
                   f"{header.get('resolution', '?')} px  used {used}  {header.get('root', header.get('dataset', ''))}")
    orphan_bytes = sum(path.stat().st_size for path in orphans)
    if orphans:
        click.echo(f"  {len(orphans)} leftover file(s) of broken or abandoned builds, {orphan_bytes / 2**20:.1f} MiB "
                   "(gan cache clear removes them)")
    total = sum(entry.size_bytes for entry in entries) + orphan_bytes
    click.echo(f"total {total / 2**20:.1f} MiB")


@cache.command(name="verify")
@_cache_dir_option
def cache_verify(cache_dir: Path | None) -> None:
    """Check every cache against its header: size, shape and every checksum. A damaged cache is
    removed (the next run that needs it rebuilds it); exits with 1 when any was damaged."""
    from gan.data.cache import cache_damage, list_caches

    damaged = 0
    for entry in list_caches(_resolve_cache_dir(cache_dir)):
        _, damage = cache_damage(entry.array_path, entry.header, verify_all=True)
        if damage is None:
            click.echo(f"ok       {entry.name}  {entry.header.get('root', '')}")
        else:
            damaged += 1
            entry.remove()
            click.echo(f"damaged  {entry.name}  {entry.header.get('root', '')}: {damage}; removed, the next run "
                       "that uses it rebuilds it")
    if damaged:
        sys.exit(1)


@cache.command(name="clear")
@_cache_dir_option
@click.option("--older-than", "days", type=click.FloatRange(min=0), help="Only caches no run used for this many days.")
def cache_clear(cache_dir: Path | None, days: float | None) -> None:
    """Remove caches (all, or those unused for --older-than DAYS) and leftovers of broken builds."""
    from gan.data.cache import list_caches, orphan_files

    folder = _resolve_cache_dir(cache_dir)
    cutoff = time.time() - days * 86400 if days is not None else float("inf")
    freed = removed = 0
    for entry in list_caches(folder):
        if entry.last_used < cutoff:
            freed += entry.size_bytes
            removed += 1
            entry.remove()
    for path in orphan_files(folder):
        freed += path.stat().st_size
        path.unlink(missing_ok=True)
    click.echo(f"removed {removed} cache(s) from {folder}, {freed / 2**20:.1f} MiB freed")
