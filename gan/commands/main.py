"""The `gan` command group: it only assembles the commands of `gan/commands/`."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import time
import warnings
from typing import Callable, Iterator

import click
from PIL import Image

from gan import __version__
from gan.commands.bench import bench
from gan.commands.cache import cache
from gan.commands.common import another_torchrun_process, fail, file_error
from gan.commands.compare import compare
from gan.commands.eval import evaluate
from gan.commands.export import export
from gan.commands.sample import sample
from gan.commands.streams import STANDARD_OUTPUT, command_streams, drop_unwritten
from gan.commands.sweep import sweep
from gan.commands.train import train
from gan.commands.translate import translate
from gan.core.memory import out_of_memory
from gan.core.processes import stop_handlers_restored, stops_raise_interrupts
from gan.core.progress import CLEAR_LINE, redraws_lines


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the command line read as one plain line, without source locations; on a
    terminal the line takes a progress line's place rather than running on from its end."""
    return f"{CLEAR_LINE if redraws_lines(sys.stderr) else ''}warning: {message}\n"


def _said_once(show: Callable[..., None]) -> Callable[..., None]:
    """`show` (warnings.showwarning) skipping a warning whose text and kind it has shown already."""
    shown: set[tuple[type[Warning], str]] = set()

    def show_once(message, category, *where, **more) -> None:
        if (category, str(message)) not in shown:
            shown.add((category, str(message)))
            show(message, category, *where, **more)
    return show_once


@contextlib.contextmanager
def _command_line_warnings() -> Iterator[None]:
    """Warnings as a command prints them, for the command only: one called in a process that goes on
    (click's CliRunner, a notebook) leaves its warnings filters and format as they were. Each warning
    is said once a command: Python's own once-per-line record is cleared whenever any code changes the
    filters (a `catch_warnings` block does), so a check made twice in one run said its warning twice."""
    formatwarning = warnings.formatwarning
    with warnings.catch_warnings():
        warnings.formatwarning = _format_warning
        warnings.showwarning = _said_once(warnings.showwarning)
        # gan.data.decode warns of such images with their file name; Pillow's own warning names none
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        # Pillow's EXIF parser warns of each damaged tag ("Tag data larger than file. Skipping tag
        # 270") without naming the file; gan reads only the orientation tag (upright as viewers
        # show it, also when its neighbours are damaged), so the others change nothing it reads.
        warnings.filterwarnings("ignore", module=r"PIL\.TiffImagePlugin")
        try:
            yield
        finally:
            warnings.formatwarning = formatwarning


class Commands(click.Group):
    """The command group, ending any command's unhandled error on a named file (a read-only or
    full disk, a file where a folder belongs) or memory that ran out with one line instead of a
    traceback, and a stop no command handled with the shell's exit status for it. Under torchrun,
    a usage error is printed by rank 0 alone (each process exits with it)."""

    def main(self, args=None, *rest, **kwargs):
        # A command line given, not read from sys.argv: a process that goes on (click's CliRunner, a notebook) gets
        # its stop handlers back, which the process's own command leaves ignored once its outputs are in place
        try:
            with stop_handlers_restored() if args is not None else contextlib.nullcontext():
                return super().main(args, *rest, **kwargs)
        except OSError as error:  # (before a command runs: `gan --help > /dev/full`; a command's own are said)
            if error.filename is not None or error.errno in (errno.EPIPE, None):
                raise
            drop_unwritten(sys.stdout)  # (else flushed again at exit: "Exception ignored", exit 120)
            click.echo(f"error: '{STANDARD_OUTPUT}': {error.strerror}", err=True)
            sys.exit(2)

    def make_context(self, *args, **kwargs) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as error:  # (`gan trian`): the group's own arguments
            _usage_error(error)
        except OSError as error:  # (`gan --help | head -1`: click's own handler exits 1, a failed work's status)
            if error.errno != errno.EPIPE:
                raise
            _exit_reader_gone()

    def invoke(self, ctx: click.Context):
        try:  # (torch's libraries, loaded by every command, fail to load from a deleted folder, in their own words)
            os.getcwd()
        except FileNotFoundError:
            fail("the folder this command runs in has been deleted (or moved): change to a folder that exists, "
                 "and run it again")
        try:
            # SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 (`kill`, a closed terminal, a scheduler's warning) stop
            # every command as Ctrl-C does: its temp files go and it says so, where the default action ended
            # it without a word; once its outputs are all in place, every stop is ignored, to the exit
            with command_streams(), stops_raise_interrupts(), _command_line_warnings():
                return super().invoke(ctx)
        except click.UsageError as error:  # a command's arguments
            _usage_error(error)
        except KeyboardInterrupt as stop:
            # Ctrl-C before a command handles stops itself (while torch imports, say): the shell's
            # 128 + signal, not click's "Aborted!" with 1; every file is written atomically
            signum = getattr(stop, "signum", signal.SIGINT)
            if not another_torchrun_process():
                name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
                click.echo(f"error: stopped by {name}", err=True)
            sys.exit(128 + signum)
        except OSError as error:
            if error.errno == errno.ENOMEM:  # (an import, say, naming the folder it read from)
                _out_of_memory(ctx, error)
            if error.errno == errno.EPIPE and error.filename == STANDARD_OUTPUT:
                _exit_reader_gone()  # (`gan cache list | head -1`)
            # (one naming no file: the command's own, not the standard output's, as Commands.main would say)
            fail(file_error(error) if error.filename is not None else str(error))
        except (RuntimeError, MemoryError) as error:  # (the allocator's: past a memory limit, `ulimit -v`)
            if not out_of_memory(error):
                raise
            _out_of_memory(ctx, error)
        except ImportError as error:  # (the dynamic loader's, under `ulimit -v`: torch maps ~3.3 GB to load)
            if "failed to map segment" not in str(error):
                raise
            fail(f"torch's libraries could not be loaded ({str(error).strip()}): this process's address-space limit "
                 "(ulimit -v) is below the ~3.5 GB torch maps as it loads; raise it, or lift it (ulimit -v unlimited)")


READER_GONE_STATUS = 128 + 13  # 128 + SIGPIPE, the status a shell gives a Unix tool whose reader left (no SIGPIPE on Windows)


def _exit_reader_gone() -> None:
    """End quietly with READER_GONE_STATUS once stdout's reader has gone (`| head -1`): not 1, the status of work
    that failed (a diverged run, a sweep's failed run), which a script under `set -o pipefail` must tell apart."""
    drop_unwritten(sys.stdout)  # (else flushed again at exit: "Exception ignored", exit 120)
    sys.exit(READER_GONE_STATUS)


# What to ask for less of when memory runs out, by command
LESS_MEMORY = {"train": "a smaller train.batch_size, or smaller networks", "sample": "a smaller --n",
               "eval": "a smaller --n", "translate": "--tile (or a smaller one)", "bench": "a smaller --set train.batch_size"}


def _out_of_memory(ctx: click.Context, error: BaseException) -> None:
    """End the command in one line: memory ran out, in the allocator's first words, and what to do."""
    said = (str(error).strip().splitlines() or [type(error).__name__])[0]
    less = LESS_MEMORY.get(ctx.invoked_subcommand or "")
    fail(f"out of memory ({said}): " + (f"ask for less at a time ({less}), or free memory" if less else
                                        "free memory, or run it where there is more"))


def _usage_error(error: click.UsageError) -> None:
    """End on a usage error (an unknown option, a value click or the command's own checks refuse) in the one
    line `error: ...` every other refusal is, naming where the usage is: click's three lines ("Usage: ...",
    "Try ...", "Error: ...") ended in a capital 'Error:' that a script looking for 'error:' missed. (`gan`
    alone still shows the help.)"""
    if _shows_the_help(error):
        raise error
    _quietly_unless_rank_0(error)
    where = error.ctx.command_path if error.ctx is not None else "gan"
    click.echo(f"error: {error.format_message()} (see '{where} --help')", err=True)
    sys.exit(error.exit_code)


def _shows_the_help(error: click.UsageError) -> bool:
    """Whether `error` is `gan` alone, for which click shows the help: by this usage error from click 8.2 (an
    earlier click shows it and exits without one, and has no such name)."""
    return isinstance(error, getattr(click.exceptions, "NoArgsIsHelpError", ()))


def _quietly_unless_rank_0(error: click.UsageError) -> None:
    if another_torchrun_process():
        # Rank 0 meets the same error at the same moment: exiting first, this process got it killed by
        # torchrun before it had printed, and the error went unsaid.
        time.sleep(USAGE_ERROR_GRACE_S)
        sys.exit(error.exit_code)


USAGE_ERROR_GRACE_S = 3.0  # how long the other processes leave rank 0 to print a usage error


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gan")
def main() -> None:
    """GANs on one zoo of networks and one training loop.

    \b
    gan train experiments/dcgan_demo.toml            # no download needed
    gan sample runs/00000-dcgan_demo --n 64 --out faces.png
    gan translate runs/00001-pix2pix_facades labels/ photos/   # facades: label maps in, photos out
    gan eval runs/00002-sr_pix2pix_x4 --data datasets/sr/Set5
    gan eval runs/00000-dcgan_demo --metrics swd --n 2000
    gan export runs/00000-dcgan_demo --out faces.safetensors
    gan bench --baseline baseline.py                 # speed against a plain baseline
    gan cache list                                   # decoded-image caches
    torchrun --nproc_per_node=4 -m gan train experiments/dcgan_celeba128.toml
    gan sweep experiments/dcgan_demo.toml --grid loss.preset=hinge,lsgan --seeds 3 --out sweeps/presets
    gan compare sweeps/presets                       # the sweep's table and curves
    tensorboard --logdir runs                        # compare runs
    """


for _command in (train, sweep, compare, sample, translate, evaluate, export, bench, cache):
    main.add_command(_command)
