"""What every command shares: how an expected error ends a command, and how paths are read."""

from __future__ import annotations

import errno
import os
import re
import socket
import sys
from pathlib import Path

import click


class UserPath(click.Path):
    """click.Path reading a leading `~` as the home folder, as a shell does when it is not quoted and as
    config path keys do: a quoted `--out '~/runs'` would otherwise make a folder named `~` here. A
    `$VARIABLE` that names no path as written is refused, as config path keys refuse it."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():  # ('' is Path('.'): outputs written here, unasked)
            wanted = ("a file name" if not self.dir_okay else "a folder name ('.' for the current folder)"
                      if not self.file_okay else "a path")
            self.fail(f"an empty path; give {wanted}", param, ctx)
        if isinstance(value, str) and value.startswith("~"):
            value = os.path.expanduser(value)
        if isinstance(value, str):
            self._refuse_unexpanded_variable(value, param, ctx)
        if isinstance(value, str) and not self.dir_okay and value.endswith(("/", os.sep)):
            # (Path drops the slash: `--out x.png/` would write a file where a folder was meant)
            self.fail(f"'{value}' ends with '/', which names a folder, where a file is expected", param, ctx)
        if self.exists and isinstance(value, str) and not os.path.lexists(value):
            hint = _numbered_run_hint(Path(value))
            if hint:
                self.fail(f"'{value}' does not exist; {hint}", param, ctx)
            from gan.core.files import another_unicode_form

            twin = another_unicode_form(Path(value))
            if twin:
                self.fail(f"'{value}' does not exist{twin}", param, ctx)
        return super().convert(value, param, ctx)

    def _refuse_unexpanded_variable(self, value: str, param, ctx) -> None:
        """A quoted `--out '${HOME}/runs'` (a job file's, say) made a folder named `${HOME}` here, without
        a word: refused as config path keys are, unless a path of that very name exists."""
        from gan.core.config import unexpanded_variable

        problem = unexpanded_variable(value, f"{param.opts[0]} " if isinstance(param, click.Option) else "")
        if problem:
            self.fail(f"'{value}': {problem}", param, ctx)


RUN_NUMBER = re.compile(r"^\d{5,}-")  # runs/00003-dcgan_celeba128: gan train numbers its runs


def _numbered_run_hint(path: Path) -> str:
    """For a numbered run that does not exist (the docs' `runs/00000-...`, when earlier runs took that
    number), the runs beside it of the same name under another number."""
    from gan.core.files import run_order

    if not RUN_NUMBER.match(path.name) or not path.parent.is_dir():
        return ""
    name = RUN_NUMBER.sub("", path.name)
    try:
        others = [entry.name for entry in sorted(path.parent.iterdir(), key=run_order)
                  if RUN_NUMBER.match(entry.name) and RUN_NUMBER.sub("", entry.name) == name]
    except OSError:
        return ""
    if not others:
        return ""
    return (f"'{path.parent}' holds {', '.join(others[-3:])} (gan train numbers its runs by those already there: "
            "its first line names the run's directory)")


def fail(error: Exception | str) -> None:
    """Print `error` as one line and exit with 2: for errors the message explains (a bad file,
    key or value), where a traceback would only hide it. An operating system's error on a named
    file reads as `file_error` words it, not as `[Errno 36] ...`."""
    if isinstance(error, OSError) and error.filename is not None:
        error = file_error(error)
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


def another_torchrun_process() -> bool:
    """Whether this is one of torchrun's processes other than rank 0, which all read the same
    command line: rank 0 alone says what is wrong with it, and on another machine (whose command
    line may differ) its first process (LOCAL_RANK 0)."""
    rank = os.environ.get("RANK", "0").strip()
    local_rank = os.environ.get("LOCAL_RANK", rank).strip()
    on_another_machine = rank != local_rank
    return (os.environ.get("WORLD_SIZE", "1").strip() not in ("", "1") and rank != "0"
            and not (on_another_machine and local_rank == "0"))


def on_several_machines() -> bool:
    """Whether this is a process of a torchrun run over several machines (more processes in all than on
    this one), each of which reads its own disks."""
    processes, here = os.environ.get("WORLD_SIZE", "").strip(), os.environ.get("LOCAL_WORLD_SIZE", "").strip()
    return processes.isdigit() and here.isdigit() and int(processes) > int(here)


def missing_on_this_machine(run_dir: Path | str) -> str:
    """The line for a run directory to resume that another machine of a torchrun run has and this one lacks."""
    return (f"'{run_dir}' does not exist on this machine ({socket.gethostname()}): resuming under torchrun needs "
            "the run directory on a file system every machine reads")


# What a person can do about the file errors a command meets, by errno.
_FILE_ERROR_ADVICE = {
    errno.EACCES: "change its permissions, or choose a file or folder you may use",
    errno.EPERM: "change its permissions, or choose a file or folder you may use",
    errno.EROFS: "the file system is read-only: choose a folder on another",
    errno.ENOSPC: "the disk is full: free space, or choose a folder on another disk",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "a folder stands where a file is meant to be",
    errno.EEXIST: "a file stands where a folder is meant to be",
}


def file_error(error: OSError) -> str:
    """One line for an operating-system error on a named file: the file, what went wrong, and what
    to do about it where that is clear."""
    advice = _FILE_ERROR_ADVICE.get(error.errno)
    if error.errno == errno.EEXIST and error.filename and os.path.islink(error.filename) \
            and not os.path.exists(error.filename):  # (a dangling or looping link: no "file" stands there)
        from gan.inference.outputs import not_a_folder

        advice = f"{not_a_folder(Path(error.filename))} stands where a folder is meant to be"
    if error.errno == errno.ENAMETOOLONG:  # (the name, or the whole path: each has its limit)
        name = os.path.basename(os.fsencode(error.filename)) if error.filename else b""
        advice = ("a file name holds at most 255 bytes on most file systems: choose a shorter one" if len(name) > 255
                  else "a path holds at most 4,096 bytes: choose a shorter one")
    where = f"'{error.filename}'" + (f" -> '{error.filename2}'" if error.filename2 else "")
    return f"{where}: {error.strerror or error}" + (f" ({advice})" if advice else "")
