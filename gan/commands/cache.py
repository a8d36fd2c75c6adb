"""The decoded-image caches: `gan cache list|verify|clear`.

Each command touches only files gan provably wrote (`gan.data.cache.scan_cache_folder`): a
header that hashes to its own name with its array and its use stamp, a header-less array of
gan's name and shape, or a temp, lock file or use stamp of gan's name whose build is over.
Anything else in the folder is named and left alone. A cache's last use is the later of its
header's time and its use stamp's, which every user's run sets (`gan.data.cache.note_use`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from gan.commands.common import UserPath, fail
from gan.core.wording import first_few

MAX_NAMED = 5  # files named in a line; the rest are counted


def _cache_dir_option(command):
    return click.option("--dir", "cache_dir", type=UserPath(file_okay=False, path_type=Path),
                        help="Cache folder (data.cache_dir) [default: $XDG_CACHE_HOME/gan/decoded or "
                             "~/.cache/gan/decoded].")(command)


def _resolve_cache_dir(cache_dir: Path | None) -> Path:
    """The cache folder; a --dir that does not exist ends the command (a mistyped path must not read
    as an empty cache). The default folder may not exist yet: nothing was cached."""
    from gan.core.registry import ConfigError
    from gan.data.cache import user_cache_dir
    from gan.data.decode import file_on_the_way

    if cache_dir is not None and not cache_dir.exists():
        fail(f"--dir '{cache_dir}' does not exist (data.cache_dir names the cache folder a run used)")
    if cache_dir is not None and not cache_dir.is_dir():  # (a pipe or device: read as an empty cache before)
        fail(f"--dir '{cache_dir}' is not a folder (data.cache_dir names the cache folder a run used)")
    try:
        folder = cache_dir or user_cache_dir("decoded")
    except ConfigError as error:  # (no home folder)
        fail(error)
    blocked = file_on_the_way(folder)
    if blocked:  # (HOME set to a file, say: no cache folder can be there)
        fail(f"'{folder}' cannot be a cache folder{blocked}: set HOME or XDG_CACHE_HOME, or give --dir")
    return folder


def _scan(folder: Path):
    """The folder's files sorted by `scan_cache_folder`; an unreadable folder ends the command."""
    from gan.data.cache import scan_cache_folder

    try:
        return scan_cache_folder(folder)
    except OSError as error:
        fail(f"cannot read the cache folder '{folder}': {error}")


def _named(paths: list[Path]) -> str:
    """`a, b, c and 4 more`: the first few file names of a list."""
    return first_few([path.name for path in paths], MAX_NAMED)


def _mib(paths: list[Path]) -> float:
    from gan.data.cache import file_size

    return sum(file_size(path) for path in paths) / 2**20


def _echo_untouched(building: list[Path], foreign: list[Path]) -> None:
    """Say what the command did not touch, and why."""
    if building:
        click.echo(f"left alone {len(building)} file(s) that a build may still be writing (temp files, or arrays "
                   f"still without their header; their process is alive, or they were written in the last 10 "
                   f"minutes; or the lock file a running build holds, and the use stamp of the cache it rebuilds): "
                   f"{_named(building)}", err=True)
    from gan.metrics.generative import is_reference_statistics

    statistics = [path for path in foreign if is_reference_statistics(path)]
    foreign = [path for path in foreign if path not in statistics]
    if statistics:  # (--dir given the folder of metrics' statistics, beside the decoded images' by default)
        click.echo(f"left alone {len(statistics)} file(s) of reference statistics (those of the metrics, which gan "
                   f"cache does not manage; each is computed again when needed, so any may be deleted): "
                   f"{_named(statistics)}", err=True)
    if foreign:
        click.echo(f"left alone {len(foreign)} file(s) that gan cannot tell are its own caches (another program's, "
                   f"or a cache whose header was damaged or edited; the run that needs one rebuilds it): "
                   f"{_named(foreign)}", err=True)


NOT_GANS_TO_REMOVE = ("gan removes only files it wrote: move it away, and the next run that uses this cache "
                      "rebuilds it")


@click.group()
def cache() -> None:
    """The decoded-image caches that data.cache builds: list, verify and clear them.

    Only files gan wrote are touched; anything else in the folder is named and left alone.

    \b
    Examples:
      gan cache list
      gan cache verify                     # every checksum of every cache
      gan cache clear --older-than 30      # caches no run used for 30 days
    """


@cache.command(name="list")
@_cache_dir_option
def cache_list(cache_dir: Path | None) -> None:
    """Show each cache: size, images, resolution, last use and the folder it was decoded from, and
    any whose array does not fit its header (cut short, say; `verify` reads every checksum)."""
    import datetime

    from gan.data.cache import ARRAY_NOT_A_FILE, cache_structure_damage, earlier_format

    folder = _resolve_cache_dir(cache_dir)
    found = _scan(folder)
    click.echo(f"{folder}: {len(found.caches)} cache(s)")
    for entry in found.caches:
        used = datetime.datetime.fromtimestamp(entry.last_used).strftime("%Y-%m-%d %H:%M")
        header = entry.header
        # (which part of the folder: caches of one root differ by split and data.max_images alone)
        part = "".join([f"  data.split {header['split']}" if header.get("split") not in (None, "", "all") else "",
                        f"  data.max_images {header['max_images']}" if header.get("max_images") else ""])
        click.echo(f"  {entry.name}  {entry.size_bytes / 2**20:9.1f} MiB  {header['count']:>7} images  "
                   f"{header['resolution']} px  used {used}  {header.get('root', header.get('dataset', ''))}{part}")
        other_format = earlier_format(header)
        _, damage = cache_structure_damage(entry.array_path, header) if other_format is None else (None, None)
        source = header.get("root")
        if other_format:
            click.echo(f"    unused: another gan's ({other_format}), never read by this one; gan cache clear "
                       "--older-than DAYS removes it by its last use")
        elif isinstance(source, str) and not Path(source).is_dir():
            click.echo("    its folder is gone (moved or deleted since): no run reads this cache unless the folder "
                       "comes back; gan cache clear --older-than DAYS removes it by its last use")
        elif damage == ARRAY_NOT_A_FILE:
            click.echo(f"    damaged: its array {damage} ({NOT_GANS_TO_REMOVE})")
        elif damage:
            click.echo(f"    damaged: its array {damage} (the next run that uses it rebuilds it; gan cache verify "
                       "removes it now)")
    if found.leftovers:
        click.echo(f"  {len(found.leftovers)} leftover file(s) of broken or abandoned builds, "
                   f"{_mib(found.leftovers):.1f} MiB (the next build in this folder removes them; gan cache clear "
                   "removes them with every cache, --older-than DAYS those not written for DAYS)")
    total = sum(entry.size_bytes for entry in found.caches) / 2**20 + _mib(found.leftovers) + _mib(found.building)
    click.echo(f"total {total:.1f} MiB")
    _echo_untouched(found.building, found.foreign)


@cache.command(name="verify")
@_cache_dir_option
def cache_verify(cache_dir: Path | None) -> None:
    """Check every cache against its header: size, shape and every checksum. A damaged cache is
    removed (the next run that needs it rebuilds it); exits with 1 when any was damaged."""
    from gan.data.cache import ARRAY_NOT_A_FILE, cache_damage, earlier_format

    folder = _resolve_cache_dir(cache_dir)
    found = _scan(folder)
    if not found.caches:
        click.echo(f"{folder}: no caches to verify")
    damaged = 0
    for entry in found.caches:
        _, damage = cache_damage(entry.array_path, entry.header, verify_all=True)
        if damage is None:
            other_format = earlier_format(entry.header)
            unused = f"  (unused: another gan's, {other_format})" if other_format else ""
            click.echo(f"ok       {entry.name}  {entry.header.get('root', '')}{unused}")
            continue
        damaged += 1
        if damage == ARRAY_NOT_A_FILE:  # (its header kept: the cache stays listed, with what to do)
            click.echo(f"damaged  {entry.name}  {entry.header.get('root', '')}: '{entry.array_path}' "
                       f"{damage}; left as it is ({NOT_GANS_TO_REMOVE})")
            continue
        try:
            entry.remove()
        except OSError as error:
            fail(f"the cache '{entry.array_path}' {damage}, and it could not be removed: {error}")
        click.echo(f"damaged  {entry.name}  {entry.header.get('root', '')}: {damage}; removed, the next run "
                   "that uses it rebuilds it")
    _echo_untouched([], found.foreign)
    if damaged:
        sys.exit(1)


@cache.command(name="clear")
@_cache_dir_option
@click.option("--older-than", "days", type=click.FloatRange(min=0, max=1e6),
              help="Only caches no run used, and leftovers not written, for this many days.")
def cache_clear(cache_dir: Path | None, days: float | None) -> None:
    """Remove caches (all, or those unused for --older-than DAYS) and leftovers of broken builds
    (all, or those not written for DAYS). Temp files of builds that may still run, and files
    gan did not write, are never removed."""
    from gan.data.cache import ARRAY_NOT_A_FILE, file_size, modified_at, remove_leftover

    if days is not None and days != days:  # NaN passes the range check: every comparison with it is false
        raise click.BadParameter("expected a number of days, got nan", param_hint="--older-than")
    folder = _resolve_cache_dir(cache_dir)
    found = _scan(folder)
    cutoff = time.time() - days * 86400 if days is not None else float("inf")
    old_caches = [entry for entry in found.caches if entry.last_used < cutoff]
    blocked = [entry for entry in old_caches if entry.array_not_a_file]  # (left whole, header and all: named below)
    old_caches = [entry for entry in old_caches if entry not in blocked]
    old_leftovers = [path for path in found.leftovers if modified_at(path) < cutoff]
    removals = [(entry.size_bytes, entry.remove) for entry in old_caches]
    removals += [(file_size(path), lambda path=path: remove_leftover(path)) for path in old_leftovers]
    freed = 0
    for done, (size, remove) in enumerate(removals):
        try:
            remove()
        except OSError as error:
            fail(f"could not remove a file from the cache folder '{folder}' (after removing {done} of "
                 f"{len(removals)}): {error}")
        freed += size
    click.echo(f"removed {len(old_caches)} cache(s) and {len(old_leftovers)} leftover file(s) of broken builds "
               f"from {folder}, {freed / 2**20:.1f} MiB freed")
    if blocked:
        click.echo(f"left {len(blocked)} cache(s) whose array {ARRAY_NOT_A_FILE} "
                   f"({_named([entry.array_path for entry in blocked])}): {NOT_GANS_TO_REMOVE}", err=True)
    kept_caches = len(found.caches) - len(old_caches) - len(blocked)
    kept_leftovers = len(found.leftovers) - len(old_leftovers)
    if kept_caches or kept_leftovers:
        click.echo(f"kept {kept_caches} cache(s) used and {kept_leftovers} leftover file(s) written in the last "
                   f"{days:g} day(s)", err=True)
    _echo_untouched(found.building, found.foreign)
